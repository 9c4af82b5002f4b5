"""Gaussian mixture log-likelihood against JAX (issue #23's Gaussian mixture row).

    python -m benchmarks.gmm [--sizes 1000,5,16 1000,5,64 1000,25,32] [--systems symdiff jax]

GradBench's GMM objective written as one writes it for JAX: the means centred by
broadcasting over the k components (``x[:, None] - means[None]``), each component's
triangular factor built by ``.at[:, rows, cols].set(...)`` from its parameters and applied
by ``einsum("ijk,mik->mij", L, centred)``, a log-sum-exp over components, and the Wishart
prior (gamma 1, m 0; its constant left out).  n points of dimension d, k components;
value and gradient with respect to (alphas, means, icf): symdiff
``sd.value_and_grad(f, argnums=(0, 1, 2))``, JAX ``jax.jit(jax.value_and_grad(f,
argnums=(0, 1, 2)))``.  Each system in a fresh process (empty symdiff cache,
``SYMDIFF_BACKGROUND=0``); first = until the first value and gradient returned; per
call = median of timed loops (benchmarks.worker._per_call); the gradients are checked
against each other.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from .worker import _per_call, print_side_by_side, side_by_side_options

SIZES = ("1000,5,16", "1000,5,64", "1000,25,32")


def objective(xp, logsumexp, zeros):
    """The GMM objective in the namespace ``xp`` (NumPy while symdiff traces, jax.numpy)."""
    def f(alphas, means, icf, x):
        n, d = x.shape
        k = alphas.shape[0]
        qdiags = xp.exp(icf[:, :d])
        sum_qs = xp.sum(icf[:, :d], axis=1)
        rows, cols = np.tril_indices(d, -1)
        order = np.lexsort((rows, cols))  # below the diagonal, column by column
        factors = zeros((k, d, d)).at[:, rows[order], cols[order]].set(icf[:, d:])
        centred = x[:, None, :] - means[None, :, :]
        scaled = qdiags[None] * centred + xp.einsum("ijk,mik->mij", factors, centred)
        inner = alphas[None] + sum_qs[None] - 0.5 * xp.sum(scaled ** 2, axis=2)
        prior = xp.sum(0.5 * (xp.sum(qdiags ** 2, axis=1) + xp.sum(icf[:, d:] ** 2, axis=1)))
        return (-n * d * 0.5 * np.log(2 * np.pi) + xp.sum(logsumexp(inner, axis=1))
                - n * logsumexp(alphas, axis=0) + prior)
    return f


def _value_and_grad(system: str):
    if system == "jax":
        import jax
        import jax.numpy as jnp
        from jax.scipy.special import logsumexp

        jax.config.update("jax_enable_x64", True)
        jitted = jax.jit(jax.value_and_grad(objective(jnp, logsumexp, jnp.zeros),
                                            argnums=(0, 1, 2)))
        return lambda *a: jax.block_until_ready(jitted(*a))
    import symdiff as sd

    return sd.value_and_grad(objective(np, sd.logsumexp, sd.zeros), argnums=(0, 1, 2))


def worker(system: str, size: str) -> dict:
    """One row, in this process."""
    n, k, d = (int(v) for v in size.split(","))
    rng = np.random.default_rng(0)
    args = (rng.normal(size=k), rng.normal(size=(k, d)),
            0.1 * rng.normal(size=(k, d * (d + 1) // 2)), rng.normal(size=(n, d)))
    if system == "jax":
        import jax
        jax.block_until_ready(jax.jit(lambda v: v + 1.0)(1.0))  # XLA's client, before the clock
    else:
        import symdiff.runtime.transforms  # noqa: F401 - the runtime, before the clock
    start = time.perf_counter()
    run = _value_and_grad(system)
    value, gradient = run(*args)
    first = time.perf_counter() - start
    flat = np.concatenate([np.ravel(np.asarray(g)) for g in gradient])
    return {"system": system, "size": size, "first_s": first, "value": float(value),
            "per_call_s": _per_call(run, args), "gradient": flat[:64].tolist()}


def _agree(a: dict, b: dict) -> bool:
    return bool(np.isclose(a["value"], b["value"], rtol=1e-10) and np.allclose(
        a["gradient"], b["gradient"], rtol=1e-8, atol=1e-8))


def main(argv=None) -> int:
    options = side_by_side_options(argv, "GMM log-likelihood against JAX", SIZES, worker)
    if options is None:
        return 0
    print_side_by_side("benchmarks.gmm", options, "n, k, d",
                       [("value and gradient ms", "per_call_s")], "per_call_s", _agree)
    return 0


if __name__ == "__main__":
    sys.exit(main())
