"""``sd.compile`` and the function transformations in JAX's style.

The rule: a Python function without ``args`` is a function of whatever it is called with.
``sd.compile(f)`` returns a ``ByShape``: each call traces ``f`` on symbols shaped like its
arguments and compiles once per shape signature (as ``jax.jit`` does), so ``np.sum(x)``
of an array argument is a sum, never a function of one scalar evaluated per element.
Evaluation at many points is what expressions and strings of scalars, functions whose
``args`` declare scalars, and ``fn.vmap`` ask for explicitly.  ``sd.jit``, ``sd.grad``,
``sd.value_and_grad``, ``sd.hessian`` and ``sd.jacobian`` given a Python function return
such calls.
"""

from __future__ import annotations

import functools
import inspect
import threading

import numpy as np

from symdiff.autodiff import at_expressions
from symdiff.autodiff import modes as symbolic
from symdiff.errors import ArgumentError, ShapeError, SymdiffError, TraceError
from symdiff.frontend.trace import (
    call_on,
    function_name,
    is_python_function,
    named,
    parameters,
    read_expression,
    trace,
)
from symdiff.ir import trees
from symdiff.ir.nodes import Expr, symbol
from symdiff.ops.arrays import concatenate, reshape, stack
from symdiff.runtime import pytrees
from symdiff.runtime.batching import VMapped
from symdiff.runtime.compiled import (
    CompiledFunction,
    NotAnArgumentError,
    compile_expression,
    compile_options,
)
from symdiff.runtime.inputs import is_dask

# The methods of a compiled function that take the function's arguments, in the order of
# the class; those in DIRECTED take a direction (or cotangent) after them.
METHODS = ("forward", "grad", "value_and_grad", "hessian", "hvp", "jacobian", "vjp", "jvp",
           "sparse_hessian", "sparse_jacobian", "hessian_sparsity", "jacobian_sparsity",
           "hessian_coloring", "jacobian_coloring")
DIRECTED = frozenset({"hvp", "jvp", "vjp"})


def compile(f, wrt=None, *, args=None, fast_math: bool = False,  # noqa: A001
            lowering: str = "auto", background: bool | None = None, backend: str | None = None):
    """Compile ``f`` to Numba-jitted value and derivative functions.

    ``f`` is an expression (scalar or array), a list of scalar expressions
    (vector-valued), a string, a SymPy expression, or a Python function (any callable,
    ``functools.partial`` included).  A Python function without ``args`` gives a
    ``ByShape``: a function of the arguments it is called with, compiled once per shape
    signature (``jax.jit``'s rule).  ``args`` (symbols or names, or a dict of names to
    shapes such as ``{"x": (None,), "w": 3}``) declare the positional arguments instead:
    the function is traced once, on them; names stand for scalars, so a function of
    declared scalars also takes arrays of points.
    ``wrt`` are the variables of the derivatives (names, symbols or argument positions;
    default: all arguments); give one symbol instead of a list to get its gradient alone
    rather than a tuple (as for a function of one array argument, like JAX's ``grad``).
    ``lowering`` picks how straight-line scalar code reaches machine code: "python"
    (readable statements compiled by Numba), "llvm" (IR built directly, fast to compile
    at any size) or "auto" (Python below 100 operations, LLVM from there).
    ``background`` (default: on, unless the environment sets SYMDIFF_BACKGROUND=0): a
    method's first call whose machine code is not cached starts Numba compiling in a
    background thread and, when interpreting is expected to be faster than waiting,
    returns at once, computed by the reference evaluator; later calls run the compiled
    code (as does ``fn.wait()``).  Off: the first call compiles, then runs.
    ``backend``: "numba" (the generated module, compiled by Numba), "native" (the LLVM
    text compiled in process by llvmlite, behind CPython entry points: machine code in
    milliseconds; straight-line functions of scalars only so far, the rest goes to Numba)
    or "auto" (the default, unless the environment sets SYMDIFF_BACKEND: native where it
    applies and ``lowering`` asks for none of the Numba module's lowerings).
    """
    options = compile_options(fast_math, lowering, background, backend)
    if not is_python_function(f):
        return compile_expression(f, wrt, args=args, **options)
    if args is None:
        return ByShape(f, wrt, **options)
    if isinstance(args, dict):  # names and shapes, in order
        args = [symbol(name, shape) for name, shape in args.items()]
    result, params = trace(f, args)
    return compile_expression(result, by_position(wrt, params), params=params, **options)


