"""Compiled functions: derivative graphs to Numba-jitted functions, derived lazily per
method (``sd.compile``, in symdiff.transforms, builds them)."""

from __future__ import annotations

import functools
import os
import threading
import uuid
import weakref

from numba import types

from codegen import LOWERINGS, ArrayParam, FunctionSpec, emit_module
from codegen.cache import umask, write_atomic
from codegen.naming import parameter_names

from .autodiff import as_variables, forward_mode, grad, hessian, hvp, jacobian, reverse_mode
from .batching import VMapped
from .blas_threads import limited, threaded_products
from .calls import numba_type, with_conversions
from .data import data_values, lift_data, npz_bytes, saved_data_loader
from .errors import NotDifferentiableError, SymdiffError
from .interpret import first_call_seconds, interpreter
from .ir import (
    Expr,
    count_ops,
    flatten,
    free_symbols,
    from_rows,
    graph_rows,
    internal_symbol,
    symbol,
)
from .loading import compile_source, compiled_at_hand
from .matrices import LOOPS, MatrixMethods, batch_size, guarded
from .passes import optimize
from .processes import INSTANCES, UNPICKLING
from .trace import as_outputs
from .version import __version__

# Generated functions in module order: method -> (generated name, needs scalar f?).
FUNCTIONS = {
    "forward": ("forward", None),
    "grad": ("gradient", True),
    "value_and_grad": ("value_and_grad", True),
    "hessian": ("hessian", True),
    "hvp": ("hvp", True),
    "jacobian": ("jacobian", False),
    "vjp": ("vjp", None),
    "jvp": ("jvp", None),
    # The compressed evaluations behind sparse_hessian / sparse_jacobian (they return the
    # nonzeros, given the seeds and gather positions of a coloring).
    "sparse_hessian_data": ("sparse_hessian", True),
    "sparse_jacobian_data": ("sparse_jacobian", False),
}
# Methods that also exist batched over many points, for functions of scalars (the
# Hessian up to UNROLL_MAX_VARIABLES variables, where it is derived entry by entry).
BATCHED = ("forward", "grad", "value_and_grad", "hessian")
_ARRAY = types.Array(types.float64, 1, "A")
_SEEDS = (types.Array(types.float64, 2, "C"), types.Array(types.int64, 1, "C"))
# A background first call is answered by the evaluator when it is expected to take less
# than this share of the compile (symdiff.interpret.first_call_seconds).  The two share
# the GIL, so interpreting delays the compiled code by about as long as it runs: at a
# half, a short script takes at most 1.5x and the first answer at most 2x their best.
EVALUATOR_SHARE = 0.5
# "auto": as above, and machine code in the cache is loaded at once; "evaluator": every
# background first call on the evaluator, cache or not (the tiers before issue 21, for
# benchmarks/first_call.py and tests).
FIRST_CALL = "auto"
_UNPICKLED: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # by _token


def compile_options(fast_math: bool = False, lowering: str = "auto",
                    background: bool | None = None) -> dict:
    """The options of ``sd.compile``, checked (so a bad one fails at ``sd.compile``, not at
    the first call) and with ``background`` resolved from SYMDIFF_BACKGROUND."""
    if lowering not in LOWERINGS:
        raise SymdiffError(f"lowering must be one of {LOWERINGS}, not {lowering!r}")
    if background is None:
        background = os.environ.get("SYMDIFF_BACKGROUND", "1") != "0"
    return {"fast_math": bool(fast_math), "lowering": lowering, "background": bool(background)}


