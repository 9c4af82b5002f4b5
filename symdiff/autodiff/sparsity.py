"""Structural sparsity of Jacobians and Hessians, read from the graph without evaluating it.

Each node gets a boolean sparse matrix (its elements x the flattened ``wrt`` elements)
telling which inputs each of its elements depends on.  A forward walk builds them: a
``wrt`` symbol is an identity block, other leaves depend on nothing, an elementwise op
depends on its operands where they broadcast (except through a structurally zero partial:
comparisons, ``sign``, ``step``, ``stop_gradient``, ``where``'s condition), and a
structural op follows its record's ``sparsity`` rule: reads (slices, gathers, reshapes,
transposes, broadcasts), writes (reductions, embeddings, scatter-adds, concatenation) or
both (matmul, exact when the other operand is a constant array).

The pattern is conservative: it never misses a nonzero, and it is exact up to numerical
cancellation for the common structures (diagonal, banded, stencils, block diagonal).  The
Hessian's pattern is the Jacobian pattern of the gradient graph, made symmetric.
"""

from __future__ import annotations

import math

import numpy as np

from symdiff.autodiff.modes import grad
from symdiff.errors import SymdiffError
from symdiff.ir.dims import has_open, resolve_shape
from symdiff.ir.nodes import OPS, Expr, topological_order
from symdiff.ops.elementwise import ZERO

# A node whose pattern would hold more entries than this is effectively dense.
MAX_PATTERN_ENTRIES = 50_000_000


def _concrete(shape: tuple, batch: int | None) -> tuple:
    if has_open(shape) and batch is None:
        raise SymdiffError("the sparsity pattern of a function with an open (None) dimension "
                           "needs its size: pass the arguments")
    return resolve_shape(shape, batch)


def _sparse():
    import scipy.sparse

    return scipy.sparse


def _map(rows: np.ndarray, cols: np.ndarray, shape: tuple):
    """The 0/1 matrix with ones at (rows, cols)."""
    sp = _sparse()
    return sp.csr_matrix((np.ones(len(rows), dtype=bool), (rows, cols)), shape=shape)


def _too_large(entries: int, node: Expr) -> None:
    if entries > MAX_PATTERN_ENTRIES:
        raise SymdiffError(f"the sparsity pattern of {node.op} (shape {node.shape}) would hold "
                           f"about {entries:,} entries: the derivative is effectively dense, "
                           "use the dense or matrix-free methods (hessian, hvp, jvp, vjp)")


def _elementwise_map(shape: tuple, arg_shape: tuple, arg_size: int):
    """Each result element reads the operand element it broadcasts from."""
    where = np.broadcast_to(np.arange(arg_size, dtype=np.int64).reshape(arg_shape), shape)
    rows = np.arange(math.prod(shape), dtype=np.int64)
    return _map(rows, where.ravel(), (rows.size, arg_size))


def patterns(outputs: list[Expr], wrt: list[Expr], batch: int | None = None) -> list:
    """The dependency pattern (csr_matrix of bools, elements x wrt elements) of each output;
    ``batch`` is the size of the open dimension, where there is one."""
    sp = _sparse()
    sizes = [math.prod(_concrete(v.shape, batch)) for v in wrt]
    n = sum(sizes)
    offsets = np.cumsum([0] + sizes)
    pattern: dict[Expr, object] = {}
    for v, start, size in zip(wrt, offsets, sizes, strict=False):
        rows = np.arange(size, dtype=np.int64)
        pattern[v] = _map(rows, rows + start, (size, n))
    order = topological_order(outputs)
    shapes = {node: _concrete(node.shape, batch) for node in order}
    for node in order:
        if not node.args or node in pattern:
            continue
        op = OPS[node.op]
        shape = shapes[node]
        size = math.prod(shape)
        arg_shapes = [shapes[a] for a in node.args]
        total = None
        for i, arg in enumerate(node.args):
            incoming = pattern.get(arg)
            if incoming is None:
                continue
            if op.elementwise:
                if op.derivative(i, node.args, node) is ZERO:
                    continue
                reads = _elementwise_map(shape, arg_shapes[i], math.prod(arg_shapes[i]))
            else:
                rows, cols = op.sparsity(i, node, shape, arg_shapes)
                reads = _map(rows, cols, (size, math.prod(arg_shapes[i])))
            row_counts = np.diff(incoming.indptr)
            _too_large(int((reads @ row_counts.astype(np.float64)).sum()), node)
            part = reads @ incoming
            total = part if total is None else total + part
        if total is not None:
            pattern[node] = total
    return [pattern[out] if out in pattern else
            sp.csr_matrix((math.prod(_concrete(out.shape, batch)), n), dtype=bool)
            for out in outputs]


def jacobian_pattern(outputs: list[Expr], wrt: list[Expr], batch: int | None = None):
    """Pattern of the Jacobian of the flattened ``outputs`` by the flattened ``wrt``:
    a scipy.sparse.csr_array of bools (m x n)."""
    sp = _sparse()
    parts = patterns(outputs, wrt, batch)
    stacked = sp.vstack(parts, format="csr") if len(parts) > 1 else parts[0]
    result = sp.csr_array(stacked, dtype=bool)
    result.sort_indices()
    return result


def hessian_pattern(f: Expr, wrt: list[Expr], batch: int | None = None):
    """Pattern of the Hessian of scalar ``f`` (symmetric, n x n csr_array of bools)."""
    gradient = grad(f, wrt)
    pattern = jacobian_pattern(gradient, wrt, batch)
    symmetric = _sparse().csr_array(pattern + pattern.T, dtype=bool)
    symmetric.sort_indices()
    return symmetric
