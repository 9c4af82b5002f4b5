"""Dense Hessians and Jacobians: generated lines and time to the first result, by size.

    python -m benchmarks.dense_matrices [--timeout S]

The cases the unrolled code could not handle (issue #8): the vector Rosenbrock Hessian
for n = 10 ... 10,000, the same function written with n scalar symbols, the Jacobian of a
40-state ODE right-hand side in array form, and a 16-8-4 MLP's Hessian.  Each case runs
in a fresh process with an empty cache and background compilation off; "first result" is
from ``sd.compile`` to the first returned matrix (deriving, generating, compiling and
running it).
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

CASES = [("rosenbrock vector", n) for n in (10, 20, 50, 1000, 10_000)] + [
    ("rosenbrock scalars", n) for n in (50, 300, 1000)] + [
    ("ode jacobian", 40), ("mlp 16-8-4 hessian", 0)]


def _case(name: str, n: int):
    """(compiled function, method, arguments) of one case."""
    import symdiff as sd

    rng = np.random.default_rng(0)
    if name == "rosenbrock vector":
        x = sd.vector("x", n)
        f = sd.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
        return sd.compile(f), "hessian", (rng.uniform(-1, 1, n),)
    if name == "rosenbrock scalars":
        xs = sd.symbols(" ".join(f"x{i:04d}" for i in range(n)))
        f = sum(100.0 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1.0 - xs[i]) ** 2
                for i in range(n - 1))
        return sd.compile(f), "hessian", tuple(rng.uniform(-1, 1, n))
    if name == "ode jacobian":  # a chain of reactions with diffusion
        y = sd.vector("y", n)
        inner = 0.5 * (sd.concatenate([y[:1], y[:-1]]) - 2.0 * y + sd.concatenate([y[1:],
                                                                                   y[-1:]]))
        f = inner - 0.04 * y + 1e4 * y * sd.concatenate([y[1:], y[:1]]) ** 2
        return sd.compile(f), "jacobian", (rng.uniform(0, 1, n),)
    sizes = (16, 8, 4)
    w1, w2 = sd.matrix("W1", sizes[1], sizes[0]), sd.matrix("W2", sizes[2], sizes[1])
    x, y = sd.vector("x", sizes[0]), sd.vector("y", sizes[2])
    loss = -sd.sum(y * sd.log_softmax(w2 @ np.tanh(w1 @ x)))
    fn = sd.compile(loss, args=[w1, w2, x, y], wrt=[w1, w2])
    args = (rng.normal(size=(8, 16)), rng.normal(size=(4, 8)), rng.normal(size=16),
            np.eye(4)[1])
    return fn, "hessian", args


def measure(name: str, n: int) -> dict:
    """Time to the first matrix and generated lines of its module (this process)."""
    import symdiff as sd  # noqa: F401 - imported before the clock starts

    start = time.perf_counter()
    fn, method, args = _case(name, n)
    result = getattr(fn, method)(*args)
    seconds = time.perf_counter() - start
    lines = len(fn.lower(method).source.splitlines())
    return {"seconds": seconds, "lines": lines, "shape": list(np.shape(result))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dense_matrices",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args.worker[0], int(args.worker[1]))))
        return 0
    print("| case | n | matrix | first result s | generated lines |\n|---|---|---|---|---|")
    for name, n in CASES:
        env = {**os.environ, "SYMDIFF_CACHE_DIR": tempfile.mkdtemp(prefix="bench-cache-"),
               "SYMDIFF_BACKGROUND": "0"}
        try:
            done = subprocess.run([sys.executable, "-m", "benchmarks.dense_matrices",
                                   "--worker", name, str(n)], capture_output=True, text=True,
                                  timeout=args.timeout, env=env, check=True)
            r = json.loads(done.stdout.strip().splitlines()[-1])
            shape = " x ".join(map(str, r["shape"]))
            print(f"| {name} | {n or '-'} | {shape} | {r['seconds']:.2f} | {r['lines']} |",
                  flush=True)
        except subprocess.TimeoutExpired:
            print(f"| {name} | {n} | - | over {args.timeout:.0f} | - |", flush=True)
        except subprocess.CalledProcessError as failed:
            print(f"| {name} | {n} | - | failed: {failed.stderr.strip()[-120:]} | - |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