def compile_expression(f, wrt=None, *, args=None, params=None, single: bool | None = None,
                       fast_math: bool = False, lowering: str = "auto",
                       background: bool | None = None) -> CompiledFunction:
    """``f`` (an expression, scalar or array, a list of scalar expressions, a string or a
    SymPy expression) compiled; ``sd.compile`` of a Python function traces it first and
    passes the symbols it was called on as ``params``.

    ``args`` (symbols or names, or a dict of names to shapes) are the positional
    arguments of every compiled function: by default ``params``, else ``wrt`` followed
    by the other free symbols, else all free symbols in natural order (x2 before x10).
    ``wrt`` are the variables of the derivatives (default: all arguments); one symbol
    instead of a list gives its gradient alone rather than a tuple (``single`` says so for
    a list)."""
    options = compile_options(fast_math, lowering, background)
    if isinstance(args, dict):  # names and shapes, in order
        args = [symbol(name, shape) for name, shape in args.items()]
    outputs, scalar = as_outputs(f)
    if not scalar and len(outputs) > 1 and any(o.shape for o in outputs):
        raise SymdiffError("a list of array outputs is not supported: concatenate them")
    single = isinstance(wrt, (str, Expr)) if single is None else single
    variables = as_variables(wrt, outputs + (params or [])) if wrt is not None else None
    if args is not None:
        arguments = as_variables(args, outputs)
    elif params is not None:
        arguments = params
    elif variables is not None:
        arguments = variables + [s for s in free_symbols(outputs) if s not in set(variables)]
    else:
        arguments = free_symbols(outputs)
    variables = arguments if variables is None else variables
    if wrt is None and len(variables) == 1 and variables[0].shape:
        single = True  # one array argument: its gradient is that array, not a 1-tuple
    known = set(arguments)
    for what, symbols in (("the function depends on", free_symbols(outputs)),
                          ("wrt lists", variables)):
        missing = [s.value for s in symbols if s not in known]
        if missing:
            raise SymdiffError(f"{what} {', '.join(missing)}, which is not an argument: "
                               "list every input in args")
    if scalar and outputs[0].shape:
        scalar = False  # one array-valued output
    return CompiledFunction(optimize(outputs, options["fast_math"]), arguments, variables,
                            scalar, single, **options)


