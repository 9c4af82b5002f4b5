"""``fn.vmap`` as one graph over all the points (the native backend's vmap): the method's
graph rebuilt with the points as a trailing axis of open length N
(symdiff.autodiff.batch_axis), so that a fixed matrix times each point's vector is one
matrix product and elementwise work runs along the points, vectorized; the Numba
lowering's vmap calls the one-point code once per point instead (codegen.numba.vmap).

Arguments come stacked on a leading axis (as ``vmap`` passes them) and results go back
so: a permutation of axes between the two layouts.
"""

from __future__ import annotations

from codegen import FunctionSpec, result_parts
from symdiff.autodiff.batch_axis import with_batch_axis
from symdiff.ir.dims import has_open
from symdiff.ir.nodes import Expr, internal_symbol, restructure
from symdiff.ops.structural import permute
from symdiff.passes.pipeline import optimize


def _points_last(points: Expr, shape: tuple) -> Expr:
    """(N, *shape) -> (*shape, N)."""
    return permute(points, tuple(range(1, len(shape) + 1)) + (0,))


def _points_first(x: Expr, shape: tuple) -> Expr:
    """(*shape, N) -> (N, *shape)."""
    return permute(x, (len(shape),) + tuple(range(len(shape))))


def points_spec(spec, batched: tuple, fast_math: bool) -> FunctionSpec | None:
    """``spec`` at N points at once: the inputs ``batched`` marks take (N, *shape) arrays,
    the others stay; each result gets a leading axis of N.  None where it does not apply
    (a loop over directions, flat array parameters, open shapes, results as lists, or a
    node without a batching rule): the caller then loops over the points."""
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
