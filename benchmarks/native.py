"""Time to compiled code and per call, the native backend against Numba: straight-line
functions of scalars, and functions over arrays (the benchmark problems P2-P4b).

    python -m benchmarks.native [--repeat 3]

Each row runs in a fresh process with an empty cache, libraries imported before the
clock: "ready" is from ``sd.compile`` until the compiled method's first result
(``background=False``: no evaluator tier), then the method per call (median of
``timeit`` repeats).  Both backends run alternating, ``--repeat`` times; medians.
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

WORKLOADS = {
    "P1 value_and_grad": ("((a+b)*c)**2", "value_and_grad"),
    "P1 hessian": ("((a+b)*c)**2", "hessian"),
    "neuron grad": ("sigmoid(w0*x0 + w1*x1 + w2*x2 + b)*(1 - y) + softplus(w0 - b)", "grad"),
    "DAG 1,000 ops grad": (("dag", 1000), "grad"),
    "DAG 10,000 ops grad": (("dag", 10000), "grad"),
    **{f"{key} {method}": (("problem", key), method) for key in ("P2", "P3", "P4", "P4b")
       for method in ("value_and_grad", "hvp")},
}


def measure(name: str, backend: str) -> dict:
    """One row in this process."""
    import numpy as np

    import symdiff as sd
    import symdiff.runtime.transforms  # the runtime loads on first use: before the clock

    from .problems import PROBLEMS
    from .scaling import random_dag

    what, method = WORKLOADS[name]
    args = point = None
    if what[0] == "problem":
        problem = PROBLEMS[what[1]]
        what, args = problem.symdiff()
        point = problem.args(np.random.default_rng(0))
        if method == "hvp":
            point += [np.ones_like(np.asarray(v, dtype=float)) for v in point]
    elif isinstance(what, tuple):
        xs = [sd.symbol(f"v{i}") for i in range(10)]
        what = random_dag(sd, xs, what[1], unary=("sin", "cos", "tanh", "exp"))
    start = time.perf_counter()
    fn = sd.compile(what, args=args, background=False, backend=backend)
    if point is None:
        point = [float(v) for v in np.linspace(0.1, 0.9, len(fn.args))]
    getattr(fn, method)(*point)
    ready = time.perf_counter() - start
    call = getattr(fn, method)
    timer = timeit.Timer(lambda: call(*point))
    loops, _ = timer.autorange()
    per_call = statistics.median(t / loops for t in timer.repeat(repeat=7, number=loops))
    return {"ready_s": ready, "per_call_s": per_call,
            "tier": fn.loader.tiers.get(method, "numba")}


def _duration(seconds: float) -> str:
    return f"{seconds * 1e9:.0f} ns" if seconds < 1e-5 else f"{seconds * 1e6:.1f} us"


def run(name: str, backend: str) -> dict:
    env = {**os.environ, "SYMDIFF_CACHE_DIR": tempfile.mkdtemp(prefix="bench-native-")}
    done = subprocess.run([sys.executable, "-m", "benchmarks.native", "--row", name, backend],
                          capture_output=True, text=True, env=env, timeout=600, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.native", description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--row", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--only", help="rows whose name contains this text")
    args = parser.parse_args(argv)
    if args.row:
        print(json.dumps(measure(*args.row)))
        return 0
    print("| workload | ready s, Numba | native | native / Numba | per call, Numba | native "
          "| native / Numba |\n|---|---|---|---|---|---|---|")
    for name in WORKLOADS:
        if args.only and args.only not in name:
            continue
        runs: dict = {"numba": [], "native": []}
        for _ in range(args.repeat):
            for backend in runs:
                runs[backend].append(run(name, backend))
        ready = [statistics.median(r["ready_s"] for r in runs[b]) for b in runs]
        call = [statistics.median(r["per_call_s"] for r in runs[b]) for b in runs]
        print(f"| {name} | {ready[0]:.3f} | {ready[1]:.3f} | {ready[1] / ready[0]:.3f} | "
              f"{_duration(call[0])} | {_duration(call[1])} | {call[1] / call[0]:.2f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