class CompiledFunction(MatrixMethods):
    """Numba-backed value and derivative functions of one compiled expression.

    Arguments are positional, in ``args`` order: floats for scalar symbols, float64
    arrays of the symbol's shape for array symbols.  Each method derives and compiles its
    function on first use (in the background: see ``compile``).  A function of scalars
    also takes 1-D arrays of points for ``forward``, ``grad`` and ``value_and_grad``,
    evaluated in parallel.
    """

    def __init__(self, outputs, args, wrt, scalar: bool, single_wrt: bool, fast_math: bool,
                 lowering: str = "auto", background: bool = False):
        self._given_outputs = outputs
        # Large captured constants become hidden trailing arguments (symdiff.data).
        outputs, self._data_symbols, constants = lift_data(list(outputs))
        self._data_values = data_values(constants)
        self.outputs = outputs
        self.args = args
        self._inputs = tuple(args) + tuple(self._data_symbols)  # of every generated function
        self.wrt = wrt
        self.is_scalar = scalar
        self.single_wrt = single_wrt
        self.fast_math = fast_math
        self._specs: dict[tuple, object] = {}
        self._loaded: dict[tuple, object] = {}
        self._arrays = any(a.shape for a in args)
        self._flat_wrt = not single_wrt and not any(v.shape for v in wrt)
        self.lowering = lowering
        self.background = background
        self._compiling: dict[str, threading.Thread] = {}
        self._interpreted: dict[str, object] = {}  # methods on the evaluator: _evaluator
        self._tiers: dict[str, str] = {}  # what answered each background first call
        self._failed: dict[str, BaseException] = {}
        self._modules: list = []  # the generated modules this function's methods run in
        self._lock = threading.RLock()
        INSTANCES.add(self)  # a forked child restarts its compiles (symdiff.processes)
        # Copies unpickled in one process are one object (Dask sends it with every task).
        self._token = uuid.uuid4().hex

    def __reduce__(self):
        # The optimized graphs, by structure; the other side compiles again (or loads
        # the compiled code from its cache), method by method on first use.
        rows, roots = graph_rows(list(self._given_outputs) + list(self.args) + list(self.wrt))
        return (_unpickle_compiled, (self._token, rows, roots, len(self.outputs), len(self.args),
                                     self.is_scalar, self.single_wrt, self.fast_math,
                                     self.lowering, self.background))

    def _after_fork(self) -> None:
        # The compile threads did not come along: compile again what they had not done.
        self._lock = threading.RLock()
        for method in list(self._compiling):
            if (method, False) not in self._loaded and method not in self._failed:
                del self._compiling[method]

    def __repr__(self):
        args = ", ".join(s.value for s in self.args)
        shown = self.outputs[0] if len(self.outputs) == 1 else f"[{len(self.outputs)} outputs]"
        text = str(shown)
        return f"<symdiff compiled f({args}) = {text if len(text) < 80 else text[:77] + '...'}>"

    def __call__(self, *x):
        """The value: a float for scalar f, an array for array- or vector-valued f."""
        return self.forward(*x)

    def forward(self, *x):
        """The value (same as calling the object)."""
        return self._load("forward")(*x)

    def grad(self, *x):
        """Gradient of scalar f: ndarray (n,) for scalar wrt, else a tuple shaped like wrt."""
        return self._load("grad")(*x)

    def value_and_grad(self, *x):
        """(value, gradient) from one fused pass."""
        return self._load("value_and_grad")(*x)

    def hessian(self, *x):
        """Hessian of scalar f: ndarray (n, n) over all wrt elements (C order).

        For arrays (or many scalars) column j comes from one Hessian-vector product with
        e_j in a compiled loop; see sparse_hessian for sparse Hessians."""
        return self._load("hessian")(*x)

    def hvp(self, *x_and_direction):
        """Hessian-vector product, shaped like the gradient: the arguments, then the
        direction as for ``jvp`` (one 1-D array for scalar wrt, else one array per wrt)."""
        return self._load("hvp")(*x_and_direction)

    def jacobian(self, *x):
        """Jacobian of vector-valued f: ndarray (m, n) (elements in C order)."""
        return self._load("jacobian")(*x)

    def vjp(self, *x_and_cotangent):
        """Vector-Jacobian product, shaped like the gradient.

        The cotangent is a float for scalar f, a 1-D array of the outputs for a list of
        scalar outputs, or an array of the output's shape for an array output.
        """
        return self._load("vjp")(*x_and_cotangent)

    def jvp(self, *x_and_tangent):
        """Jacobian-vector product J @ tangent, shaped like the value.

        For scalar wrt the tangent is one 1-D array (n,); for array wrt, one array per
        wrt symbol.
        """
        return self._load("jvp")(*x_and_tangent)

    def derived(self, outputs, wrt, args) -> CompiledFunction:
        """Another compiled function, of ``outputs``, with this one's options; its methods
        compile on their first call, waiting for it (symdiff.chunked's parts)."""
        return compile_expression(outputs, wrt, args=args, fast_math=self.fast_math,
                                  lowering=self.lowering, background=False)

    def vmap(self, in_axes=0):
        """This function over a batch axis of its arguments (``jax.vmap``): see
        symdiff.batching.VMapped."""
        return VMapped(self, in_axes)

    @property
    def source(self) -> str:
        """The complete generated module (every function that applies to f), as text.
        Functions of a derivative mode the graph does not allow (reverse mode through an
        unbounded while loop) are left out.

        Its size does not depend on array sizes: Hessians and Jacobians of arrays (or of
        many scalars) are loops over directions through ``hvp`` / ``jvp`` / ``vjp``.
        """
        wanted = [(m, False) for m, (_, needs) in FUNCTIONS.items()
                  if needs in (None, self.is_scalar)]
        wanted += [(m, True) for m in BATCHED if self._batches(m)
                   and FUNCTIONS[m][1] in (None, self.is_scalar)]
        specs = []
        for method, batched in wanted:
            try:
                specs.append(self._spec(method, batched))
            except NotDifferentiableError:
                continue  # reverse mode through an unbounded loop: left out
        return self._module_source(specs)

    def save(self, path) -> str:
        """Write the generated module to ``path``; it imports only math, numpy and numba.

        Atomic: the module goes to a temporary file beside ``path`` and is renamed over
        it, so a failed write leaves the old file whole, and a symlink at ``path`` is
        replaced, never followed.  A function that captured large arrays (symdiff.data)
        also writes them to ``path`` with ``.npz`` for ``.py``; the module loads them
        as ``DATA``, to pass after the arguments: ``gradient(w, *DATA)``."""
        path = os.fspath(path)
        source, mode = self.source, 0o666 & ~umask()
        if self._data_values:
            stem = os.path.splitext(path)[0]
            source += saved_data_loader(os.path.basename(stem) + ".npz", len(self._data_values))
            write_atomic(stem + ".npz", npz_bytes(self._data_values), mode=mode)
        write_atomic(path, source.encode("utf-8"), mode=mode)
        return path

    # Derivation.
    def _batches(self, method: str) -> bool:
        """Whether ``method`` has a batched version (the Hessian: entry by entry only)."""
        return method in BATCHED and self._batchable() and (
            method != "hessian" or self._unrolled("hessian"))

    def _batchable(self) -> bool:
        # Functions with loops are batched too: a prange over calls of the one-point code.
        return (bool(self.args) and not self._arrays and not self._data_symbols
                and all(not o.shape for o in self.outputs))

    def _module_source(self, specs) -> str:
        names = [s.value for s in self.args]
        params = parameter_names(names)
        text = str(self.outputs[0]) if len(self.outputs) == 1 else f"{len(self.outputs)} outputs"
        lines = [f"Generated by symdiff {__version__}; import needs only math, numpy and "
                 "numba (with its llvmlite).", ""]
        if len(text) <= 300:
            lines += [f"f = {text}", ""]
        lines.append("Arguments, in order (float64): " + ", ".join(
            (p if p == s.value else f"{p} (symbol {s.value})")
            + (f" array{s.shape}".replace("None", "batch") if s.shape else "")
            for p, s in zip(params, self.args, strict=True)))
        if self._data_symbols:
            lines.append("Then the captured arrays, in order: " + ", ".join(
                f"{p} array{s.shape}" for p, s in zip(parameter_names(
                    [s.value for s in self._data_symbols]), self._data_symbols, strict=True))
                + " (a saved module loads them as DATA: gradient(..., *DATA))")
        lines.append("Derivatives with respect to: " + ", ".join(s.value for s in self.wrt))
        lines += ["", "Functions (all @numba.njit):"]
        lines += [f"  {spec.name}: {spec.doc}" for spec in specs]
        return emit_module(specs, "\n".join(lines))

    def _spec(self, method: str, batched: bool = False):
        key = (method, batched)
        if key not in self._specs:
            self._specs[key] = self._derive(method, batched)
        return self._specs[key]

    def _gradient_structure(self, gradients):
        if self.single_wrt:
            return gradients[0]
        return list(gradients) if self._flat_wrt else tuple(gradients)

    def _derive(self, method: str, batched: bool):
        name, needs_scalar = FUNCTIONS[method]
        if needs_scalar is not None and needs_scalar != self.is_scalar:
            kind = "a scalar" if needs_scalar else "a vector- or array-valued"
            value = (f"its value has shape {self.outputs[0].shape}" if self.outputs[0].shape
                     else f"it has {len(self.outputs)} outputs" if needs_scalar
                     else "its value is a scalar")
            hint = ("; for one value per point, map it with fn.vmap or declare scalar args"
                    if needs_scalar and self._arrays else "")
            raise SymdiffError(f"{method} needs {kind} function ({value}); use "
                               f"{'jacobian or vjp' if needs_scalar else 'grad'}{hint}")
        outs, wrt = self.outputs, self.wrt
        value = outs[0] if len(outs) == 1 and (self.is_scalar or outs[0].shape) else list(outs)
        extra, arrays = (), ()
        if method == "forward":
            result, doc = value, "value f(x)"
        elif method in ("grad", "value_and_grad"):
            g = self._gradient_structure(grad(outs[0], wrt, simplify=False))
            result = g if method == "grad" else (outs[0], g)
            doc = "gradient" if method == "grad" else "(value, gradient) in one pass"
        elif method in LOOPS and not self._unrolled(method):
            return self._direction_loop(method)
        elif method == "hessian":
            result, doc = hessian(outs[0], wrt, simplify=False), "Hessian"
        elif method == "hvp":
            if self._flat_wrt:
                directions = [internal_symbol(f"dir{j}") for j in range(len(wrt))]
                arrays = (ArrayParam("_direction", tuple(directions)),)
            else:
                directions = extra = tuple(internal_symbol(f"direction{k}", v.shape)
                                           for k, v in enumerate(wrt))
            result = self._gradient_structure(hvp(outs[0], wrt, list(directions),
                                                  simplify=False))
            doc = "Hessian-vector product H @ direction"
        elif method == "jacobian":
            result, doc = jacobian(list(outs), wrt, simplify=False), "Jacobian"
        elif method == "vjp":
            if len(outs) > 1:
                cts = tuple(internal_symbol(f"ct{k}") for k in range(len(outs)))
                arrays = (ArrayParam("_cotangent", cts),)
            else:
                cts = extra = (internal_symbol("cotangent", outs[0].shape),)
            gradients = reverse_mode(list(zip(outs, cts, strict=True)), wrt)
            result, doc = self._gradient_structure(gradients), "cotangent @ Jacobian"
        else:
            if self._flat_wrt:
                tangents = tuple(internal_symbol(f"tan{j}") for j in range(len(wrt)))
                arrays = (ArrayParam("_tangent", tangents),)
            else:
                tangents = extra = tuple(internal_symbol(f"tangent{k}", v.shape)
                                         for k, v in enumerate(wrt))
            result = forward_mode(outs, dict(zip(wrt, tangents, strict=True)))
            result, doc = (result[0] if not isinstance(value, list) else result), "J @ tangent"
        if batched:
            name, doc = name + "_batch", doc + ", at many points (1-D arrays of points)"
        return FunctionSpec(name, self._inputs + extra,
                            optimize(result, self.fast_math), doc, arrays, batched,
                            self.lowering)

    def wait(self, timeout: float | None = None) -> CompiledFunction:
        """Block until every background compile started so far has finished (or
        ``timeout`` seconds passed); re-raise a compile failure.  Returns ``self``."""
        for thread in list(self._compiling.values()):
            thread.join(timeout)
        for method, error in self._failed.items():
            raise SymdiffError(f"compiling {method} failed: {error}") from error
        return self

    # Loading.
    def _load(self, method: str, batched: bool = False):
        loaded = self._loaded.get((method, batched))
        if loaded is not None:
            return loaded
        with self._lock:  # one compile however many threads call
            loaded = self._loaded.get((method, batched))
            if loaded is not None:
                return loaded
            if batched or not self.background:
                return self._compile(method, batched,
                                     self._module_source([self._spec(method, batched)]))
            first = method not in self._compiling
            if first:
                # The symbolic work and the source are made here, so a compile thread
                # only loads the module and runs Numba (no more of the GIL than that).
                spec = self._spec(method)
                source = self._module_source([spec])
                if FIRST_CALL == "auto" and compiled_at_hand(source, spec.name):
                    self._tiers[method] = "cache"  # machine code at hand: loaded, not interpreted
                    return self._compile(method, False, source)
                self._start_background(method, source)
        if first:
            return functools.partial(self._first_call, method, spec, source)
        # Later calls wait: interpreting them would take the GIL from the compile.
        return self._finished(method)

    def _first_call(self, method: str, spec, source: str, *x):
        """The first call of a method compiling in the background: the evaluator answers
        it when first_call_seconds expects that to take under EVALUATOR_SHARE of the
        compile, else the compiled code, waited for."""
        if FIRST_CALL == "auto":
            try:
                directions = self._direction_count(x) if hasattr(spec, "kernel") else 0
                evaluating, compiling = first_call_seconds(
                    spec, source, batch_size(self.args, x), directions)
            except (TypeError, ValueError, IndexError):  # arguments the checks refuse
                evaluating, compiling = 0.0, 1.0
            if not evaluating < EVALUATOR_SHARE * compiling:
                self._tiers[method] = "compiled"
                return self._finished(method)(*x)
        self._tiers[method] = "evaluator"
        return self._evaluator(method)(*x)

    def _evaluator(self, method: str):
        """The method computed by the reference evaluator, with the compiled function's
        argument checks and result types (the first tier)."""
        call = self._interpreted.get(method)
        if call is None:
            spec = self._spec(method)
            if method in LOOPS and not self._unrolled(method):
                first = self._loop_interpreter(spec)
            else:
                first = interpreter(spec)
            call = guarded(with_conversions(first, self, method, spec, checked=True), self,
                           method)
            self._interpreted[method] = call
        return call

    def _start_background(self, method: str, source: str) -> None:
        def work():
            try:
                self._compile(method, False, source)
            except BaseException as error:  # noqa: BLE001 - reported by wait() and calls
                self._failed[method] = error

        # A daemon: a script that has its answer exits without waiting for compiles it no
        # longer needs.  The cache is left with a complete entry or none (codegen.cache
        # checks every file against its manifest before use).
        thread = threading.Thread(target=work, name=f"symdiff compile {method}", daemon=True)
        self._compiling[method] = thread
        thread.start()

    def _finished(self, method: str):
        """The compiled function of a method whose background compile was started."""
        self._compiling[method].join()
        if method in self._failed:
            self.wait()
        return self._loaded[method, False]

    def _compile(self, method: str, batched: bool, source: str):
        spec = self._spec(method, batched)
        signature = tuple(numba_type(s, batched) for s in spec.inputs)
        signature += _SEEDS if getattr(spec, "compressed", False) else (_ARRAY,) * len(
            spec.arrays)
        size = (f"{count_ops(flatten(spec.result))} operations" if hasattr(spec, "result")
                else "a loop over directions")
        module, dispatcher = compile_source(source, spec.name, signature, method, size)
        self._modules.append(module)
        if batched:
            self._loaded[method, batched] = dispatcher
            return dispatcher
        if threaded_products(spec):
            dispatcher = limited(dispatcher)  # BLAS on one thread: symdiff.blas_threads
        call = guarded(with_conversions(dispatcher, self, method, spec), self, method)
        self._loaded[method, batched] = call
        if hasattr(CompiledFunction, method):
            self.__dict__[method] = call  # later attribute lookups go straight to it
        return call


def _unpickle_compiled(token, rows, roots, n_outputs, n_args, *options):
    with UNPICKLING:
        known = _UNPICKLED.get(token)
        if known is not None:
            return known
        nodes = from_rows(rows)
        picked = [nodes[k] for k in roots]
        outputs, args = picked[:n_outputs], picked[n_outputs:n_outputs + n_args]
        compiled = CompiledFunction(outputs, args, picked[n_outputs + n_args:], *options)
        compiled._token = token
        _UNPICKLED[token] = compiled
        return compiled


def cache_report() -> dict:
    """Per method, (cache hits, cache misses) of the compiled functions in this process:
    run it in the workers (``client.run``) to see that they loaded compiled code."""
    report: dict = {}
    for compiled in list(INSTANCES):
        for (method, _), call in list(compiled._loaded.items()):
            stats = getattr(getattr(call, "dispatcher", None), "stats", None)
            if stats is not None:
                hits, misses = report.get(method, (0, 0))
                report[method] = (hits + sum(stats.cache_hits.values()),
                                  misses + sum(stats.cache_misses.values()))
    return report
