"""Matrix products on one BLAS thread while compiled code runs (issue #11).

OpenBLAS starts one thread per core and spins them for every product above its size
threshold.  Measured on the 2-core benchmark machine (P4b: an MLP 256 x 64-32-10, value
and gradient): with its default 2 threads 121 us idle, 2.1x that with one busy process
on the machine and 3.7x with two; on one thread 120 us idle, 0.98x and 1.46x.  So while
a compiled function that calls BLAS runs, the BLAS libraries threadpoolctl finds run on
``SYMDIFF_BLAS_THREADS`` threads (default 1; ``0`` leaves them alone), and get their
own setting back when the last such call returns.  threadpoolctl (the joblib and
scikit-learn project's library) knows every BLAS build and how to set its threads.
"""

from __future__ import annotations

import os
import threading

from codegen import body_specs
from symdiff.ir.dims import has_open
from symdiff.ir.nodes import flatten, topological_order

# OpenBLAS runs a product of m * n * k below this on one thread anyway
# (GEMM_MULTITHREAD_THRESHOLD 4 x 65536): nothing to limit, no cost to pay.
THREADED_FROM = 4 * 65536

LOCK = threading.Lock()
_depth = 0
_saved: list[int] = []
_libraries: list | None = None


def _blas() -> list:
    global _libraries
    if _libraries is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - a dependency; without it, no limit
            _libraries = []
        else:
            _libraries = [c for c in ThreadpoolController().lib_controllers
                          if c.user_api == "blas"]
    return _libraries


def threads() -> int | None:
    """BLAS threads for compiled calls (None: leave BLAS as it is)."""
    text = os.environ.get("SYMDIFF_BLAS_THREADS", "1").strip()
    try:
        count = int(text)
    except ValueError:
        return 1
    return count if count > 0 else None


def limited(call):
    """``call`` running with BLAS on ``threads()`` threads (``call`` itself if unlimited)."""
    count = threads()
    if count is None or not _blas():
        return call

    def run(*args):
        global _depth, _saved
        with LOCK:
            if _depth == 0:
                _saved = [lib.get_num_threads() for lib in _libraries]
                for lib in _libraries:
                    lib.set_num_threads(count)
            _depth += 1
        try:
            return call(*args)
        finally:
            with LOCK:
                _depth -= 1
                if _depth == 0:
                    for lib, saved in zip(_libraries, _saved, strict=True):
                        lib.set_num_threads(saved)

    run.__wrapped__ = call
    return run


def threaded_products(spec) -> bool:
    """Whether a generated function (its kernels and loop bodies included) calls BLAS at
    a size OpenBLAS threads: a matrix-matrix product from THREADED_FROM multiply-adds or
    of an open size, or a linear solve."""
    specs = [s for s in (spec, getattr(spec, "kernel", None), getattr(spec, "forward", None))
             if s is not None and hasattr(s, "result")]
    specs += body_specs(specs)
    for node in topological_order([n for s in specs for n in flatten(s.result)]):
        if node.op == "solve":
            return True
        if node.op in ("matmul", "batch_matmul") and min(a.ndim for a in node.args) >= 2:
            (m, k), n = node.args[0].shape[-2:], node.args[1].shape[-1]
            if has_open((m, k, n)) or m * k * n >= THREADED_FROM:
                return True
    return False

