"""Derivative matrices of compiled functions: dense ones from a runtime loop over directions,
sparse ones from one product per color, both through one compiled kernel.

``fn.hessian`` of a function of arrays (or of more than ``UNROLL_MAX_VARIABLES`` scalars)
is a loop of Hessian-vector products, ``fn.jacobian`` a loop of vector-Jacobian products
(no more outputs than variables) or Jacobian-vector products; so their generated code, and
its compile time, is the same for every array size.  Small functions of scalars keep the
unrolled, entry-by-entry code, which is faster per call.  A dense result that would not
fit in the memory available raises before anything is allocated.

``fn.sparse_hessian`` / ``fn.sparse_jacobian`` read the structural pattern from the graph
(symdiff.sparsity), color it (symdiff.coloring: star coloring for Hessians, column
coloring for Jacobians) and evaluate one HVP/JVP per color in a compiled loop that
also gathers the nonzeros; they return ``scipy.sparse.csr_array``.
"""

from __future__ import annotations

import math
import os

import numpy as np

from codegen import DirectionLoop, Slot, run_direction_loop

from .coloring import color_hessian, color_jacobian
from .dims import has_open, resolve
from .errors import SymdiffError
from .interpret import interpreter
from .sparsity import hessian_pattern, jacobian_pattern

# Functions of at most this many scalar variables keep unrolled Hessians, and Jacobians
# of at most this many entries squared; larger ones loop over directions.
UNROLL_MAX_VARIABLES = 64
# Methods of CompiledFunction computed by a runtime loop over directions (unless unrolled);
# the *_data ones return the nonzeros of a compressed evaluation.
LOOPS = ("hessian", "jacobian", "sparse_hessian_data", "sparse_jacobian_data")


