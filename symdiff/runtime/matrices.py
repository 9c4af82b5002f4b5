"""Derivative matrices of compiled functions: the memory guard of dense ones, and the
sparse ones (``fn.sparse_hessian`` / ``fn.sparse_jacobian``).

Dense Hessians and Jacobians of arrays are loops over directions (symdiff.runtime.derivation); a
dense result that would not fit in the memory available raises before anything is
allocated.  Sparse ones read the structural pattern from the graph (symdiff.autodiff.sparsity),
color it (symdiff.autodiff.coloring: star coloring for Hessians, column coloring for Jacobians)
and evaluate one HVP/JVP per color in a compiled loop that also gathers the nonzeros;
they return ``scipy.sparse.csr_array``.
"""

from __future__ import annotations

import math
import os

from codegen import cache
from codegen.numba_cache import PackageCache, cache_beside_module
from symdiff.autodiff import coloring as _coloring
from symdiff.autodiff.coloring import (
    canonical,
    color,
    coloring_bytes,
    coloring_key,
    stored_coloring,
    tiled_gather,
)
from symdiff.autodiff.sparsity import hessian_pattern, jacobian_pattern
from symdiff.errors import ArgumentError, SymdiffError
from symdiff.ir.dims import elements
from symdiff.runtime.inputs import batch_size

# The coloring loops' machine code beside their file, never in NUMBA_CACHE_DIR.
cache_beside_module(vars(_coloring), PackageCache)


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


# Results up to this size are not checked: reading /proc/meminfo costs about 15 us, more
# than a small Hessian takes.
UNCHECKED_BYTES = 64 << 20


def check_dense_fits(what: str, rows: int, cols: int, count: int = 1) -> None:
    """Raise before allocating ``count`` dense (rows x cols) float64 results (a vmap's
    points: ``count`` of them) that cannot fit."""
    needed = 8.0 * rows * cols * count
    if needed <= UNCHECKED_BYTES:
        return
    free = available_memory()
    if needed > free:
        sparse = "sparse_hessian" if what == "Hessian" else "sparse_jacobian"
        free_text = f"{free / 1e9:.1f} GB"
        products = "fn.hvp" if what == "Hessian" else "fn.jvp / fn.vjp"
        shown = (f"the dense {what}" if count == 1 else
                 f"{count:,} dense {what}s (one per point of the vmap)")
        raise SymdiffError(
            f"{shown} would be {rows:,} x {cols:,} float64 ({needed / 1e9:,.1f} GB), more "
            f"than the {free_text} of memory available: use fn.{sparse} (sparse, by "
            f"coloring), {products} (matrix-free) or fn.{what.lower()}_sparsity()"
            + ("" if count == 1 else ", or fewer points at a time"))


def check_vmapped_fits(derivation, method: str, points: int) -> None:
    """Raise before a vmap of ``method`` whose dense Hessians or Jacobians, one per
    point, cannot fit."""
    if method in ("hessian", "jacobian"):
        n = elements(derivation.wrt, None)
        m = n if method == "hessian" else elements(derivation.outputs, None)
        check_dense_fits(method.capitalize(), m, n, points)


def guarded(call, derivation, method: str):
    """``call``, raising before a dense Hessian / Jacobian that cannot fit in memory is
    allocated (only loops over directions can be large)."""
    if method not in ("hessian", "jacobian") or derivation.unrolled(method):
        return call

    def checked(*x):
        batch = batch_size(derivation.args, x)
        n = elements(derivation.wrt, batch)
        m = n if method == "hessian" else elements(derivation.outputs, batch)
        check_dense_fits(method.capitalize(), m, n)
        return call(*x)

    checked.__doc__, checked.dispatcher = call.__doc__, call.dispatcher
    return checked


def _colored(kind: str, pattern):
    """The coloring of ``pattern`` from the disk cache (a second process does not color
    again, nor load the coloring loops' machine code), else colored now and cached."""
    csr = canonical(pattern)
    key = coloring_key(kind, csr)
    data = cache.read_checked(key)
    found = None if data is None else stored_coloring(kind, csr, data)
    if found is None:
        found = color(kind, csr)
        cache.write_checked(key, coloring_bytes(found))
    return found


class SparseMatrices:
    """Sparsity patterns, colorings and sparse derivative matrices of one compiled
    function (cached per open length), evaluated by its ``load``-ed compressed kernels."""

    def __init__(self, derivation, load, tiled_from):
        self.derivation = derivation
        self._load = load  # method name -> callable (the compiled function's tiers)
        self._tiled_from = tiled_from  # method name -> products from which it tiles
        self._cache: dict = {}

    @property
    def cached(self):
        """The keys of what was found so far: ("pattern" | "coloring" | "tiles", kind,
        batch)."""
        return self._cache.keys()

    def batch(self, x) -> int | None:
        """The open length of the arguments ``x`` (none given: no open length)."""
        args = self.derivation.args
        if x and len(x) != len(args):
            raise SymdiffError(f"expected the {len(args)} arguments of the function "
                               f"(or none), got {len(x)}")
        batch = batch_size(args, x) if x else None
        least = self.derivation.least_open
        if batch is not None and batch < least:
            name = next(s.value for s in args if None in s.shape)
            raise ArgumentError(f"argument {name} is too short: its open (None) dimension "
                                f"has length {batch}, and the function reads positions that "
                                f"need at least {least}")
        return batch

    def pattern(self, kind: str, batch):
        """The structural pattern of the Hessian or Jacobian (``kind``)."""
        return self._kept(("pattern", kind, batch), lambda: self._find_pattern(kind, batch))

    def _kept(self, key: tuple, make):
        """The cached value of ``key``, else ``make()``'s, kept (the first one kept wins
        where two threads make it at once)."""
        found = self._cache.get(key)
        if found is None:
            found = self._cache.setdefault(key, make())
        return found

    def _find_pattern(self, kind: str, batch):
        d = self.derivation
        if kind == "hessian":
            if not d.is_scalar:
                raise SymdiffError("Hessians (hessian_sparsity, sparse_hessian) need a "
                                   "scalar function; use the Jacobian methods")
            return hessian_pattern(d.outputs[0], d.wrt, batch)
        if d.is_scalar:
            raise SymdiffError("Jacobians (jacobian_sparsity, sparse_jacobian) need a "
                               "vector- or array-valued function; use the Hessian methods")
        return jacobian_pattern(list(d.outputs), d.wrt, batch)

    def coloring(self, kind: str, batch):
        """The coloring of the pattern the sparse evaluation uses."""
        return self._kept(("coloring", kind, batch),
                          lambda: _colored(kind, self.pattern(kind, batch)))

    def sparse(self, kind: str, x):
        """The Hessian or Jacobian at ``x`` as a csr_array, one product per color."""
        import scipy.sparse  # on first use: it takes a quarter second to import

        batch = self.batch(x)
        coloring = self.coloring(kind, batch)
        method, gather = f"sparse_{kind}_data", coloring.gather
        evaluate = self._load(method)
        tiled_from = self._tiled_from(method)
        if tiled_from is not None and coloring.count * coloring.pattern.shape[0] >= tiled_from:
            # (the driver keeps the products in tiles)
            gather = self._kept(("tiles", kind, batch), lambda: tiled_gather(coloring))
        data = evaluate(*x, coloring.seeds, gather)
        pattern = coloring.pattern
        return scipy.sparse.csr_array((data, pattern.indices.copy(), pattern.indptr.copy()),
                                      shape=pattern.shape)
