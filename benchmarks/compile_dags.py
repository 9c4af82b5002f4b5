"""Compile time of large straight-line gradients: random DAGs of 10^3 to 3x10^4 operations.

    python -m benchmarks.compile_dags [--before CHECKOUT] [--sizes ...] [--mixes ...]

For each mix of operations (additions and products only; with sin, cos, tanh and exp;
with activations) and size, one fresh process with an empty cache builds the DAG
(``benchmarks.scaling.random_dag``), then times ``sd.compile`` plus the first gradient
("ready": everything from the built graph to the compiled gradient's first value) and
the gradient per call.  With ``--before``, the same row runs right before with the
symdiff of another checkout (e.g. ``git worktree add /tmp/before <commit>``), so the
two are measured side by side; the table gives both and their ratio, and the largest
difference between the two gradients.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import timeit

MIXES = {"add-mul": (), "transcendental": ("sin", "cos", "tanh", "exp"),
         "activations": ("tanh", "sigmoid", "relu", "softplus")}
NVARS = 10


def measure(mix: str, ops: int) -> dict:
    """One row in this process (symdiff already importable from the wanted checkout)."""
    import numpy as np

    import symdiff as sd

    from .scaling import random_dag

    xs = [sd.symbol(f"v{i}") for i in range(NVARS)]
    f = random_dag(sd, xs, ops, unary=MIXES[mix])
    point = np.linspace(0.1, 1.0, NVARS)
    start = time.perf_counter()
    fn = sd.compile(f, args=xs, background=False)
    gradient = fn.grad(*point)
    ready = time.perf_counter() - start
    timer = timeit.Timer(lambda: fn.grad(*point))
    loops, _ = timer.autorange()
    per_call = statistics.median(t / loops for t in timer.repeat(repeat=7, number=loops))
    try:
        grad_ops = sd.count_ops(fn.lower("grad").spec.result)
    except AttributeError:
        grad_ops = None
    return {"symdiff": os.path.dirname(sd.__file__), "ops": sd.count_ops(f),
            "grad_ops": grad_ops, "ready_s": ready,
            "per_call_us": per_call * 1e6, "gradient": [float(g) for g in gradient]}


def run(mix: str, ops: int, checkout: str | None, limit: float) -> dict:
    """One row in a fresh process with an empty cache."""
    env = {**os.environ, "SYMDIFF_CACHE_DIR": tempfile.mkdtemp(prefix="dags-")}
    command = [sys.executable, "-m", "benchmarks.compile_dags", "--one", mix, str(ops)]
    if checkout:
        command += ["--checkout", checkout]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=limit, env=env)
    except subprocess.TimeoutExpired:
        return {"over_s": limit}
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:160]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _difference(a: dict, b: dict) -> str:
    import numpy as np

    if "gradient" not in a or "gradient" not in b:
        return "-"
    x, y = np.array(a["gradient"]), np.array(b["gradient"])
    if np.array_equal(x, y, equal_nan=True):
        return "0" if np.isfinite(x).all() else "0 (nan, overflow)"
    if not np.array_equal(np.isfinite(x), np.isfinite(y)):
        return "differ in nan/inf"
    finite = np.isfinite(y)
    scale = max(float(np.max(np.abs(y[finite]))), 1e-300)
    return f"{float(np.max(np.abs(x[finite] - y[finite]))) / scale:.0e}"


def _cells(r: dict) -> list[str]:
    if "over_s" in r:
        return [f"over {r['over_s']:.0f} s", "-"]
    if "error" in r:
        return [r["error"], "-"]
    return [f"{r['ready_s']:.2f}", f"{r['per_call_us']:.1f}"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compile_dags",
                                     description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 30_000])
    parser.add_argument("--mixes", nargs="+", default=list(MIXES), choices=list(MIXES))
    parser.add_argument("--before", help="a checkout of the symdiff to compare with")
    parser.add_argument("--limit", type=float, default=600.0)
    parser.add_argument("--json", default="benchmarks/compile_dags.json")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--checkout", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        if args.checkout:  # that checkout's symdiff and codegen, this one's benchmarks
            sys.path.insert(0, os.path.abspath(args.checkout))
        print(json.dumps(measure(args.one[0], int(args.one[1]))))
        return 0
    rows = []
    before = ["before ready s", "before per call µs"] if args.before else []
    header = ["mix", "ops", "gradient ops", *before, "ready s", "per call µs"]
    if args.before:
        header += ["ready, before / after", "largest gradient difference"]
    print("| " + " | ".join(header) + " |\n" + "|---" * len(header) + "|")
    for mix in args.mixes:
        for ops in args.sizes:
            old = run(mix, ops, args.before, args.limit) if args.before else None
            new = run(mix, ops, None, args.limit)
            rows.append({"mix": mix, "size": ops, "after": new, "before": old})
            cells = [mix, f"{new.get('ops', ops):,}", f"{new.get('grad_ops') or 0:,}"]
            if old is not None:
                cells += _cells(old)
            cells += _cells(new)
            if old is not None:
                ratio = (f"{old['ready_s'] / new['ready_s']:.1f}"
                         if "ready_s" in old and "ready_s" in new else "-")
                cells += [ratio, _difference(new, old)]
            print("| " + " | ".join(cells) + " |", flush=True)
            with open(args.json, "w", encoding="utf-8") as out:  # a long run may be cut
                json.dump(rows, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
