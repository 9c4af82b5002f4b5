"""Structural array ops: one record each with shape rule, NumPy evaluation, VJP, JVP and
the NumPy expression Numba runs (reductions are fused into loops by the code generator).

Payloads (``node.value``) are hashable: axes tuples, target shapes, normalized index keys
(``symdiff/index_keys.py``).  ``take`` gathers rows (first axis) by a
constant integer array; its adjoint ``scatter_add`` sums rows back into place, so a pair
list ``x[I] - x[J]`` visits only the listed pairs in both directions.
"""

from __future__ import annotations

import math

import numpy as np

from symdiff.errors import ShapeError
from symdiff.ir.dims import has_open, is_open, offset, open_dim, static_prod
from symdiff.ir.index_keys import index_shape, key_text, key_to_python, part_key
from symdiff.ir.nodes import ArrayData, Op, Rows, apply, register  # noqa: F401 - ArrayData re-exported
from symdiff.ops.elementwise import ZERO


# Sparsity rules (see Op.sparsity): which operand elements each result element depends on.
def element_positions(shape) -> np.ndarray:
    """Element positions (C order) laid out in ``shape``."""
    return np.arange(math.prod(shape), dtype=np.int64).reshape(shape)


def dense_sparsity(i, node, shape, arg_shapes):
    """Conservative: every result element may depend on every element of operand i
    (loops, roots, solves)."""
    n, m = math.prod(shape), math.prod(arg_shapes[i])
    return np.repeat(np.arange(n, dtype=np.int64), m), np.tile(np.arange(m, dtype=np.int64), n)


def _reads(where):
    """Result element o depends on operand element where[o]."""
    where = np.ravel(where)
    return np.arange(where.size, dtype=np.int64), where


def _writes(where):
    """Operand element e contributes to result element where[e]."""
    where = np.ravel(where)
    return where, np.arange(where.size, dtype=np.int64)


def _reduction_sparsity(i, node, shape, args):
    kept = reduced_shape(args[0], node.value[0], True)
    return _writes(np.broadcast_to(element_positions(kept), args[0]))


def reduced_shape(shape, axes, keepdims):
    """Shape after reducing ``axes`` (None: all)."""
    axes = range(len(shape)) if axes is None else axes
    if keepdims:
        return tuple(1 if k in axes else d for k, d in enumerate(shape))
    return tuple(d for k, d in enumerate(shape) if k not in axes)


def _sum_shape(shapes, payload):
    axes, keepdims = payload
    return reduced_shape(shapes[0], axes, keepdims)


def _kept(node, adjoint):
    """The adjoint of a reduction reshaped with its reduced axes kept as size 1."""
    axes, keepdims = node.value
    kept = reduced_shape(node.args[0].shape, axes, True)
    return adjoint if keepdims or adjoint.shape in (kept, ()) else apply(
        "reshape", adjoint, payload=kept)


def broadcast_to(x, shape):
    """``x`` broadcast to ``shape`` (no node when the shape already matches)."""
    return x if x.shape == tuple(shape) else apply("broadcast_to", x, payload=tuple(shape))


def sum_to(x, shape):
    """Sum ``x`` down to ``shape``, undoing broadcasting (no node when shapes match)."""
    return x if x.shape == tuple(shape) else apply("sum_to", x, payload=tuple(shape))


def zeros(shape):
    """An all-zero expression of ``shape`` (an int: a vector of that length)."""
    return broadcast_to(ZERO, (shape,) if isinstance(shape, int) else shape)


# Batching rules (Op.batch): the node over a batch of values held along a trailing axis
# of length ``size``, which leaves axes, index keys and row positions as they are.
def with_unit_axis(x):
    """``x`` with a trailing axis of length 1: it then broadcasts against an operand
    that carries the batch axis."""
    return apply("reshape", x, payload=x.shape + (1,)) if x.shape else x


def lifted(x, size):
    """``x``, the same at every point of the batch, repeated along the batch axis."""
    return broadcast_to(with_unit_axis(x), x.shape + (size,))


