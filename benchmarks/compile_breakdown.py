"""Where the time to compiled code goes, for each benchmark problem, against JAX's first call.

    python -m benchmarks.compile_breakdown [--problems P1 ... P5]

Each row runs in a fresh process with an empty cache, libraries imported before the
clock starts.  symdiff: the compiled value-and-gradient in place (background compiles
off), split into trace (the problem's expression), derive (gradient and passes), emit
(the module's source) and Numba (import of the module, typing, lowering and LLVM, with
LLVM's share from Numba's ``numba:llvm_lock`` event).  "Numba floor": the first call of
an njit function of one array (``x.sum()``) in a fresh process, the fixed cost every
first compile pays.  JAX: ``jit(value_and_grad)`` (vmap for P5) to the first result.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from .worker import save_rows


def symdiff_row(key: str) -> dict:
    import numba  # noqa: F401  (imported before the clock, as the other libraries)
    from numba.core import event

    import symdiff as sd
    import symdiff.runtime.transforms  # the runtime loads on first use: here, before the clock

    from .problems import PROBLEMS

    problem = PROBLEMS[key]
    args = problem.args(np.random.default_rng(0))
    timers: dict[str, float] = {}

    def timer(name):
        return lambda seconds: timers.__setitem__(name, timers.get(name, 0.0) + seconds)

    start = time.perf_counter()
    expr, symbols = problem.symdiff()
    traced = time.perf_counter()
    fn = sd.compile(expr, wrt=[symbols[i] for i in problem.wrt], args=symbols,
                    background=False)
    fn.derivation.spec("value_and_grad")
    derived = time.perf_counter()
    fn.loader.source("value_and_grad")  # emitted once more by the compile below: subtracted
    emitted = time.perf_counter()
    with event.install_timer("numba:llvm_lock", timer("llvm")):
        fn.value_and_grad(*args)
    done = time.perf_counter()
    return {"trace_s": traced - start, "derive_s": derived - traced,
            "emit_s": emitted - derived, "numba_s": done - emitted - (emitted - derived),
            "llvm_s": timers.get("llvm", 0.0), "total_s": done - start}


def floor_row() -> dict:
    import numba

    x = np.ones(10)
    start = time.perf_counter()
    numba.njit(lambda v: v.sum())(x)
    return {"total_s": time.perf_counter() - start}


def jax_row(key: str) -> dict:
    import jax  # noqa: F401

    from .problems import PROBLEMS
    from .systems import Jax

    problem = PROBLEMS[key]
    args = problem.args(np.random.default_rng(0))
    start = time.perf_counter()
    call, _ = Jax().prepare(problem, args)
    call(*args)
    return {"total_s": time.perf_counter() - start}


def _run(*what) -> dict:
    env = {**os.environ, "SYMDIFF_CACHE_DIR": tempfile.mkdtemp(prefix="breakdown-")}
    done = subprocess.run([sys.executable, "-m", "benchmarks.compile_breakdown", "--one",
                           *what], capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compile_breakdown",
                                     description=__doc__)
    parser.add_argument("--problems", nargs="+", default=["P1", "P2", "P3", "P4", "P4b",
                                                           "P5"])
    parser.add_argument("--json", default="benchmarks/compile_breakdown.json")
    parser.add_argument("--one", nargs="+", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.one:
        kind, *key = options.one
        row = {"symdiff": symdiff_row, "jax": jax_row}[kind](*key) if key else floor_row()
        print(json.dumps(row))
        return 0
    floor = _run("floor")["total_s"]
    rows = [{"problem": "floor", "numba_floor_s": floor}]
    print(f"Numba floor (first njit call of x.sum() in a fresh process): {floor:.2f} s\n")
    print("| problem | trace s | derive s | emit s | Numba s (LLVM s) | symdiff total s "
          "| JAX first call s | symdiff / JAX | Numba floor / JAX |\n|---|---:|---:|---:|---:"
          "|---:|---:|---:|---:|")
    for key in options.problems:
        ours, jax = _run("symdiff", key), _run("jax", key)
        rows.append({"problem": key, "symdiff": ours, "jax": jax})
        print(f"| {key} | {ours['trace_s']:.3f} | {ours['derive_s']:.3f} | "
              f"{ours['emit_s']:.3f} | {ours['numba_s']:.2f} ({ours['llvm_s']:.2f}) | "
              f"{ours['total_s']:.2f} | {jax['total_s']:.2f} | "
              f"{ours['total_s'] / jax['total_s']:.1f} | {floor / jax['total_s']:.1f} |",
              flush=True)
        save_rows(options.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