def _fast_key(arguments) -> tuple | None:
    """The shapes of positional arguments that are all floats, ints or plain arrays (the
    common call, looked up without binding), else None."""
    key = []
    for v in arguments:
        kind = type(v)
        if kind is float or kind is int:
            key.append(())
        elif kind is np.ndarray:
            key.append(v.shape)
        else:
            return None
    return tuple(key)


def _method(name: str):
    directed = name in DIRECTED

    def call(self, *arguments, **keywords):
        count, compiled = len(self.names), None
        if not keywords and (len(arguments) == count or directed and len(arguments) > count):
            # The required parameters, by position: no binding.
            compiled = self._by_position.get(_fast_key(arguments[:count]))
        layout = None
        if compiled is None:
            compiled, values, extras = self._bound(name, arguments, keywords)
            layout = self._layouts.get(id(compiled))
            if layout is not None:  # pytree arguments: their leaves (symdiff.runtime.pytrees)
                values, extras = layout.flatten(name, values), layout.directions(name, extras)
            arguments = (*values, *extras)
        tree = self._results.get(id(compiled))
        if tree is not None and name == "vjp":  # a cotangent of the result's structure
            arguments = (*arguments[:-1], tree.cotangent(arguments[-1]))
        try:
            result = getattr(compiled, name)(*arguments)
            if layout is not None:
                result = layout.restructure(name, result)
            return result if tree is None else tree.restructure(name, result)
        except ArgumentError as error:
            defaults = [p.name for p in self._params if p.default is not p.empty]
            if not directed or not defaults:
                raise
            raise ArgumentError(f"{error} (the direction follows the arguments of "
                                f"{self.name}{self.shown}; pass {', '.join(defaults)} by "
                                "keyword)") from None

    call.__name__ = name
    call.__doc__ = (f"``{name}`` of the function compiled for these arguments' shapes (see "
                    f"CompiledFunction.{name}); keyword arguments bind as in Python"
                    + ("; the direction follows the arguments" if name in DIRECTED else ""))
    return call


