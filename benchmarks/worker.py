"""Measure one (problem, system) pair; prints one JSON line.  Used by benchmarks.run."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import timeit

import numpy as np

from .problems import PROBLEMS
from .systems import SYSTEMS, Skip


def _error(value, grads, ref_value, ref_grads) -> float:
    worst = 0.0
    pairs = [(value, ref_value)] + list(zip(grads, ref_grads, strict=True))
    for got, want in pairs:
        got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
        scale = max(np.max(np.abs(want)), 1e-300)
        worst = max(worst, float(np.max(np.abs(got.reshape(want.shape) - want))) / scale)
    return worst


def save_rows(path, rows) -> None:
    """Write a suite's raw rows as JSON (nothing without a path)."""
    if path:
        with open(path, "w", encoding="utf-8") as out:
            json.dump(rows, out, indent=1)


def _per_call(call, args) -> float:
    """Median seconds per call over repeated timed loops."""
    timer = timeit.Timer(lambda: call(*args))
    loops, _ = timer.autorange()
    return statistics.median(t / loops for t in timer.repeat(repeat=7, number=loops))


def side_by_side_options(argv, description: str, sizes, worker):
    """The options of a benchmark that runs each system in a fresh process (--sizes,
    --systems, and the hidden --worker SYSTEM SIZE); None where this process was such a
    worker (``worker(system, size)``'s row printed as JSON)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--sizes", nargs="+", default=list(sizes),
                        help=f"problem sizes, as the module's docstring says (default: "
                             f"{' '.join(sizes)})")
    parser.add_argument("--systems", nargs="+", default=["symdiff", "jax"],
                        help="symdiff and/or jax (JAX needs the bench extra)")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.worker:
        print(json.dumps(worker(*options.worker)))
        return None
    return options


def fresh_process_rows(module: str, systems, size: str) -> dict:
    """Each system's row for ``size`` from ``python -m <module> --worker SYSTEM SIZE`` in
    a fresh process (an empty symdiff cache, SYMDIFF_BACKGROUND=0), by system; a system
    that failed prints a table row saying so."""
    rows = {}
    for system in systems:
        env = dict(os.environ, SYMDIFF_CACHE_DIR=tempfile.mkdtemp(prefix="sd-bench-"),
                   SYMDIFF_BACKGROUND="0")
        done = subprocess.run([sys.executable, "-m", module, "--worker", system, size],
                              env=env, text=True, capture_output=True)
        if done.returncode:
            print(f"| {size} | {system} | failed: {done.stderr.strip().splitlines()[-1]} |")
            continue
        rows[system] = json.loads(done.stdout.strip().splitlines()[-1])
    return rows


def print_side_by_side(module: str, options, size_title: str, timed: list[tuple[str, str]],
                       against: str, agree) -> None:
    """The markdown table of ``module``'s rows, each system in a fresh process per size:
    first seconds, then each ``timed`` (title, key) in ms, then the ``against`` key's
    time over JAX's; a line where ``agree(first_row, other_row)`` is false."""
    titles = " | ".join(title for title, _ in timed)
    print(f"| {size_title} | system | first s | {titles} | / JAX |\n"
          f"|---|---|---:|{'---:|' * len(timed)}---:|")
    for size in options.sizes:
        rows = fresh_process_rows(module, options.systems, size)
        first, *others = rows.values() if rows else [None]
        if any(not agree(first, other) for other in others):
            print(f"| {size} | results differ |")
        for system, row in rows.items():
            ratio = f"{row[against] / rows['jax'][against]:.2f}" if "jax" in rows else "-"
            times = " | ".join(f"{row[key] * 1e3:.3f}" for _, key in timed)
            print(f"| {size} | {system} | {row['first_s']:.2f} | {times} | {ratio} |")

def same_checksum(a: dict, b: dict) -> bool:
    """Whether two systems' rows carry the same ``checksum`` (to 1e-9, relative)."""
    return bool(np.allclose(a["checksum"], b["checksum"], rtol=1e-9))

def measure(problem_key: str, system_name: str) -> dict:
    problem = PROBLEMS[problem_key]
    system = next(s for s in SYSTEMS if s.name == system_name)
    args = problem.args(np.random.default_rng(0))
    ref_value, ref_grads = problem.reference(*args)
    try:
        # Libraries are imported before the clock starts: preparation is what is timed.
        for library in ("numba", "sympy", *system.libraries):
            importlib.import_module(library)
        start = time.perf_counter()
        call, ops = system.prepare(problem, args)
        value, grads = call(*args)
        prepare = time.perf_counter() - start
    except Skip as why:
        return {"skipped": str(why)}
    result = {"prepare_s": prepare, "error_rel": _error(value, grads, ref_value, ref_grads)}
    if hasattr(system, "ready"):
        call, value_only = system.ready(problem, args)
        result["compiled_s"] = system.compiled_at - start  # until the compiled code runs
        value, grads = call(*args)
        result["error_rel"] = max(result["error_rel"],
                                  _error(value, grads, ref_value, ref_grads))
        result["value_call_s"] = _per_call(value_only, args)
    result["call_s"] = _per_call(call, args)
    result["ops"] = ops() if ops is not None else None
    if problem.batch_points:
        result["points_per_s"] = problem.batch_points / result["call_s"]
    return result


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], sys.argv[2])))
