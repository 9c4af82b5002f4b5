"""Array expressions: symbols with shapes and the NumPy-like functions on them.

Everything here builds IR through the op records of ops.py and array_ops.py; composites
(mean, logsumexp, softmax, log_softmax, stack) are written in terms of them, so their
derivatives come from the same rules.  ``logsumexp`` subtracts the (gradient-free) max,
so it and its derivatives stay finite for inputs of any magnitude.
"""

from __future__ import annotations

import numbers

import numpy as np

from symdiff.errors import ShapeError
from symdiff.ir.dims import has_open, is_open, offset, open_slice, static_prod
from symdiff.ir.eager import eager
from symdiff.ir.nodes import Expr, apply, array_constant, as_expr, symbol, topological_order
from symdiff.ops.structural import (
    Rows,
    broadcast_to,
    outer_product,
    permute,
    reduced_shape,
    sum_to,
    zeros,
)


def vector(name: str, n) -> Expr:
    """A vector symbol of length ``n`` (None: an open batch dimension)."""
    return symbol(name, (n,))


def matrix(name: str, m, n) -> Expr:
    """A matrix symbol of shape (m, n); either may be None (open batch dimension)."""
    return symbol(name, (m, n))


def _axes(x: Expr, axis) -> tuple | None:
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    normalized = []
    for a in axes:
        if not -x.ndim <= a < x.ndim:
            raise ShapeError(f"axis {a} is out of range for shape {x.shape}")
        normalized.append(a % x.ndim)
    return tuple(sorted(set(normalized)))


def _reduction(op_name: str, x, axis, keepdims) -> Expr:
    x = as_expr(x)
    if not x.shape:
        return x
    return apply(op_name, x, payload=(_axes(x, axis), bool(keepdims)))


@eager
def sum(x, axis=None, keepdims=False) -> Expr:  # noqa: A001 - NumPy's name
    """Sum over ``axis`` (an int, a tuple, or None for all axes)."""
    return _reduction("sum", x, axis, keepdims)


@eager
def amax(x, axis=None, keepdims=False) -> Expr:
    """Maximum over ``axis``; its derivative splits ties evenly."""
    return _reduction("amax", x, axis, keepdims)


@eager
def mean(x, axis=None, keepdims=False) -> Expr:
    """Mean over ``axis``; over the open (None) dimension it divides by its length at
    run time."""
    x = as_expr(x)
    axes = _axes(x, axis)
    axes = range(x.ndim) if axes is None else axes
    static = static_prod([x.shape[a] for a in axes])
    result = sum(x, axis, keepdims)
    if static != 1:
        result = apply("mul", result, 1.0 / static)
    opened = [x.shape[a] for a in axes if is_open(x.shape[a])]
    if opened:
        # The length is read from an input with the open dimension (all open dimensions
        # are the one batch size, or offsets from it), so no intermediate array has to
        # exist for it.
        source = next(s for s in topological_order([x]) if s.op == "symbol" and None in s.shape)
        length = apply("batch_size", source, payload=source.shape.index(None))
        for d in opened:
            k = offset(d)
            result = apply("div", result, length if not k else apply(
                "add" if k > 0 else "sub", length, abs(k)))
    return result


@eager
def matmul(a, b) -> Expr:
    """Matrix product of 1-D/2-D expressions (``a @ b``)."""
    return apply("matmul", as_expr(a), as_expr(b))


@eager
def dot(a, b) -> Expr:
    """np.dot for 1-D/2-D operands (the same as matmul there); scalars multiply."""
    a, b = as_expr(a), as_expr(b)
    return apply("mul", a, b) if not a.shape or not b.shape else matmul(a, b)


@eager
def transpose(x, axes=None) -> Expr:
    """The axes reversed, or in the order ``axes`` (NumPy's ``transpose``; negative axes
    count from the end)."""
    x = as_expr(x)
    if axes is None:  # (a matrix's is the transpose op: see permute)
        axes = range(x.ndim - 1, -1, -1)
    axes = [_axis(x, a) for a in np.atleast_1d(axes).tolist()]
    if sorted(axes) != list(range(x.ndim)):
        raise ShapeError(f"transpose: axes {axes!r} must name each of the {x.ndim} axes of "
                         f"shape {x.shape} once")
    return permute(x, axes)


def _axis(x: Expr, a) -> int:
    """One axis of ``x``, counted from the end where negative."""
    if not isinstance(a, numbers.Integral):
        raise ShapeError(f"an axis must be an integer, got {a!r}")
    return _axes(x, a)[0]