def _reduction_batch(node, operands, batched, size):
    """The same reduction over the same axes (all of them but the batch for None)."""
    axes, keepdims = node.value
    axes = tuple(range(node.args[0].ndim)) if axes is None else axes
    return apply(node.op, operands[0], payload=(axes, keepdims))


def _to_shape_batch(node, operands, batched, size):
    """The target shape with the batch axis appended (broadcast_to, sum_to, reshape)."""
    return apply(node.op, operands[0], payload=node.shape + (size,))


def _same_payload_batch(node, operands, batched, size):
    """The same op and payload on the batched operands (keys and rows leave the trailing
    batch axis whole)."""
    return apply(node.op, *operands, payload=node.value)


register(Op(
    "sum", 1, lambda shape, p, x: np.sum(x, axis=p[0], keepdims=p[1]), None, None,
    shape_rule=_sum_shape,
    vjp=lambda i, node, adj: broadcast_to(_kept(node, adj), node.args[0].shape),
    jvp=lambda node, t: apply("sum", t[0], payload=node.value),
    sparsity=_reduction_sparsity, batch=_reduction_batch,
))


def _amax_vjp_parts(node):
    x = node.args[0]
    hit = apply("equal", x, broadcast_to(_kept(node, node), x.shape))
    count = apply("sum", hit, payload=(node.value[0], True))
    return hit, count


def _amax_vjp(i, node, adj):
    # Ties split evenly, as for maximum(x, y).
    hit, count = _amax_vjp_parts(node)
    share = apply("div", broadcast_to(_kept(node, adj), hit.shape), count)
    return apply("mul", hit, share)


def _amax_jvp(node, t):
    hit, count = _amax_vjp_parts(node)
    total = apply("sum", apply("mul", hit, t[0]), payload=(node.value[0], True))
    return _unkeep(node, apply("div", total, count))


def _unkeep(node, kept):
    return kept if node.value[1] else apply("reshape", kept, payload=node.shape)


register(Op(
    "amax", 1, lambda shape, p, x: np.max(x, axis=p[0], keepdims=p[1]), None, None,
    shape_rule=_sum_shape, vjp=_amax_vjp, jvp=_amax_jvp, sparsity=_reduction_sparsity,
    batch=_reduction_batch,
))


def _broadcast_to_sympy(node, x):
    import sympy

    if not node.shape:
        return x
    if isinstance(x, sympy.NDimArray) or has_open(node.shape):
        raise ShapeError("to_sympy: only a scalar broadcast to a static shape has a SymPy "
                         "form yet")
    return sympy.Array([x] * math.prod(node.shape), node.shape)


def _broadcast_shape(shapes, target):
    (shape,) = shapes
    padded = (1,) * (len(target) - len(shape)) + tuple(shape)
    if len(shape) > len(target) or any(s not in (1, t) for s, t in zip(padded, target,
                                                                      strict=True)):
        raise ShapeError(f"cannot broadcast shape {shape} to {target}")
    return tuple(target)


register(Op(
    "broadcast_to", 1, lambda shape, p, x: np.broadcast_to(x, shape).copy(), None,
    _broadcast_to_sympy, shape_rule=_broadcast_shape,
    vjp=lambda i, node, adj: sum_to(adj, node.args[0].shape),
    jvp=lambda node, t: broadcast_to(t[0], node.shape),
    sparsity=lambda i, node, shape, args: _reads(
        np.broadcast_to(element_positions(args[0]), shape)),
    batch=_to_shape_batch,
))


def _sum_to_evaluate(shape, target, x):
    lead = x.ndim - len(target)
    axes = tuple(range(lead)) + tuple(lead + k for k, d in enumerate(target)
                                      if d == 1 and x.shape[lead + k] != 1)
    return np.sum(x, axis=axes, keepdims=True).reshape(shape)


def _sum_to_shape(shapes, target):
    _broadcast_shape((tuple(target),), shapes[0])
    return tuple(target)


