"""Turn what a user hands to ``compile`` into output expressions and input symbols."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import traceback

import numpy as np

from symdiff.autodiff.modes import as_expression
from symdiff.errors import SymdiffError, TraceError
from symdiff.frontend.numpy_arrays import from_elements, operand_elements
from symdiff.frontend.parser import declared_names, parse
from symdiff.frontend.sympy_bridge import from_sympy, is_sympy
from symdiff.ir import trees
from symdiff.ir.nodes import Expr, flatten, symbol, topological_order


def is_python_function(f) -> bool:
    """A Python callable to trace (not an expression, a SymPy object or text)."""
    return callable(f) and not isinstance(f, Expr) and not hasattr(f, "free_symbols")


def named(items) -> list:
    """The names among ``args`` or ``wrt`` (one item, a list, or None; other items such as
    arrays passed over): text reads them as symbols even where they name a constant (e,
    pi)."""
    return sorted(declared_names(items, others="skip"))


def read_expression(value, symbols=()) -> Expr:
    """An expression from what users write: an expression, a number, a string (parsed;
    ``symbols`` declares names such as ``e`` that text otherwise reads as constants) or a
    SymPy expression."""
    if isinstance(value, str):
        return parse(value, symbols)
    if is_sympy(value):
        return from_sympy(value)
    return as_expression(from_elements(value))


def as_outputs(f, symbols=()) -> tuple[list[Expr], bool]:
    """Output expressions of a function result, and whether it is a single scalar.

    Accepts an expression, a number, a string (``symbols``: see ``read_expression``), a
    SymPy expression, or a list/tuple/array (also a SymPy matrix) of those (vector-valued).
    """
    f = operand_elements(f, strings=True)  # np.array of expressions: one array, in its shape
    if hasattr(f, "tolist") and not isinstance(f, Expr):  # numpy object array, SymPy Matrix
        f = f.tolist()
    if isinstance(f, dict):
        raise SymdiffError("the function returns a dict: sd.jit(f) gives pytree results "
                           "back in their structure; sd.compile takes one expression or "
                           "array, or a list of scalars")
    if isinstance(f, (list, tuple)):
        flat = flatten(f, lambda x: read_expression(x, symbols))
        if not flat:
            raise SymdiffError("a vector-valued function needs at least one output")
        return flat, False
    return [read_expression(f, symbols)], True


def function_name(fn) -> str:
    """A Python callable's name for messages: a function's own, a ``functools.partial``'s
    wrapped function's, else its class's."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__name__", None) or type(fn).__name__


