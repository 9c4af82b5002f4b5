"""k-means cost and Newton direction against JAX (issue #23's k-means row).

    python -m benchmarks.kmeans [--sizes 1000,100,8 1000,1000,8 ...] [--systems symdiff jax]

The cost of centroids C (k x d) for points P (n x d) is the sum over points of the
squared distance to the nearest centroid, written as one writes it for NumPy or JAX:
``np.sum(np.min(np.sum((P[:, None] - C[None]) ** 2, axis=-1), axis=1))``.  The Newton
direction is the gradient over the Hessian's diagonal, which is the Hessian times a vector
of ones (the Hessian is diagonal), written once as a function both systems compile whole:
symdiff ``sd.jit`` of ``sd.grad(cost) / sd.hvp(cost, ones)``, JAX ``jax.jit`` of
``grad / jvp(grad, ones)``.  Each system runs in a fresh process (empty
symdiff cache, ``SYMDIFF_BACKGROUND=0``): first = from building the function until the
cost and the direction have returned once; per call = median of timed loops
(benchmarks.worker._per_call).  Both systems' directions are checked against each other.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from .worker import _per_call, print_side_by_side, same_checksum, side_by_side_options

SIZES = ("1000,100,8", "1000,1000,8", "10000,100,16")


def _cost(lib):
    def cost(points, centroids):
        distances = lib.sum((points[:, None] - centroids[None]) ** 2, axis=-1)
        return lib.sum(lib.min(distances, axis=1))
    return cost


def _symdiff(n: int, k: int, d: int):
    import symdiff as sd

    cost = _cost(np)
    centroids = sd.matrix("C", k, d)
    fn = sd.compile(cost, args=[sd.matrix("P", n, d), centroids], wrt=centroids,
                    background=False)

    def direction(points, c):  # one traced function, as JAX's jit of the same
        gradient = sd.grad(cost, argnums=1)(points, c)
        curvature = sd.hvp(lambda moved: cost(points, moved), (c,), (np.ones(c.shape),))
        return gradient / curvature
    return fn, sd.jit(direction)


def _jax(n: int, k: int, d: int):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    cost = _cost(jnp)

    def direction(points, c):
        def f(c):
            return cost(points, c)
        gradient = jax.grad(f)
        return gradient(c) / jax.jvp(gradient, (c,), (jnp.ones_like(c),))[1]
    jitted = jax.jit(cost), jax.jit(direction)
    return tuple((lambda *a, f=f: jax.block_until_ready(f(*a))) for f in jitted)


def worker(system: str, size: str) -> dict:
    """One row, in this process."""
    n, k, d = (int(v) for v in size.split(","))
    rng = np.random.default_rng(0)
    points, centroids = rng.normal(size=(n, d)), rng.normal(size=(k, d))
    if system == "jax":
        import jax
        jax.block_until_ready(jax.jit(lambda v: v + 1.0)(1.0))  # XLA's client, before the clock
    else:
        import symdiff.runtime.transforms  # noqa: F401 - the runtime, before the clock
    start = time.perf_counter()
    cost, direction = (_jax if system == "jax" else _symdiff)(n, k, d)
    cost(points, centroids)
    result = np.asarray(direction(points, centroids))
    first = time.perf_counter() - start
    return {"system": system, "size": size, "first_s": first,
            "cost_s": _per_call(cost, (points, centroids)),
            "direction_s": _per_call(direction, (points, centroids)),
            "checksum": float(np.nansum(result))}


def main(argv=None) -> int:
    options = side_by_side_options(argv, "k-means cost and direction against JAX", SIZES, worker)
    if options is None:
        return 0
    print_side_by_side("benchmarks.kmeans", options, "n, k, d",
                       [("cost ms", "cost_s"), ("direction ms", "direction_s")], "direction_s",
                       same_checksum)
    return 0


if __name__ == "__main__":
    sys.exit(main())
