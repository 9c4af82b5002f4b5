"""Time to compiled code (issue #23's first table): symdiff's default backend, symdiff with
Numba only (``backend="numba"``, the code before the native lowering) and JAX's first
calls, on the benchmark problems and four whole workloads.

    python -m benchmarks.compile_workloads [--repeat 3] [--only TEXT]

Each measurement runs in a fresh process with an empty ``SYMDIFF_CACHE_DIR`` and
``SYMDIFF_BACKGROUND=0`` (the first call compiles, then runs), libraries imported before
the clock (and the benchmark problems' arguments made): the time is from building the
function until every method of the workload has returned once.  "warm" reruns the
default backend in a second process on the cache the first one filled.  JAX starts
its XLA client before the clock.  JAX rows need the bench extra (``pip install -e
'.[bench]'``); without JAX they show "-".  Medians of ``--repeat`` runs; ``--systems``
picks columns.  ``--per-call`` times each method of each workload per call instead
(median of timed loops, after its first call).
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

import numpy as np

from .worker import _per_call

STEPS, DT = 1000, 0.01
ROWS, FEATURES = 569, 31  # the breast-cancer data's shape, with a bias column
BRATU_SIDE = 200
WORKLOADS = ("P1", "P2", "P3", "P4", "P4b", "P5", "logistic", "lennard-jones",
             "rk4 scan", "bratu sparse jacobian")
SYSTEMS = ("symdiff", "symdiff numba", "symdiff warm", "jax")


def _logistic_data():
    rng = np.random.default_rng(0)
    data = np.hstack([rng.normal(size=(ROWS, FEATURES - 1)), np.ones((ROWS, 1))])
    labels = (rng.random(ROWS) < 1.0 / (1.0 + np.exp(-data[:, 0]))).astype(float)
    return data, labels


_ARGS: dict = {}


def _problem_args(problem) -> tuple:
    """A benchmark problem's arguments, made once per process (before the clock: making
    P5's million points is not compiling)."""
    if problem.key not in _ARGS:
        _ARGS[problem.key] = tuple(problem.args(np.random.default_rng(0)))
    return _ARGS[problem.key]


def _symdiff(name: str, backend: str | None):
    """[(callable, arguments)] of a workload's methods, built now."""
    import symdiff as sd

    from .first_call import _pendulum
    from .hessians import bratu
    from .problems import PROBLEMS

    if name in PROBLEMS:
        problem = PROBLEMS[name]
        expr, symbols = problem.symdiff()
        fn = sd.compile(expr, wrt=[symbols[i] for i in problem.wrt], args=symbols,
                        backend=backend)
        return [(fn.value_and_grad, tuple(_problem_args(problem)))]
    if name == "logistic":
        data, labels = _logistic_data()

        def loss(w):
            z = data @ w
            return np.mean(sd.softplus(z) - labels * z) + 1e-3 * np.sum(w * w)

        fn = sd.compile(loss, args=[sd.vector("w", FEATURES)], backend=backend)
        w = (np.full(FEATURES, 0.05),)
        return [(fn.forward, w), (fn.grad, w), (fn.hvp, w + (np.ones(FEATURES),)),
                (fn.hessian, w)]
    if name == "lennard-jones":
        problem = PROBLEMS["P3"]
        expr, symbols = problem.symdiff()
        fn = sd.compile(expr, args=symbols, backend=backend)
        x = tuple(_problem_args(problem))
        return [(fn.grad, x), (fn.hessian, x)]
    if name == "rk4 scan":
        fn, x = _pendulum("array", backend=backend)
        return [(fn.forward, x), (fn.grad, x), (fn.hessian, x)]
    residual = bratu(BRATU_SIDE)
    fn = sd.compile(residual, args=[sd.vector("x", BRATU_SIDE ** 2)], backend=backend)
    return [(fn.sparse_jacobian, (np.full(BRATU_SIDE ** 2, 0.1),))]


def _jax(name: str):
    import jax
    import jax.numpy as jnp

    from .problems import PROBLEMS

    jax.config.update("jax_enable_x64", True)
    if name in PROBLEMS:
        problem = PROBLEMS[name]
        args = tuple(jnp.asarray(a) for a in _problem_args(problem))
        f = problem.array_fn
        if problem.batch_points:  # a function of scalars at many points: vmap
            g = jax.vmap(jax.value_and_grad(lambda *a: f(jnp, *a), argnums=problem.wrt))
        else:
            g = jax.value_and_grad(lambda *a: f(jnp, *a), argnums=problem.wrt)
        return [(jax.jit(g), args)]
    if name == "logistic":
        data, labels = (jnp.asarray(a) for a in _logistic_data())

        def loss(w):
            z = data @ w
            return jnp.mean(jax.nn.softplus(z) - labels * z) + 1e-3 * jnp.sum(w * w)

        w = (jnp.full(FEATURES, 0.05),)

        def hvp(w, v):
            return jax.jvp(jax.grad(loss), (w,), (v,))[1]
        return [(jax.jit(loss), w), (jax.jit(jax.grad(loss)), w),
                (jax.jit(hvp), w + (jnp.ones(FEATURES),)), (jax.jit(jax.hessian(loss)), w)]
    if name == "lennard-jones":
        problem = PROBLEMS["P3"]
        x = tuple(jnp.asarray(a) for a in _problem_args(problem))

        def energy(x):
            return problem.array_fn(jnp, x)
        return [(jax.jit(jax.grad(energy)), x), (jax.jit(jax.hessian(energy)), x)]
    if name == "rk4 scan":
        def loss(p):
            def f(y):
                return jnp.stack([y[1], -p[0] * jnp.sin(y[0]) - p[1] * y[1]])

            def step(y, _):
                k1 = f(y)
                k2 = f(y + 0.5 * DT * k1)
                k3 = f(y + 0.5 * DT * k2)
                k4 = f(y + DT * k3)
                return y + DT / 6 * (k1 + 2 * k2 + 2 * k3 + k4), None

            y, _ = jax.lax.scan(step, p[2:], None, length=STEPS)
            return jnp.sum(y ** 2)
        p = (jnp.array([9.81, 0.1, 1.0, 0.0]),)
        return [(jax.jit(loss), p), (jax.jit(jax.grad(loss)), p),
                (jax.jit(jax.hessian(loss)), p)]
    return None  # a dense 40,000 x 40,000 Jacobian: not a like-for-like comparison


