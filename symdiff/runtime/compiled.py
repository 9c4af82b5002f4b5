"""Compiled functions: derivative graphs to Numba-jitted functions, derived lazily per
method (``sd.compile``, in symdiff.runtime.transforms, builds them)."""

from __future__ import annotations

import os
import weakref

import numpy as np

from codegen import LOWERINGS
from codegen.cache import umask, write_atomic
from symdiff.autodiff.coloring import copied
from symdiff.autodiff.modes import as_variables
from symdiff.errors import NotDifferentiableError, SymdiffError
from symdiff.frontend.trace import as_outputs, named
from symdiff.ir.dims import has_open
from symdiff.ir.nodes import Expr, free_symbols, from_rows, graph_rows, symbol
from symdiff.passes.data import npz_bytes, saved_data_loader
from symdiff.passes.pipeline import optimize
from symdiff.passes.scalarize import scalarize
from symdiff.runtime.batching import VMapped
from symdiff.runtime.calls import with_conversions
from symdiff.runtime.derivation import BATCHED, FUNCTIONS, Derivation
from symdiff.runtime.loading import BACKENDS, LOADERS, Loader
from symdiff.runtime.lowering import Lowered, module_source
from symdiff.runtime.matrices import SparseMatrices, guarded
from symdiff.runtime.processes import UNPICKLING

# Unpickled compiled functions by content (graph, options): Dask sends one with every task.
_UNPICKLED: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def compile_options(fast_math: bool = False, lowering: str = "auto",
                    background: bool | None = None, backend: str | None = None) -> dict:
    """The options of ``sd.compile``, checked (so a bad one fails at ``sd.compile``, not at
    the first call), with ``background`` resolved from SYMDIFF_BACKGROUND and ``backend``
    from SYMDIFF_BACKEND."""
    if lowering not in LOWERINGS:
        raise SymdiffError(f"lowering must be one of {LOWERINGS}, not {lowering!r}")
    if backend is None:
        backend = os.environ.get("SYMDIFF_BACKEND", "auto")
    if backend not in BACKENDS:
        raise SymdiffError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if background is None:
        background = os.environ.get("SYMDIFF_BACKGROUND", "1") != "0"
    return {"fast_math": bool(fast_math), "lowering": lowering, "background": bool(background),
            "backend": backend}


class NotAnArgumentError(SymdiffError):
    """A function to compile reads a symbol it does not take: inside a traced function,
    a transformation of a closure over that function's symbols (the transformations then
    answer with expressions: symdiff.runtime.transforms)."""


def compile_expression(f, wrt=None, *, args=None, params=None, single: bool | None = None,
                       fast_math: bool = False, lowering: str = "auto",
                       background: bool | None = None,
                       backend: str | None = None) -> CompiledFunction:
    """``f`` (an expression, scalar or array, a list of scalar expressions, a string or a
    SymPy expression) compiled; ``sd.compile`` of a Python function traces it first and
    passes the symbols it was called on as ``params``.

    ``args`` (symbols or names, or a dict of names to shapes) are the positional
    arguments of every compiled function: by default ``params``, else ``wrt`` followed
    by the other free symbols, else all free symbols in natural order (x2 before x10).
    ``wrt`` are the variables of the derivatives (default: all arguments); one symbol
    instead of a list gives its gradient alone rather than a tuple (``single`` says so for
    a list)."""
    options = compile_options(fast_math, lowering, background, backend)
    if isinstance(args, dict):  # names and shapes, in order
        args = [symbol(name, shape) for name, shape in args.items()]
    # Names the caller lists are symbols even in text that reads them as constants (e, pi).
    outputs, scalar = as_outputs(f, named(args) + named(wrt))
    if not scalar and len(outputs) > 1 and any(o.shape for o in outputs):
        raise SymdiffError("a list of array outputs is not supported by sd.compile: "
                           "concatenate them, or use sd.jit(f), which gives pytree results "
                           "back in their structure")
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
            raise NotAnArgumentError(f"{what} {', '.join(missing)}, which is not an argument: "
                               "list every input in args")
    if scalar and outputs[0].shape:
        scalar = False  # one array-valued output
    # Many tiny arrays (a Python loop over a small state) become scalar code first.
    outputs = optimize(scalarize(outputs), options["fast_math"])
    return CompiledFunction(outputs, arguments, variables, scalar, single, **options)


