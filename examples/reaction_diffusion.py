"""A stiff reaction-diffusion system of 10,000 states, solved with SciPy's BDF method and
symdiff's sparse Jacobian.

The Brusselator in one space dimension (Hairer and Wanner, Solving ODEs II, problem
BRUSS): species u and v on N = 5,000 grid points with fixed boundary values,

    u' = A + u^2 v - (B + 1) u + alpha (N+1)^2 (u[i-1] - 2 u[i] + u[i+1])
    v' = B u - u^2 v           + alpha (N+1)^2 (v[i-1] - 2 v[i] + v[i+1])

written as NumPy code of (t, y) with y = (u, v) stacked.  Diffusion makes it stiff (the
eigenvalues reach -4 alpha (N+1)^2 = -2e6), so an implicit method needs the Jacobian; it
is banded within each species, and symdiff finds that pattern from the expression,
colors it and computes it from 3 Jacobian-vector products per evaluation.  Prints how long
the derivative work took, and compares against SciPy estimating the same sparse
Jacobian by finite differences (``jac_sparsity``).

    python examples/reaction_diffusion.py [--points 5000]
"""

import argparse
import time

import numpy as np
from scipy.integrate import solve_ivp
from timed import Timed

import symdiff as sd

sd.show_progress()  # slow compiles say what they are doing (stderr)

A, B, ALPHA = 1.0, 3.0, 0.02


def brusselator(points: int):
    """The right-hand side f(t, y) for y of 2 * points states."""
    diffusion = ALPHA * (points + 1) ** 2

    def rhs(t, y):
        u, v = y[:points], y[points:]
        u_full = np.concatenate([np.ones(1), u, np.ones(1)])  # u = 1 at both ends
        v_full = np.concatenate([np.full(1, 3.0), v, np.full(1, 3.0)])  # v = 3
        u_xx = u_full[:-2] - 2.0 * u + u_full[2:]
        v_xx = v_full[:-2] - 2.0 * v + v_full[2:]
        reaction = u * u * v
        return np.concatenate([A + reaction - (B + 1.0) * u + diffusion * u_xx,
                               B * u - reaction + diffusion * v_xx])

    return rhs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=5000, help="grid points per species")
    points = parser.parse_args().points
    n = 2 * points
    grid = np.arange(1, points + 1) / (points + 1)
    y0 = np.concatenate([1.0 + np.sin(2.0 * np.pi * grid), np.full(points, 3.0)])
    rhs = brusselator(points)

    begin = time.perf_counter()
    ode = sd.compile(rhs, args=[sd.symbol("t"), sd.vector("y", n)], wrt="y",
                     background=False)
    ode(0.0, y0), ode.sparse_jacobian(0.0, y0)
    coloring = ode.jacobian_coloring()
    print(f"{n:,} states: right-hand side and sparse Jacobian compiled in "
          f"{time.perf_counter() - begin:.2f} s; the Jacobian has {coloring.pattern.nnz:,} "
          f"nonzeros and needs {coloring.count} Jacobian-vector products per evaluation")

    runs = (("symdiff sparse Jacobian", {"jac": Timed(ode.sparse_jacobian)}),
            ("SciPy finite differences", {"jac_sparsity": ode.jacobian_sparsity()}))
    final = {}
    for label, options in runs:
        fun = Timed(ode)
        begin = time.perf_counter()
        solution = solve_ivp(fun, (0.0, 10.0), y0, method="BDF", rtol=1e-6, atol=1e-8,
                             **options)
        total = time.perf_counter() - begin
        jac = options.get("jac")
        work = f"{jac.seconds:.3f} s in {jac.calls} Jacobians" if jac else (
            f"inside {fun.calls} right-hand side calls ({fun.seconds:.2f} s)")
        print(f"{label:>24}: {solution.message.strip('.')}; {total:.2f} s, {solution.nfev} "
              f"evaluations, {solution.njev} Jacobians; derivative work {work}")
        final[label] = solution.y[:, -1]
    first, second = final.values()
    print(f"u at the middle at t = 10: {first[points // 2]:.6f}; the two solutions differ by "
          f"at most {np.abs(first - second).max():.1e}")


if __name__ == "__main__":
    main()
