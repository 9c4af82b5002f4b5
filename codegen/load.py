"""Loading generated source: the only place symdiff executes code, and only its own.

Every module is written to the compile cache (``codegen.cache``) under a name derived
from the hash of its source.  Its functions are ``@numba.njit(cache=True)``, so Numba
keeps their machine code beside the file and a later process that generates the same
source loads it instead of compiling again.  The module is executed from the source
string generated in this process, compiled here: never from a ``.pyc`` or from whatever
the file on disk holds.  When no cache can be written, the module runs from memory with
Numba's caching off.
"""

from __future__ import annotations

import contextlib
import hashlib
import linecache
import os
import sys
import threading
import types
import weakref

from . import cache
from .numba_cache import cache_beside_module

# Background compiles (symdiff.runtime.loading) load modules from other threads: one load
# at a time, so no thread sees a module that another is still executing.
LOADING = threading.Lock()
# Loaded modules by name, shared while some compiled function holds one.  They are in
# sys.modules only while Numba compiles or loads them (see importable): kept there, every
# module and its machine code would stay for good.
_modules: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_CACHED = "cache=True)"


def module_name_for(source: str, name: str) -> str:
    """The module name of a source: ``name`` and the hash of the source."""
    return f"{name}_{hashlib.sha256(source.encode('utf-8')).hexdigest()[:20]}"


def load_module(source: str, name: str, *, cached: bool = True) -> types.ModuleType:
    """Write generated module source to the cache (once) and import it.

    ``cached=False`` (or no usable cache) executes it from memory, Numba caching off.
    The caller keeps the module: it is freed, machine code included, with the last
    reference."""
    with LOADING:
        module_name = module_name_for(source, name)
        module = _modules.get(module_name)
        if module is not None and (module.__symdiff_cache__ or not cached):
            return module
        folder = cache.directory() if cached else None
        if folder is not None:
            try:
                path = _verified_file(folder, module_name, source)
            except OSError as error:  # a full disk, a read-only directory
                cache.warn_once("write", f"symdiff: cannot write the compile cache in {folder} "
                                         f"({error}); compiling without it")
                folder = None
        # Executed with Numba's caching off: the functions then get a cache beside the
        # module file, where the manifest checks it, whatever NUMBA_CACHE_DIR says
        # (codegen.numba_cache).
        source = source.replace(_CACHED, "cache=False)")
        if folder is None:
            path = f"<symdiff {module_name}>"
            linecache.cache[path] = (len(source), None, source.splitlines(True), path)
        module = types.ModuleType(module_name)
        module.__file__ = path
        module.__symdiff_cache__ = folder
        exec(compile(source, path, "exec"), module.__dict__)  # noqa: S102 - our own source
        if folder is not None:
            cache_beside_module(module.__dict__)
        _modules[module_name] = module
        return module


def is_compiled(source: str, name: str, function: str) -> bool:
    """Whether ``function`` of generated ``source`` (a module loaded as ``name``) runs
    without compiling: loaded in this process and compiled, or in the cache with its
    module file holding exactly ``source`` and its machine code matching the manifest
    (cache.is_compiled).  Reads only: load_module repairs what it finds wrong."""
    module_name = module_name_for(source, name)
    module = _modules.get(module_name)
    if module is not None and module.__symdiff_cache__ and getattr(module, function).signatures:
        return True
    folder = cache.directory()
    if folder is None:
        return False
    present = cache.read_private(os.path.join(folder, module_name + ".py"))
    return present == source.encode("utf-8") and cache.is_compiled(folder, module_name)


def _verified_file(folder: str, module_name: str, source: str) -> str:
    """The module's path in the cache, holding exactly ``source``; its Numba files are
    kept only when they match their manifest."""
    path = os.path.join(folder, module_name + ".py")
    data = source.encode("utf-8")
    present = cache.read_private(path)
    if present != data:
        if present is not None:
            cache.warn_once("changed", "symdiff: a compile cache file did not match its "
                                       f"source and was rewritten ({module_name})")
        for stale in cache.numba_files(folder, module_name):
            os.unlink(os.path.join(folder, stale))
        cache.write_atomic(path, data)
    cache.verify_compiled(folder, module_name)
    return path


@contextlib.contextmanager
def importable(module: types.ModuleType):
    """Make ``module`` importable by name while Numba compiles it: Numba names cached
    code after the module it finds in sys.modules, and imports it to rebuild cached
    code's environment."""
    sys.modules[module.__name__] = module
    try:
        yield module
    finally:
        if sys.modules.get(module.__name__) is module:
            del sys.modules[module.__name__]


def seal(module: types.ModuleType) -> None:
    """Record the module's compiled Numba files in the cache (after compiling it)."""
    folder = module.__symdiff_cache__
    if folder is not None:
        try:
            cache.seal(folder, module.__name__)
        except OSError as error:
            cache.warn_once("write", f"symdiff: cannot write the compile cache in {folder} "
                                     f"({error})")