register(Op(
    "sum_to", 1, _sum_to_evaluate, None, None, shape_rule=_sum_to_shape,
    vjp=lambda i, node, adj: broadcast_to(adj, node.args[0].shape),
    jvp=lambda node, t: sum_to(t[0], node.shape),
    sparsity=lambda i, node, shape, args: _writes(
        np.broadcast_to(element_positions(shape), args[0])),
    batch=_to_shape_batch,
))


def _reshape_shape(shapes, target):
    (shape,) = shapes
    if [d for d in shape if is_open(d)] != [d for d in target if is_open(d)] or static_prod(
            shape) != static_prod(target):
        raise ShapeError(f"cannot reshape {shape} to {target}")
    return tuple(target)


register(Op(
    "reshape", 1, lambda shape, p, x: np.reshape(x, shape), None, None,
    shape_rule=_reshape_shape,
    vjp=lambda i, node, adj: apply("reshape", adj, payload=node.args[0].shape)
    if adj.shape != node.args[0].shape else adj,
    jvp=lambda node, t: apply("reshape", broadcast_to(t[0], node.args[0].shape),
                              payload=node.shape),
    sparsity=lambda i, node, shape, args: _reads(element_positions(shape)),
    batch=_to_shape_batch,
))


def _transpose_shape(shapes, payload):
    (shape,) = shapes
    return tuple(reversed(shape))


def permute(x, axes):
    """``x`` with its axes in the order ``axes`` (NumPy's ``transpose(x, axes)``): no node
    for the identity, the transpose op for a matrix's (1, 0), and one permutation for a
    permutation of a permutation."""
    axes = tuple(int(a) for a in axes)
    if x.op == "permute":
        x, axes = x.args[0], tuple(x.value[a] for a in axes)
    if axes == tuple(range(x.ndim)):
        return x
    if axes == (1, 0):
        return apply("transpose", x)
    return apply("permute", x, payload=axes)


def _transpose_batch(node, operands, batched, size):
    """Every axis reversed but the batch axis, which stays last."""
    n = node.ndim
    return operands[0] if n <= 1 else permute(operands[0], tuple(range(n - 1, -1, -1)) + (n,))


register(Op(
    "transpose", 1, lambda shape, p, x: np.ascontiguousarray(x.T), None, None,
    shape_rule=_transpose_shape,
    vjp=lambda i, node, adj: apply("transpose", adj),
    jvp=lambda node, t: apply("transpose", broadcast_to(t[0], node.args[0].shape)),
    sparsity=lambda i, node, shape, args: _reads(element_positions(args[0]).T),
    batch=_transpose_batch,
))


def _permute_shape(shapes, axes):
    """The axes of the operand's shape in the order ``axes`` (a permutation of them)."""
    (shape,) = shapes
    if sorted(axes) != list(range(len(shape))):
        raise ShapeError(f"axes {axes} are not a permutation of the {len(shape)} axes of "
                         f"shape {shape}")
    return tuple(shape[k] for k in axes)


def _inverse(axes):
    """The permutation that undoes ``axes``."""
    return tuple(sorted(range(len(axes)), key=axes.__getitem__))


register(Op(
    "permute", 1, lambda shape, axes, x: np.ascontiguousarray(np.transpose(x, axes)), None,
    None, shape_rule=_permute_shape,
    vjp=lambda i, node, adj: permute(broadcast_to(adj, node.shape), _inverse(node.value)),
    jvp=lambda node, t: permute(broadcast_to(t[0], node.args[0].shape), node.value),
    sparsity=lambda i, node, shape, args: _reads(np.transpose(element_positions(args[0]),
                                                              node.value)),
    batch=lambda node, operands, batched, size: permute(operands[0],
                                                        node.value + (node.ndim,)),
    describe=lambda node: f"axes {node.value}",
))


def _matmul_shape(shapes, payload):
    a, b = shapes
    if not a or not b or len(a) > 2 or len(b) > 2:
        raise ShapeError(f"matmul needs 1-D or 2-D operands, got shapes {a} and {b}")
    inner_b = b[0] if len(b) == 1 else b[-2]
    if a[-1] != inner_b:
        raise ShapeError(f"matmul: shapes {a} and {b} are not aligned")
    return a[:-1] + (b[-1:] if len(b) == 2 else ())


