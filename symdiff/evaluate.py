"""The reference interpreter: Python floats, NumPy's float64 semantics for inf and nan."""

from __future__ import annotations

from .errors import SymdiffError
from .ir import OPS, Expr, flatten, restructure, topological_order


def _bindings(values, kwargs) -> dict[str, float]:
    bound: dict[str, float] = {}
    for key, value in {**(values or {}), **kwargs}.items():
        name = key.value if isinstance(key, Expr) and key.op == "symbol" else key
        if not isinstance(name, str):
            raise SymdiffError(f"values must be keyed by symbols or names, got {key!r}")
        try:
            bound[name] = float(value)
        except (TypeError, ValueError):
            raise SymdiffError(f"value of {name!r} is not a number: {value!r}") from None
    return bound


def evaluate(exprs, values=None, **kwargs):
    """Evaluate an expression (or a list of them) at ``values`` / keyword arguments.

    Returns a float for one expression and nested lists of floats shaped like a (nested)
    list of expressions.  Each distinct node is computed once.
    """
    single = isinstance(exprs, Expr)
    roots = [exprs] if single else flatten(exprs)
    bound = _bindings(values, kwargs)
    result: dict[Expr, float] = {}
    for node in topological_order(roots):
        if node.op == "const":
            result[node] = node.value
        elif node.op == "symbol":
            try:
                result[node] = bound[node.value]
            except KeyError:
                raise SymdiffError(f"no value given for symbol {node.value!r}") from None
        else:
            result[node] = OPS[node.op].evaluate(*(result[a] for a in node.args))
    if single:
        return result[roots[0]]
    return restructure(exprs, iter([result[r] for r in roots]))
