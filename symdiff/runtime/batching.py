"""``fn.vmap(in_axes)`` and ``sd.vmap(f, in_axes)``: a compiled function over a batch axis.

As ``jax.vmap``: ``in_axes`` is an int (every argument batched on that axis) or one entry
per argument, an int or None (the same value at every point).  Each method (the value,
``grad``, ``value_and_grad``, ``hessian``, ``jacobian``, ``hvp``, ``jvp``, ``vjp``) runs
as one generated function, its results stacked on a new leading axis: natively, the
method's graph over all the points (symdiff.runtime.points), run in chunks of points
on a pool of threads; otherwise a ``prange`` over the points calling the method's
one-point code (codegen.numba.vmap).  Directions and cotangents of ``hvp``/``jvp``/
``vjp`` are given per point, stacked on axis 0.
"""

from __future__ import annotations

import operator
import threading

import numpy as np
from numba import from_dtype, types

from codegen import emit_vmap, result_layout
from codegen.naming import parameter_names
from symdiff.errors import ArgumentError, ShapeError
from symdiff.ir import trees
from symdiff.runtime import native
from symdiff.runtime.blas_threads import limited, threaded_products
from symdiff.runtime.inputs import is_dask, real_array, real_number
from symdiff.runtime.loading import compile_source
from symdiff.runtime.matrices import check_vmapped_fits
from symdiff.runtime.points import points_spec

# The native vmap runs its points in chunks of this many: the arrays over a chunk stay in
# the CPU's caches (all 10^4 points at once measured 7x slower than Numba's loop).
POINTS_CHUNK = 256
METHODS = ("forward", "grad", "value_and_grad", "hessian", "jacobian", "hvp", "jvp", "vjp")


class VMapped:
    """A compiled function (or a ``ByShape``) evaluated over a batch axis of its
    arguments, on several threads; results get the batch as their first axis."""

    def __init__(self, function, in_axes=0):
        self.function = function
        self.count = _argument_count(function)
        self.in_axes = _axes(in_axes, self.count)
        self._drivers: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def __call__(self, *arguments):
        """The value at every point."""
        return self._run("forward", arguments)

    def __getattr__(self, method: str):
        if method not in METHODS:
            raise AttributeError(f"a vmapped function has no method {method!r}; it has "
                                 + ", ".join(METHODS))

        def call(*arguments):
            return self._run(method, arguments)

        call.__name__ = method
        call.__doc__ = f"``{method}`` at every point of the batch."
        return call

    def __repr__(self):
        return f"<symdiff.VMapped in_axes={self.in_axes} of {self.function!r}>"

    def __reduce__(self):
        # The function and the axes; the drivers are made again where it is unpickled.
        return (VMapped, (self.function, self.in_axes))

    def _run(self, method: str, arguments: tuple):
        if len(arguments) < self.count:
            raise ArgumentError(f"expected {self.count} argument{'s' * (self.count != 1)}, "
                                f"got {len(arguments)}")
        axes = self.in_axes + (0,) * (len(arguments) - self.count)  # directions: per point
        if any(is_dask(v) for v, a in zip(arguments, axes, strict=True) if a is not None):
            return map_points(self, method, arguments)
        values, sizes = [], set()
        for k, (value, axis) in enumerate(zip(arguments, axes, strict=True)):
            if trees.is_tree(value):
                raise ArgumentError(f"vmap takes arrays, not pytrees (argument #{k + 1} is "
                                    f"a {type(value).__name__}): flatten each point's tree "
                                    "with sd.ravel_pytree and pass the vectors stacked")
            if axis is None:
                array = np.asarray(value)
                values.append(real_number(f"#{k + 1}", value) if array.ndim == 0
                              else real_array(f"#{k + 1}", value))
                continue
            array = real_array(f"#{k + 1}", value)
            if not -array.ndim <= axis < array.ndim:
                raise ArgumentError(f"argument #{k + 1} has {array.ndim} dimension"
                                    f"{'s' * (array.ndim != 1)}: it has no batch axis {axis} "
                                    "(None in in_axes shares an argument between all points)")
            values.append(np.ascontiguousarray(np.moveaxis(array, axis, 0)))
            sizes.add(values[-1].shape[0])
        if not sizes:
            raise ArgumentError("vmap needs at least one batched argument (in_axes are all "
                                "None)")
        if len(sizes) > 1:
            raise ArgumentError(f"batched arguments disagree on the batch size: {sorted(sizes)}")
        batched = [axis is not None for axis in axes]
        points = [v[0] if b and len(v) else np.zeros(v.shape[1:]) if b else v
                  for v, b in zip(values, batched, strict=True)]
        compiled = _compiled_for(self.function, points[:self.count])
        _check_shapes(compiled, points[:self.count])
        tree = (self.function.result_tree(compiled) if hasattr(self.function, "result_tree")
                else None)
        if sizes == {0}:  # no point to learn the shapes from: the first point's, unstacked
            probe = getattr(compiled, method)(*[p if np.ndim(p) else float(p) for p in points])
            return _restructured(tree, method, _empty(probe))
        check_vmapped_fits(compiled.derivation, method, sizes.pop())
        # Captured arrays: hidden arguments (symdiff.passes.data).
        data = list(compiled.derivation.data_values)
        values[self.count:self.count] = data
        batched[self.count:self.count] = [False] * len(data)
        driver = self._driver(compiled, method, tuple(batched), values)
        return _restructured(tree, method, driver(*values))

    def _driver(self, compiled, method: str, batched: tuple, values: list):
        key = (id(compiled), method, batched)
        found = self._drivers.get(key)
        if found is None:
            # Compiled outside the lock (a fork meanwhile would leave it held in the
            # child); two threads compiling at once share one module and keep one driver.
            driver = _compile_driver(compiled, method, batched, values)
            with self._lock:
                found = self._drivers.setdefault(key, (compiled, driver))
        return found[1]


