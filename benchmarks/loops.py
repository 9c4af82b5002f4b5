"""Loops by trip count: symdiff's ``sd.scan`` against JAX's ``lax.scan``, side by side.

    python -m benchmarks.loops [--steps 10 100 1000 10000] [--json FILE]

Problems: "rnn", a tanh recurrence of 16 states over T inputs of 8 features with a
squared readout per step (the gradient with respect to the three weight arrays), and
"rk4", Lotka-Volterra integrated by RK4 over T steps against observations (the gradient
with respect to the four parameters).  Each (problem, system, T) runs in a fresh process
with an empty symdiff cache and background compiles off: "first" is the time from the
start of the work (tracing, deriving, generating, compiling) to the first gradient; "per
call" the median of timed loops of value-and-gradient calls.  symdiff's scans have an
open length, so one compile would serve every T; each process compiles anyway, so the
column shows that the compile does not depend on T.
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

from .worker import _per_call

HIDDEN, FEATURES, DT = 16, 8, 0.01
THETA = np.array([1.1, 0.4, 0.4, 0.1])
Y0 = np.array([10.0, 5.0])


def _data(problem: str, steps: int):
    rng = np.random.default_rng(0)
    if problem == "rnn":
        return (rng.normal(size=(HIDDEN, FEATURES)) * 0.3, rng.normal(size=(HIDDEN, HIDDEN))
                * 0.3, rng.normal(size=HIDDEN) * 0.1, rng.normal(size=(steps, FEATURES)))
    return THETA * 1.05, Y0 + rng.normal(size=(steps, 2))


def _rates(y, theta):
    return (theta[0] * y[0] - theta[1] * y[0] * y[1], theta[3] * y[0] * y[1] - theta[2] * y[1])


def _rk4(y, theta, stack):
    k1 = stack(_rates(y, theta))
    k2 = stack(_rates(y + 0.5 * DT * k1, theta))
    k3 = stack(_rates(y + 0.5 * DT * k2, theta))
    k4 = stack(_rates(y + DT * k3, theta))
    return y + DT / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def _symdiff(problem: str):
    import symdiff as sd

    if problem == "rnn":
        def loss(Wx, Wh, v, xs):
            def step(h, x):
                h = sd.tanh(Wx @ x + Wh @ h)
                return h, sd.sum(h * v) ** 2
            _, ys = sd.scan(step, np.zeros(HIDDEN), xs)
            return sd.sum(ys)

        args = [sd.matrix("Wx", HIDDEN, FEATURES), sd.matrix("Wh", HIDDEN, HIDDEN),
                sd.vector("v", HIDDEN), sd.symbol("xs", (None, FEATURES))]
        fn = sd.compile(loss, wrt=args[:3], args=args, background=False)
    else:
        def loss(theta, seen):
            def step(y, target):
                y = _rk4(y, theta, sd.stack)
                return y, sd.sum((y - target) ** 2)
            _, misfits = sd.scan(step, Y0, seen)
            return sd.sum(misfits)

        args = [sd.vector("theta", 4), sd.symbol("seen", (None, 2))]
        fn = sd.compile(loss, wrt=args[0], args=args, background=False)
    return fn.value_and_grad


def _jax(problem: str):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    if problem == "rnn":
        def loss(Wx, Wh, v, xs):
            def step(h, x):
                h = jnp.tanh(Wx @ x + Wh @ h)
                return h, jnp.sum(h * v) ** 2
            _, ys = jax.lax.scan(step, jnp.zeros(HIDDEN), xs)
            return jnp.sum(ys)
        f = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))
    else:
        def loss(theta, seen):
            def step(y, target):
                y = _rk4(y, theta, jnp.stack)
                return y, jnp.sum((y - target) ** 2)
            _, misfits = jax.lax.scan(step, jnp.asarray(Y0), seen)
            return jnp.sum(misfits)
        f = jax.jit(jax.value_and_grad(loss))

    def call(*args):
        return jax.block_until_ready(f(*args))
    return call


def worker(system: str, problem: str, steps: int) -> dict:
    """One measurement (run in its own process)."""
    data = _data(problem, steps)
    import importlib

    # Libraries are imported before the clock starts: the work is what is timed.
    importlib.import_module("symdiff" if system == "symdiff" else "jax")
    begin = time.perf_counter()
    call = (_symdiff if system == "symdiff" else _jax)(problem)
    value, _ = call(*data)
    first = time.perf_counter() - begin
    return {"system": system, "problem": problem, "steps": steps, "first_s": first,
            "per_call_s": _per_call(call, data), "value": float(value)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="sd.scan against lax.scan by trip count")
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--systems", nargs="+", default=["symdiff", "JAX"])
    parser.add_argument("--json", default=None)
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.worker:
        system, problem, steps = options.worker
        print(json.dumps(worker(system, problem, int(steps))))
        return 0
    rows = []
    for problem in ("rnn", "rk4"):
        for steps in options.steps:
            for system in options.systems:
                env = dict(os.environ, SYMDIFF_CACHE_DIR=tempfile.mkdtemp(prefix="sd-loops-"),
                           SYMDIFF_BACKGROUND="0")
                out = subprocess.run([sys.executable, "-m", "benchmarks.loops", "--worker",
                                      system, problem, str(steps)], env=env, text=True,
                                     capture_output=True, check=True).stdout
                row = json.loads(out.strip().splitlines()[-1])
                rows.append(row)
                print(f"{problem:>4} T={steps:>6} {system:>8}: first gradient "
                      f"{row['first_s']:6.2f} s, per call {row['per_call_s'] * 1e3:9.3f} ms "
                      f"(value {row['value']:.6g})", flush=True)
    if options.json:
        with open(options.json, "w", encoding="utf-8") as out:
            json.dump(rows, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
