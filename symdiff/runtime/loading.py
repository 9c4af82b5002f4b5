"""The third stage of a compiled function: loading.  Generated source becomes a callable
Numba dispatcher, through the disk cache (codegen.load, codegen.cache) when it can be
written, else in memory; a ``Loader`` gives each method of one compiled function its
callable on first use, through the tiers (cache, evaluator, background compile)."""

from __future__ import annotations

import functools
import re
import threading
import weakref

from numba import types

from codegen import load_module
from codegen.cache import warn_once
from codegen.load import importable, is_compiled, seal
from symdiff.errors import SymdiffError
from symdiff.ir.nodes import count_ops, flatten
from symdiff.passes.data import is_rows_symbol
from symdiff.runtime import native
from symdiff.runtime.blas_threads import limited, threaded_products
from symdiff.runtime.inputs import batch_size
from symdiff.runtime.interpret import first_call_seconds, interpreter, loop_interpreter
from symdiff.runtime.lowering import module_source
from symdiff.runtime.progress import reporting

# The loaders of this process, whose background compiles a forked child restarts
# (symdiff.runtime.processes).
LOADERS: weakref.WeakSet = weakref.WeakSet()
_ARRAY = types.Array(types.float64, 1, "A")
_SEEDS = (types.Array(types.float64, 2, "C"), types.Array(types.uint32, 1, "C"))
# A background first call is answered by the evaluator when it is expected to take less
# than this share of the compile (symdiff.runtime.interpret.first_call_seconds).  The two share
# the GIL, so interpreting delays the compiled code by about as long as it runs: at a
# half, a short script takes at most 1.5x and the first answer at most 2x their best.
EVALUATOR_SHARE = 0.5
# "auto": as above, and machine code in the cache is loaded at once; "evaluator": every
# background first call on the evaluator, cache or not (the tiers before issue 21, for
# benchmarks/first_call.py and tests).
FIRST_CALL = "auto"
# Where compiled code comes from: Numba (the generated module), or symdiff's LLVM text
# through llvmlite directly (symdiff.runtime.native), Numba for what it cannot lower;
# "auto": native where it lowers the method and no lowering of the module was asked for.
BACKENDS = ("auto", "numba", "native")

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


def numba_type(sym, batched: bool):
    """The Numba type of an input in a compiled signature (1-D points when batched)."""
    if batched:
        return types.Array(types.float64, 1, "C")
    if not sym.shape:
        return types.float64
    element = types.int64 if is_rows_symbol(sym) else types.float64  # (symdiff.passes.data)
    return types.Array(element, len(sym.shape), "C")


