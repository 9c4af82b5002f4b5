"""The load stage: generated source to a callable Numba dispatcher, through the disk
cache (codegen.load, codegen.cache) when it can be written, else in memory."""

from __future__ import annotations

import re
import threading
import weakref

from codegen import load_module
from codegen.cache import warn_once
from codegen.load import importable, is_compiled, seal

from .progress import reporting

# Dispatchers compiled for their one signature (modules are shared by equal sources).
_PREPARED: weakref.WeakSet = weakref.WeakSet()
PREPARING = threading.Lock()  # one load or compile at a time (taken around fork too)


def compile_source(source: str, name: str, signature: tuple, what: str, size: str):
    """(module, dispatcher): generated ``source`` loaded and its function ``name`` compiled
    for one ``signature`` (reported as ``what`` of ``size`` when slow), through the disk
    cache when it can be written, else in memory.  The same source compiled twice shares
    one module; the dispatcher then refuses other signatures (arguments are converted)."""
    with PREPARING:
        module = load_module_for(source, f"symdiff_{name}")
        dispatcher = getattr(module, name)
        if dispatcher not in _PREPARED:
            try:
                with importable(module), reporting(what, size):
                    dispatcher.compile(signature)
            except OSError as error:  # Numba could not write the cache: go without
                warn_once("write", f"symdiff: cannot write the compile cache ({error}); "
                                   "compiling without it")
                module = load_module_for(source, f"symdiff_{name}", cached=False)
                dispatcher = getattr(module, name)
                with importable(module):
                    dispatcher.compile(signature)
            dispatcher.disable_compile()
            _PREPARED.add(dispatcher)
            seal(module)
    return module, dispatcher


def load_module_for(source: str, name: str, cached: bool = True):
    """Load generated source (see codegen.load_module)."""
    return load_module(source, _module_name(name), cached=cached)


def _module_name(name: str) -> str:
    return re.sub(r"\W", "_", name)


def compiled_at_hand(source: str, name: str) -> bool:
    """Whether ``compile_source`` of this ``source`` and function ``name`` would only load
    machine code, compiled in this process or cached (codegen.load.is_compiled)."""
    return is_compiled(source, _module_name(f"symdiff_{name}"), name)
