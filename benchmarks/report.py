"""Markdown tables of a benchmark run, as ratios to symdiff (for the README).

    python -m benchmarks.report [benchmarks/results.json]
"""

from __future__ import annotations

import json
import sys


def _cell(row, base, key):
    if row is None or key not in row:
        return "-"
    if row.get("points_per_s") and key == "call_s":
        text = f"{row['points_per_s'] / 1e6:.1f} M/s"
    elif key == "call_s":
        text = f"{row[key] * 1e6:.2f} µs"
    else:
        text = f"{row[key]:.2f} s"
    return f"{text} ({row[key] / base[key]:.2f}x)" if base and key in base else text


def tables(path: str) -> str:
    """Per-call and preparation tables: rows are systems, columns problems."""
    data = json.load(open(path))
    rows = data["results"]
    problems = list(dict.fromkeys(r["problem"] for r in rows))
    systems = list(dict.fromkeys(r["system"] for r in rows))
    by = {(r["problem"], r["system"]): r for r in rows}
    out = [f"Machine: {data['machine']}.", ""]
    for key, title in (("call_s", "Per call (value + gradient), ratio to symdiff "
                                  "(>1: slower than symdiff)"),
                       ("prepare_s", "Preparation until the first result (cold cache), "
                                     "ratio to symdiff")):
        out += [f"{title}:", "", "| system | " + " | ".join(problems) + " |",
                "|---|" + "---|" * len(problems)]
        for system in systems:
            cells = []
            for p in problems:
                row, base = by.get((p, system)), by.get((p, "symdiff"))
                if row is not None and "skipped" in row:
                    cells.append("skipped")
                elif row is not None and "error" in row:
                    cells.append("failed")
                else:
                    cells.append(_cell(row, base, key))
            out.append(f"| {system} | " + " | ".join(cells) + " |")
        out.append("")
    skipped = sorted({f"{r['system']} on {r['problem']}: {r['skipped']}" for r in rows
                      if "skipped" in r and r["skipped"] != "not installed"})
    out += ["Skipped:", ""] + [f"- {s}" for s in skipped]
    ours = {p: by[p, "symdiff"] for p in problems if "call_s" in by.get((p, "symdiff"), {})}
    compiled = [f"{p} {r['compiled_s']:.2f} s" for p, r in ours.items() if "compiled_s" in r]
    if compiled:
        out += ["", "symdiff's first result comes from the evaluator while Numba compiles in "
                "the background; until the compiled code was in place: "
                + ", ".join(compiled) + "."]
    ratios = [f"{p} {r['call_s'] / r['value_call_s']:.1f}x" for p, r in ours.items()
              if "value_call_s" in r]
    if ratios:
        out += ["", "symdiff, value + gradient over the value alone: " + ", ".join(ratios) + "."]
    worst = max((r.get("error_rel", 0) for r in rows), default=0)
    out += ["", f"Largest relative error against the NumPy reference, any system: {worst:.1e}."]
    return "\n".join(out)


if __name__ == "__main__":
    print(tables(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results.json"))