def _argument_count(function) -> int:
    return len(function.names) if hasattr(function, "names") else len(function.args)


def _axes(in_axes, count: int) -> tuple:
    if in_axes is None or (isinstance(in_axes, int) and not isinstance(in_axes, bool)):
        return (in_axes,) * count
    if not isinstance(in_axes, (list, tuple)):
        raise ArgumentError(f"in_axes must be an int, None, or one int or None per argument "
                            f"({count}), got {in_axes!r}")
    axes = tuple(in_axes)
    if len(axes) != count or not all(a is None or isinstance(a, int) for a in axes):
        raise ArgumentError(f"in_axes must be an int or one int or None per argument "
                            f"({count}), got {in_axes!r}")
    return axes


def _compiled_for(function, points):
    return function.compiled_for(*points) if hasattr(function, "compiled_for") else function


def _check_shapes(compiled, points) -> None:
    for sym, point in zip(compiled.args, points, strict=True):
        shape = np.shape(point)
        if len(shape) != len(sym.shape) or any(want not in (None, got) for want, got in
                                               zip(sym.shape, shape, strict=True)):
            raise ShapeError(f"argument {sym.value}: each point has shape {shape}, the "
                             f"function takes {sym.shape}")


def _restructured(tree, method: str, result):
    """Many points' ``result`` of ``method`` in the function's pytree structure, where it
    returns one (as the compiled function gives one point's)."""
    return result if tree is None else tree.restructure_stacked(method, result)


def _empty(probe):
    if isinstance(probe, tuple):
        return tuple(_empty(part) for part in probe)
    return np.empty((0,) + np.shape(probe))


def _compile_driver(compiled, method: str, batched: tuple, values: list):
    spec = compiled.derivation.spec(method)
    params = parameter_names([s.value for s in spec.inputs])
    params += [a.name for a in spec.arrays] + list(getattr(spec, "extra_arguments", ()))
    if len(params) != len(values):
        raise ArgumentError(f"{method} takes {len(params)} arguments here, got {len(values)}")
    native_driver = _native_driver(compiled, method, batched, params)
    if native_driver is not None:
        return native_driver
    lowered = compiled.lower(method)
    name = f"vmap_{spec.name}"
    source = lowered.source + "\n\n" + emit_vmap(
        name, spec.name, params, list(batched), result_layout(spec))
    signature = tuple(types.Array(from_dtype(v.dtype), v.ndim, "C") if v.ndim
                      else types.float64 for v in (np.asarray(v) for v in values))
    module, dispatcher = compile_source(source, name, signature, f"vmap {method}",
                                        "a loop over points")

    def run(*values):
        return dispatcher(*values)

    run.module = module  # keeps the module (and its machine code) alive
    return limited(run) if threaded_products(spec) else run


