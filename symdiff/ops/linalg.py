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


# One behaviour in every tier: Numba's LAPACK wrappers refuse a matrix with a non-finite
# entry among those they read (LinAlgError; cholesky reads the lower triangle), so the
# evaluator refuses it the same way (NumPy would return NaN); a singular matrix raises
# LinAlgError in both.
FINITE_MESSAGE = "Array must not contain infs or NaNs."


def _float(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def _checked(compute, *read):
    if not all(np.isfinite(x).all() for x in read):
        raise np.linalg.LinAlgError(FINITE_MESSAGE)
    return compute()


def _solve_evaluate(shape, payload, a, b):
    a, b = _float(a), _float(b)
    return _checked(lambda: np.linalg.solve(a, b), a, b)


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


# Inverses and determinants of square matrices (static size), with JAX's rules:
# d inv(A) = -inv(A) dA inv(A); d log|det A| = tr(inv(A) dA); the sign of det A is
# piecewise constant (no derivative).
def _square(shapes, payload):
    (a,) = shapes
    if len(a) != 2 or a[0] != a[1] or a[0] is None:
        raise ShapeError(f"needs a square matrix of static size, got shape {a}")
    return a


def _inv_vjp(i: int, node: Expr, adjoint: Expr) -> Expr:
    # Ā = -inv(A)^T Ḡ inv(A)^T
    inverse_t = apply("transpose", node)
    return apply("neg", apply("matmul", apply("matmul", inverse_t, adjoint), inverse_t))


def _inv_jvp(node: Expr, t) -> Expr:
    dot = broadcast_to(t[0], node.shape)
    return apply("neg", apply("matmul", apply("matmul", node, dot), node))


register(Op("inv", 1, lambda shape, payload, a: _checked(lambda: np.linalg.inv(_float(a)),
                                                          _float(a)),
            None, None, shape_rule=_square, vjp=_inv_vjp, jvp=_inv_jvp,
            sparsity=dense_sparsity))


def _logabsdet_vjp(i: int, node: Expr, adjoint: Expr) -> Expr:
    return apply("mul", adjoint, apply("transpose", apply("inv", node.args[0])))


def _logabsdet_jvp(node: Expr, t) -> Expr:
    a = node.args[0]
    dot = broadcast_to(t[0], a.shape)
    return apply("sum", apply("mul", apply("transpose", apply("inv", a)), dot),
                 payload=(None, False))


register(Op("logabsdet", 1,
            lambda shape, payload, a: _checked(lambda: np.linalg.slogdet(_float(a))[1],
                                               _float(a)),
            None, None, shape_rule=lambda shapes, payload: (_square(shapes, payload), ())[1],
            vjp=_logabsdet_vjp, jvp=_logabsdet_jvp, sparsity=dense_sparsity))
register(Op("detsign", 1,
            lambda shape, payload, a: _checked(lambda: np.linalg.slogdet(_float(a))[0],
                                               _float(a)),
            None, None, shape_rule=lambda shapes, payload: (_square(shapes, payload), ())[1],
            vjp=lambda i, node, adjoint: broadcast_to(as_expr(0.0), node.args[0].shape),
            jvp=lambda node, t: None, sparsity=dense_sparsity))


@eager
def inv(a) -> Expr:
    """``np.linalg.inv``: the inverse of a square matrix."""
    return apply("inv", as_expr(a))


@eager
def slogdet(a) -> tuple[Expr, Expr]:
    """``np.linalg.slogdet``: (the sign of det a, log |det a|)."""
    a = as_expr(a)
    return apply("detsign", a), apply("logabsdet", a)


@eager
def det(a) -> Expr:
    """``np.linalg.det``: sign times exp(log |det a|)."""
    sign, magnitude = slogdet(a)
    return apply("mul", sign, apply("exp", magnitude))


def solve_any(a, b) -> Expr:
    """``np.linalg.solve`` for a vector right-hand side (the solve op) or a matrix one
    (each column solved: the inverse times b)."""
    b = as_expr(b)
    return solve(a, b) if b.ndim == 1 else apply("matmul", inv(a), b)


# Cholesky factors of symmetric positive definite matrices, with JAX's rule: for
# L = cholesky(A), dL = L Phi(inv(L) dA_sym inv(L)^T), Phi the lower triangle with half
# its diagonal, dA_sym = (dA + dA^T) / 2.  Its transpose: P = Phi(L^T Lbar),
# G = inv(L)^T P inv(L), Abar = (G + G^T) / 2.
def _phi(n: int) -> Expr:
    return as_expr(np.tril(np.ones((n, n))) - 0.5 * np.eye(n))


def _symmetric(x: Expr) -> Expr:
    return apply("mul", 0.5, apply("add", x, apply("transpose", x)))


def _cholesky_jvp(node: Expr, t) -> Expr:
    inverse = apply("inv", node)
    dot = _symmetric(broadcast_to(t[0], node.shape))
    inner = apply("matmul", apply("matmul", inverse, dot), apply("transpose", inverse))
    return apply("matmul", node, apply("mul", _phi(node.shape[0]), inner))


def _cholesky_vjp(i: int, node: Expr, adjoint: Expr) -> Expr:
    inverse = apply("inv", node)
    p = apply("mul", _phi(node.shape[0]), apply("matmul", apply("transpose", node),
                                                 broadcast_to(adjoint, node.shape)))
    g = apply("matmul", apply("matmul", apply("transpose", inverse), p), inverse)
    return _symmetric(g)


register(Op("cholesky", 1,
            lambda shape, payload, a: _checked(lambda: np.linalg.cholesky(_float(a)),
                                               np.tril(_float(a))),  # as Numba: lower
            None, None, shape_rule=_square, vjp=_cholesky_vjp, jvp=_cholesky_jvp,
            sparsity=dense_sparsity))


@eager
def cholesky(a) -> Expr:
    """``np.linalg.cholesky``: the lower-triangular L with L @ L.T = a (a symmetric
    positive definite); derivatives by JAX's rule (symmetric perturbations of a)."""
    return apply("cholesky", as_expr(a))


# Eigendecompositions of symmetric matrices.  Values as NumPy's (LAPACK reads the lower
# triangle); derivatives along symmetric perturbations, as cholesky's and JAX's: for
# A = V diag(w) V^T, dS = (dA + dA^T)/2 and F_ij = 1/(w_j - w_i) off the diagonal, 0 on
# it: dw = diag(V^T dS V) and dV = V (F * (V^T dS V)); the transposes give
# Ā = sym(V (diag(w̄) + F * (V^T V̄)) V^T).  F is written (1 - I) / (w_j - w_i + I): its
# diagonal divides by one, not zero; repeated eigenvalues still make F infinite (the
# eigenvectors are not differentiable there, as in every implementation), so second
# derivatives at such points are NaN.  The eigenvectors' signs are LAPACK's, as NumPy's.
def _eigvals_shape(shapes, payload):
    return _square(shapes, payload)[:1]


def _spectrum(a: Expr) -> tuple[Expr, Expr, Expr]:
    """(w, V, F) of the symmetric matrix a."""
    w, v = apply("eigvalsh", a), apply("eigvecsh", a)
    n = a.shape[0]
    gaps = apply("sub", apply("reshape", w, payload=(1, n)), apply("reshape", w, payload=(n, 1)))
    off = as_expr(1.0 - np.eye(n))
    return w, v, apply("div", off, apply("add", gaps, as_expr(np.eye(n))))


def _rotated(v: Expr, x: Expr) -> Expr:
    """V^T x V."""
    return apply("matmul", apply("matmul", apply("transpose", v), x), v)


def _eigvalsh_jvp(node: Expr, t) -> Expr:
    a = node.args[0]
    _, v, _ = _spectrum(a)
    # diag(V^T dS V)_i = sum_k V_ki (dS V)_ki
    dot = _symmetric(broadcast_to(t[0], a.shape))
    return apply("sum", apply("mul", v, apply("matmul", dot, v)), payload=((0,), False))


def _eigvecsh_jvp(node: Expr, t) -> Expr:
    a = node.args[0]
    _, v, f = _spectrum(a)
    dot = _symmetric(broadcast_to(t[0], a.shape))
    return apply("matmul", v, apply("mul", f, _rotated(v, dot)))


def _eigvalsh_vjp(i: int, node: Expr, adjoint: Expr) -> Expr:
    _, v, _ = _spectrum(node.args[0])
    scaled = apply("mul", v, apply("reshape", broadcast_to(adjoint, node.shape),
                                   payload=(1, node.shape[0])))
    return apply("matmul", scaled, apply("transpose", v))  # symmetric already


def _eigvecsh_vjp(i: int, node: Expr, adjoint: Expr) -> Expr:
    _, v, f = _spectrum(node.args[0])
    inner = apply("mul", f, apply("matmul", apply("transpose", v),
                                  broadcast_to(adjoint, node.shape)))
    return _symmetric(apply("matmul", apply("matmul", v, inner), apply("transpose", v)))


register(Op("eigvalsh", 1,
            lambda shape, payload, a: _checked(lambda: np.linalg.eigh(_float(a))[0],
                                               _float(a)),
            None, None, shape_rule=_eigvals_shape, vjp=_eigvalsh_vjp, jvp=_eigvalsh_jvp,
            sparsity=dense_sparsity))
register(Op("eigvecsh", 1,
            lambda shape, payload, a: _checked(lambda: np.linalg.eigh(_float(a))[1],
                                               _float(a)),
            None, None, shape_rule=_square, vjp=_eigvecsh_vjp, jvp=_eigvecsh_jvp,
            sparsity=dense_sparsity))


@eager
def eigh(a) -> tuple[Expr, Expr]:
    """``np.linalg.eigh``: (eigenvalues ascending, eigenvectors as columns) of the
    symmetric matrix ``a`` (its lower triangle, as NumPy reads it); derivatives by JAX's
    rule, along symmetric perturbations (distinct eigenvalues)."""
    a = as_expr(a)
    return apply("eigvalsh", a), apply("eigvecsh", a)


@eager
def eigvalsh(a) -> Expr:
    """``np.linalg.eigvalsh``: the eigenvalues, ascending, of the symmetric matrix ``a``."""
    return apply("eigvalsh", as_expr(a))
