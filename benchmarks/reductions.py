"""Reductions of transcendental maps against NumPy, by size (issue #11).

    python -m benchmarks.reductions [--sizes 1000 10000 100000 1000000 10000000] [--json F]

For each function, the value compiled once (the vector's length is open) and timed at
every size against the same expression in NumPy, and in JAX (``jax.jit``, float64)
where JAX is installed; per call = median of timed loops (benchmarks.worker._per_call).
Values are checked against NumPy to 1e-12.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from .worker import _per_call, save_rows


def _functions():
    import symdiff as sd

    x = sd.vector("x", None)
    return x, {
        "sum(exp(x))": (sd.sum(sd.exp(x)), lambda a: np.sum(np.exp(a))),
        "sum(tanh(x))": (sd.sum(sd.tanh(x)), lambda a: np.sum(np.tanh(a))),
        "logsumexp(x)": (sd.logsumexp(x),
                         lambda a: np.log(np.sum(np.exp(a - a.max()))) + a.max()),
        "sum(x * x)": (sd.sum(x * x), lambda a: np.sum(a * a)),
    }


def _jax_functions() -> dict:
    """The same functions under ``jax.jit`` (empty without JAX)."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return {}
    jax.config.update("jax_enable_x64", True)
    return {
        "sum(exp(x))": jax.jit(lambda a: jnp.sum(jnp.exp(a))),
        "sum(tanh(x))": jax.jit(lambda a: jnp.sum(jnp.tanh(a))),
        "logsumexp(x)": jax.jit(jax.scipy.special.logsumexp),
        "sum(x * x)": jax.jit(lambda a: jnp.sum(a * a)),
    }


def _ready(jitted):
    """``jitted``, waiting for its result (JAX dispatches asynchronously)."""
    return lambda a: jitted(a).block_until_ready()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="reductions of maps against NumPy")
    parser.add_argument("--sizes", type=int, nargs="+",
                        default=[1000, 10_000, 100_000, 1_000_000, 10_000_000])
    parser.add_argument("--json", default=None)
    options = parser.parse_args(argv)
    import symdiff as sd

    x, functions = _functions()
    jitted = _jax_functions()
    rows = []
    for name, (expr, reference) in functions.items():
        fn = sd.compile(expr, args=[x], background=False)
        for n in options.sizes:
            a = np.random.default_rng(n).normal(size=n)
            value, want = fn(a), reference(a)
            assert abs(value - want) <= 1e-12 * max(1.0, abs(want)), (name, n, value, want)
            row = {"function": name, "n": n, "symdiff_s": _per_call(fn, (a,)),
                   "numpy_s": _per_call(reference, (a,))}
            jax_text = ""
            if name in jitted:
                on_device = jitted[name]
                assert abs(float(on_device(a)) - want) <= 1e-12 * max(1.0, abs(want))
                row["jax_s"] = _per_call(_ready(on_device), (a,))
                jax_text = (f", JAX {row['jax_s'] * 1e6:10.1f} us, ratio "
                            f"{row['symdiff_s'] / row['jax_s']:5.2f}")
            rows.append(row)
            print(f"{name:>14} n={n:>9,}: symdiff {row['symdiff_s'] * 1e6:10.1f} us, "
                  f"NumPy {row['numpy_s'] * 1e6:10.1f} us, ratio "
                  f"{row['symdiff_s'] / row['numpy_s']:5.2f}{jax_text}", flush=True)
    save_rows(options.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