def _native_driver(compiled, method: str, batched: tuple, params: list):
    """The method at all points as one native function over a points axis
    (symdiff.runtime.points), where the function's backend is native and it applies:
    the points split over the pool's threads (symdiff.runtime.native.map_pieces), each
    thread's in chunks of POINTS_CHUNK."""
    loader = compiled.loader
    if not (loader.backend == "native" or (loader.backend == "auto"
                                           and compiled.derivation.lowering == "auto")):
        return None
    derivation = compiled.derivation
    one_point = derivation.spec(method)
    spec = points_spec(one_point, batched, derivation.fast_math)
    if spec is None or not native.lowerable(spec):
        return None
    function = native.compile_native(spec)[0]

    def chunked(lo, hi, values):
        return [function(*(v[start:min(start + POINTS_CHUNK, hi)] if b else v
                           for v, b in zip(values, batched, strict=True)))
                for start in range(lo, hi, POINTS_CHUNK)]

    shapes = [s.shape for s in one_point.inputs]

    def run(*values):
        for name, shape, value, many in zip(params, shapes, values, batched, strict=True):
            if np.shape(value)[many:] != shape:  # (the entry would refuse it, less clearly)
                raise ShapeError(f"argument {name} must have shape {shape}"
                                 f"{' at each point' if many else ''}, got "
                                 f"{np.shape(value)[many:]}")
        n = next(len(v) for v, b in zip(values, batched, strict=True) if b)
        ranges = native.point_ranges(n, POINTS_CHUNK)
        pieces = native.map_pieces(chunked, [(lo, hi, values) for lo, hi in ranges])
        parts = [part for piece in pieces for part in piece]
        return parts[0] if len(parts) == 1 else _joined(parts)

    run = limited(run) if threaded_products(spec) else run
    run.native = True
    return run


def _joined(parts):
    """Results of consecutive chunks of points joined along the points axis."""
    if not isinstance(parts[0], tuple):
        return np.concatenate(parts)
    return tuple(_joined([p[k] for p in parts]) for k in range(len(parts[0])))


# Dask arrays of points: a task per block (symdiff.runtime.chunked has the losses over chunks).
def map_points(mapped, method: str, x):
    """Lazy Dask results of a vmapped method over batched Dask arguments: one task per
    block of points, the results stacked as the points are."""
    import dask
    import dask.array as da

    axes = mapped.in_axes + (0,) * (len(x) - len(mapped.in_axes))
    moved = {k: da.moveaxis(da.asarray(x[k]), a, 0) for k, a in enumerate(axes)
             if a is not None}
    if len({v.shape[0] for v in moved.values()}) > 1:
        raise ArgumentError("batched arguments disagree on the batch size: "
                            f"{sorted({v.shape[0] for v in moved.values()})}")
    rows = next(moved[k].chunks[0] for k in moved if is_dask(x[k]))
    blocks = {k: v.rechunk({0: rows, **{d: -1 for d in range(1, v.ndim)}}).to_delayed()
              .reshape(-1) for k, v in moved.items()}
    first = [np.asarray(moved[k][:1]) if k in moved else x[k] for k in range(len(x))]
    # Workers get the compiled function itself (a ByShape holds locks and a Python function).
    points = [first[k][0] if k in moved else first[k] for k in range(mapped.count)]
    in_axes = tuple(0 if k in moved else None for k in range(mapped.count))
    function = _compiled_for(mapped.function, points)
    probe = getattr(VMapped(function, in_axes), method)(*first)
    leaves = _leaf_paths(probe)
    columns = []
    for b, n in enumerate(rows):
        args = [blocks[k][b] if k in moved else x[k] for k in range(len(x))]
        result = dask.delayed(_block)(function, in_axes, method, *args)
        columns.append([da.from_delayed(_get(result, path), (n,) + leaf.shape[1:], np.float64)
                        for path, leaf in leaves])
    stacked = [da.concatenate([c[j] for c in columns]) for j in range(len(leaves))]
    return _rebuild(probe, iter(stacked))


def _block(function, in_axes, method: str, *args):
    return getattr(VMapped(function, in_axes), method)(*args)


def _get(result, path):
    import dask

    for k in path:
        result = dask.delayed(operator.getitem)(result, k)
    return result


def _leaf_paths(result, at=()) -> list:
    if isinstance(result, tuple):
        return [leaf for k, part in enumerate(result) for leaf in _leaf_paths(part, at + (k,))]
    return [(at, np.asarray(result))]


def _rebuild(probe, leaves):
    if isinstance(probe, tuple):
        return tuple(_rebuild(part, leaves) for part in probe)
    return next(leaves)
