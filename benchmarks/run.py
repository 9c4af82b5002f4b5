"""Run the benchmark problems on every installed system, side by side in one run.

    python -m benchmarks [--problems P1 P2 ...] [--systems symdiff JAX ...] [--json FILE]
    python -m benchmarks --before CHECKOUT [--repeat 3]   (symdiff against another checkout)

Each (problem, system) pair runs in a fresh process: preparation time (trace, symbolic
work, code generation, compilation) is measured from a cold start to the first result,
with the library already imported; symdiff's disk cache is empty for it.  Per-call
time is the median over repeated timed loops.  Correctness is the largest relative error
of the value and gradient against a hand-derived NumPy reference.  BENCH_FULL=1 also
runs the preparations known to take minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

from .problems import PROBLEMS
from .systems import SYSTEMS


def _machine() -> str:
    import numba
    import numpy

    cpus = os.cpu_count()
    model = ""
    try:
        with open("/proc/cpuinfo") as info:
            model = next(line.split(":", 1)[1].strip() for line in info
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{model or platform.processor()}, {cpus} cores, Python "
            f"{platform.python_version()}, NumPy {numpy.__version__}, Numba {numba.__version__}")


def run_pair(problem: str, system: str, timeout: float, checkout: str | None = None) -> dict:
    """Measure one (problem, system) pair in a fresh process (with the symdiff and the
    benchmarks of another ``checkout``, if given)."""
    env = {**os.environ, "SYMDIFF_CACHE_DIR": tempfile.mkdtemp(prefix="bench-cache-")}
    if checkout:
        env["PYTHONPATH"] = os.path.abspath(checkout)
    try:
        done = subprocess.run([sys.executable, "-m", "benchmarks.worker", problem, system],
                              capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=os.path.abspath(checkout) if checkout else None)
    except subprocess.TimeoutExpired:
        return {"skipped": f"over {timeout:.0f} s"}
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:200]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _format(rows: list[dict]) -> str:
    lines = ["| problem | system | prepare + first call s | per call | vs symdiff | "
             "max rel error | ops |", "|---|---|---|---|---|---|---|"]
    base = {r["problem"]: r.get("call_s") for r in rows if r["system"] == "symdiff"}
    for r in rows:
        if "call_s" not in r:
            note = r.get("skipped") or r.get("error")
            lines.append(f"| {r['problem']} | {r['system']} | - | - | - | - | {note} |")
            continue
        per_call = (f"{r['points_per_s']:.3g} points/s" if r.get("points_per_s")
                    else f"{r['call_s'] * 1e6:.2f} µs")
        ratio = r["call_s"] / base[r["problem"]] if base.get(r["problem"]) else float("nan")
        lines.append(f"| {r['problem']} | {r['system']} | {r['prepare_s']:.3f} | {per_call} | "
                     f"{ratio:.2f}x | {r['error_rel']:.1e} | {r.get('ops') or ''} |")
    return "\n".join(lines)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def before_and_after(problems: list[str], checkout: str, repeat: int, timeout: float) -> str:
    """symdiff's time to compiled code (from sd.compile until the compiled value and
    gradient run) and per-call time on each problem, with this code and with another
    checkout's, runs alternating (before, after) ``repeat`` times; medians."""
    lines = ["| problem | compiled s, before | after | after / before | per call, before | "
             "after | after / before |", "|---|---|---|---|---|---|---|"]
    for key in problems:
        runs: dict = {"before": [], "after": []}
        for _ in range(repeat):
            for side, where in (("before", checkout), ("after", None)):
                result = run_pair(key, "symdiff", timeout, where)
                if "call_s" in result:
                    runs[side].append(result)
                print(f"{key:4s} {side:6s} {json.dumps(result)}", file=sys.stderr, flush=True)
        if not runs["before"] or not runs["after"]:
            lines.append(f"| {key} | - | - | - | - | - | - |")
            continue
        prepare = [_median([r["compiled_s"] for r in runs[s]]) for s in ("before", "after")]
        call = [_median([r["call_s"] for r in runs[s]]) for s in ("before", "after")]
        lines.append(f"| {key} | {prepare[0]:.3f} | {prepare[1]:.3f} | "
                     f"{prepare[1] / prepare[0]:.2f} | {call[0] * 1e6:.2f} µs | "
                     f"{call[1] * 1e6:.2f} µs | {call[1] / call[0]:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS))
    parser.add_argument("--systems", nargs="+", default=[s.name for s in SYSTEMS],
                        help="system names (substrings match)")
    parser.add_argument("--json", default="benchmarks/results.json")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--before", help="a checkout of symdiff to compare with (git worktree)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if args.before:
        print(f"Machine: {_machine()}\n")
        print(before_and_after(args.problems, args.before, args.repeat, args.timeout))
        return 0
    rows = []
    for key in args.problems:
        for system in SYSTEMS:
            if not any(s.lower() in system.name.lower() for s in args.systems):
                continue
            if not system.available():
                rows.append({"problem": key, "system": system.name, "skipped": "not installed"})
                continue
            result = run_pair(key, system.name, args.timeout)
            rows.append({"problem": key, "system": system.name, **result})
            print(f"{key:4s} {system.name:32s} {json.dumps(result)}", file=sys.stderr,
                  flush=True)
    print(f"Machine: {_machine()}\n")
    print(_format(rows))
    with open(args.json, "w") as out:
        json.dump({"machine": _machine(), "results": rows}, out, indent=1)
    return 0
