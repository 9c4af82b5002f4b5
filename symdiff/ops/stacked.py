"""Stacks of matrix products: ``batch_matmul(a, b)[s] = a[s] @ b[s]`` for a of shape
(S, m, k) and b of shape (S, k, n), as JAX's ``dot_general`` with one batch axis.

``np.einsum`` writes its contractions with a batch letter (``"ijk,mik->mij"``, a
Gaussian mixture's factors applied to centred points) as this op, so that the value and
both adjoints are one BLAS call per matrix of the stack rather than fused loops over four
axes reading across strides.  The adjoints are products of the same kind, with the last
two axes of the other operand swapped.
"""

from __future__ import annotations

import numpy as np

from symdiff.errors import ShapeError
from symdiff.ir.nodes import Expr, Op, apply, register
from symdiff.ops.arrays import reshape
from symdiff.ops.structural import bilinear_jvp, element_positions, permute


def _swapped(x: Expr) -> Expr:
    """Each matrix of the stack transposed."""
    return permute(x, (0, 2, 1))


def _shape(shapes, payload):
    a, b = shapes
    if len(a) != 3 or len(b) != 3:
        raise ShapeError(f"batch_matmul takes two stacks of matrices (3 axes), got shapes "
                         f"{a} and {b}")
    if a[0] != b[0] or a[2] != b[1] or None in a + b:
        raise ShapeError(f"batch_matmul: shapes {a} and {b} are not aligned (static, "
                         "equal stacks, inner sizes equal)")
    return (a[0], a[1], b[2])


def _vjp(i, node, adj):
    a, b = node.args
    if i == 0:
        return apply("batch_matmul", adj, _swapped(b))
    return apply("batch_matmul", _swapped(a), adj)


def _sparsity(i, node, shape, args):
    # out[s, r, c] reads a[s, r, :] and b[s, :, c]: dense within each matrix, nothing
    # across the stack.
    (stack, m, inner), n = args[0], args[1][2]
    out = element_positions((stack, m, n))[:, :, :, None]
    if i == 0:
        mine = element_positions((stack, m, inner))[:, :, None, :]
    else:
        mine = np.swapaxes(element_positions((stack, inner, n)), 1, 2)[:, None, :, :]
    full = (stack, m, n, inner)
    return np.broadcast_to(out, full).ravel(), np.broadcast_to(mine, full).ravel()


def _batch(node, operands, batched, size):
    """Over a trailing batch axis B (symdiff.autodiff.batch_axis): the batch as more
    columns of b, more rows of a, or, where both carry it, more matrices of the stack."""
    if size is None:
        return None  # (an open batch: the stack needs static shapes)
    a, b = operands
    (stack, m, inner), n = node.args[0].shape, node.args[1].shape[2]
    if not batched[0]:  # b (S, k, n, B): n * B columns
        columns = apply("reshape", b, payload=(stack, inner, n * size))
        return apply("reshape", apply("batch_matmul", a, columns), payload=node.shape + (size,))
    if not batched[1]:  # a (S, m, k, B): m * B rows, put back after n
        rows = apply("reshape", permute(a, (0, 1, 3, 2)), payload=(stack, m * size, inner))
        out = apply("reshape", apply("batch_matmul", rows, b), payload=(stack, m, size, n))
        return permute(out, (0, 1, 3, 2))
    stacked = [apply("reshape", permute(x, (0, 3, 1, 2)), payload=(stack * size,) + shape)
               for x, shape in ((a, (m, inner)), (b, (inner, n)))]
    out = apply("reshape", apply("batch_matmul", *stacked), payload=(stack, size, m, n))
    return permute(out, (0, 2, 3, 1))


register(Op(
    "batch_matmul", 2, lambda shape, payload, a, b: np.matmul(a, b), None, None,
    shape_rule=_shape, vjp=_vjp, jvp=bilinear_jvp, sparsity=_sparsity, batch=_batch,
))


# Contractions at least this long become matrix products (BLAS); shorter ones stay
# products summed in fused loops, which need no copies of permuted operands.
MATMUL_MIN_CONTRACTION = 8


def contraction(first: str, a: Expr, second: str, b: Expr, output: str) -> Expr | None:
    """The einsum ``first,second->output`` of two operands (one letter per axis, no
    repeated letter within an operand) as one matrix product (``matmul``, or
    ``batch_matmul`` where letters of both operands are kept: the stack), with the
    operands' axes permuted and merged into rows, columns and stack; None where it is
    not one (a letter summed over one operand only, a stack letter of different sizes,
    open shapes), the contraction is shorter than MATMUL_MIN_CONTRACTION, or a stack
    would hold vectors rather than matrices (one BLAS call per dot product)."""
    if not output or None in a.shape + b.shape:
        return None
    sizes_a = dict(zip(first, a.shape, strict=True))
    sizes_b = dict(zip(second, b.shape, strict=True))
    stack = [c for c in first if c in second and c in output]
    summed = [c for c in first if c in second and c not in output]
    rows = [c for c in first if c not in second]
    columns = [c for c in second if c not in first]
    if any(c not in output for c in rows + columns) or any(
            sizes_a[c] != sizes_b[c] for c in stack + summed):
        return None
    sizes = {**sizes_a, **sizes_b}

    def size(letters):
        return int(np.prod([sizes[c] for c in letters], dtype=np.int64))
    if size(summed) < MATMUL_MIN_CONTRACTION or stack and (size(rows) < 2 or size(columns) < 2):
        return None  # (a stack of dot products or of matrix-vector products: fused loops)
    head = (size(stack),) if stack else ()
    left = reshape(permute(a, [first.index(c) for c in stack + rows + summed]),
                   head + (size(rows), size(summed)))
    right = reshape(permute(b, [second.index(c) for c in stack + summed + columns]),
                    head + (size(summed), size(columns)))
    product = apply("batch_matmul" if stack else "matmul", left, right)
    kept = stack + rows + columns
    product = reshape(product, tuple(sizes[c] for c in kept))
    return permute(product, [kept.index(c) for c in output])