def measure(name: str, system: str, per_call: bool = False) -> dict:
    """One row in this process: seconds until every method answered once (and with
    ``per_call`` each method's median seconds per call after that)."""
    from . import first_call, hessians, problems  # noqa: F401 - imported before the clock
    if system == "jax":
        try:
            import jax
        except ImportError:
            return {"seconds": None}
        # XLA's client starts on the first jit of a process (about 0.5 s): before the
        # clock, as symdiff's imports are.
        jax.block_until_ready(jax.jit(lambda v: v + 1.0)(1.0))
    else:
        import symdiff.runtime.transforms  # noqa: F401 - the runtime, before the clock
    if name in problems.PROBLEMS:
        _problem_args(problems.PROBLEMS[name])
    elif name == "lennard-jones":
        _problem_args(problems.PROBLEMS["P3"])
    start = time.perf_counter()
    if system == "jax":
        methods = _jax(name)
        if methods is None:
            return {"seconds": None}
        methods = [(lambda *a, f=f: jax.block_until_ready(f(*a)), args)
                   for f, args in methods]
    else:
        methods = _symdiff(name, "numba" if system == "symdiff numba" else None)
    for call, args in methods:
        call(*args)
    row = {"seconds": time.perf_counter() - start}
    if per_call:
        row["per_call"] = [_per_call(call, args) for call, args in methods]
    return row


def run(name: str, system: str, cache: str, per_call: bool = False):
    """The row's seconds in a fresh process (with ``per_call``: its whole row)."""
    env = {**os.environ, "SYMDIFF_CACHE_DIR": cache, "SYMDIFF_BACKGROUND": "0"}
    env.pop("SYMDIFF_BACKEND", None)
    done = subprocess.run([sys.executable, "-m", "benchmarks.compile_workloads", "--row",
                           name, system.replace("symdiff warm", "symdiff")]
                          + (["--per-call"] if per_call else []),
                          capture_output=True, text=True, env=env, timeout=900)
    if done.returncode:
        print(done.stderr[-2000:], file=sys.stderr)
        return None
    row = json.loads(done.stdout.strip().splitlines()[-1])
    return row if per_call else row["seconds"]


def per_call_table(args) -> None:
    """Each workload's methods per call (µs, in the workload's order), one process per
    system, side by side."""
    systems = [s for s in ("symdiff", "symdiff numba", "jax") if s in args.systems]
    print("| workload | " + " | ".join(f"{s} µs" for s in systems) + " |\n|---|"
          + "---|" * len(systems))
    for name in WORKLOADS:
        if args.only and args.only not in name:
            continue
        cells = []
        for system in systems:
            row = run(name, system, tempfile.mkdtemp(prefix="bench-calls-"), per_call=True)
            times = (row or {}).get("per_call")
            cells.append(" / ".join(f"{t * 1e6:.1f}" for t in times) if times else "-")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


def _seconds(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compile_workloads",
                                     description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", help="workloads whose name contains this text")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--per-call", action="store_true",
                        help="per call of each method instead (after the first calls)")
    parser.add_argument("--row", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.row:
        print(json.dumps(measure(*args.row, per_call=args.per_call)))
        return 0
    if args.per_call:
        per_call_table(args)
        return 0
    print("| workload | symdiff s | Numba only s | warm s | JAX s | symdiff / JAX |\n"
          "|---|---|---|---|---|---|")
    for name in WORKLOADS:
        if args.only and args.only not in name:
            continue
        times: dict = {s: [] for s in SYSTEMS}
        for _ in range(args.repeat):
            for system in SYSTEMS:
                if system == "symdiff warm" or system not in args.systems:
                    continue
                cache = tempfile.mkdtemp(prefix="bench-compile-")
                times[system].append(run(name, system, cache))
                if system == "symdiff" and "symdiff warm" in args.systems:  # same cache
                    times["symdiff warm"].append(run(name, "symdiff warm", cache))
        median = {s: (statistics.median(v) if v and None not in v else None)
                  for s, v in times.items()}
        ratio = (f"{median['symdiff'] / median['jax']:.2f}"
                 if median["symdiff"] and median["jax"] else "-")
        print(f"| {name} | {_seconds(median['symdiff'])} | {_seconds(median['symdiff numba'])}"
              f" | {_seconds(median['symdiff warm'])} | {_seconds(median['jax'])} | {ratio} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
