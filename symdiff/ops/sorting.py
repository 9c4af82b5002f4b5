"""Sorting vectors: ``np.sort(x)`` as ``sort_by(x, x)``.

``sort_by(key, t)`` is ``t`` permuted as sorting ``key`` would (``t[argsort(key)]``, a
stable sort, so ties keep their order); ``unsort_by(key, t)`` puts ``t`` back where the
sort took it from (the transpose).  Both are linear in ``t`` and piecewise constant in
``key``, so the derivative of ``np.sort(x)`` is the tangent sorted the same way, and
derivatives of every order are the same two ops again.  Ties split as the stable order
does (one element gets each position), as JAX's sort does.
"""

from __future__ import annotations

import numpy as np

from symdiff.errors import ShapeError
from symdiff.ir.eager import eager
from symdiff.ir.nodes import Expr, Op, apply, as_expr, register
from symdiff.ops.structural import broadcast_to, dense_sparsity


def _order(key) -> np.ndarray:
    return np.argsort(np.asarray(key, dtype=np.float64), kind="stable")


def _vector_shape(shapes, payload):
    key, values = shapes
    if len(key) != 1 or key[0] is None:
        raise ShapeError(f"sorting takes a vector of static length, got shape {key}")
    if values != key:
        raise ShapeError(f"sorting: the values must have the key's shape {key}, got {values}")
    return key


def _sort_by_evaluate(shape, payload, key, values):
    return np.asarray(values, dtype=np.float64)[_order(key)]


def _unsort_by_evaluate(shape, payload, key, values):
    out = np.empty(shape)
    out[_order(key)] = values
    return out


def _no_dependence(i, node, shape, arg_shapes):
    """The key only chooses the permutation: the result does not depend on its values."""
    if i == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return dense_sparsity(i, node, shape, arg_shapes)


def _permutation_jvp(op: str):
    def jvp(node: Expr, t) -> Expr | None:
        if t[1] is None:
            return None  # the key's tangent moves nothing
        return apply(op, node.args[0], broadcast_to(t[1], node.shape))
    return jvp


def _permutation_vjp(transpose: str):
    def vjp(i: int, node: Expr, adjoint: Expr) -> Expr:
        key = node.args[0]
        if i == 0:
            return broadcast_to(as_expr(0.0), key.shape)
        return apply(transpose, key, broadcast_to(adjoint, node.shape))
    return vjp


register(Op("sort_by", 2, _sort_by_evaluate, None, None, shape_rule=_vector_shape,
            vjp=_permutation_vjp("unsort_by"), jvp=_permutation_jvp("sort_by"),
            sparsity=_no_dependence))
register(Op("unsort_by", 2, _unsort_by_evaluate, None, None, shape_rule=_vector_shape,
            vjp=_permutation_vjp("sort_by"), jvp=_permutation_jvp("unsort_by"),
            sparsity=_no_dependence))


@eager
def sort(x, axis=-1, kind=None, order=None, *, stable=None) -> Expr:
    """``np.sort`` of a vector (stable: ties keep their order, whatever ``kind`` asks);
    its derivative moves each tangent with its element."""
    if order is not None:
        raise ShapeError("np.sort: order= sorts structured arrays; an expression has no "
                         "fields")
    x = as_expr(x)
    if x.ndim != 1 or axis not in (-1, 0, None):
        raise ShapeError(f"np.sort of a symbolic expression sorts a vector (axis=-1); got "
                         f"shape {x.shape}, axis={axis}: sort each row with np.sort(x[i])")
    return apply("sort_by", x, x)