def parameters(fn) -> list[inspect.Parameter]:
    """The parameters of a Python function to trace: each becomes a symbol when it is
    passed (those with defaults keep them otherwise).  TraceError for ``*args``,
    ``**kwargs`` and keyword-only parameters without defaults, which have no position."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        raise TraceError(f"cannot read the parameters of {fn!r}; pass an expression") from None
    found = []
    for p in signature.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or (
                p.kind == p.KEYWORD_ONLY and p.default is p.empty):
            raise TraceError(f"cannot trace parameter {p.name!r} of {function_name(fn)}: only "
                             "named parameters become symbols")
        found.append(p)
    return found


# SciPy functions models call, and the spelling that traces.  SciPy's ufuncs
# (scipy.special.expit, gammaln, ...) trace as they are; its Python functions convert
# their argument to a NumPy array, which a symbolic expression is not.
_SCIPY_SPELLINGS = {
    "logsumexp": "sd.logsumexp(x, axis=None, keepdims=False)",
    "softmax": "sd.softmax(x, axis=-1)",
    "log_softmax": "sd.log_softmax(x, axis=-1)",
}


def _library_function(error: BaseException) -> str | None:
    """The SciPy function the user's code called when ``error`` was raised, if it was
    handed an expression (a SciPy error about plain arrays stays what it is)."""
    frames = [frame for frame, _ in traceback.walk_tb(error.__traceback__)]
    for k, frame in enumerate(frames):
        module = frame.f_globals.get("__name__") or ""
        if module == "scipy" or module.startswith("scipy."):
            if not any(_holds_expression(value) for later in frames[k:]
                       for value in later.f_locals.values()):
                return None
            public = module.split("._")[0]  # scipy.special._logsumexp -> scipy.special
            name = getattr(frame.f_code, "co_qualname", frame.f_code.co_name)
            return f"{public}.{name}"
    return None


def _holds_expression(value) -> bool:
    """An expression, or a NumPy object array or a list holding one (what SciPy makes of
    an expression it converts)."""
    if isinstance(value, Expr):
        return True
    if isinstance(value, np.ndarray) and value.dtype == object:
        return any(isinstance(item, Expr) for item in value.flat)
    return isinstance(value, (list, tuple)) and any(isinstance(item, Expr) for item in value)


@contextlib.contextmanager
def library_errors():
    """Errors from inside a SciPy function handed an expression become one error naming
    that function and, where there is one, the sd.* spelling that traces."""
    try:
        yield
    except (TypeError, ValueError, SymdiffError) as error:
        name = _library_function(error)
        if name is None:
            raise
        short = name.rsplit(".", 1)[1]
        hint = (f"; write {_SCIPY_SPELLINGS[short]}" if short in _SCIPY_SPELLINGS else
                "; write it with sd.* or NumPy functions, which trace")
        raise TraceError(f"{name} does not trace symbolic expressions (it converts its "
                         f"arguments to NumPy arrays){hint}") from error


# A traced graph past this many operations is most likely a Python loop unrolled: its
# code, compile time and memory grow with the trip count, where sd.scan and fori_loop
# keep one step's code whatever the count.  Said once per trace, on symdiff's logger.
LARGE_TRACE_OPS = 20_000
LOG = logging.getLogger("symdiff")


def _say_if_unrolled(fn, result) -> None:
    leaves = trees.flatten(result)[0] if trees.is_tree(result) else [result]
    roots = [x for x in leaves if isinstance(x, Expr)]
    if not roots:
        return
    count = sum(1 for n in topological_order(roots) if n.args)
    if count > LARGE_TRACE_OPS:
        LOG.warning("tracing %s gave %d operations: a Python loop is copied once per step "
                    "(code and compile time grow with the trip count); sd.scan or "
                    "sd.fori_loop keep one step's code whatever the count",
                    function_name(fn), count)


def call_on(fn, symbols: dict[str, Expr]):
    """``fn`` called with ``symbols`` by parameter name (positional-only ones by position,
    which is possible because Python's binding made them a leading run)."""
    positional, keywords = [], {}
    for p in parameters(fn):
        if p.name not in symbols:
            continue
        if p.kind == p.POSITIONAL_ONLY:
            positional.append(symbols[p.name])
        else:
            keywords[p.name] = symbols[p.name]
    with library_errors():
        result = fn(*positional, **keywords)
    _say_if_unrolled(fn, result)
    return result


def trace(fn, args) -> tuple[object, list[Expr]]:
    """Call a Python function on the symbols ``args`` (names stand for scalar symbols),
    in order of its parameters; those with defaults and not in ``args`` keep their
    default (a constant).  Returns the function's result and the symbols passed."""
    params = [p for p in parameters(fn) if p.kind != p.KEYWORD_ONLY]
    required = sum(p.default is p.empty for p in params)
    given = [a if isinstance(a, Expr) else symbol(a) for a in (
        [args] if isinstance(args, (str, Expr)) else args)]
    if not required <= len(given) <= len(params):
        takes = (f"{len(params)} parameters" if required == len(params) else
                 f"{required} to {len(params)} parameters ({len(params) - required} "
                 "with defaults)")
        raise TraceError(f"{function_name(fn)} takes {takes} but args lists {len(given)}")
    with library_errors():
        result = fn(*given)
    _say_if_unrolled(fn, result)
    return result, given