class ByShape:
    """A Python function compiled once per shape signature of its arguments.

    Calling it gives the value; ``grad``, ``value_and_grad``, ``hessian``, ``jacobian``,
    ``jvp``, ``vjp``, ``hvp`` and the sparse methods of a compiled function are there too,
    each taking the function's arguments (positional or by keyword, as Python binds
    them; then any direction) like the compiled one.  A parameter with a default is an
    argument when it is passed (a variable of the derivatives only if ``wrt`` names it)
    and keeps its default (a constant) when it is not; to the methods taking a direction,
    pass it by keyword.  ``save``, ``source``, ``wait`` and
    ``vmap`` work as on a compiled function; it pickles if its Python function does.
    """

    def __init__(self, fn, wrt=None, **options):
        self.fn, self.wrt = fn, wrt
        self.options = compile_options(**options)
        self.name = function_name(fn)
        self._params = parameters(fn)  # TraceError here, at sd.compile, for *args & co.
        self.names = [p.name for p in self._params if p.default is p.empty
                      and p.kind != p.KEYWORD_ONLY]
        self._check_wrt(wrt)
        self._signature = inspect.Signature(self._params)  # what calls are bound against
        self.shown = _shown(self._params)  # the signature for messages: (w, data, scale=...)
        self._compiled: dict[tuple, CompiledFunction] = {}
        self._by_position: dict[tuple, CompiledFunction] = {}  # see _fast_key
        self._layouts: dict[int, TreeLayout] = {}  # id(compiled) -> its pytree arguments
        self._results: dict[int, pytrees.OutputTree] = {}  # id(compiled) -> pytree result
        self._lock = threading.Lock()

    def _check_wrt(self, wrt) -> None:
        if wrt is None or isinstance(wrt, (Expr, bool)):
            return
        items = [wrt] if isinstance(wrt, (int, str)) else list(wrt)
        names = [p.name for p in self._params]
        for item in items:
            if isinstance(item, int) and not -len(names) <= item < len(names):
                raise SymdiffError(f"wrt position {item} is out of range: {self.name} has "
                                   f"{len(names)} parameters ({', '.join(names)})")
            if isinstance(item, str) and item not in names:
                raise SymdiffError(f"wrt names {item!r}, which is not a parameter of "
                                   f"{self.name} ({', '.join(names)})")

    def _bound(self, method: str, arguments: tuple, keywords: dict):
        """(compiled function, argument values in its order, extra arguments): the call
        bound to the parameters as Python binds it; for the methods taking a direction,
        the positional arguments after the required parameters not given by keyword."""
        if method in DIRECTED:
            count = len([n for n in self.names if n not in keywords])
            arguments, extras = arguments[:count], arguments[count:]
        else:
            extras = ()
        try:
            bound = self._signature.bind(*arguments, **keywords)
        except TypeError as error:
            parameters, message = self._signature.parameters, str(error)
            unknown = [k for k in keywords if k not in parameters]
            if unknown and not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
                message = (f"unexpected keyword argument{'s' * (len(unknown) > 1)} "
                           f"{', '.join(map(repr, unknown))}")  # (before a missing one)
            raise ArgumentError(f"{self.name}{self.shown}: {message}") from None
        values = bound.arguments  # in the order of the parameters
        # A Dask array's first axis is open: one compile serves every chunk
        # (symdiff.runtime.chunked).
        key = tuple((name, pytrees.tree_key(v) if pytrees.is_tree(v) else
                     (None,) + np.shape(v)[1:] if is_dask(v) and np.ndim(v)
                     else np.shape(v)) for name, v in values.items())
        compiled = self._for_key(key)
        if not keywords and list(values) == self.names:
            fast = _fast_key(arguments)
            if fast is not None:
                self._by_position[fast] = compiled
        return compiled, list(values.values()), extras

    def compiled_for(self, *arguments, **keywords) -> CompiledFunction:
        """The compiled function for arguments of these shapes (compiling it once)."""
        return self._bound("forward", arguments, keywords)[0]

    def for_shapes(self, shapes) -> CompiledFunction:
        """The compiled function for arguments of ``shapes``: one shape per required
        parameter in order (``()`` for a scalar, ``None`` for an open dimension), or a
        dict of parameter names to shapes."""
        if not isinstance(shapes, dict):
            shapes = list(shapes)
            if len(shapes) != len(self.names):
                raise ArgumentError(f"{self.name}{self.shown} takes a shape for each required "
                                    f"argument, {len(shapes)} given")
            shapes = dict(zip(self.names, shapes, strict=True))
        order = [p.name for p in self._params]
        unknown = [n for n in shapes if n not in order]
        missing = [n for n in self.names if n not in shapes]
        if unknown or missing:
            raise ArgumentError(f"shapes for {self.name} must name its parameters "
                                f"({', '.join(order)}): " + "; ".join(
                                    f"{what} {', '.join(names)}" for what, names in
                                    (("unknown", unknown), ("missing", missing)) if names))
        key = tuple((n, _shape(shapes[n])) for n in order if n in shapes)
        return self._for_key(key)

    def _for_key(self, key: tuple) -> CompiledFunction:
        with self._lock:
            if key not in self._compiled:
                self._compiled[key] = self._compile(key)
            return self._compiled[key]

    def _compile(self, key: tuple) -> CompiledFunction:
        if any(_is_tree_entry(shape) for _, shape in key):
            return self._compile_trees(key)
        symbols = {name: symbol(name, shape) for name, shape in key}
        try:
            wrt, single = self._variables(symbols)
            result, tree = self._result(call_on(self.fn, symbols))
            compiled = compile_expression(result, wrt, params=list(symbols.values()),
                                          single=single, **self.options)
            if tree is not None:
                self._results[id(compiled)] = tree
            return compiled
        except (ShapeError, TraceError) as error:
            shown = ", ".join(f"{n}: {s}" for n, s in key)
            hint = ("; declare them with args=[sd.vector('x', n), ...] if the shapes "
                    "depend on more than the arguments" if isinstance(error, ShapeError)
                    else "")
            raise type(error)(f"{error} (tracing {self.name} on arguments of shapes "
                              f"{shown}{hint})") from None

    def _compile_trees(self, key: tuple) -> CompiledFunction:
        """The compile for arguments of which some are pytrees: a symbol per leaf, the
        function called on trees of them, derivatives by the leaves of the arguments
        asked for (``wrt``: positions or names; all required ones by default)."""
        taken = {name for name, _ in key}
        trees, leaves = {}, {}
        for name, entry in key:
            if _is_tree_entry(entry):
                trees[name], leaves[name] = pytrees.leaf_symbols(name, entry, taken)
            else:
                trees[name] = symbol(name, entry)
                leaves[name] = [trees[name]]
        names = [p.name for p in self._params]
        wrt = self.wrt
        if wrt is None:
            chosen = [n for n in self.names if n in trees]
            single = len(chosen) == 1
        elif isinstance(wrt, (int, str)):
            chosen, single = [names[wrt] if isinstance(wrt, int) else wrt], True
        elif isinstance(wrt, (list, tuple)) and all(isinstance(w, (int, str)) for w in wrt):
            chosen, single = [names[w] if isinstance(w, int) else w for w in wrt], False
        else:
            raise SymdiffError("with pytree arguments, wrt takes parameter positions or names")
        for name in chosen:
            if name not in trees:
                raise ArgumentError(f"wrt names {name!r}, which has a default and was not "
                                    "passed: pass it to differentiate with respect to it")
        layout = TreeLayout(key, chosen, single)
        params = [s for name, _ in key for s in leaves[name]]
        result, tree = self._result(call_on(self.fn, trees))
        compiled = compile_expression(result, [s for n in chosen for s in leaves[n]],
                                      params=params, single=False, **self.options)
        self._layouts[id(compiled)] = layout
        if tree is not None:
            self._results[id(compiled)] = tree
        return compiled

    @staticmethod
    def _result(result) -> tuple:
        """(what to compile, its OutputTree where the function returns a pytree)."""
        if pytrees.is_output_tree(result):
            tree = pytrees.OutputTree(result)
            return tree.output, tree
        return result, None

    def _variables(self, symbols: dict):
        """(wrt, single): ``wrt`` with parameter positions and names replaced by this
        call's symbols.  By default the required parameters: one passed for a parameter
        with a default is an argument, not a variable (as jax.grad's argnums)."""
        wrt = self.wrt
        if wrt is None:
            required = [symbols[n] for n in self.names if n in symbols]
            if len(required) == 1:  # one argument: its gradient alone, as jax.grad's
                return required, True
            if len(required) in (0, len(symbols)):
                return None, None
            return required, False  # the gradient's structure as without the defaults
        if isinstance(wrt, bool):
            return wrt, None
        names = [p.name for p in self._params]

        def one(item):
            # A position, a name, or a symbol named after a parameter (its shape is this
            # call's, whatever shape the symbol was made with).
            name = (names[item] if isinstance(item, int) else item.value if isinstance(
                item, Expr) and item.op == "symbol" and item.value in names else item)
            if isinstance(name, str) and name not in symbols:
                raise ArgumentError(f"wrt names {name!r}, which has a default and was not "
                                    "passed: pass it to differentiate with respect to it")
            return symbols[name] if isinstance(name, str) else name

        return (one(wrt) if isinstance(wrt, (int, str, Expr)) else [one(w) for w in wrt]), None

    @property
    def signatures(self) -> list[dict]:
        """The shape signatures compiled so far: parameter names to shapes."""
        return [dict(key) for key in list(self._compiled)]

    def _only(self, what: str) -> CompiledFunction:
        if len(self._compiled) == 1:
            return next(iter(self._compiled.values()))
        known = "; ".join(str(s) for s in self.signatures) or "none yet"
        raise SymdiffError(f"{what} of {self.name} needs one shape signature (compiled so far: "
                           f"{known}): call it first, or use fn.for_shapes(...).{what}")

    @property
    def source(self) -> str:
        """The generated module of the one shape signature compiled so far."""
        return self._only("source").source

    def save(self, path, shapes=None, sparse: bool | None = None) -> str:
        """Write the generated module of ``shapes`` (see ``for_shapes``; default: the one
        shape signature compiled so far) to ``path`` (see CompiledFunction.save)."""
        compiled = self._only("save") if shapes is None else self.for_shapes(shapes)
        return compiled.save(path, sparse)

    def wait(self, timeout: float | None = None) -> ByShape:
        """Block until the background compiles of every shape signature have finished
        (see CompiledFunction.wait).  Returns ``self``."""
        for compiled in list(self._compiled.values()):
            compiled.wait(timeout)
        return self

    def __call__(self, *arguments, **keywords):
        """The value: ``forward``."""
        return self.forward(*arguments, **keywords)

    def vmap(self, in_axes=0):
        """This function over a batch axis of its arguments (``jax.vmap``)."""
        return VMapped(self, in_axes)

    def __reduce__(self):
        # The Python function goes by pickle's own rules (cloudpickle, as Dask uses, takes
        # lambdas); the compiled signatures go as their graphs.
        compiled = {key: (c, self._layouts.get(id(c)), self._results.get(id(c)))
                    for key, c in self._compiled.items()}
        return (_restore, (self.fn, self.wrt, self.options, compiled))

    def result_tree(self, compiled) -> pytrees.OutputTree | None:
        """How a compiled signature's flat result goes back into the function's pytree
        (None: the function returns an expression or array)."""
        return self._results.get(id(compiled))

    def __repr__(self):
        return f"<symdiff.ByShape of {self.name}: {len(self._compiled)} shape signature(s)>"


