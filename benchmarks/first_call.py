"""The first call's tiers: time to the first answer and for a short script, in three modes.

    python -m benchmarks.first_call [--workloads rk4_tuple ... P5] [--timeout 60]

A workload is a function and the methods a script calls.  The script builds the function
(``sd.compile``), calls each method once (the first answer: the clock stops when every
method has answered once) and then 100 more times (the total).  Modes:

- default: as symdiff runs (code in the cache is loaded; otherwise the evaluator answers
  a first call where it is expected to take under half the compile, symdiff.runtime.compiled);
- background: every first call on the evaluator while Numba compiles in a thread, cache
  or not (the tiers before issue 21, through the private switch ``loading.FIRST_CALL``);
- wait: ``SYMDIFF_BACKGROUND=0``, the first call compiles (or loads), then runs.

Each measurement runs in a fresh process, libraries imported before the clock starts:
cold with an empty ``SYMDIFF_CACHE_DIR``, warm with a cache filled by a run in the wait
mode.  A measurement that does not finish within ``--timeout`` seconds is shown as over
it.  Ratios are the default mode's time over the better of the other two.

Workloads: the RK4 pendulum of issue 21 (``sd.scan`` over 1,000 steps, value, gradient
and Hessian of four parameters, with a tuple carry of two scalars or a carry array of
two), a ``fori_loop`` of 10^7 steps (value), a logistic regression of 20 weights on
5,000 rows (value, gradient, Hessian-vector product, Hessian) and P1-P5 of
benchmarks/problems.py (value and gradient).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from .worker import save_rows

STEPS, DT = 1000, 0.01
ROWS, FEATURES = 5000, 20
CALLS = 100
MODES = ("default", "background", "wait")
WORKLOADS = ("rk4_tuple", "rk4_array", "fori_loop", "logistic", "P1", "P2", "P3", "P4",
             "P4b", "P5")


def _pendulum(carry: str, backend: str | None = None):
    """(compiled function, point) of the RK4 pendulum."""
    import symdiff as sd

    def rates(theta, omega, g, c):
        return omega, -g * np.sin(theta) - c * omega

    if carry == "tuple":
        def loss(g, c, theta0, omega0):
            def step(y, _):
                th, om = y
                a1, b1 = rates(th, om, g, c)
                a2, b2 = rates(th + 0.5 * DT * a1, om + 0.5 * DT * b1, g, c)
                a3, b3 = rates(th + 0.5 * DT * a2, om + 0.5 * DT * b2, g, c)
                a4, b4 = rates(th + DT * a3, om + DT * b3, g, c)
                return (th + DT / 6 * (a1 + 2 * a2 + 2 * a3 + a4),
                        om + DT / 6 * (b1 + 2 * b2 + 2 * b3 + b4)), None

            (th, om), _ = sd.scan(step, (theta0, omega0), sd.zeros((STEPS,)))
            return th ** 2 + om ** 2

        return (sd.compile(loss, args=["g", "c", "theta0", "omega0"], backend=backend),
                (9.81, 0.1, 1.0, 0.0))

    def loss(p):
        def f(y):
            return sd.stack(rates(y[0], y[1], p[0], p[1]))

        def step(y, _):
            k1 = f(y)
            k2 = f(y + 0.5 * DT * k1)
            k3 = f(y + 0.5 * DT * k2)
            k4 = f(y + DT * k3)
            return y + DT / 6 * (k1 + 2 * k2 + 2 * k3 + k4), None

        y, _ = sd.scan(step, p[2:], sd.zeros((STEPS,)))
        return sd.sum(y ** 2)

    return (sd.compile(loss, args=[sd.vector("p", 4)], backend=backend),
            (np.array([9.81, 0.1, 1.0, 0.0]),))


def _fori():
    import symdiff as sd

    def f(x):
        return sd.fori_loop(0, 10 ** 7, lambda i, c: c * 0.9999999 + 1e-7 * x, x)

    return sd.compile(f, args=["x"]), (0.5,)


def _logistic():
    import symdiff as sd

    rng = np.random.default_rng(0)
    data = rng.normal(size=(ROWS, FEATURES))
    labels = (rng.random(ROWS) < 1.0 / (1.0 + np.exp(-data[:, 0]))).astype(float)

    def loss(w):
        z = data @ w
        return np.mean(sd.softplus(z) - labels * z) + 1e-3 * np.sum(w * w)

    return sd.compile(loss, args=[sd.vector("w", FEATURES)]), (np.full(FEATURES, 0.05),)


def _problem(key: str):
    import symdiff as sd

    from .problems import PROBLEMS

    problem = PROBLEMS[key]
    expr, symbols = problem.symdiff()
    fn = sd.compile(expr, wrt=[symbols[i] for i in problem.wrt], args=symbols)
    return fn, tuple(problem.args(np.random.default_rng(0)))


def _script(name: str):
    """(function, [(method, arguments)]) of a workload."""
    if name.startswith("rk4"):
        fn, x = _pendulum(name.removeprefix("rk4_"))
        return fn, [("forward", x), ("grad", x), ("hessian", x)]
    if name == "fori_loop":
        fn, x = _fori()
        return fn, [("forward", x)]
    if name == "logistic":
        fn, x = _logistic()
        direction = np.linspace(-1.0, 1.0, FEATURES)
        return fn, [("forward", x), ("grad", x), ("hvp", x + (direction,)), ("hessian", x)]
    fn, x = _problem(name)
    return fn, [("value_and_grad", x)]


def worker(name: str, mode: str) -> dict:
    """One measurement in this process (the environment holds the cache and the mode)."""
    import numba  # noqa: F401  (imported before the clock, as symdiff)

    from symdiff.runtime import loading

    if mode == "background":
        loading.FIRST_CALL = "evaluator"
    start = time.perf_counter()
    fn, calls = _script(name)
    for method, x in calls:
        getattr(fn, method)(*x)
    first = time.perf_counter() - start
    for _ in range(CALLS):
        for method, x in calls:
            getattr(fn, method)(*x)
    total = time.perf_counter() - start
    return {"first_s": first, "total_s": total, "tiers": dict(getattr(fn, "_tiers", {}))}


def _run(name: str, mode: str, folder: str, timeout: float) -> dict:
    env = {**os.environ, "SYMDIFF_CACHE_DIR": folder}
    env.pop("SYMDIFF_BACKGROUND", None)
    if mode == "wait":
        env["SYMDIFF_BACKGROUND"] = "0"
    try:
        done = subprocess.run([sys.executable, "-m", "benchmarks.first_call", "--one", name,
                               mode], capture_output=True, text=True, env=env, check=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"first_s": None, "total_s": None, "tiers": {}}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _seconds(value, timeout) -> str:
    if value is None:
        return f"> {timeout:.0f}"
    return f"{value:.2f}" if value >= 0.1 else f"{value:.3f}"


def _ratio(row: dict, key: str) -> str:
    ours = row["default"][key]
    others = [row[m][key] for m in ("background", "wait") if row[m][key] is not None]
    if ours is None or not others:
        return "-"
    return f"{ours / min(others):.2f}"


_TIER_LETTERS = {"evaluator": "E", "compiled": "C", "cache": "L"}


def _line(row: dict, timeout: float) -> str:
    """A table line: times of the three modes, the ratios, the default mode's tiers."""
    tiers = "".join(_TIER_LETTERS.get(t, "?") for t in row["default"]["tiers"].values())
    return (f"| {row['workload']} | {row['cache']} | "
            + " / ".join(_seconds(row[m]["first_s"], timeout) for m in MODES)
            + f" | {_ratio(row, 'first_s')} | "
            + " / ".join(_seconds(row[m]["total_s"], timeout) for m in MODES)
            + f" | {_ratio(row, 'total_s')} | {tiers or '-'} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.first_call",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds one measurement may take")
    parser.add_argument("--json", default="benchmarks/first_call.json")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.one:
        print(json.dumps(worker(*options.one)))
        return 0
    rows, timeout = [], options.timeout
    print("| workload | cache | first answer s: default / background / wait | ratio "
          "| script s: default / background / wait | ratio | default's tiers |\n"
          "|---|---|---|---:|---|---:|---|", flush=True)
    for name in options.workloads:
        filled = None
        for cache in ("cold", "warm"):
            row = {"workload": name, "cache": cache}
            for mode in MODES:
                if cache == "cold":
                    folder = tempfile.mkdtemp(prefix="first-call-")
                    if mode == "wait":
                        filled = folder  # the warm runs' cache
                else:
                    folder = tempfile.mkdtemp(prefix="first-call-")
                    shutil.rmtree(folder)
                    shutil.copytree(filled, folder)
                row[mode] = _run(name, mode, folder, timeout)
                if folder != filled:
                    shutil.rmtree(folder, ignore_errors=True)
            rows.append(row)
            print(_line(row, timeout), flush=True)
            save_rows(options.json, rows)
        shutil.rmtree(filled, ignore_errors=True)
    print("\nTiers of the default mode's first calls, one letter per method: E evaluator, "
          "C compiled code (waited for), L loaded from the cache.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
