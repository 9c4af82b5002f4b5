"""NumPy's functions that arrange, build and summarize arrays, on expressions: each a
composition of symdiff ops (reshapes, slices, concatenations, broadcasts, reductions), so
derivatives of every order, both lowerings and the evaluator come with the ops.

``FUNCTIONS`` maps the NumPy functions (``np.expand_dims``, ``np.pad``, ``np.var``, ...)
to them (``np.logaddexp`` is with the other ufuncs, in symdiff.frontend.numpy_extras);
``METHODS`` holds the ndarray methods of the same names (``x.ravel()``,
``x.var()``, ``x.clip(0, 1)``) that symdiff.frontend.numpy_methods installs.  Arguments
NumPy accepts and these do not (``np.pad`` modes other than constant, array-valued
``repeats``) raise a ShapeError naming what is supported.
"""

from __future__ import annotations

import numbers

import numpy as np

from symdiff.errors import ShapeError, TraceError
from symdiff.frontend.numpy_extras import amin, cumprod
from symdiff.frontend.sympy_bridge import is_sympy
from symdiff.frontend.updates import At
from symdiff.ir.dims import has_open, static_prod
from symdiff.ir.nodes import Expr, apply, as_expr
from symdiff.ops.arrays import (
    amax,
    concatenate,
    index,
    joined_part,
    matmul,
    mean,
    reshape,
)
from symdiff.ops.arrays import sum as total
from symdiff.ops.linalg import cholesky, det, eigh, eigvalsh, inv, slogdet, solve_any
from symdiff.ops.sorting import sort
from symdiff.ops.structural import broadcast_to, zeros


def from_elements(value):
    """``value`` as an array expression where it is a NumPy object array of scalar
    expressions and numbers (what ``np.array([[c, -s], [s, c]])`` makes of expressions,
    where JAX code writes ``jnp.array``): the array of those elements.  Anything else is
    returned as it is (a returned array of expressions and strings is read element by
    element, as a list of them is)."""
    items = _expression_items(value)
    if items is None or _other_element(items) is not None:
        return value
    return joined_part(value)


def operand_elements(value, strings: bool = False):
    """``from_elements`` for an operand of an arithmetic operator or ufunc (or, with
    ``strings``, for a returned array, whose strings are expressions read one by one),
    where an object array of expressions with an element of another kind (a string,
    None, a bool, an array expression) raises TraceError naming its position (NumPy's
    own error would say that every operand returned NotImplemented)."""
    items = _expression_items(value)
    if items is None:
        return value
    if _other_element(items) is None:
        return joined_part(value)
    k = _other_element(items, strings)
    if k is None:  # text or SymPy among them: read one by one
        return value
    v = items[k]
    at = tuple(int(i) for i in np.unravel_index(k, value.shape))
    kind = (f"an array expression of shape {v.shape} (join arrays with np.stack or "
            "np.concatenate)" if isinstance(v, Expr) else repr(v))
    allowed = "numbers (not bools), text or scalar expressions" if strings else (
        "numbers (not bools) or scalar expressions")
    raise TraceError(f"np.array of expressions: the element at {at} is {kind}; its "
                     f"elements must be {allowed}")


def _expression_items(value) -> list | None:
    """The elements of ``value`` where it is a NumPy object array holding an expression
    (else None)."""
    if not (isinstance(value, np.ndarray) and value.dtype == object and value.size):
        return None
    items = list(value.flat)
    return items if any(isinstance(v, Expr) for v in items) else None


def _other_element(items, strings: bool = False) -> int | None:
    """The position of the first item that is neither a scalar expression nor a real
    number (bools excluded; with ``strings``, nor text or a SymPy expression, which a
    returned array's elements may be), if any."""
    return next((k for k, v in enumerate(items)
                 if not ((isinstance(v, Expr) and not v.shape)
                         or (isinstance(v, numbers.Real) and not isinstance(v, bool))
                         or (strings and (isinstance(v, str) or is_sympy(v))))),
                None)