def _is_tree_entry(entry) -> bool:
    return bool(entry) and entry[0] == "tree"


class TreeLayout:
    """How one compile's pytree arguments map to the compiled function's flat ones, and
    its gradients back to trees."""

    def __init__(self, key: tuple, chosen: list[str], single: bool):
        self.entries = dict(key)
        self.chosen, self.single = chosen, single

    def flatten(self, method: str, values: list) -> list:
        flat = []
        for (name, entry), value in zip(self.entries.items(), values, strict=True):
            flat += pytrees.flatten_argument(name, value, entry) if _is_tree_entry(
                entry) else [value]
        return flat

    def directions(self, method: str, extras: tuple) -> list:
        """The direction of hvp and jvp (one tree per argument differentiated by, of its
        structure) as the compiled function takes it: one array per leaf, or one vector
        where every leaf is a scalar; vjp's cotangent as it is."""
        if method not in ("hvp", "jvp"):
            return list(extras)
        if len(extras) != len(self.chosen):
            raise ArgumentError(f"{method} takes one direction per argument differentiated "
                                f"by ({', '.join(self.chosen)}): {len(extras)} given")
        leaves = []
        for name, direction in zip(self.chosen, extras, strict=True):
            entry = self.entries[name]
            leaves += (pytrees.flatten_argument(f"{name}'s direction", direction, entry)
                       if _is_tree_entry(entry) else [direction])
        if all(np.ndim(leaf) == 0 for leaf in leaves):
            return [np.array(leaves, dtype=np.float64)]
        return leaves

    def restructure(self, method: str, result):
        # Hessians and Jacobians, dense or sparse, their patterns and colorings are over
        # the leaves in order (the order of sd.ravel_pytree's vector); a jvp is shaped
        # like the value.
        if method not in ("grad", "value_and_grad", "hvp", "vjp"):
            return result
        if method in ("hvp", "vjp"):  # shaped like the gradient
            return self.restructure("grad", result)
        value, gradients = result if method == "value_and_grad" else (None, result)
        leaves = sum(len(self.entries[n][2]) if _is_tree_entry(self.entries[n]) else 1
                     for n in self.chosen)
        if isinstance(gradients, tuple):
            gradients = list(gradients)
        elif leaves > 1 or self._one_scalar_leaf():  # scalar leaves: a vector of them
            gradients = [float(g) for g in gradients]
        else:
            gradients = [gradients]
        trees, start = [], 0
        for name in self.chosen:
            entry = self.entries[name]
            count = len(entry[2]) if _is_tree_entry(entry) else 1
            part = gradients[start:start + count]
            trees.append(pytrees.unflatten(entry, part) if _is_tree_entry(entry) else part[0])
            start += count
        shaped = trees[0] if self.single else tuple(trees)
        return (value, shaped) if method == "value_and_grad" else shaped


    def _one_scalar_leaf(self) -> bool:
        """Whether the arguments differentiated by hold one leaf, a scalar (its derivative
        comes as a vector of one: given back as a float, as with several)."""
        shapes = [s for name in self.chosen for s in (
            self.entries[name][2] if _is_tree_entry(self.entries[name])
            else [self.entries[name]])]
        return shapes == [()]