class CompiledFunction:
    """Numba-backed value and derivative functions of one compiled expression.

    Arguments are positional, in ``args`` order: floats for scalar symbols, float64
    arrays of the symbol's shape for array symbols.  Each method derives and compiles its
    function on first use (in the background: see ``compile``).  A function of scalars
    also takes 1-D arrays of points for ``forward``, ``grad`` and ``value_and_grad``,
    evaluated in parallel.

    It is a composition of its stages, as JAX's traced, lowered and compiled objects:
    ``derivation`` (symdiff.runtime.derivation: the graphs of each method), ``lower(method)``
    (symdiff.runtime.lowering: the generated source), ``loader`` (symdiff.runtime.loading: compiled
    code through the tiers) and ``matrices`` (symdiff.runtime.matrices: sparse derivatives).
    """

    def __init__(self, outputs, args, wrt, scalar: bool, single_wrt: bool, fast_math: bool,
                 lowering: str = "auto", background: bool = False, backend: str = "auto"):
        self.derivation = Derivation(outputs, args, wrt, scalar, single_wrt, fast_math,
                                     lowering)
        # (The expressions as given, captured data and positions in them; the
        # derivation's own have them lifted to hidden arguments.)
        self.outputs, self.args, self.wrt = self.derivation.given_outputs, args, wrt
        self.is_scalar, self.single_wrt = scalar, single_wrt
        self.fast_math, self.lowering, self.background = fast_math, lowering, background
        self.backend = backend
        self.loader = Loader(self.derivation, background, self._wrap, self._bind, backend)
        self.matrices = SparseMatrices(self.derivation, self.loader.load,
                                       self.loader.tiled_from)

    def _wrap(self, call, method: str, spec, checked: bool):
        """A raw callable of ``method`` behind the input contract and the memory guard."""
        return guarded(with_conversions(call, self, method, spec, checked), self.derivation,
                       method)

    def _bind(self, method: str, call) -> None:
        if hasattr(CompiledFunction, method):
            self.__dict__[method] = call  # later attribute lookups go straight to it

    def __reduce__(self):
        # The optimized graphs, by structure; the other side compiles again (or loads
        # the compiled code from its cache), method by method on first use.
        given = self.derivation.given_outputs
        rows, roots = graph_rows(list(given) + list(self.args) + list(self.wrt))
        return (_unpickle_compiled, (rows, roots, len(given), len(self.args),
                                     self.is_scalar, self.single_wrt, self.fast_math,
                                     self.lowering, self.background, self.backend))

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
        return self.loader.load("forward")(*x)

    def grad(self, *x):
        """Gradient of scalar f: ndarray (n,) for scalar wrt, else a tuple shaped like wrt."""
        return self.loader.load("grad")(*x)

    def value_and_grad(self, *x):
        """(value, gradient) from one fused pass."""
        return self.loader.load("value_and_grad")(*x)

    def hessian(self, *x):
        """Hessian of scalar f: ndarray (n, n) over all wrt elements (C order).

        For arrays (or many scalars) column j comes from one Hessian-vector product with
        e_j in a compiled loop; see sparse_hessian for sparse Hessians."""
        return self.loader.load("hessian")(*x)

    def hvp(self, *x_and_direction):
        """Hessian-vector product, shaped like the gradient: the arguments, then the
        direction as for ``jvp`` (one 1-D array for scalar wrt, else one array per wrt)."""
        return self.loader.load("hvp")(*x_and_direction)

    def jacobian(self, *x):
        """Jacobian of vector-valued f: ndarray (m, n) (elements in C order)."""
        return self.loader.load("jacobian")(*x)

    def vjp(self, *x_and_cotangent):
        """Vector-Jacobian product, shaped like the gradient.

        The cotangent is a float for scalar f, a 1-D array of the outputs for a list of
        scalar outputs, or an array of the output's shape for an array output.
        """
        return self.loader.load("vjp")(*x_and_cotangent)

    def jvp(self, *x_and_tangent):
        """Jacobian-vector product J @ tangent, shaped like the value.

        For scalar wrt the tangent is one 1-D array (n,); for array wrt, one array per
        wrt symbol.
        """
        return self.loader.load("jvp")(*x_and_tangent)

    def hessian_sparsity(self, *x):
        """Structural pattern of the Hessian (scipy.sparse.csr_array of bools, n x n),
        from the graph alone; the arguments are needed only for an open dimension."""
        return self.matrices.pattern("hessian", self.matrices.batch(x)).copy()

    def jacobian_sparsity(self, *x):
        """Structural pattern of the Jacobian (csr_array of bools, outputs x variables)."""
        return self.matrices.pattern("jacobian", self.matrices.batch(x)).copy()

    def hessian_coloring(self, *x):
        """The star coloring ``sparse_hessian`` uses (``.count`` colors = HVPs per call):
        a copy, so that changing its arrays changes nothing this function computes."""
        return copied(self.matrices.coloring("hessian", self.matrices.batch(x)))

    def jacobian_coloring(self, *x):
        """The column coloring ``sparse_jacobian`` uses (``.count`` colors = JVPs per call):
        a copy, as ``hessian_coloring``'s."""
        return copied(self.matrices.coloring("jacobian", self.matrices.batch(x)))

    def sparse_hessian(self, *x):
        """Hessian as a scipy.sparse.csr_array: one Hessian-vector product per color of a
        star coloring of its pattern (``hessian_coloring``), nonzeros recovered by symmetry."""
        return self.matrices.sparse("hessian", x)

    def sparse_jacobian(self, *x):
        """Jacobian as a scipy.sparse.csr_array: one Jacobian-vector product per color of a
        column coloring of its pattern (``jacobian_coloring``)."""
        return self.matrices.sparse("jacobian", x)

    def derived(self, outputs, wrt, args) -> CompiledFunction:
        """Another compiled function, of ``outputs``, with this one's options; its methods
        compile on their first call, waiting for it (symdiff.runtime.chunked's parts)."""
        return compile_expression(outputs, wrt, args=args, fast_math=self.fast_math,
                                  lowering=self.lowering, background=False,
                                  backend=self.backend)

    def vmap(self, in_axes=0):
        """This function over a batch axis of its arguments (``jax.vmap``): see
        symdiff.runtime.batching.VMapped."""
        return VMapped(self, in_axes)

    def lower(self, method: str = "forward", batched: bool = False) -> Lowered:
        """One method's derived graphs and generated module (``.spec``, ``.source``);
        ``.compile()`` gives its compiled callable.  ``batched``: the version at many
        points of a function of scalars."""
        if method not in FUNCTIONS:
            raise SymdiffError(f"no method {method!r}: one of {', '.join(FUNCTIONS)}")
        if batched and not self.derivation.batches(method):
            raise SymdiffError(f"{method} has no batched version for this function")
        return Lowered(method, batched, self.derivation.spec(method, batched),
                       self.loader.source(method, batched), self.loader)

    @property
    def source(self) -> str:
        """The complete generated module (every function that applies to f), as text.
        Functions of a derivative mode the graph does not allow (reverse mode through an
        unbounded while loop) are left out.

        Its size does not depend on array sizes: Hessians and Jacobians of arrays (or of
        many scalars) are loops over directions through ``hvp`` / ``jvp`` / ``vjp``.
        """
        d = self.derivation
        wanted = [(m, False) for m in FUNCTIONS if d.applies(m)]
        wanted += [(m, True) for m in BATCHED if d.batches(m) and d.applies(m)]
        specs = []
        for method, batched in wanted:
            try:
                specs.append(d.spec(method, batched))
            except NotDifferentiableError:
                continue  # reverse mode through an unbounded loop: left out
        return module_source(d, specs)

    def save(self, path, sparse: bool | None = None) -> str:
        """Write the generated module to ``path``; it imports only math, numpy and numba.

        Atomic: the module goes to a temporary file beside ``path`` and is renamed over
        it, so a failed write leaves the old file whole, and a symlink at ``path`` is
        replaced, never followed.  A function that captured large arrays (symdiff.passes.data)
        also writes them to ``path`` with ``.npz`` for ``.py``; the module loads them
        as ``DATA``, to pass after the arguments: ``gradient(w, *DATA)``.  ``sparse``:
        save what the module's ``sparse_hessian`` / ``sparse_jacobian`` need (the
        coloring and the pattern) in that file too, as ``SPARSE_HESSIAN`` /
        ``SPARSE_JACOBIAN``; None (default): where this process has colored it already."""
        path = os.fspath(path)
        source, mode = self.source, 0o666 & ~umask()
        values = self.derivation.data_values
        sparse_parts = self._sparse_parts(sparse)
        if values or sparse_parts:
            stem = os.path.splitext(path)[0]
            kinds = sorted({name.split("_")[0] for name in sparse_parts})
            source += saved_data_loader(os.path.basename(stem) + ".npz", len(values), kinds)
            write_atomic(stem + ".npz", npz_bytes(values, sparse_parts), mode=mode)
        write_atomic(path, source.encode("utf-8"), mode=mode)
        return path

    def _sparse_parts(self, sparse: bool | None) -> dict:
        """The arrays a saved module's sparse methods take (see save), by name."""
        if sparse is False:
            return {}
        parts = {}
        for kind in ("hessian", "jacobian"):
            if not self.derivation.applies(f"sparse_{kind}_data"):
                continue
            if any(has_open(a.shape) for a in self.args):
                if sparse:
                    raise SymdiffError("save(sparse=True) needs static shapes: the "
                                       "pattern of an open dimension depends on its length")
                continue
            if sparse is None and ("coloring", kind, None) not in self.matrices.cached:
                continue
            coloring = self.matrices.coloring(kind, None)
            pattern = coloring.pattern
            parts.update({f"{kind}_seeds": coloring.seeds, f"{kind}_gather": coloring.gather,
                          f"{kind}_indices": pattern.indices.astype(np.int64),
                          f"{kind}_indptr": pattern.indptr.astype(np.int64),
                          f"{kind}_shape": np.array(pattern.shape, dtype=np.int64)})
        return parts

    def wait(self, timeout: float | None = None) -> CompiledFunction:
        """Block until every background compile started so far has finished (or
        ``timeout`` seconds passed); re-raise a compile failure.  Returns ``self``."""
        self.loader.wait(timeout)
        return self