def _axes(x: Expr, axis, name: str, ndim: int | None = None) -> tuple[int, ...]:
    """``axis`` (an int, a tuple of ints or None: all) as non-negative axes of ``x`` (of
    a result of ``ndim`` axes, where given)."""
    ndim = x.ndim if ndim is None else ndim
    axes = range(ndim) if axis is None else (
        (axis,) if isinstance(axis, numbers.Integral) else tuple(axis))
    found = []
    for a in axes:
        if not isinstance(a, numbers.Integral) or not -ndim <= a < ndim:
            raise ShapeError(f"np.{name}: axis {a!r} is out of range for {ndim} axes")
        found.append(int(a) % ndim)
    if len(set(found)) != len(found):
        raise ShapeError(f"np.{name}: repeated axis in {axis!r}")
    return tuple(found)


def _static(x: Expr, name: str) -> Expr:
    if has_open(x.shape):
        raise ShapeError(f"np.{name} on an expression needs a static shape, got {x.shape}")
    return x


# Shapes.
def expand_dims(a, axis):
    """``np.expand_dims``: new axes of length 1 at ``axis`` (an int or a tuple)."""
    a = as_expr(a)
    count = 1 if isinstance(axis, numbers.Integral) else len(tuple(axis))
    placed = set(_axes(a, axis, "expand_dims", a.ndim + count))
    dims = iter(a.shape)
    return reshape(a, tuple(1 if k in placed else next(dims) for k in range(a.ndim + count)))


def squeeze(a, axis=None):
    """``np.squeeze``: the axes of length 1 (those of ``axis``) removed."""
    a = as_expr(a)
    axes = [k for k, d in enumerate(a.shape) if d == 1] if axis is None else \
        _axes(a, axis, "squeeze")
    for k in axes:
        if a.shape[k] != 1:
            raise ShapeError(f"np.squeeze: axis {k} of shape {a.shape} is not of length 1")
    return reshape(a, tuple(d for k, d in enumerate(a.shape) if k not in axes))


def ravel(a, order="C"):
    """``np.ravel`` (C order): the elements as one vector."""
    if order != "C":
        raise ShapeError(f"np.ravel on an expression supports order='C', not {order!r}")
    a = as_expr(a)
    return reshape(a, (-1,)) if a.ndim != 1 else a


def atleast_1d(a):
    """``np.atleast_1d``: a scalar as a vector of one element."""
    a = as_expr(a)
    return reshape(a, (1,)) if not a.shape else a


def atleast_2d(a):
    """``np.atleast_2d``: leading axes of length 1 up to a matrix."""
    a = as_expr(a)
    return reshape(a, (1,) * (2 - a.ndim) + a.shape) if a.ndim < 2 else a


def flip(a, axis=None):
    """``np.flip``: the elements in reverse order along ``axis`` (all axes by default)."""
    a = as_expr(a)
    axes = _axes(a, axis, "flip")
    return index(a, tuple(slice(None, None, -1) if k in axes else slice(None)
                          for k in range(a.ndim)))


def roll(a, shift, axis=None):
    """``np.roll``: elements shifted along ``axis`` (cyclically), as two slices joined."""
    a = as_expr(a)
    if axis is None:
        return reshape(roll(ravel(a), shift, 0), a.shape)
    if not isinstance(shift, numbers.Integral):
        raise ShapeError("np.roll on an expression takes one int shift and one axis")
    (axis,) = _axes(a, axis, "roll")
    n = _static(a, "roll").shape[axis]
    cut = (-int(shift)) % n
    if cut == 0:
        return a
    before, after = [slice(None)] * a.ndim, [slice(None)] * a.ndim
    before[axis], after[axis] = slice(cut, None), slice(None, cut)
    return concatenate([index(a, tuple(before)), index(a, tuple(after))], axis)


def vstack(arrays):
    """``np.vstack``: vectors as rows, arrays along their first axis."""
    return concatenate([atleast_2d(joined_part(x)) for x in arrays], 0)


def hstack(arrays):
    """``np.hstack``: vectors end to end, arrays along their second axis."""
    parts = [atleast_1d(joined_part(x)) for x in arrays]
    return concatenate(parts, 0 if parts[0].ndim == 1 else 1)


def column_stack(arrays):
    """``np.column_stack``: vectors as columns."""
    parts = [joined_part(x) for x in arrays]
    return concatenate([reshape(p, p.shape + (1,)) if p.ndim == 1 else p for p in parts], 1)