for _name in METHODS:
    setattr(ByShape, _name, _method(_name))


def _restore(fn, wrt, options, compiled):
    restored = ByShape(fn, wrt, **options)
    for key, (function, layout, tree) in compiled.items():
        restored._compiled[key] = function
        if layout is not None:
            restored._layouts[id(function)] = layout
        if tree is not None:
            restored._results[id(function)] = tree
    return restored


def _shown(params) -> str:
    """A signature for messages, defaults elided: (w, data, *, scale=...)."""
    parts, starred = [], False
    for p in params:
        if p.kind == p.KEYWORD_ONLY and not starred:
            parts.append("*")
            starred = True
        parts.append(p.name + ("=..." if p.default is not p.empty else ""))
    return f"({', '.join(parts)})"


def _shape(shape) -> tuple:
    if shape is None or isinstance(shape, int):
        return (shape,)
    return tuple(shape)


def by_position(wrt, params: list):
    """``wrt`` with argument positions (an int, or a list of ints: JAX's argnums)
    replaced by the parameters at those positions."""
    if isinstance(wrt, bool):
        return wrt
    if isinstance(wrt, int):
        return params[wrt]
    if isinstance(wrt, (list, tuple)) and wrt and all(isinstance(w, int) for w in wrt):
        return [params[w] for w in wrt]
    return wrt