def outer_product(u, v):
    """The outer product of two vectors, as a broadcasting product."""
    # A broadcasting product, not a matmul with an inner size of 1: it fuses into the
    # loop that reads it (an accumulation, in reverse sweeps) instead of a BLAS call
    # writing a matrix.
    return apply("mul", apply("reshape", u, payload=u.shape + (1,)),
                 apply("reshape", v, payload=(1,) + v.shape))


def _matmul_vjp(i, node, adj):
    a, b = node.args
    if i == 0:
        if a.ndim == 2:
            if b.ndim == 2:
                return apply("matmul", adj, apply("transpose", b))
            return outer_product(adj, b)
        return apply("matmul", b, adj) if b.ndim == 2 else apply("mul", adj, b)
    if b.ndim == 2:
        return apply("matmul", apply("transpose", a), adj) if a.ndim == 2 else outer_product(a, adj)
    return apply("matmul", apply("transpose", a), adj) if a.ndim == 2 else apply("mul", adj, a)


def bilinear_jvp(node, t):
    """The tangent of a product op (linear in each operand): the op of each tangent with
    the other operand, added."""
    a, b = node.args
    terms = []
    if t[0] is not None:
        terms.append(apply(node.op, broadcast_to(t[0], a.shape), b))
    if t[1] is not None:
        terms.append(apply(node.op, a, broadcast_to(t[1], b.shape)))
    return terms[0] if len(terms) == 1 else apply("add", *terms)


def _matmul_evaluate(shape, payload, a, b):
    out = np.matmul(a, b)
    return float(out) if np.ndim(out) == 0 else out


def _matmul_sparsity(i, node, shape, args):
    # out[r, c] = sum_j a[r, j] b[j, c] depends on a's row r and b's column c, except
    # where the other operand is a constant array with a structural zero there.
    a_shape, b_shape = args
    m = a_shape[0] if len(a_shape) == 2 else 1
    p = a_shape[-1]
    k = b_shape[1] if len(b_shape) == 2 else 1
    out = element_positions((m, k))[:, :, None]
    other = node.args[1 - i]
    if i == 0:
        mine = element_positions((m, p))[:, None, :]
        used = None if other.op != "array" else (
            np.reshape(other.value.array, (p, k)).T != 0)[None, :, :]
    else:
        mine = element_positions((p, k)).T[None, :, :]
        used = None if other.op != "array" else (
            np.reshape(other.value.array, (m, p)) != 0)[:, None, :]
    rows, cols = (np.broadcast_to(a, (m, k, p)) for a in (out, mine))
    if used is not None:
        keep = np.broadcast_to(used, (m, k, p))
        return rows[keep], cols[keep]
    return rows.ravel(), cols.ravel()


def _matmul_batch(node, operands, batched, size):
    """One matrix product where the batch can be the columns of a fixed matrix's
    operand (or the rows of a transposed one); otherwise products summed over the inner
    axis in a fused loop."""
    a, b = operands
    a_shape, b_shape = (x.shape for x in node.args)
    if not batched[0] and len(b_shape) == 1:
        return apply("matmul", a, b)  # the batch as the columns of a matrix
    if not batched[0] and not has_open(b_shape[1:] + (size,)):
        columns = apply("reshape", b, payload=(b_shape[0], b_shape[1] * size))
        return apply("reshape", apply("matmul", a, columns), payload=node.shape + (size,))
    if not batched[1] and len(a_shape) == 1 and len(b_shape) == 2:
        return apply("matmul", apply("transpose", b), a)
    # Otherwise products summed over the inner axis (fused loops rather than BLAS):
    # a as (m?, k, 1?, B|1) times b as (1?, k, p?, B|1).
    a_axes = a_shape + ((1,) if len(b_shape) == 2 else ()) + ((size,) if batched[0] else (1,))
    b_axes = ((1,) if len(a_shape) == 2 else ()) + b_shape + ((size,) if batched[1] else (1,))
    terms = apply("mul", apply("reshape", a, payload=a_axes),
                  apply("reshape", b, payload=b_axes))
    return apply("sum", terms, payload=((len(a_shape) - 1,), False))


