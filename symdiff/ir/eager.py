"""Eager evaluation: ``sd.*`` functions on plain numbers and arrays give numbers.

As ``jnp.*`` does, a public function called with no expression among its arguments
computes its value: it builds the expression of constants as usual and runs the reference
evaluator (symdiff.ir.evaluate) on it, so the numbers come from the op records themselves,
with the conventions of compiled code (relu'(0) = 0, a softplus and a log_softmax that do
not overflow).  An expression anywhere in the arguments (inside lists and tuples too)
leaves the function symbolic, as before; ``sd.const(a)`` makes a constant symbolic.
"""

from __future__ import annotations

import functools

import numpy as np

from symdiff.ir.evaluate import evaluate
from symdiff.ir.nodes import Expr, topological_order


def holds_expr(value) -> bool:
    """True if ``value`` is an expression or a list, tuple, dict or object array with one."""
    if isinstance(value, Expr):
        return True
    if isinstance(value, (list, tuple)):
        return any(holds_expr(v) for v in value)
    if isinstance(value, dict):
        return any(holds_expr(v) for v in value.values())
    if isinstance(value, np.ndarray) and value.dtype.kind == "O":
        return any(holds_expr(v) for v in value.flat)
    return False


def _roots(result, found: list) -> list:
    if isinstance(result, Expr):
        found.append(result)
    elif isinstance(result, (list, tuple)):
        for item in result:
            _roots(item, found)
    return found


def _plain(node: Expr, value):
    """A float for a scalar node, else a writable float64 array of the node's shape."""
    if not node.shape:
        return float(value)
    array = np.asarray(value, dtype=np.float64)
    return array if array.flags.writeable else array.copy()


def _rebuild(result, values):
    if isinstance(result, Expr):
        return _plain(result, next(values))
    if isinstance(result, (list, tuple)):
        return type(result)(_rebuild(item, values) for item in result)
    return result


def eager(function):
    """Make ``function`` (which builds expressions) compute numbers when none of its
    arguments is an expression.  A result that still reads a symbol (a loop body or a
    root's residual that uses a symbol of an enclosing trace) stays an expression."""

    @functools.wraps(function)
    def numeric_or_symbolic(*args, **kwargs):
        if holds_expr(args) or holds_expr(kwargs):
            return function(*args, **kwargs)
        built = function(*args, **kwargs)
        roots = _roots(built, [])
        if not roots or any(n.op == "symbol" for n in topological_order(roots)):
            return built
        return _rebuild(built, iter(evaluate(roots)))

    return numeric_or_symbolic