def vmap(function, in_axes=0, **options) -> VMapped:
    """``function`` over a batch axis of its arguments (``jax.vmap``): a compiled function,
    a ``ByShape``, or a Python function (then compiled per point shape with ``options``)."""
    if not isinstance(function, (CompiledFunction, ByShape)):
        if not callable(function):
            raise SymdiffError(f"sd.vmap needs a function, got {function!r}")
        function = ByShape(function, options.pop("wrt", None), **options)
    elif options:
        raise SymdiffError("options are for a Python function; this one is compiled already")
    return VMapped(function, in_axes)


def jit(fn, **options) -> ByShape:
    """``fn`` compiled once per shape signature of its arguments (``jax.jit``)."""
    return ByShape(fn, **options)


def _transform(method: str, fn, argnums, options):
    """``method`` of ``fn`` as JAX gives it: compiled for the shapes of numbers and arrays,
    and, called on expressions (inside a traced function, a loop body, a residual),
    expressions (symdiff.autodiff.at_expressions), so transformations nest."""
    if not callable(fn):
        raise SymdiffError(f"sd.{method} of a function needs a callable, got {fn!r}")
    compiled = getattr(ByShape(fn, argnums, **options), method)
    if method not in at_expressions.METHODS:
        return compiled

    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        signature = None

    def transformed(*arguments, **keywords):
        if at_expressions.involves_expressions((*arguments, *keywords.values())):
            if keywords and signature is not None:  # (tracing binds by keyword)
                bound = signature.bind(*arguments, **keywords)
                bound.apply_defaults()
                arguments, keywords = bound.args, bound.kwargs
            if not keywords:
                return at_expressions.derivative_at(method, fn, argnums, arguments)
        try:
            return compiled(*arguments, **keywords)
        except NotAnArgumentError:  # numbers, but fn reads symbols of an enclosing trace
            if keywords:
                raise
            return at_expressions.derivative_at(method, fn, argnums, arguments)

    transformed.__name__ = method
    transformed.__doc__ = compiled.__doc__
    if signature is not None:  # fn's parameters: it traces and transforms again
        transformed.__signature__ = signature
    for name in ("wait", "save", "for_shapes"):  # the ByShape's, where callers reach
        setattr(transformed, name, getattr(compiled.__self__, name))
    return transformed