register(Op(
    "matmul", 2, _matmul_evaluate, None, None, "@", 20, shape_rule=_matmul_shape,
    vjp=_matmul_vjp, jvp=bilinear_jvp, sparsity=_matmul_sparsity, batch=_matmul_batch,
))


register(Op(
    "index", 1, lambda shape, key, x: np.array(x[key_to_python(key)], dtype=float), None,
    None,
    shape_rule=index_shape,
    vjp=lambda i, node, adj: apply("embed", adj, payload=(node.value, node.args[0].shape)),
    jvp=lambda node, t: apply("index", broadcast_to(t[0], node.args[0].shape),
                              payload=node.value),
    sparsity=lambda i, node, shape, args: _reads(
        element_positions(args[0])[key_to_python(node.value)]),
    describe=lambda node: f"[{key_text(node.value)}]",
    batch=_same_payload_batch,  # (a key leaves trailing axes whole)
))


def _embed_evaluate(shape, payload, y):
    out = np.zeros(shape)
    out[key_to_python(payload[0])] = y
    return out


def _embed_shape(shapes, payload):
    key, shape = payload
    if index_shape((shape,), key) != shapes[0]:
        raise ShapeError(f"embed: shape {shapes[0]} does not fit {shape} at the key")
    return tuple(shape)


register(Op(
    "embed", 1, _embed_evaluate, None, None, shape_rule=_embed_shape,
    vjp=lambda i, node, adj: apply("index", adj, payload=node.value[0]),
    jvp=lambda node, t: apply("embed", broadcast_to(t[0], node.args[0].shape),
                              payload=node.value),
    sparsity=lambda i, node, shape, args: _writes(
        element_positions(shape)[key_to_python(node.value[0])]),
    describe=lambda node: f"at [{key_text(node.value[0])}] of {node.value[1]}",
    batch=lambda node, operands, batched, size: apply(
        "embed", operands[0], payload=(node.value[0], node.value[1] + (size,))),
))


def _concatenate_shape(shapes, axis):
    first = shapes[0]
    for s in shapes:
        if len(s) != len(first) or any(d != e for k, (d, e) in enumerate(zip(s, first,
                                                                         strict=True))
                                       if k != axis):
            raise ShapeError(f"concatenate: shapes {shapes} differ off axis {axis}")
    opened = [s[axis] for s in shapes if is_open(s[axis])]
    if len(opened) > 1:
        raise ShapeError("concatenate: at most one part may be open (None) along the axis "
                         f"joined, got shapes {shapes}")
    length = open_dim(offset(opened[0]) + sum(s[axis] for s in shapes if not is_open(
        s[axis]))) if opened else sum(s[axis] for s in shapes)
    return first[:axis] + (length,) + first[axis + 1:]


register(Op(
    "concatenate", None, lambda shape, axis, *xs: np.concatenate(xs, axis=axis), None, None,
    shape_rule=_concatenate_shape,
    vjp=lambda i, node, adj: apply("index", adj, payload=part_key(node, i)),
    jvp=lambda node, t: apply("concatenate", *(
        zeros(a.shape) if ti is None else broadcast_to(ti, a.shape)
        for a, ti in zip(node.args, t, strict=True)), payload=node.value),
    sparsity=lambda i, node, shape, args: _writes(
        element_positions(shape)[key_to_python(part_key(node, i))]),
    batch=lambda node, operands, batched, size: apply("concatenate", *(
        x if b else lifted(x, size) for x, b in zip(operands, batched, strict=True)),
        payload=node.value),
))

