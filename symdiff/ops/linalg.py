"""Linear solves: ``sd.solve(A, b)``, x with A x = b, like ``numpy.linalg.solve``.

Derivatives are solves with the same matrix: the tangent of x is
A^-1 (db - dA x); the adjoint ḡ of x gives b̄ = A^-T ḡ and Ā = -b̄ xᵀ.  Implicit
derivatives of roots (symdiff.control.implicit) rest on it.
"""

from __future__ import annotations

import numpy as np

from symdiff.errors import ShapeError
from symdiff.ir.eager import eager
from symdiff.ir.nodes import Expr, Op, apply, as_expr, register
from symdiff.ops.structural import broadcast_to, dense_sparsity, outer_product


def _solve_shape(shapes, payload):
    a, b = shapes
    if len(a) != 2 or a[0] != a[1] or a[0] is None:
        raise ShapeError(f"solve needs a square matrix of static size, got shape {a}")
    if len(b) != 1 or b[0] != a[0]:
        raise ShapeError(f"solve: the right-hand side must have shape ({a[0]},), got {b}")
    return b


def _solve_evaluate(shape, payload, a, b):
    return np.linalg.solve(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))


def _solve_jvp(node: Expr, t) -> Expr:
    a, b = node.args
    rhs = broadcast_to(t[1], b.shape) if t[1] is not None else None
    if t[0] is not None:
        moved = apply("matmul", broadcast_to(t[0], a.shape), node)
        rhs = apply("neg", moved) if rhs is None else apply("sub", rhs, moved)
    return apply("solve", a, rhs)


def _solve_vjp(i: int, node: Expr, adjoint: Expr) -> Expr:
    a = node.args[0]
    back = apply("solve", apply("transpose", a), broadcast_to(adjoint, node.shape))
    return back if i == 1 else apply("neg", outer_product(back, node))


register(Op("solve", 2, _solve_evaluate, None, None, shape_rule=_solve_shape,
            vjp=_solve_vjp, jvp=_solve_jvp, sparsity=dense_sparsity))


@eager
def solve(a, b) -> Expr:
    """x with ``a @ x = b`` for a square matrix ``a`` and a vector ``b`` (NumPy's
    ``linalg.solve``); derivatives of any order with respect to both."""
    return apply("solve", as_expr(a), as_expr(b))
