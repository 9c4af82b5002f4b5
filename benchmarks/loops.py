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

from .worker import _per_call, save_rows

HIDDEN, FEATURES, DT = 16, 8, 0.01
THETA = np.array([1.1, 0.4, 0.4, 0.1])
Y0 = np.array([10.0, 5.0])


def _data(problem: str, steps: int, hidden: int = HIDDEN):
    rng = np.random.default_rng(0)
    if problem == "rnn":
        return (rng.normal(size=(hidden, FEATURES)) * 0.3, rng.normal(size=(hidden, hidden))
                * 0.3 / np.sqrt(hidden / HIDDEN), rng.normal(size=hidden) * 0.1,
                rng.normal(size=(steps, FEATURES)))
    return THETA * 1.05, Y0 + rng.normal(size=(steps, 2))


def _rates(y, theta):
    return (theta[0] * y[0] - theta[1] * y[0] * y[1], theta[3] * y[0] * y[1] - theta[2] * y[1])


def _rk4(y, theta, stack):
    k1 = stack(_rates(y, theta))
    k2 = stack(_rates(y + 0.5 * DT * k1, theta))
    k3 = stack(_rates(y + 0.5 * DT * k2, theta))
    k4 = stack(_rates(y + DT * k3, theta))
    return y + DT / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def _symdiff(problem: str, checkpoint="auto", hidden: int = HIDDEN):
    import symdiff as sd

    if problem == "rnn":
        def loss(Wx, Wh, v, xs):
            def step(h, x):
                h = sd.tanh(Wx @ x + Wh @ h)
                return h, sd.sum(h * v) ** 2
            _, ys = sd.scan(step, np.zeros(hidden), xs, checkpoint=checkpoint)
            return sd.sum(ys)

        args = [sd.matrix("Wx", hidden, FEATURES), sd.matrix("Wh", hidden, hidden),
                sd.vector("v", hidden), sd.symbol("xs", (None, FEATURES))]
        fn = sd.compile(loss, wrt=args[:3], args=args, background=False)
    else:
        def loss(theta, seen):
            def step(y, target):
                y = _rk4(y, theta, sd.stack)
                return y, sd.sum((y - target) ** 2)
            _, misfits = sd.scan(step, Y0, seen, checkpoint=checkpoint)
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


def _torch(problem: str):
    # PyTorch has no scan: its autograd records the Python loop's T steps on every call.
    import torch

    torch.set_num_threads(1)  # the arrays are small: threads only add overhead
    if problem == "rnn":
        def loss(Wx, Wh, v, xs):
            h, total = torch.zeros(HIDDEN, dtype=torch.float64), 0.0
            for x in xs:
                h = torch.tanh(Wx @ x + Wh @ h)
                total = total + torch.sum(h * v) ** 2
            return total
    else:
        def loss(theta, seen):
            y, total = torch.tensor(Y0), 0.0
            for target in seen:
                y = _rk4(y, theta, torch.stack)
                total = total + torch.sum((y - target) ** 2)
            return total

    def call(*arrays):
        tensors = [torch.tensor(a) for a in arrays]
        trainable = tensors[:3] if problem == "rnn" else tensors[:1]
        for t in trainable:
            t.requires_grad_(True)
        value = loss(*tensors)
        grads = torch.autograd.grad(value, trainable)
        return value.detach().item(), grads
    return call


_SYSTEMS = {"symdiff": ("symdiff", _symdiff), "JAX": ("jax", _jax),
            "PyTorch": ("torch", _torch)}


def worker(system: str, problem: str, steps: int) -> dict:
    """One measurement (run in its own process)."""
    data = _data(problem, steps)
    import importlib

    library, prepare = _SYSTEMS[system]
    # Libraries are imported before the clock starts: the work is what is timed.
    importlib.import_module(library)
    begin = time.perf_counter()
    call = prepare(problem)
    value, _ = call(*data)
    first = time.perf_counter() - begin
    return {"system": system, "problem": problem, "steps": steps, "first_s": first,
            "per_call_s": _per_call(call, data), "value": float(value)}


def memory_worker(checkpoint: str, problem: str, steps: int, hidden: int) -> dict:
    """Peak memory and time of one gradient by checkpoint schedule (own process): the
    function is compiled on 10 steps, then called on ``steps`` (the scan's length is open),
    so the growth of the peak resident size is the call's, stored carries included."""
    import resource

    checkpoint = int(checkpoint) if checkpoint.isdigit() else checkpoint
    call = _symdiff(problem, checkpoint, hidden)
    call(*_data(problem, 10, hidden))
    data = _data(problem, steps, hidden)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    value, _ = call(*data)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    carry = (hidden if problem == "rnn" else 2) * 8
    return {"checkpoint": checkpoint, "problem": problem, "steps": steps, "hidden": hidden,
            "carries_mb": steps * carry / 1e6, "peak_growth_mb": grown / 1024,
            "per_call_s": _per_call(call, data), "value": float(value)}