@eager
def moveaxis(x, source, destination) -> Expr:
    """``x`` with axis ``source`` (an int or a sequence) moved to ``destination`` (as many),
    the other axes in their order (NumPy's)."""
    x = as_expr(x)
    sources, destinations = (
        [_axis(x, a) for a in (np.atleast_1d(v).tolist())] for v in (source, destination))
    if len(sources) != len(destinations) or len(set(sources)) != len(sources) or len(
            set(destinations)) != len(destinations):
        raise ShapeError(f"moveaxis: source {source!r} and destination {destination!r} must "
                         "name as many distinct axes")
    order = [k for k in range(x.ndim) if k not in sources]
    for place, axis in sorted(zip(destinations, sources, strict=True)):
        order.insert(place, axis)
    return permute(x, order)


@eager
def swapaxes(x, axis1, axis2) -> Expr:
    """``x`` with two axes exchanged (NumPy's)."""
    x = as_expr(x)
    order = list(range(x.ndim))
    a, b = _axis(x, axis1), _axis(x, axis2)
    order[a], order[b] = order[b], order[a]
    return permute(x, order)


@eager
def reshape(x, shape) -> Expr:
    """The same elements in ``shape`` (C order; -1 infers one static dimension)."""
    x = as_expr(x)
    shape = (shape,) if isinstance(shape, numbers.Integral) or shape is None else tuple(shape)
    if -1 in shape:
        known = static_prod(d for d in shape if d != -1)
        total = static_prod(x.shape)
        opened = [d for d in x.shape if is_open(d)]
        if opened and not (len(opened) == 1 and total == known and not has_open(shape)):
            raise ShapeError(f"cannot reshape {x.shape} to {shape}: -1 may stand for an open "
                             "dimension only with the other dimensions kept")
        shape = tuple((opened[0] if opened else total // known) if d == -1 else d
                      for d in shape)
    shape = tuple(shape)
    return x if shape == x.shape else apply("reshape", x, payload=shape)


def _normalize_key(x: Expr, key) -> tuple:
    key = key if isinstance(key, tuple) else (key,)
    if len(key) > x.ndim:
        raise ShapeError(f"too many indices ({len(key)}) for shape {x.shape}")
    entries = []
    for k, item in zip(range(x.ndim), key, strict=False):
        dim = x.shape[k]
        if isinstance(item, slice):
            if is_open(dim):
                entries.append(_open_slice_entry(dim, item, k))
                continue
            start, stop, step = item.indices(dim)
            if len(range(start, stop, step)) == 0:
                raise ShapeError(f"empty slice {item} of axis {k}")
            entries.append(("s", None, None, None) if (start, stop, step) == (0, dim, 1)
                           else ("s", start, stop, step))
        elif isinstance(item, numbers.Integral) and not isinstance(item, bool):
            if is_open(dim):  # negative positions count from the end at run time
                entries.append(("i", int(item)))
                continue
            if not -dim <= item < dim:
                raise ShapeError(f"index {item} is out of range for axis {k} of size {dim}")
            entries.append(("i", int(item) % dim))
        else:
            raise ShapeError(f"unsupported index {item!r} on axis {k}: use ints, slices, "
                             "or one integer array on the first axis")
    while entries and entries[-1] == ("s", None, None, None):
        entries.pop()
    return tuple(entries)


def _open_slice_entry(dim, item: slice, axis: int) -> tuple:
    """The key entry of a slice of an open dimension: its bounds as written, resolved
    against the length at run time (``("o", start, stop, step)``)."""
    bounds = (item.start, item.stop, item.step)
    if any(b is not None and (isinstance(b, bool) or not isinstance(b, numbers.Integral))
           for b in bounds):
        raise ShapeError(f"slice bounds must be ints or None, got {item} on axis {axis}")
    start, stop = (None if b is None else int(b) for b in bounds[:2])
    step = 1 if item.step is None else int(item.step)
    if step not in (1, -1):
        raise ShapeError(f"a slice of an open (None) dimension takes step 1 or -1, got {step} "
                         f"on axis {axis} (its length would not be N + k)")
    if step == 1 and start in (None, 0) and stop is None:
        return ("s", None, None, None)
    open_slice(dim, start, stop, step)  # a ShapeError for empty or shrinking slices
    return ("o", start, stop, step)


def _row_positions(item, dim):
    """Integer positions of a first-axis array index (ints or a boolean mask), or None."""
    if isinstance(item, (list, np.ndarray)):
        array = np.asarray(item)
        if array.dtype == bool:
            if array.shape != (dim,):
                raise ShapeError(f"boolean index of shape {array.shape} for an axis of {dim}")
            return np.flatnonzero(array)
        if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
            raise ShapeError("an array index must be a 1-D array of integers or booleans")
        if is_open(dim):
            raise ShapeError("an open (None) dimension cannot take an array index")
        if array.size and not (-dim <= array.min() and array.max() < dim):
            raise ShapeError(f"array index out of range for axis 0 of size {dim}")
        return array.astype(np.int64) % dim
    return None


@eager
def take(x, rows) -> Expr:
    """Rows of ``x`` (first axis) at constant integer positions, like ``np.take(x, rows, 0)``;
    its gradient adds back into the rows (repeated positions accumulate)."""
    x = as_expr(x)
    if not x.shape:
        raise ShapeError("a scalar expression cannot be indexed")
    positions = _row_positions(list(rows) if isinstance(rows, (tuple, range)) else rows,
                               x.shape[0])
    if positions is None:
        raise ShapeError(f"take: rows must be a list or array of integers, got {rows!r}")
    return apply("take", x, payload=Rows(positions))


def flat_positions(key, shape) -> np.ndarray | None:
    """C-order positions of a key of one integer array per axis (NumPy's fancy indexing,
    ``M[np.tril_indices(n)]``), or None for other keys."""
    if not (isinstance(key, tuple) and len(key) > 1 and all(
            isinstance(k, (list, np.ndarray)) for k in key)):
        return None
    if len(key) != len(shape) or has_open(shape):
        raise ShapeError(f"indexing by integer arrays needs one array for each of the "
                         f"{len(shape)} axes of a static shape, got {len(key)} for {shape}")
    arrays = [np.asarray(k) for k in key]
    for axis, (k, dim) in enumerate(zip(arrays, shape, strict=True)):
        if k.dtype.kind not in "iu" or (k.size and not (-dim <= k.min() and k.max() < dim)):
            raise ShapeError(f"index array of axis {axis} must hold integers in range for "
                             f"size {dim}")
    try:
        arrays = np.broadcast_arrays(*(k % d for k, d in zip(arrays, shape, strict=True)))
    except ValueError:
        raise ShapeError("index arrays must broadcast together") from None
    return np.ravel_multi_index(tuple(a.ravel() for a in arrays), shape)


def _is_new_axis_key(key) -> bool:
    entries = key if isinstance(key, tuple) else (key,)
    return any(k is None or k is Ellipsis for k in entries)


def _with_new_axes(x: Expr, key) -> Expr:
    """``x[key]`` for a key with ``None`` (``np.newaxis``: a new axis of length 1) or
    ``...`` (as many whole axes as the other entries leave), as NumPy reads them."""
    key = key if isinstance(key, tuple) else (key,)
    if len([k for k in key if k is Ellipsis]) > 1:
        raise ShapeError("an index can only have a single ellipsis ('...')")
    real = [k for k in key if k is not None and k is not Ellipsis]
    if len(real) > x.ndim:
        raise ShapeError(f"too many indices ({len(real)}) for shape {x.shape}")
    expanded = []
    for k in key:
        expanded += [slice(None)] * (x.ndim - len(real)) if k is Ellipsis else [k]
    rest = tuple(k for k in expanded if k is not None)
    picked = index(x, rest) if rest else x
    shape, axis = [], 0
    for k in expanded:
        if k is None:
            shape.append(1)
        elif not isinstance(k, numbers.Integral):  # a slice keeps its axis
            shape.append(picked.shape[axis])
            axis += 1
    shape += picked.shape[axis:]
    return reshape(picked, tuple(shape))


def _gathered_as_numpy_would(x: Expr, key) -> Expr:
    """``x[key]`` for a key mixing integer arrays with slices (``x[:, rows, cols]``):
    NumPy applies the key to the positions of x's elements, so its own rules decide the
    result's shape; the elements are gathered at those positions."""
    if has_open(x.shape):
        raise ShapeError(f"indexing by integer arrays mixed with slices needs a static "
                         f"shape, got {x.shape}")
    try:
        positions = np.arange(x.size).reshape(x.shape)[key]
    except (IndexError, TypeError, ValueError) as error:
        raise ShapeError(f"index {key!r} of shape {x.shape}: {error}") from None
    taken = apply("take", reshape(x, (x.size,)), payload=Rows(positions.ravel()))
    return reshape(taken, positions.shape)


@eager
def index(x, key) -> Expr:
    """``x[key]`` with constant ints and slices, ``None`` (``np.newaxis``) and ``...``;
    a 1-D integer array (or boolean mask) on the first axis gathers rows, and one integer
    array per axis gathers elements, as in NumPy."""
    x = as_expr(x)
    if _is_new_axis_key(key):
        entries = key if isinstance(key, tuple) else (key,)
        if any(isinstance(k, (list, np.ndarray)) for k in entries):
            return _gathered_as_numpy_would(x, key)  # NumPy's rules for the axes
        return _with_new_axes(x, key)
    if not x.shape:
        raise ShapeError("a scalar expression cannot be indexed")
    positions = flat_positions(key, x.shape)
    if positions is not None:
        return apply("take", reshape(x, (x.size,)), payload=Rows(positions))
    first, rest = (key[0], key[1:]) if isinstance(key, tuple) and key else (key, ())
    if any(isinstance(k, (list, np.ndarray)) for k in rest):
        return _gathered_as_numpy_would(x, key)
    positions = _row_positions(first, x.shape[0])
    if positions is not None:
        gathered = apply("take", x, payload=Rows(positions))
        return index(gathered, (slice(None),) + rest) if rest else gathered
    normalized = _normalize_key(x, key)
    return x if not normalized else apply("index", x, payload=normalized)


def joined_part(x) -> Expr:
    """A part of a concatenation or stack: an expression, a number or an array of numbers,
    or a (nested) list or NumPy object array of numbers and expressions, as NumPy reads
    one (``np.concatenate([[x[0] - 1], x[1:]])``): a list is the stack of its items,
    which must have one shape."""
    if isinstance(x, (list, tuple)):
        try:
            return as_expr(np.asarray(x, dtype=float))
        except (TypeError, ValueError):  # expressions inside
            if not x:
                raise
            return stack(list(x))
    if isinstance(x, np.ndarray) and x.dtype == object and x.size:
        return reshape(stack(list(x.flat)), x.shape)
    return as_expr(x)


@eager
def concatenate(xs, axis=0) -> Expr:
    """Join expressions (or constant lists and arrays) along an existing axis."""
    xs = [joined_part(x) for x in xs]
    if not xs or any(not x.shape for x in xs):
        raise ShapeError("concatenate needs one or more arrays (not scalars)")
    axis = _axes(xs[0], axis)[0]
    return xs[0] if len(xs) == 1 else apply("concatenate", *xs, payload=axis)


@eager
def stack(xs, axis=0) -> Expr:
    """Join expressions (or constant lists and arrays) of one shape along a new axis."""
    xs = [joined_part(x) for x in xs]
    if not xs:
        raise ShapeError("stack needs one or more expressions")
    shape = xs[0].shape
    for k, x in enumerate(xs):
        if x.shape != shape:
            raise ShapeError(f"stack needs parts of one shape: part 0 has shape {shape}, "
                             f"part {k} {x.shape}")
    axis = axis % (len(shape) + 1)
    new = shape[:axis] + (1,) + shape[axis:]
    return concatenate([reshape(x, new) for x in xs], axis)


@eager
def where(condition, x, y) -> Expr:
    """``x`` where ``condition`` is nonzero (comparisons give 1.0/0.0), else ``y``."""
    return apply("where", condition, x, y)


@eager
def logsumexp(x, axis=None, keepdims=False) -> Expr:
    """log(sum(exp(x))) computed as m + log(sum(exp(x - m))), m the max (no overflow)."""
    x = as_expr(x)
    m = apply("stop_gradient", amax(x, axis, keepdims=True))
    kept = apply("add", m, apply("log", sum(apply("exp", apply("sub", x, m)), axis,
                                               keepdims=True)))
    return kept if keepdims else reshape(kept, reduced_shape(x.shape, _axes(x, axis), False))


@eager
def log_softmax(x, axis=-1) -> Expr:
    """x - logsumexp(x) along ``axis`` (stable)."""
    x = as_expr(x)
    return apply("sub", x, logsumexp(x, axis, keepdims=True))


@eager
def softmax(x, axis=-1) -> Expr:
    """exp(log_softmax(x)) along ``axis`` (stable)."""
    return apply("exp", log_softmax(x, axis))


@eager
def outer(u, v) -> Expr:
    """Outer product of two vectors."""
    return outer_product(as_expr(u), as_expr(v))


# np.<name>(...) on expressions, through __array_function__.
def _np_sum(a, axis=None, keepdims=False, **unsupported):
    return sum(a, axis, keepdims)


def _np_take(a, indices, axis=None):
    if axis not in (None, 0):
        raise ShapeError(f"np.take on an expression supports axis=None or 0, not {axis}")
    a = as_expr(a)
    return take(reshape(a, (-1,)) if axis is None else a, np.atleast_1d(indices))


NUMPY_FUNCTIONS = {
    np.dot: dot, np.matmul: matmul, np.transpose: transpose, np.sum: _np_sum, np.mean: mean,
    np.max: amax, np.amax: amax, np.concatenate: concatenate, np.stack: stack, np.where: where,
    np.reshape: reshape, np.outer: outer, np.broadcast_to: broadcast_to, np.take: _np_take,
    np.moveaxis: moveaxis, np.swapaxes: swapaxes,
}


__all__ = ["vector", "matrix", "sum", "amax", "mean", "matmul", "dot", "transpose", "moveaxis",
           "swapaxes", "reshape",
           "index", "take", "concatenate", "stack", "where", "logsumexp", "log_softmax",
           "softmax", "outer", "broadcast_to", "sum_to", "zeros", "array_constant"]