def _unpickle_compiled(rows, roots, n_outputs, n_args, *options):
    # Identity follows content: the graph is rebuilt (every row checked, symdiff.ir.nodes.
    # from_rows) and interned, so equal functions are the same nodes and options, and
    # copies unpickled in one process are one object.
    with UNPICKLING:
        nodes = from_rows(rows)
        if any(isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < len(nodes)
               for k in roots) or not 0 <= n_outputs <= n_outputs + n_args <= len(roots):
            raise SymdiffError("unpickling: a malformed compiled function")
        if len(options) != 6 or not all(isinstance(o, bool) for o in options[:2]):
            raise SymdiffError("unpickling: malformed options of a compiled function")
        scalar, single = options[:2]
        options = (scalar, single, *compile_options(*options[2:]).values())
        picked = tuple(nodes[k] for k in roots)
        args, wrt = picked[n_outputs:n_outputs + n_args], picked[n_outputs + n_args:]
        if (any(x.op != "symbol" for x in args + wrt) or len(set(args)) != len(args)
                or not set(wrt) <= set(args)
                or not set(free_symbols(list(picked[:n_outputs]))) <= set(args)):
            raise SymdiffError("unpickling: a compiled function's arguments are distinct "
                               "symbols, holding every symbol of its outputs and of wrt")
        key = (picked, n_outputs, n_args, options)
        known = _UNPICKLED.get(key)
        if known is not None:
            return known
        outputs, args = picked[:n_outputs], picked[n_outputs:n_outputs + n_args]
        compiled = CompiledFunction(list(outputs), list(args),
                                    list(picked[n_outputs + n_args:]), *options)
        _UNPICKLED[key] = compiled
        return compiled


def cache_report() -> dict:
    """Per method, (cache hits, cache misses) of the compiled functions in this process:
    run it in the workers (``client.run``) to see that they loaded compiled code."""
    report: dict = {}
    for loader in list(LOADERS):
        for method, cached in list(loader.native_cached.items()):  # native machine code
            hits, misses = report.get(method, (0, 0))
            report[method] = (hits + cached, misses + (not cached))
        for (method, _), call in list(loader.loaded.items()):
            stats = getattr(getattr(call, "dispatcher", None), "stats", None)
            if stats is not None:
                hits, misses = report.get(method, (0, 0))
                report[method] = (hits + sum(stats.cache_hits.values()),
                                  misses + sum(stats.cache_misses.values()))
    return report