def value_and_grad(fn, argnums=None, **options):
    """A function returning (value, gradient) of ``fn`` (``jax.value_and_grad``)."""
    return _transform("value_and_grad", fn, argnums, options)


@functools.lru_cache(maxsize=64)  # (the last functions used; each holds its compiles)
def _numeric(kind: str, fn, count: int) -> ByShape:
    """``fn``'s jvp, vjp or hvp on numbers, compiled by shapes: a function of (primals...,
    tangents...) (``count`` primals; vjp: one cotangent) giving one flat array to split:
    value and tangent stacked (jvp), the parts of all primals one after another (vjp,
    hvp), since a compiled function returns one array."""
    extra = 1 if kind == "vjp" else count
    names = [f"p{k}" for k in range(count)] + [f"t{k}" for k in range(extra)]

    def flat(**named):
        primals = [named[f"p{k}"] for k in range(count)]
        tangents = [named[f"t{k}"] for k in range(extra)]
        if kind == "jvp":
            return stack(at_expressions.jvp_at(fn, primals, tangents))
        if kind == "vjp":
            parts = at_expressions.vjp_at(fn, primals)[1](tangents[0])
        else:
            parts = at_expressions.hvp_at(fn, primals, tangents)
        return concatenate([reshape(p, (p.size,)) for p in parts])
    flat.__signature__ = inspect.Signature(
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names])
    flat.__name__ = flat.__qualname__ = f"{kind} of {function_name(fn)}"  # for messages
    return ByShape(flat)


def _split(values: np.ndarray, like) -> tuple:
    """``values`` cut into one part per array of ``like``, each of its shape (scalars as
    floats)."""
    return tuple(trees.cut(values, [np.shape(item) for item in like]))


def _unstacked(value):
    return float(value) if np.ndim(value) == 0 else value


def jvp(fn, primals, tangents):
    """``(fn(*primals), J @ tangents)`` as ``jax.jvp``: expressions where any primal or
    tangent is one (so it nests inside traced functions and loop bodies), else numbers,
    compiled once per function, count and shapes."""
    primals, tangents = _directional("jvp", primals, tangents)
    if at_expressions.involves_expressions(primals + tangents):
        return at_expressions.jvp_at(fn, primals, tangents)
    try:
        both = _numeric("jvp", fn, len(primals))(*primals, *tangents)
    except NotAnArgumentError:  # fn reads symbols of an enclosing trace: expressions
        return at_expressions.jvp_at(fn, primals, tangents)
    return _unstacked(both[0]), _unstacked(both[1])


def vjp(fn, *primals):
    """``(fn(*primals), pullback)`` as ``jax.vjp``: ``pullback(cotangent)`` is the tuple of
    cotangent @ J_k, one per primal, by reverse mode.  Expressions where a primal (or the
    cotangent) is one, so it nests inside traced functions; else numbers, compiled once
    per function, count and shapes."""
    if not callable(fn):
        raise SymdiffError(f"sd.vjp needs a callable, got {fn!r}")
    if at_expressions.involves_expressions(primals):
        return at_expressions.vjp_at(fn, primals)
    try:
        value = jit(fn)(*primals)
    except NotAnArgumentError:  # fn reads symbols of an enclosing trace: expressions
        return at_expressions.vjp_at(fn, primals)

    def pullback(cotangent):
        if at_expressions.involves_expressions((cotangent,)):
            return at_expressions.vjp_at(fn, primals)[1](cotangent)
        if not pytrees.is_tree(value) and np.shape(cotangent) != np.shape(value):
            raise ShapeError(f"vjp: the cotangent has shape {np.shape(cotangent)}, the "
                             f"function's value {np.shape(value)}")
        return _split(_numeric("vjp", fn, len(primals))(*primals, cotangent), primals)

    return value, pullback


