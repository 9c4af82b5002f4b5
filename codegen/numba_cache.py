"""Where Numba keeps the machine code of symdiff's modules: beside them, always.

Numba chooses a cache directory per function through a list of "locators": with
``NUMBA_CACHE_DIR`` set (containers often set it to a shared directory) its machine code
and index pickles would go there, outside symdiff's manifest check, and a pickle planted
there by another user would run in this process; ``NUMBA_CACHE_LOCATOR_CLASSES`` can
replace the list altogether.  So symdiff's modules are executed with Numba's caching off,
and each compiled function then gets a cache of ours whose one locator is the module's
own ``__pycache__`` in symdiff's checked directory, whatever those variables say.

A vanished file (another process cleared the cache) is a miss: the source stamp of a
missing module matches nothing, and nothing is searched for at decoration time.
symdiff's own jitted helpers (symdiff.autodiff.coloring) are decorated without caching
and get a cache of the same kind beside their package file (PackageCache), for the same
reason: a planted index in NUMBA_CACHE_DIR must never be read.
"""

from __future__ import annotations

import inspect
import os
import sys

from numba.core.caching import (
    CompileResultCacheImpl,
    FunctionCache,
    _CacheLocator,
    _SourceFileBackedLocatorMixin,
)
from numba.core.dispatcher import Dispatcher

from .cache import NUMBA_DIR


class _ModuleFolderLocator(_SourceFileBackedLocatorMixin, _CacheLocator):
    """The ``__pycache__`` beside a module in symdiff's cache directory."""

    def __init__(self, py_func, py_file: str):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = os.path.join(os.path.dirname(py_file), NUMBA_DIR)

    def get_cache_path(self) -> str:
        return self._cache_path

    def ensure_cache_path(self) -> None:
        os.makedirs(self._cache_path, mode=0o700, exist_ok=True)

    def get_source_stamp(self):
        try:
            return super().get_source_stamp()
        except OSError:  # the module file is gone: a stamp no index holds
            return ("missing", os.getpid(), id(self))


class _ModuleFolderImpl(CompileResultCacheImpl):
    """Numba's cache implementation for functions, with the one locator above (no search
    through Numba's list)."""

    def __init__(self, py_func):
        self._lineno = py_func.__code__.co_firstlineno
        qualname = getattr(py_func, "__qualname__", py_func.__name__)
        path = inspect.getfile(py_func)
        self._locator = _ModuleFolderLocator(py_func, path)
        module = os.path.splitext(os.path.basename(path))[0]
        self._filename_base = self.get_filename_base(f"{module}.{qualname}",
                                                     getattr(sys, "abiflags", ""))


class ModuleFolderCache(FunctionCache):
    """Numba's function cache, kept beside the module (see the module docstring)."""

    _impl_class = _ModuleFolderImpl


class PackageCache(ModuleFolderCache):
    """The cache of symdiff's own jitted helpers (the colorings), beside their package
    file, as trusted as the package itself; where that folder cannot be written (a
    read-only install) they compile in every process instead of failing."""

    def load_overload(self, sig, target_context):
        try:
            return super().load_overload(sig, target_context)
        except OSError:
            return None

    def save_overload(self, sig, data):
        try:
            super().save_overload(sig, data)
        except OSError:
            pass


def cache_beside_module(namespace: dict, kind=ModuleFolderCache) -> None:
    """Give every jitted function of a module (its ``namespace``) the cache beside the
    module file (``kind``: ModuleFolderCache for generated modules, PackageCache for
    symdiff's own), never where NUMBA_CACHE_DIR points."""
    for value in list(namespace.values()):
        if isinstance(value, Dispatcher):
            value._cache = kind(value.py_func)
