"""Loading generated source: the only place symdiff executes code, and only its own.

Every module is written to a cache directory under a name derived from the hash of its
source and imported from there.  Its functions are ``@numba.njit(cache=True)``, so Numba
keeps their machine code beside the file: a later process that generates the same source
loads the compiled code instead of compiling again.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
import types

_fallback_dir: str | None = None
# Background compiles (symdiff.api) load modules from other threads: one load at a time,
# so no thread sees a module that another is still executing.
_loading = threading.Lock()


def cache_directory() -> str:
    """Where generated modules live: $SYMDIFF_CACHE_DIR, else the user cache directory."""
    configured = os.environ.get("SYMDIFF_CACHE_DIR")
    if configured:
        return configured
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "symdiff")


def _writable(directory: str) -> str:
    global _fallback_dir
    try:
        os.makedirs(directory, exist_ok=True)
        if os.access(directory, os.W_OK):
            return directory
    except OSError:
        pass
    if _fallback_dir is None:  # e.g. a read-only home: compile in a private temp dir
        _fallback_dir = tempfile.mkdtemp(prefix="symdiff-")
    return _fallback_dir


def load_module(source: str, name: str) -> types.ModuleType:
    """Write generated module source to the cache (once) and import it."""
    with _loading:
        return _load(source, name)


def _load(source: str, name: str) -> types.ModuleType:
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:20]
    module_name = f"{name}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    directory = _writable(cache_directory())
    path = os.path.join(directory, module_name + ".py")
    if not os.path.exists(path):
        handle, temporary = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(source)
        os.replace(temporary, path)  # atomic: concurrent writers produce the same file
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[module_name] = module
    return module