def _directional(method: str, primals, tangents) -> tuple[tuple, tuple]:
    """(primals, tangents) as tuples: ``jax.jvp``'s convention, one of each per argument."""
    if not all(isinstance(v, (tuple, list)) for v in (primals, tangents)):
        raise SymdiffError(f"sd.{method}(f, primals, tangents) takes a tuple of primals and "
                           f"one of tangents, one per argument: sd.{method}(f, (x,), (v,))")
    if len(tangents) != len(primals):
        raise SymdiffError(f"{method} takes one tangent per primal: {len(primals)} primals, "
                           f"{len(tangents)} tangents")
    return tuple(primals), tuple(tangents)


def _hvp_of_function(fn, primals, tangents):
    """H @ tangents of a scalar Python function (one part per primal; one primal: the
    part alone), as expressions or numbers as ``jvp``."""
    primals, tangents = _directional("hvp", primals, tangents)
    if at_expressions.involves_expressions(primals + tangents):
        parts = at_expressions.hvp_at(fn, primals, tangents)
    else:
        try:
            parts = _split(_numeric("hvp", fn, len(primals))(*primals, *tangents), primals)
        except NotAnArgumentError:  # fn reads symbols of an enclosing trace: expressions
            parts = at_expressions.hvp_at(fn, primals, tangents)
    return parts[0] if len(parts) == 1 else parts


def _expressions(f, wrt):
    if isinstance(f, (list, tuple)):
        return [read_expression(x, named(wrt)) for x in f]
    return read_expression(f, named(wrt))


def diff(f, *wrt, simplify: bool = True):
    """The successive partial derivative d^k f / d wrt[0] ... d wrt[k-1] of an expression,
    a string or a SymPy expression (symdiff.autodiff.modes.diff)."""
    return symbolic.diff(read_expression(f, named(wrt)), *wrt, simplify=simplify)


def grad(f, wrt=None, simplify: bool = True, *, argnums=None):
    """Gradient of a scalar expression (a list of expressions, one per variable), or,
    given a Python function, its compiled gradient function as ``jax.grad`` (``wrt`` or
    ``argnums``: argument positions, default all)."""
    if is_python_function(f):
        return _transform("grad", f, wrt if argnums is None else argnums, {})
    return symbolic.grad(read_expression(f, named(wrt)), wrt, simplify)


def jacobian(fs, wrt=None, simplify: bool = True, *, argnums=None):
    """Jacobian of expressions (symdiff.autodiff.modes.jacobian), or, given a Python function, its
    compiled Jacobian function (``jax.jacobian``)."""
    if is_python_function(fs):
        return _transform("jacobian", fs, wrt if argnums is None else argnums, {})
    return symbolic.jacobian(_expressions(fs, wrt), wrt, simplify)


def hessian(f, wrt=None, simplify: bool = True, *, argnums=None):
    """Hessian of a scalar expression (symdiff.autodiff.modes.hessian), or, given a Python function,
    its compiled Hessian function (``jax.hessian``)."""
    if is_python_function(f):
        return _transform("hessian", f, wrt if argnums is None else argnums, {})
    return symbolic.hessian(read_expression(f, named(wrt)), wrt, simplify)


def hvp(f, wrt, v, simplify: bool = True):
    """Hessian-vector product of a scalar expression without forming H
    (symdiff.autodiff.modes.hvp); of a Python function, ``sd.hvp(fn, primals, tangents)``
    (H by all primals, one part per primal), as expressions or compiled numbers as
    ``sd.jvp``."""
    if is_python_function(f):
        return _hvp_of_function(f, wrt, v)
    return symbolic.hvp(read_expression(f, named(wrt)), wrt, v, simplify)
