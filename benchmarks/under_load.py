"""Per-call time idle and with one and two busy processes on the machine (issue #11).

    python -m benchmarks.under_load [--problems P1 ... P5] [--systems symdiff jax]

For each problem, the compiled value-and-gradient is timed (median of timed loops) with
nothing else running, then while this script keeps one and then two
``while True: pass`` processes busy, started and stopped by it.  symdiff runs twice: as
it runs by default (BLAS on one thread during compiled matrix products:
symdiff.runtime.blas_threads) and with ``SYMDIFF_BLAS_THREADS=0`` (BLAS left with one thread per
core); JAX (jit of value_and_grad, vmap for P5) as it comes.  Each row runs in its own
process.  Ratios are to the idle time of the same row.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from .worker import _per_call, save_rows


def _busy(count: int) -> list:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def _call(key: str, system: str):
    from .problems import PROBLEMS

    problem = PROBLEMS[key]
    args = problem.args(np.random.default_rng(0))
    if system == "jax":
        from .systems import Jax

        call, _ = Jax().prepare(problem, args)
    else:
        import symdiff as sd

        expr, symbols = problem.symdiff()
        call = sd.compile(expr, wrt=[symbols[i] for i in problem.wrt], args=symbols,
                          background=False).value_and_grad
    call(*args)
    return call, args


def worker(key: str, system: str) -> dict:
    """One row: the problem's per-call times with 0, 1 and 2 busy processes."""
    call, args = _call(key, system)
    times = []
    for count in (0, 1, 2):
        procs = _busy(count)
        time.sleep(0.5)  # let them take their cores
        try:
            times.append(_per_call(call, args))
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
        time.sleep(0.3)
    return {"problem": key, "system": system,
            "blas_threads": os.environ.get("SYMDIFF_BLAS_THREADS", "1"),
            "idle_s": times[0], "one_busy_s": times[1], "two_busy_s": times[2]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="per-call time under a controlled load")
    parser.add_argument("--problems", nargs="+",
                        default=["P1", "P2", "P3", "P4", "P4b", "P5"])
    parser.add_argument("--systems", nargs="+", default=["symdiff", "jax"],
                        choices=["symdiff", "jax"])
    parser.add_argument("--json", default=None)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.worker:
        print(json.dumps(worker(*options.worker)))
        return 0
    rows = []
    runs = [(system, blas) for system in options.systems
            for blas in (("1", "0") if system == "symdiff" else ("1",))]
    for key in options.problems:
        for system, blas in runs:
            env = dict(os.environ, SYMDIFF_BLAS_THREADS=blas)
            out = subprocess.run([sys.executable, "-m", "benchmarks.under_load", "--worker",
                                  key, system], env=env, text=True, capture_output=True,
                                 check=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            rows.append(row)
            label = f"symdiff, SYMDIFF_BLAS_THREADS={blas}" if system == "symdiff" else system
            print(f"{key:>4} {label:>34}: idle {row['idle_s'] * 1e6:9.1f} us, one busy "
                  f"{row['one_busy_s'] / row['idle_s']:5.2f}x, two busy "
                  f"{row['two_busy_s'] / row['idle_s']:5.2f}x", flush=True)
    save_rows(options.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