def sweep_worker(rates: str, states: int, steps: int = 10) -> dict:
    """RK4 of a decay ODE on ``states`` independent states: forward alone, and value and
    gradient (in the per-state rates), per call; the reverse sweep is their difference."""
    import symdiff as sd

    def rhs(y, k):
        return -k * y + (sd.sin(y) if rates == "sin" else 0.1 * y * y)

    def loss(k, y0, xs):
        def step(y, x):
            k1 = rhs(y, k)
            k2 = rhs(y + 0.5 * DT * k1, k)
            k3 = rhs(y + 0.5 * DT * k2, k)
            k4 = rhs(y + DT * k3, k)
            y = y + DT / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
            return y, sd.sum(y * y)
        _, ys = sd.scan(step, y0, xs)
        return sd.sum(ys)

    args = [sd.vector("k", states), sd.vector("y0", states), sd.symbol("xs", (None,))]
    fn = sd.compile(loss, wrt=args[0], args=args, background=False)
    rng = np.random.default_rng(0)
    values = rng.uniform(0.5, 1.5, states), rng.normal(size=states), np.zeros(steps)
    fn(*values)
    fn.value_and_grad(*values)
    return {"rates": rates, "states": states, "steps": steps,
            "forward_s": _per_call(fn, values), "value_and_grad_s": _per_call(
                fn.value_and_grad, values)}


def _subprocess(*arguments) -> dict:
    env = dict(os.environ, SYMDIFF_CACHE_DIR=tempfile.mkdtemp(prefix="sd-loops-"),
               SYMDIFF_BACKGROUND="0")
    out = subprocess.run([sys.executable, "-m", "benchmarks.loops", *arguments], env=env,
                         text=True, capture_output=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _memory(options) -> list[dict]:
    rows = []
    for problem, hidden in (("rnn", 64), ("rk4", 2)):
        for steps in options.steps:
            for schedule in ("all", "sqrt"):
                row = _subprocess("--memory-worker", schedule, problem, str(steps), str(hidden))
                rows.append(row)
                print(f"{problem:>4} T={steps:>6} checkpoint={schedule:>4}: carries "
                      f"{row['carries_mb']:8.3f} MB, peak grew {row['peak_growth_mb']:7.2f} MB,"
                      f" per call {row['per_call_s'] * 1e3:9.3f} ms (value "
                      f"{row['value']:.9g})", flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="sd.scan against lax.scan by trip count")
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--systems", nargs="+", default=["symdiff", "JAX", "PyTorch"])
    parser.add_argument("--json", default=None)
    parser.add_argument("--memory", action="store_true",
                        help="peak memory and time of the gradient by checkpoint schedule")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--memory-worker", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--sweep", action="store_true",
                        help="reverse sweep against forward pass of RK4 on many states")
    parser.add_argument("--sweep-worker", nargs=2, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.worker:
        system, problem, steps = options.worker
        print(json.dumps(worker(system, problem, int(steps))))
        return 0
    if options.memory_worker:
        schedule, problem, steps, hidden = options.memory_worker
        print(json.dumps(memory_worker(schedule, problem, int(steps), int(hidden))))
        return 0
    if options.memory:
        save_rows(options.json, _memory(options))
        return 0
    if options.sweep_worker:
        print(json.dumps(sweep_worker(options.sweep_worker[0], int(options.sweep_worker[1]))))
        return 0
    if options.sweep:
        rows = []
        for rates in ("poly", "sin"):
            for states in (1_000, 10_000, 100_000):
                row = _subprocess("--sweep-worker", rates, str(states))
                rows.append(row)
                forward, both = row["forward_s"], row["value_and_grad_s"]
                print(f"{rates:>4} {states:>7} states: forward {forward * 1e3:8.3f} ms, value "
                      f"and gradient {both * 1e3:8.3f} ms, reverse sweep / forward "
                      f"{(both - forward) / forward:4.2f}", flush=True)
        save_rows(options.json, rows)
        return 0
    rows = []
    for problem in ("rnn", "rk4"):
        for steps in options.steps:
            for system in options.systems:
                row = _subprocess("--worker", system, problem, str(steps))
                rows.append(row)
                print(f"{problem:>4} T={steps:>6} {system:>8}: first gradient "
                      f"{row['first_s']:6.2f} s, per call {row['per_call_s'] * 1e3:9.3f} ms "
                      f"(value {row['value']:.6g})", flush=True)
    save_rows(options.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
