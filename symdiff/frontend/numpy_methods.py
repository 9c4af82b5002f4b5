"""Expr's NumPy face, installed on ``Expr`` when this module is imported (as JAX's NumPy
layer installs its tracer's methods): indexing, ``.T``, ``.sum``, ``.mean``,
``.reshape``, ``@``, NumPy's ufunc and array-function protocols, and JAX's ``.at``
updates.  The IR defines the nodes; it never imports this layer.
"""

from __future__ import annotations

import numpy as np

from symdiff.errors import SymdiffError, TraceError
from symdiff.frontend.numpy_arrays import FUNCTIONS as ARRAY_FUNCTIONS
from symdiff.frontend.numpy_arrays import METHODS, operand_elements
from symdiff.frontend.numpy_extras import FUNCTIONS, astype
from symdiff.frontend.numpy_extras import ufunc as composition
from symdiff.frontend.updates import At
from symdiff.ir.nodes import Expr, apply, install_methods, ufunc_op
from symdiff.ops.arrays import NUMPY_FUNCTIONS, index, matmul, mean, reshape, transpose
from symdiff.ops.arrays import sum as total


def numpy_function(func, args, kwargs):
    """Dispatch a NumPy function called on expressions to its symdiff counterpart."""
    ours = NUMPY_FUNCTIONS.get(func) or FUNCTIONS.get(func) or ARRAY_FUNCTIONS.get(func)
    if ours is None:
        raise SymdiffError(f"np.{func.__name__} is not supported on symbolic expressions")
    return ours(*args, **kwargs)


def _matmul(x, y):
    x, y = operand_elements(x), operand_elements(y)  # (its TraceError is no operand's)
    try:
        return matmul(x, y)
    except TypeError:  # not an operand: Python raises its usual TypeError
        return NotImplemented


def _getitem(self: Expr, key):
    return index(self, key)


def _sum(self: Expr, axis=None, keepdims=False):
    """Sum over ``axis`` (all axes by default), like ndarray.sum."""
    return total(self, axis, keepdims)


def _mean(self: Expr, axis=None, keepdims=False):
    """Mean over ``axis`` (all axes by default), like ndarray.mean."""
    return mean(self, axis, keepdims)


def _reshape(self: Expr, *shape):
    """The same elements in another shape (C order)."""
    return reshape(self, shape[0] if len(shape) == 1 else shape)


def _array_function(self: Expr, func, types, args, kwargs):
    return numpy_function(func, args, kwargs)


def _array_ufunc(self: Expr, ufunc, method, *inputs, **kwargs):
    if ufunc.__name__ == "matmul" and method == "__call__" and not kwargs:
        return _matmul(*inputs)
    if method != "__call__" or kwargs:
        return NotImplemented
    inputs = tuple(operand_elements(x) for x in inputs)
    op = ufunc_op(ufunc.__name__)
    if op is None:  # np.square, np.log10, ...: compositions of ops
        made = composition(ufunc.__name__, inputs)
        if made is None:
            return _unsupported(ufunc, inputs)
        return made
    return apply(op, *inputs)


def _unsupported(ufunc, inputs):
    """NotImplemented where another operand has a ``__array_ufunc__`` of its own (its
    turn), else TraceError naming the ufunc (NumPy's own error would say that every
    operand returned NotImplemented)."""
    if any(hasattr(type(x), "__array_ufunc__") and not isinstance(x, (Expr, np.ndarray))
           for x in inputs):
        return NotImplemented
    name = ufunc.__name__
    shown = f"np.{name}" if getattr(np, name, None) is ufunc else f"the ufunc {name}"
    raise TraceError(f"{shown} is not supported on symbolic expressions")


def _transpose(self, *axes):
    """NumPy's ``x.transpose()``, ``x.transpose(1, 0, 2)`` and ``x.transpose((1, 0, 2))``."""
    if len(axes) == 1 and not isinstance(axes[0], int):
        axes = axes[0]
    return transpose(self, None if axes is None or len(axes) == 0 else axes)


install_methods(
    **METHODS,
    __getitem__=_getitem,
    transpose=_transpose,
    T=property(transpose, doc="The transpose (axes reversed)."),
    sum=_sum,
    mean=_mean,
    reshape=_reshape,
    astype=astype,
    __matmul__=lambda self, other: _matmul(self, other),
    __rmatmul__=lambda self, other: _matmul(other, self),
    __array_function__=_array_function,
    __array_ufunc__=_array_ufunc,
    at=property(At, doc="Functional updates as in JAX: ``x.at[key].set(v)`` "
                        "(symdiff.frontend.updates)."),
)
