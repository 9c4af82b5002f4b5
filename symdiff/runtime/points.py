"""``fn.vmap`` as one graph over all the points (the native backend's vmap): the method's
graph rebuilt with the points as a trailing axis of open length N
(symdiff.autodiff.batch_axis), so that a fixed matrix times each point's vector is one
matrix product and elementwise work runs along the points, vectorized; the Numba
lowering's vmap calls the one-point code once per point instead (codegen.numba.vmap).

Arguments come stacked on a leading axis (as ``vmap`` passes them) and results go back
so: a permutation of axes between the two layouts.
"""

from __future__ import annotations

import math

import numpy as np

from codegen import DirectionLoop, FunctionSpec, result_parts
from symdiff.autodiff.batch_axis import with_batch_axis
from symdiff.ir.dims import has_open
from symdiff.ir.nodes import Expr, apply, array_constant, internal_symbol, restructure
from symdiff.ops.structural import permute
from symdiff.passes.pipeline import optimize

# A dense Hessian or Jacobian of at most this many directions is one graph over points.
MATRIX_DIRECTIONS = 32


def _points_last(points: Expr, shape: tuple) -> Expr:
    """(N, *shape) -> (*shape, N)."""
    return permute(points, tuple(range(1, len(shape) + 1)) + (0,))


def _points_first(x: Expr, shape: tuple) -> Expr:
    """(*shape, N) -> (N, *shape)."""
    return permute(x, (len(shape),) + tuple(range(len(shape))))


def _matrix_spec(loop: DirectionLoop) -> FunctionSpec | None:
    """A dense loop's matrix (codegen.directions) as one graph: its kernel over all its
    directions at once, the columns of an identity, for at most MATRIX_DIRECTIONS of
    them; None for compressed loops, flat or open shapes."""
    kernel = loop.kernel
    parts = result_parts(kernel.result)
    directions = kernel.inputs[len(loop.inputs):]
    if loop.compressed or loop.arrays or parts is None or not directions or \
            kernel.arrays or has_open(sum((x.shape for x in kernel.inputs), ())):
        return None
    sizes = [math.prod(d.shape) for d in directions]
    n = sum(sizes)
    if n > MATRIX_DIRECTIONS:
        return None
    columns, start = {}, 0
    for d, size in zip(directions, sizes, strict=True):
        columns[d] = array_constant(np.eye(n)[start:start + size].reshape(d.shape + (n,)))
        start += size
    rebuilt = with_batch_axis(parts, columns, n)
    if rebuilt is None:
        return None
    rows = [apply("reshape", r, payload=(math.prod(p.shape), n))
            for r, p in zip(rebuilt, parts, strict=True)]
    matrix = rows[0] if len(rows) == 1 else apply("concatenate", *rows, payload=0)
    if loop.transpose:  # (rows of vector-Jacobian products)
        matrix = apply("transpose", matrix)
    return FunctionSpec(loop.name, loop.inputs, matrix, loop.doc, (), False, kernel.lowering)


def points_spec(spec, batched: tuple, fast_math: bool) -> FunctionSpec | None:
    """``spec`` at N points at once: the inputs ``batched`` marks take (N, *shape) arrays,
    the others stay; each result gets a leading axis of N.  A dense Hessian or Jacobian
    is its matrix as one graph first.  None where it does not apply (compressed loops,
    flat array parameters, open shapes, results as lists, or a node without a batching
    rule): the caller then loops over the points."""
    if isinstance(spec, DirectionLoop):
        spec = _matrix_spec(spec)
    if not isinstance(spec, FunctionSpec) or spec.arrays or spec.batched or \
            result_parts(spec.result) is None or \
            has_open(sum((s.shape for s in spec.inputs), ())):
        return None
    inputs, stand_ins = [], {}
    for k, (sym, many) in enumerate(zip(spec.inputs, batched, strict=True)):
        if not many:
            inputs.append(sym)
            continue
        points = internal_symbol(f"points{k}", (None,) + sym.shape)
        inputs.append(points)
        stand_ins[sym] = _points_last(points, sym.shape)
    parts = result_parts(spec.result)
    rebuilt = with_batch_axis(parts, stand_ins, None)
    if rebuilt is None:
        return None
    stacked = [_points_first(x, part.shape) for x, part in zip(rebuilt, parts, strict=True)]
    result = restructure(spec.result, iter(stacked))
    return FunctionSpec(f"vmap_{spec.name}", tuple(inputs), optimize(result, fast_math),
                        f"{spec.doc}, at N points at once", (), False, spec.lowering,
                        releases_gil=True)  # (chunks of points run on several threads)
