"""Loading generated source: the only place symdiff executes code, and only its own."""

from __future__ import annotations

import linecache
import types


def load_module(source: str, name: str) -> types.ModuleType:
    """Execute generated module source into a new module object.

    The source is registered with ``linecache`` so that tracebacks and Numba's messages
    can show the generated lines.
    """
    filename = f"<symdiff-generated {name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(name)
    exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102 - our own code
    return module
