"""NumPy functions that are compositions of symdiff ops, for traced NumPy code.

Each is built from existing ops, so its derivatives of every order come from theirs.
``UFUNCS`` maps a ufunc's name (``np.square``, ``np.log10``, ...) to its composition;
``FUNCTIONS`` maps NumPy functions called on expressions (``np.min``,
``np.linalg.norm``) to theirs.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import ShapeError
from .ir import apply, as_expr


def _cbrt(x):
    # Real cube root of either sign (x ** (1/3) is nan below 0, as in NumPy's power).
    root = apply("pow", apply("abs", x), 1.0 / 3.0)
    return apply("where", apply("less", x, 0.0), apply("neg", root), root)


UFUNCS = {
    "square": lambda x: apply("mul", x, x),
    "reciprocal": lambda x: apply("div", 1.0, x),
    "log10": lambda x: apply("div", apply("log", x), math.log(10.0)),
    "log2": lambda x: apply("div", apply("log", x), math.log(2.0)),
    "exp2": lambda x: apply("exp", apply("mul", x, math.log(2.0))),
    "cbrt": _cbrt,
    # sqrt(x^2 + y^2): overflows where x^2 does (NumPy's hypot rescales).
    "hypot": lambda x, y: apply("sqrt", apply("add", apply("mul", x, x), apply("mul", y, y))),
    # scipy.special ufuncs of losses and likelihoods.
    "ndtr": lambda x: apply("mul", 0.5, apply("erfc", apply("mul", x, -math.sqrt(0.5)))),
    "expit": lambda x: apply("sigmoid", x),
    "log_expit": lambda x: apply("neg", apply("softplus", apply("neg", x))),
    "logit": lambda x: apply("log", apply("div", x, apply("sub", 1.0, x))),
    # x log y, 0 where x == 0 (also for y == 0), as scipy.special.xlogy.
    "xlogy": lambda x, y: apply("where", apply("equal", x, 0.0), 0.0,
                                apply("mul", x, apply("log", y))),
}


def ufunc(name: str, inputs):
    """The composition for ufunc ``name``, or None."""
    build = UFUNCS.get(name)
    if build is None:
        return None
    return build(*(as_expr(x) for x in inputs))


def amin(x, axis=None, keepdims=False):
    """Minimum over ``axis``: -max(-x) (ties split evenly in the derivative, as amax)."""
    from .arrays import amax

    return apply("neg", amax(apply("neg", as_expr(x)), axis, keepdims))


def norm(x, ord=None, axis=None, keepdims=False):  # noqa: A002 - NumPy's name
    """The 2-norm (vectors; Frobenius for matrices) as sqrt(sum(x * x))."""
    from .arrays import sum as total

    if ord not in (None, 2, "fro"):
        raise ShapeError(f"np.linalg.norm on an expression supports ord=None, 2 or 'fro', "
                         f"not {ord!r}")
    x = as_expr(x)
    if ord == 2 and x.ndim == 2 and axis is None:
        raise ShapeError("np.linalg.norm(ord=2) of a matrix (its largest singular value) "
                         "is not supported; ord=None or 'fro' gives the Frobenius norm")
    return apply("sqrt", total(apply("mul", x, x), axis, keepdims))


def cumsum(x, axis=None):
    """Running sums of a vector (``axis=None`` flattens first, as NumPy does)."""
    x = as_expr(x)
    if axis is None and x.ndim != 1:
        x = apply("reshape", x, payload=(-1,) if None in x.shape else (x.size,))
    elif axis not in (None, 0, -1) or x.ndim != 1:
        raise ShapeError(f"np.cumsum on an expression supports vectors (or axis=None), not "
                         f"axis={axis} of shape {x.shape}")
    return apply("cumsum", x)


FUNCTIONS = {np.min: amin, np.amin: amin, np.linalg.norm: norm, np.cumsum: cumsum}