class Loader:
    """The callables of one compiled function's methods, each made on first use.

    With ``background``, a method's first call whose machine code is not at hand starts
    Numba in a daemon thread and is answered by the reference evaluator when
    first_call_seconds expects that to be quicker (``tiers`` records what answered);
    later calls wait for the compiled code.  ``wrap(call, method, spec, checked)`` puts
    a raw callable behind the input contract; ``publish(method, call)`` is told of each
    compiled method (the compiled function binds it, so later calls skip the loader).
    """

    def __init__(self, derivation, background: bool, wrap, publish, backend: str = "auto"):
        self.derivation, self.background, self.backend = derivation, background, backend
        self._wrap, self._publish = wrap, publish
        self.loaded: dict[tuple, object] = {}  # (method, batched) -> compiled callable
        self.threads: dict[str, threading.Thread] = {}  # background compiles started
        self.interpreted: dict[str, object] = {}  # methods on the evaluator
        self.tiers: dict[str, str] = {}  # what answered each background first call
        self.failed: dict[str, BaseException] = {}
        self.modules: list = []  # the generated modules the methods run in
        self.native_cached: dict[str, bool] = {}  # native methods: loaded from the cache?
        self._tiled_from: dict[str, int | None] = {}  # native methods: see tiled_from
        self._lock = threading.RLock()
        LOADERS.add(self)  # a forked child restarts its compiles (symdiff.runtime.processes)

    def source(self, method: str, batched: bool = False) -> str:
        """The generated module of one method."""
        return module_source(self.derivation, [self.derivation.spec(method, batched)])

    def load(self, method: str, batched: bool = False):
        """The callable that answers ``method`` now (see the class)."""
        loaded = self.loaded.get((method, batched))
        if loaded is not None:
            return loaded
        with self._lock:  # one compile however many threads call
            loaded = self.loaded.get((method, batched))
            if loaded is not None:
                return loaded
            if not batched and self._native(method):
                self.tiers[method] = "native"  # milliseconds: no other tier needed
                return self._compile_native(method)
            if batched or not self.background:
                return self._compile(method, batched, self.source(method, batched))
            first = method not in self.threads
            if first:
                # The symbolic work and the source are made here, so a compile thread
                # only loads the module and runs Numba (no more of the GIL than that).
                spec, source = self.derivation.spec(method), self.source(method)
                if FIRST_CALL == "auto" and compiled_at_hand(source, spec.name):
                    self.tiers[method] = "cache"  # machine code at hand: not interpreted
                    return self._compile(method, False, source)
                self._start_background(method, source)
        if first:
            return functools.partial(self._first_call, method, spec, source)
        # Later calls wait: interpreting them would take the GIL from the compile.
        return self._finished(method)

    def compiled(self, method: str, batched: bool = False):
        """The compiled callable of ``method``: compiled now, or the background compile
        waited for."""
        loaded = self.loaded.get((method, batched))
        if loaded is not None:
            return loaded
        with self._lock:
            loaded = self.loaded.get((method, batched))
            if loaded is None and self._native(method, batched):
                return self._compile_native(method, batched)
            if loaded is None and (batched or method not in self.threads):
                return self._compile(method, batched, self.source(method, batched))
        return loaded if loaded is not None else self._finished(method)

    def wait(self, timeout: float | None = None) -> None:
        """Block until every background compile started so far has finished (or
        ``timeout`` seconds passed); re-raise a compile failure."""
        for thread in list(self.threads.values()):
            thread.join(timeout)
        for method, error in self.failed.items():
            raise SymdiffError(f"compiling {method} failed: {error}") from error

    def after_fork(self) -> None:
        """In a forked child: the compile threads did not come along, so the compiles
        they had not finished start again when next needed."""
        self._lock = threading.RLock()
        for method in list(self.threads):
            if (method, False) not in self.loaded and method not in self.failed:
                del self.threads[method]

    def evaluator(self, method: str):
        """The method computed by the reference evaluator, with the compiled function's
        argument checks and result types (the first tier)."""
        call = self.interpreted.get(method)
        if call is None:
            spec = self.derivation.spec(method)
            if self.derivation.loops_over_directions(method):
                first = loop_interpreter(spec, len(self.derivation.inputs))
            else:
                first = interpreter(spec)
            call = self.interpreted[method] = self._wrap(first, method, spec, True)
        return call

    def _first_call(self, method: str, spec, source: str, *x):
        """The first call of a method compiling in the background: the evaluator answers
        it when first_call_seconds expects that to take under EVALUATOR_SHARE of the
        compile, else the compiled code, waited for."""
        if FIRST_CALL == "auto":
            try:
                directions = (self.derivation.direction_count(x) if hasattr(spec, "kernel")
                              else 0)
                evaluating, compiling = first_call_seconds(
                    spec, source, batch_size(self.derivation.args, x), directions)
            except (TypeError, ValueError, IndexError):  # arguments the checks refuse
                evaluating, compiling = 0.0, 1.0
            if not evaluating < EVALUATOR_SHARE * compiling:
                self.tiers[method] = "compiled"
                return self._finished(method)(*x)
        self.tiers[method] = "evaluator"
        return self.evaluator(method)(*x)

    def _start_background(self, method: str, source: str) -> None:
        def work():
            try:
                self._compile(method, False, source)
            except BaseException as error:  # noqa: BLE001 - reported by wait() and calls
                self.failed[method] = error

        # A daemon: a script that has its answer exits without waiting for compiles it no
        # longer needs.  The cache is left with a complete entry or none (codegen.cache
        # checks every file against its manifest before use).
        thread = threading.Thread(target=work, name=f"symdiff compile {method}", daemon=True)
        self.threads[method] = thread
        thread.start()

    def _finished(self, method: str):
        """The compiled function of a method whose background compile was started."""
        self.threads[method].join()
        if method in self.failed:
            self.wait()
        return self.loaded[method, False]

    def tiled_from(self, method: str) -> int | None:
        """The number of products from which ``method``'s compiled driver keeps them in
        tiles of rows, taking gather positions in its tiles (as its text was written:
        NativeFunction.tiled_from); None where it never does, or is not compiled yet."""
        return self._tiled_from.get(method)

    def _native(self, method: str, batched: bool = False) -> bool:
        wanted = self.backend == "native" or (
            self.backend == "auto" and self.derivation.lowering == "auto")
        return wanted and native.lowerable(self.derivation.spec(method, batched))

    def _compile_native(self, method: str, batched: bool = False):
        spec = self.derivation.spec(method, batched)
        compiled, cached, self._tiled_from[method] = native.compile_native(spec)
        if batched:  # called with arrays of points (symdiff.runtime.calls)
            self.loaded[method, True] = compiled
            return compiled
        self.native_cached[method] = cached
        if threaded_products(spec):
            compiled = limited(compiled)  # as the Numba tier: symdiff.runtime.blas_threads
        return self._bind(method, spec, compiled)

    def _compile(self, method: str, batched: bool, source: str):
        spec = self.derivation.spec(method, batched)
        signature = tuple(numba_type(s, batched) for s in spec.inputs)
        signature += _SEEDS if getattr(spec, "compressed", False) else (_ARRAY,) * len(
            spec.arrays)
        size = (f"{count_ops(flatten(spec.result))} operations" if hasattr(spec, "result")
                else "a loop over directions")
        module, dispatcher = compile_source(source, spec.name, signature, method, size)
        self.modules.append(module)
        if batched:
            self.loaded[method, batched] = dispatcher
            return dispatcher
        if threaded_products(spec):
            dispatcher = limited(dispatcher)  # BLAS on one thread: symdiff.runtime.blas_threads
        return self._bind(method, spec, dispatcher)

    def _bind(self, method: str, spec, compiled):
        """A method's compiled callable behind the input contract, kept and published."""
        call = self._wrap(compiled, method, spec, False)
        self.loaded[method, False] = call
        self._publish(method, call)
        return call