def available_memory() -> float:
    """Bytes of memory available to this process now (MemAvailable on Linux)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return math.inf


def check_dense_fits(what: str, rows: int, cols: int) -> None:
    """Raise before allocating a dense (rows x cols) float64 result that cannot fit."""
    needed = 8.0 * rows * cols
    free = available_memory()
    if needed > free:
        sparse = "sparse_hessian" if what == "Hessian" else "sparse_jacobian"
        free_text = f"{free / 1e9:.1f} GB"
        products = "fn.hvp" if what == "Hessian" else "fn.jvp / fn.vjp"
        raise SymdiffError(
            f"the dense {what} would be {rows:,} x {cols:,} float64 ({needed / 1e9:,.1f} GB), "
            f"more than the {free_text} of memory available: use fn.{sparse} (sparse, by "
            f"coloring), {products} (matrix-free) or fn.{what.lower()}_sparsity()")


def batch_size(args, values) -> int | None:
    """The size of the open (None) dimension in this call, read from the arguments."""
    for sym, value in zip(args, values, strict=False):
        for k, d in enumerate(sym.shape):
            if d is None:
                shape = np.shape(value)
                return shape[k] if k < len(shape) else None
    return None


def elements(exprs, batch: int | None) -> int:
    """Total number of elements of ``exprs`` with the open dimension of size ``batch``."""
    return sum(math.prod(resolve(d, batch) for d in e.shape) for e in exprs)


def guarded(call, compiled, method: str):
    """``call``, raising before a dense Hessian / Jacobian that cannot fit in memory is
    allocated (only loops over directions can be large)."""
    if method not in ("hessian", "jacobian") or compiled._unrolled(method):
        return call

    def checked(*x):
        batch = batch_size(compiled.args, x)
        n = elements(compiled.wrt, batch)
        m = n if method == "hessian" else elements(compiled.outputs, batch)
        check_dense_fits(method.capitalize(), m, n)
        return call(*x)

    checked.__doc__, checked.dispatcher = call.__doc__, call.dispatcher
    return checked


class MatrixMethods:
    """Dense loops over directions, sparsity patterns, colorings and sparse derivative
    matrices (a CompiledFunction mixin: it needs ``outputs``, ``wrt``, ``args``,
    ``is_scalar``, ``single_wrt``, ``_flat_wrt``, ``_spec`` and ``_load``)."""

    def _unrolled(self, method: str) -> bool:
        """Whether a Hessian / Jacobian is derived entry by entry (few scalars only)."""
        if method.startswith("sparse_") or not self._flat_wrt:
            return False
        n = len(self.wrt)
        if method == "hessian":
            return n <= UNROLL_MAX_VARIABLES
        return not any(o.shape for o in self.outputs) and \
            n * len(self.outputs) <= UNROLL_MAX_VARIABLES ** 2

    def _wrt_slots(self):
        if self._flat_wrt:
            return (Slot("flat", ("static", (len(self.wrt),))),)
        return tuple(Slot("array", ("arg", self.args.index(v))) if v.shape else Slot("scalar")
                     for v in self.wrt)

    def _output_slot(self, direction: bool):
        """The output as a vjp direction (``direction``) or as a jvp result."""
        outs = self.outputs
        if outs[0].shape and len(outs) == 1:
            shape = outs[0].shape
            return Slot("array", ("output",) if has_open(shape) else ("static", shape))
        if self.is_scalar or (direction and len(outs) == 1):
            return Slot("scalar")
        return Slot("flat", ("static", (len(outs),)))

    def _direction_loop(self, method: str):
        name = method.removesuffix("_data")
        compressed = method.startswith("sparse_")
        wrt, structured = self._wrt_slots(), not self.single_wrt and not self._flat_wrt
        m = n = None
        if not has_open(sum((o.shape for o in self.outputs), ())):
            m = elements(self.outputs, None)
        if not has_open(sum((v.shape for v in self.wrt), ())):
            n = elements(self.wrt, None)
        transpose = False
        if "hessian" in method:
            kernel, directions, results, tupled = "hvp", wrt, wrt, structured
            doc = "Hessian-vector products H @ d"
        elif compressed or m is None or n is None or m > n:
            kernel, directions, results, tupled = "jvp", wrt, (self._output_slot(False),), False
            doc = "Jacobian-vector products J @ d"
        else:
            kernel, directions, results = "vjp", (self._output_slot(True),), wrt
            tupled, transpose = structured, True
            doc = "vector-Jacobian products d @ J"
        doc = ("nonzeros of a sparse matrix from " + doc + " at the seeds of a coloring, "
               "gathered at positions _gather" if compressed else
               f"dense {name.capitalize()}: a loop over unit directions d of " + doc)
        # A slot shaped like the value (an open dimension) takes its shape from forward().
        shaped_by_value = any(s.source == ("output",) for s in directions + results)
        return DirectionLoop(name, self._inputs, self._spec(kernel), directions, results,
                             tupled, doc, transpose, compressed,
                             self._spec("forward") if shaped_by_value else None)

    def _loop_interpreter(self, loop):
        """A direction loop on the evaluator: the loop in Python over the evaluator's
        kernel (the first tier; symdiff.api chooses when it runs)."""
        kernel, forward = (None if s is None else interpreter(s)
                           for s in (loop.kernel, loop.forward))
        count = len(self._inputs)

        def call(*x):
            return run_direction_loop(loop, kernel, forward, x[:count], x[count:])

        return call

    def _direction_count(self, x) -> int:
        """The products a direction loop makes for the caller's arguments ``x``: one per
        row of the seeds given after them (sparse), else one per element of wrt."""
        extra = x[len(self.args):]
        if extra:
            return np.shape(extra[0])[0]
        return elements(self.wrt, batch_size(self.args, x) or 0)

    def _matrix_cache(self) -> dict:
        cache = self.__dict__.get("_matrices")
        if cache is None:
            cache = self.__dict__["_matrices"] = {}
        return cache

    def _batch(self, x) -> int | None:
        if x and len(x) != len(self.args):
            raise SymdiffError(f"expected the {len(self.args)} arguments of the function "
                               f"(or none), got {len(x)}")
        return batch_size(self.args, x) if x else None

    def _pattern(self, kind: str, batch):
        key = ("pattern", kind, batch)
        cache = self._matrix_cache()
        if key not in cache:
            if kind == "hessian":
                if not self.is_scalar:
                    raise SymdiffError("Hessians (hessian_sparsity, sparse_hessian) need a "
                                       "scalar function; use the Jacobian methods")
                cache[key] = hessian_pattern(self.outputs[0], self.wrt, batch)
            else:
                if self.is_scalar:
                    raise SymdiffError("Jacobians (jacobian_sparsity, sparse_jacobian) need "
                                       "a vector- or array-valued function; use the Hessian "
                                       "methods")
                cache[key] = jacobian_pattern(list(self.outputs), self.wrt, batch)
        return cache[key]

    def _coloring(self, kind: str, batch):
        key = ("coloring", kind, batch)
        cache = self._matrix_cache()
        if key not in cache:
            pattern = self._pattern(kind, batch)
            cache[key] = (color_hessian if kind == "hessian" else color_jacobian)(pattern)
        return cache[key]

    def hessian_sparsity(self, *x):
        """Structural pattern of the Hessian (scipy.sparse.csr_array of bools, n x n),
        from the graph alone; the arguments are needed only for an open dimension."""
        return self._pattern("hessian", self._batch(x)).copy()

    def jacobian_sparsity(self, *x):
        """Structural pattern of the Jacobian (csr_array of bools, outputs x variables)."""
        return self._pattern("jacobian", self._batch(x)).copy()

    def hessian_coloring(self, *x):
        """The star coloring ``sparse_hessian`` uses (``.count`` colors = HVPs per call)."""
        return self._coloring("hessian", self._batch(x))

    def jacobian_coloring(self, *x):
        """The column coloring ``sparse_jacobian`` uses (``.count`` colors = JVPs per call)."""
        return self._coloring("jacobian", self._batch(x))

    def _sparse(self, kind: str, x):
        import scipy.sparse

        coloring = self._coloring(kind, self._batch(x))
        data = self._load(f"sparse_{kind}_data")(*x, coloring.seeds, coloring.gather)
        pattern = coloring.pattern
        return scipy.sparse.csr_array((data, pattern.indices.copy(), pattern.indptr.copy()),
                                      shape=pattern.shape)

    def sparse_hessian(self, *x):
        """Hessian as a scipy.sparse.csr_array: one Hessian-vector product per color of a
        star coloring of its pattern (``hessian_coloring``), nonzeros recovered by symmetry."""
        return self._sparse("hessian", x)

    def sparse_jacobian(self, *x):
        """Jacobian as a scipy.sparse.csr_array: one Jacobian-vector product per color of a
        column coloring of its pattern (``jacobian_coloring``)."""
        return self._sparse("jacobian", x)