def tile(a, reps):
    """``np.tile``: ``a`` repeated ``reps`` times along each axis (reps align on the
    right), as one broadcast and one reshape."""
    a = _static(as_expr(a), "tile")
    reps = (reps,) if isinstance(reps, numbers.Integral) else tuple(reps)
    ndim = max(a.ndim, len(reps))
    shape = (1,) * (ndim - a.ndim) + a.shape
    reps = (1,) * (ndim - len(reps)) + reps
    spread = reshape(a, tuple(d for s in shape for d in (1, s)))
    grown = broadcast_to(spread, tuple(d for r, s in zip(reps, shape, strict=True)
                                       for d in (r, s)))
    return reshape(grown, tuple(r * s for r, s in zip(reps, shape, strict=True)))


def repeat(a, repeats, axis=None):
    """``np.repeat`` with one int ``repeats``: each element ``repeats`` times in a row
    along ``axis`` (of the flattened array by default)."""
    if not isinstance(repeats, numbers.Integral) or repeats < 0:
        raise ShapeError("np.repeat on an expression takes one non-negative int repeats")
    a = _static(as_expr(a), "repeat")
    if axis is None:
        a, axis = ravel(a), 0
    (axis,) = _axes(a, axis, "repeat")
    spread = reshape(a, a.shape[:axis + 1] + (1,) + a.shape[axis + 1:])
    grown = broadcast_to(spread, a.shape[:axis + 1] + (int(repeats),) + a.shape[axis + 1:])
    return reshape(grown, a.shape[:axis] + (a.shape[axis] * int(repeats),) + a.shape[axis + 1:])


def kron(a, b):
    """``np.kron``: every element of ``a`` times the whole of ``b``, blocks in ``a``'s
    layout (an outer product, reshaped)."""
    a, b = _static(as_expr(a), "kron"), _static(as_expr(b), "kron")
    ndim = max(a.ndim, b.ndim)
    sa, sb = (1,) * (ndim - a.ndim) + a.shape, (1,) * (ndim - b.ndim) + b.shape
    left = reshape(a, tuple(d for s in sa for d in (s, 1)))
    right = reshape(b, tuple(d for s in sb for d in (1, s)))
    return reshape(apply("mul", left, right), tuple(x * y for x, y in zip(sa, sb,
                                                                           strict=True)))


def pad(array, pad_width, mode="constant", constant_values=0.0):
    """``np.pad`` in constant mode: each axis padded with ``constant_values`` (before,
    after) by ``pad_width`` (an int, a pair, or a pair per axis).  Slices of the result
    read zero padding as placements (symdiff.passes.rules), with no padded copy."""
    if mode != "constant":
        raise ShapeError(f"np.pad on an expression supports mode='constant', not {mode!r}; "
                         "other modes are slices and concatenations (np.concatenate)")
    x = _static(as_expr(array), "pad")
    widths = np.broadcast_to(np.asarray(pad_width, dtype=object), (x.ndim, 2))
    values = np.broadcast_to(np.asarray(constant_values, dtype=float), (x.ndim, 2))
    for axis in range(x.ndim):
        parts = []
        for side, width in enumerate(widths[axis]):
            if not isinstance(width, numbers.Integral) or width < 0:
                raise ShapeError(f"np.pad: widths must be non-negative ints, got {width!r}")
            if width:
                block = x.shape[:axis] + (int(width),) + x.shape[axis + 1:]
                parts.append((side, broadcast_to(as_expr(float(values[axis, side])), block)))
        if parts:
            x = concatenate([p for s, p in parts if s == 0] + [x]
                            + [p for s, p in parts if s == 1], axis)
    return x


def zeros_like(a, dtype=None):
    """An all-zero expression of ``a``'s shape."""
    return zeros(as_expr(a).shape)


def ones_like(a, dtype=None):
    """An all-one expression of ``a``'s shape."""
    return full_like(a, 1.0)


def full_like(a, fill_value, dtype=None):
    """``fill_value`` (a number or an expression of one element) at every element."""
    return broadcast_to(as_expr(fill_value), as_expr(a).shape)


