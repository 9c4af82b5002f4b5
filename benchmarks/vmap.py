"""vmap of a function of arrays: one compiled prange loop against a Python loop over the
compiled function and against JAX's jit(vmap(grad)) (issue #12).

    python -m benchmarks.vmap [--points 100 10000] [--json F]

The function is the MLP loss of P4 (a 3-8-1 tanh network on a fixed batch of 16 inputs)
as a function of its flattened weights; each point is one set of weights, the gradient is
asked at every point.  Per call = median of timed loops (benchmarks.worker._per_call);
the results are checked against the Python loop to 1e-12.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from .worker import _per_call, save_rows

N_IN, N_HIDDEN, BATCH = 3, 8, 16
SIZE = N_HIDDEN * N_IN + N_HIDDEN + N_HIDDEN + 1


def _loss(xp, data, targets):
    def loss(w):
        w1 = w[:N_HIDDEN * N_IN].reshape(N_HIDDEN, N_IN)
        b1 = w[N_HIDDEN * N_IN:N_HIDDEN * N_IN + N_HIDDEN]
        w2 = w[N_HIDDEN * N_IN + N_HIDDEN:SIZE - 1]
        hidden = xp.tanh(data @ w1.T + b1)
        return xp.mean((hidden @ w2 + w[SIZE - 1] - targets) ** 2)

    return loss


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="vmap against a loop and JAX")
    parser.add_argument("--points", type=int, nargs="+", default=[100, 10_000])
    parser.add_argument("--json", default=None)
    options = parser.parse_args(argv)
    import symdiff as sd

    rng = np.random.default_rng(0)
    data, targets = rng.normal(size=(BATCH, N_IN)), rng.normal(size=BATCH)
    fn = sd.compile(_loss(np, data, targets), args=[sd.vector("w", SIZE)], background=False)
    mapped = fn.vmap(0)
    try:
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)
        jax_grad = jax.jit(jax.vmap(jax.grad(_loss(jnp, data, targets))))
    except ImportError:
        jax_grad = None
    rows = []
    print("| points | vmap (one prange loop) | Python loop of fn.grad | JAX jit(vmap(grad)) |")
    print("|---:|---:|---:|---:|")
    for n in options.points:
        weights = rng.normal(size=(n, SIZE)) * 0.5
        looped = np.array([fn.grad(w) for w in weights])
        np.testing.assert_allclose(mapped.grad(weights), looped, rtol=1e-12, atol=1e-14)
        row = {"points": n, "vmap_s": _per_call(mapped.grad, (weights,)),
               "loop_s": _per_call(lambda w: [fn.grad(p) for p in w], (weights,))}
        if jax_grad is not None:
            np.testing.assert_allclose(np.asarray(jax_grad(weights)), looped, rtol=1e-10,
                                       atol=1e-14)
            row["jax_s"] = _per_call(lambda w: jax_grad(w).block_until_ready(), (weights,))
        rows.append(row)
        jax_text = f"{row['jax_s'] * 1e3:.2f} ms" if "jax_s" in row else "-"
        print(f"| {n} | {row['vmap_s'] * 1e3:.2f} ms | {row['loop_s'] * 1e3:.2f} ms | "
              f"{jax_text} |", flush=True)
    save_rows(options.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