def _take_shape(shapes, rows):
    (shape,) = shapes
    if not shape or is_open(shape[0]):
        raise ShapeError(f"take: rows are gathered from a fixed first axis, got shape {shape}")
    if rows.array.ndim != 1:
        raise ShapeError("take: row positions are one vector")
    if len(rows) and not (0 <= rows.array.min() and rows.array.max() < shape[0]):
        raise ShapeError(f"take: row positions out of range for a first axis of {shape[0]}")
    return (len(rows),) + tuple(shape[1:])


def _scatter_add_evaluate(shape, payload, y):
    out = np.zeros(shape)
    np.add.at(out, payload[0].array, y)
    return out


def _scatter_add_shape(shapes, payload):
    rows, n = payload
    (shape,) = shapes
    if _take_shape(((n,) + tuple(shape[1:]),), rows) != tuple(shape):
        raise ShapeError(f"scatter_add: shape {shape} does not match {len(rows)} rows")
    return (n,) + tuple(shape[1:])


register(Op(
    "take", 1, lambda shape, rows, x: np.take(x, rows.array, axis=0), None, None,
    shape_rule=_take_shape,
    vjp=lambda i, node, adj: apply("scatter_add", broadcast_to(adj, node.shape),
                                   payload=(node.value, node.args[0].shape[0])),
    jvp=lambda node, t: apply("take", broadcast_to(t[0], node.args[0].shape),
                              payload=node.value),
    sparsity=lambda i, node, shape, args: _reads(element_positions(args[0])[node.value.array]),
    batch=_same_payload_batch,  # (rows of the first axis)
))

register(Op(
    "scatter_add", 1, _scatter_add_evaluate, None, None, shape_rule=_scatter_add_shape,
    vjp=lambda i, node, adj: apply("take", broadcast_to(adj, node.shape),
                                   payload=node.value[0]),
    jvp=lambda node, t: apply("scatter_add", broadcast_to(t[0], node.args[0].shape),
                              payload=node.value),
    sparsity=lambda i, node, shape, args: _writes(element_positions(shape)[node.value[0].array]),
    batch=_same_payload_batch,
))


def _cumsum_shape(shapes, payload):
    if len(shapes[0]) != 1:
        raise ShapeError(f"cumsum of shape {shapes[0]}: only vectors (np.cumsum without an "
                         "axis flattens first)")
    return tuple(shapes[0])


def _cumsum_vjp(i, node, adj):
    # The adjoint of a running sum is the running sum from the end: total - cumsum + adj
    # (no reversal, so an open length works too).
    adj = broadcast_to(adj, node.shape)
    total = broadcast_to(apply("sum", adj, payload=(None, False)), node.shape)
    return apply("add", apply("sub", total, apply("cumsum", adj)), adj)


def _cumsum_sparsity(i, node, shape, args):
    rows, columns = np.tril_indices(shape[0])  # element o reads elements 0 .. o
    return rows.astype(np.int64), columns.astype(np.int64)


register(Op(
    "cumsum", 1, lambda shape, p, x: np.cumsum(x), None, None,
    shape_rule=_cumsum_shape, vjp=_cumsum_vjp,
    jvp=lambda node, t: apply("cumsum", broadcast_to(t[0], node.shape)),
    sparsity=_cumsum_sparsity,
))


def _batch_size_shape(shapes, axis):
    if shapes[0][axis] is not None:
        raise ShapeError(f"batch_size: axis {axis} of {shapes[0]} is not the open dimension")
    return ()


def _no_dependence(i, node, shape, args):
    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)


# The length of the open (None) dimension at run time, as a float: means over it.  It
# does not depend on the values, so its derivatives are zero.
register(Op(
    "batch_size", 1, lambda shape, axis, x: float(np.shape(x)[axis]), None, None,
    shape_rule=_batch_size_shape, vjp=lambda i, node, adj: None, jvp=lambda node, t: None,
    sparsity=_no_dependence,
    batch=lambda node, operands, batched, size: lifted(
        apply("batch_size", operands[0], payload=node.value), size),
))

STRUCTURAL = ("sum", "amax", "broadcast_to", "sum_to", "reshape", "transpose", "permute",
              "matmul", "index", "embed", "concatenate", "take", "scatter_add", "batch_size",
              "cumsum")
