"""Newton-type minimization of a large sparse problem with SciPy and symdiff's derivatives.

The minimal surface problem: the height u of a surface over the unit square, with fixed
values on the boundary, minimizing its area (finite differences on an m x m grid of
unknowns; m = 300 gives 90,000 variables).  The function is ordinary NumPy code of one
1-D array, so SciPy takes symdiff's methods as they are: ``trust-constr`` with the sparse
Hessian (a scipy.sparse.csr_array from one Hessian-vector product per color of a star
coloring of its pattern, the same count for every m) and ``Newton-CG`` with matrix-free
Hessian-vector products.  Prints how long the derivative work took within each solve.

    python examples/newton_minimize.py [--m 300]
"""

import argparse
import time

import numpy as np
from scipy.optimize import minimize
from timed import Timed

import symdiff as sd


def minimal_surface(m: int):
    """The area of the surface with interior heights x (m*m values) and saddle-shaped
    boundary values, as a function of one 1-D array."""
    h = 1.0 / (m + 1)
    grid = np.linspace(0.0, 1.0, m + 2)
    bx, by = np.meshgrid(grid, grid, indexing="ij")
    boundary = (2.0 * bx - 1.0) ** 2 - (2.0 * by - 1.0) ** 2

    def area(x):
        u = np.reshape(x, (m, m))
        rows = np.concatenate([boundary[1:-1, :1], u, boundary[1:-1, -1:]], axis=1)
        full = np.concatenate([boundary[:1], rows, boundary[-1:]], axis=0)
        dx = (full[1:, :-1] - full[:-1, :-1]) / h
        dy = (full[:-1, 1:] - full[:-1, :-1]) / h
        return h * h * np.sum(np.sqrt(1.0 + dx * dx + dy * dy))

    return area


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=300, help="grid of m x m unknowns")
    m = parser.parse_args().m
    n = m * m
    start = np.zeros(n)

    begin = time.perf_counter()
    fn = sd.compile(minimal_surface(m), args=[sd.vector("x", n)], background=False)
    fn(start), fn.grad(start), fn.sparse_hessian(start), fn.hvp(start, start)
    coloring = fn.hessian_coloring()
    print(f"{n:,} variables: value, gradient, sparse Hessian and hvp compiled in "
          f"{time.perf_counter() - begin:.2f} s; the Hessian has {coloring.pattern.nnz:,} "
          f"nonzeros and {coloring.count} colors (Hessian-vector products per evaluation)")

    for method, name, product in (("trust-constr", "hess", fn.sparse_hessian),
                                  ("Newton-CG", "hessp", fn.hvp)):
        grad, second = Timed(fn.grad), Timed(product)
        begin = time.perf_counter()
        result = minimize(fn, start, method=method, jac=grad, **{name: second})
        total = time.perf_counter() - begin
        gradient = np.abs(fn.grad(result.x)).max()
        kind = "sparse Hessians" if name == "hess" else "Hessian-vector products"
        print(f"{method:>12}: area {result.fun:.10f}, max |gradient| {gradient:.1e}, "
              f"{result.nit} iterations, {total:.2f} s; derivative work "
              f"{grad.seconds + second.seconds:.2f} s ({grad.calls} gradients, "
              f"{second.calls} {kind})")


if __name__ == "__main__":
    main()
