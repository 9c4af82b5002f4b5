"""Turn what a user hands to ``compile`` into output expressions and input symbols."""

from __future__ import annotations

import inspect

from .diff import as_expression
from .errors import SymdiffError, TraceError
from .ir import Expr, flatten, symbol


def _is_sympy(value) -> bool:
    module = type(value).__module__ or ""
    return module.startswith("sympy")


def _one(value) -> Expr:
    if _is_sympy(value):
        from .sympy_bridge import from_sympy

        return from_sympy(value)
    return as_expression(value)


def as_outputs(f) -> tuple[list[Expr], bool]:
    """Output expressions of a function result, and whether it is a single scalar.

    Accepts an expression, a number, a string, a SymPy expression, or a list/tuple/array
    (also a SymPy matrix) of those (vector-valued).
    """
    if hasattr(f, "tolist") and not isinstance(f, Expr):  # numpy object array, SymPy Matrix
        f = f.tolist()
    if isinstance(f, (list, tuple)):
        flat = flatten(f, _one)
        if not flat:
            raise SymdiffError("a vector-valued function needs at least one output")
        return flat, False
    return [_one(f)], True


def trace(fn, args=None) -> tuple[object, list[Expr]]:
    """Call a Python function on symbols named after its parameters.

    ``args`` may give the symbols to pass instead (for array parameters, with their
    shapes); names in it stand for scalar symbols.  Parameters with a default value keep
    it (a constant) unless ``args`` lists them too.  Returns the function's result and
    the symbols passed, in order.
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        raise TraceError(f"cannot read the parameters of {fn!r}; pass an expression") from None
    params, required = [], 0
    for p in signature.parameters.values():
        if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            raise TraceError(f"cannot trace parameter {p.name!r} of {fn.__name__}: only plain "
                             "positional parameters become symbols")
        params.append(symbol(p.name))
        required += p.default is p.empty
    if args is None:
        params = params[:required]  # the others keep their defaults
    else:
        given = [a if isinstance(a, Expr) else symbol(a) for a in (
            [args] if isinstance(args, (str, Expr)) else args)]
        if not required <= len(given) <= len(params):
            takes = (f"{len(params)} parameters" if required == len(params) else
                     f"{required} to {len(params)} parameters ({len(params) - required} "
                     "with defaults)")
            raise TraceError(f"{fn.__name__} takes {takes} but args lists {len(given)}")
        params = given
    return fn(*params), params
