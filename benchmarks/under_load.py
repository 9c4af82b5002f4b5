"""Per-call time idle and with one and two busy processes on the machine (issue #11).

    python -m benchmarks.under_load [--problems P2 P3 P4 P4b] [--json FILE]

For each problem, symdiff's compiled value-and-gradient is timed (median of timed
loops) with nothing else running, then while this script keeps one and then two
``while True: pass`` processes busy, started and stopped by it; once as symdiff runs it
(BLAS on one thread during compiled matrix products: symdiff.blas_threads) and once with
``SYMDIFF_BLAS_THREADS=0`` (BLAS left with one thread per core).  Each row runs in its
own process.  Ratios are to the idle time of the same row.
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


def worker(key: str) -> dict:
    """One row: the problem's per-call times with 0, 1 and 2 busy processes."""
    import symdiff as sd

    from .problems import PROBLEMS

    problem = PROBLEMS[key]
    expr, symbols = problem.symdiff()
    fn = sd.compile(expr, wrt=[symbols[i] for i in problem.wrt], args=symbols,
                    background=False)
    args = problem.args(np.random.default_rng(0))
    fn.value_and_grad(*args)
    times = []
    for count in (0, 1, 2):
        procs = _busy(count)
        time.sleep(0.5)  # let them take their cores
        try:
            times.append(_per_call(fn.value_and_grad, args))
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
        time.sleep(0.3)
    return {"problem": key, "blas_threads": os.environ.get("SYMDIFF_BLAS_THREADS", "1"),
            "idle_s": times[0], "one_busy_s": times[1], "two_busy_s": times[2]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="per-call time under a controlled load")
    parser.add_argument("--problems", nargs="+", default=["P2", "P3", "P4", "P4b"])
    parser.add_argument("--json", default=None)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.worker:
        print(json.dumps(worker(options.worker)))
        return 0
    rows = []
    for key in options.problems:
        for blas in ("1", "0"):
            env = dict(os.environ, SYMDIFF_BLAS_THREADS=blas)
            out = subprocess.run([sys.executable, "-m", "benchmarks.under_load", "--worker",
                                  key], env=env, text=True, capture_output=True,
                                 check=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            rows.append(row)
            print(f"{key:>4} SYMDIFF_BLAS_THREADS={blas}: idle {row['idle_s'] * 1e6:9.1f} us, "
                  f"one busy {row['one_busy_s'] / row['idle_s']:5.2f}x, two busy "
                  f"{row['two_busy_s'] / row['idle_s']:5.2f}x", flush=True)
    save_rows(options.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