def diagonal(a, offset=0):
    """``np.diagonal`` of a matrix: the elements (i, i + offset), gathered."""
    a = _static(as_expr(a), "diagonal")
    if a.ndim != 2:
        raise ShapeError(f"np.diagonal on an expression needs a matrix, got shape {a.shape}")
    rows = np.arange(max(0, -offset), min(a.shape[0], a.shape[1] - offset))
    if not len(rows):
        raise ShapeError(f"np.diagonal: offset {offset} leaves no element of {a.shape}")
    return index(a, (rows, rows + offset))


def diag(v, k=0):
    """``np.diag``: a vector's square matrix with it on diagonal ``k``, or a matrix's
    diagonal ``k``."""
    v = _static(as_expr(v), "diag")
    if v.ndim == 2:
        return diagonal(v, k)
    if v.ndim != 1:
        raise ShapeError(f"np.diag on an expression takes a vector or a matrix, not {v.shape}")
    n = v.shape[0] + abs(k)
    rows = np.arange(v.shape[0]) + max(0, -k)
    return At(zeros((n, n)))[rows, rows + k].set(v)


def trace(a, offset=0):
    """``np.trace``: the sum of a matrix's diagonal ``offset``."""
    return total(diagonal(a, offset))


# Summaries.
def var(a, axis=None, ddof=0, keepdims=False):
    """``np.var``: the mean squared deviation from the mean (over n - ddof)."""
    a = _static(as_expr(a), "var")
    axes = _axes(a, axis, "var")
    count = static_prod(a.shape[k] for k in axes)
    centred = apply("sub", a, mean(a, axes, keepdims=True))
    squares = total(apply("mul", centred, centred), axes, keepdims)
    return apply("div", squares, float(count - ddof))


def std(a, axis=None, ddof=0, keepdims=False):
    """``np.std``: the square root of ``var``."""
    return apply("sqrt", var(a, axis, ddof, keepdims))


def prod(a, axis=None, keepdims=False):
    """``np.prod``: the last running product (a scan, exact where elements are zero)."""
    a = as_expr(a)
    if axis is None:
        result = cumprod(ravel(a))[-1] if a.shape else a
        return reshape(result, (1,) * a.ndim) if keepdims else result
    (axis,) = _axes(a, axis, "prod")
    last = [slice(None)] * a.ndim
    last[axis] = slice(-1, None) if keepdims else -1
    return index(cumprod(a, axis), tuple(last))


def clip(a, a_min=None, a_max=None):
    """``np.clip``: ``a`` limited to [a_min, a_max] (None: no limit on that side)."""
    x = as_expr(a)
    if a_min is not None:
        x = apply("maximum", x, a_min)
    if a_max is not None:
        x = apply("minimum", x, a_max)
    return x


def dot(a, b):
    """``x.dot(y)``: ``np.dot``."""
    return matmul(a, b)


def _size(x, axis=None):
    return x.size if axis is None else x.shape[axis]


FUNCTIONS = {
    np.shape: lambda x: x.shape, np.ndim: lambda x: x.ndim, np.size: _size,
    np.expand_dims: expand_dims, np.squeeze: squeeze, np.ravel: ravel,
    np.atleast_1d: atleast_1d, np.atleast_2d: atleast_2d, np.flip: flip, np.roll: roll,
    np.vstack: vstack, np.hstack: hstack, np.column_stack: column_stack, np.tile: tile,
    np.repeat: repeat, np.kron: kron, np.pad: pad, np.zeros_like: zeros_like,
    np.ones_like: ones_like, np.full_like: full_like, np.diagonal: diagonal,
    np.diag: diag, np.trace: trace, np.var: var, np.std: std, np.prod: prod,
    np.clip: clip, np.linalg.inv: inv, np.linalg.det: det, np.linalg.slogdet: slogdet,
    np.linalg.solve: solve_any, np.linalg.cholesky: cholesky, np.linalg.eigh: eigh,
    np.linalg.eigvalsh: eigvalsh, np.sort: sort,
}

METHODS = {
    "ravel": ravel, "flatten": ravel, "squeeze": squeeze, "var": var, "std": std,
    "prod": prod, "clip": clip, "dot": dot, "diagonal": diagonal, "trace": trace,
    "max": amax, "min": amin, "repeat": repeat,
}
