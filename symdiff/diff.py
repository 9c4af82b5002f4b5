"""Differentiation over the DAG: reverse mode (adjoints) and forward mode (tangents).

Both return ordinary IR, so higher orders are compositions: ``diff`` applies forward
mode once per variable, ``hessian`` runs forward mode over the (optimized) gradient
graph once per variable (forward-over-reverse), never re-deriving entries from scratch.

Zero partials (sign' = 0, constants) are structural: their terms are dropped, the way
JAX drops symbolic zeros, rather than multiplied by 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .errors import SymdiffError
from .ir import OPS, Expr, apply, as_expr, const, free_symbols, symbol, topological_order
from .ops import ONE, ZERO
from .passes import optimize

MINUS_ONE = const(-1.0)


def _times(x: Expr, y: Expr) -> Expr:
    """x * y, skipping multiplications by the structural ones of the derivative rules."""
    if y is ONE:
        return x
    if x is ONE:
        return y
    if y is MINUS_ONE:
        return apply("neg", x)
    if x is MINUS_ONE:
        return apply("neg", y)
    return apply("mul", x, y)


def _total(terms: list[Expr]) -> Expr:
    total = terms[0]
    for term in terms[1:]:
        total = apply("add", total, term)
    return total


def _active(order: list[Expr], variables: set[Expr]) -> set[Expr]:
    """Nodes that depend on at least one of ``variables``."""
    active: set[Expr] = set()
    for node in order:
        if node in variables or any(a in active for a in node.args):
            active.add(node)
    return active


def reverse_mode(seeded: Sequence[tuple[Expr, Expr]], wrt: Sequence[Expr]) -> list[Expr]:
    """Adjoints of ``wrt`` for outputs with given seeds: sum_k seed_k * d out_k / d wrt.

    One reverse topological walk; each node's local partials are built once.
    """
    order = topological_order([out for out, _ in seeded])
    active = _active(order, set(wrt))
    pending: dict[Expr, list[Expr]] = {}
    for out, seed in seeded:
        if out in active and seed is not ZERO:
            pending.setdefault(out, []).append(seed)
    adjoints: dict[Expr, Expr] = {}
    for node in reversed(order):
        terms = pending.pop(node, None)
        if not terms:
            continue
        adjoint = _total(terms)
        if not node.args:
            adjoints[node] = adjoint
            continue
        rule = OPS[node.op].derivative
        for i, arg in enumerate(node.args):
            if arg in active:
                partial = rule(i, node.args, node)
                if partial is not ZERO:
                    pending.setdefault(arg, []).append(_times(adjoint, partial))
    return [adjoints.get(w, ZERO) for w in wrt]


def forward_mode(outputs: Sequence[Expr], tangents: dict[Expr, Expr],
                 order: list[Expr] | None = None) -> list[Expr]:
    """Tangents of ``outputs`` given tangents of some symbols (one forward walk)."""
    if order is None:
        order = topological_order(outputs)
    tangent: dict[Expr, Expr] = {s: t for s, t in tangents.items() if t is not ZERO}
    for node in order:
        if not node.args:
            continue
        rule = None
        terms = []
        for i, arg in enumerate(node.args):
            t = tangent.get(arg)
            if t is None:
                continue
            rule = rule or OPS[node.op].derivative
            partial = rule(i, node.args, node)
            if partial is not ZERO:
                terms.append(_times(partial, t))
        if terms:
            tangent[node] = _total(terms)
    return [tangent.get(out, ZERO) for out in outputs]


def as_expression(f) -> Expr:
    """An expression from an expression, a number or a string (parsed)."""
    if isinstance(f, str):
        from .parser import parse

        return parse(f)
    try:
        return as_expr(f)
    except TypeError:
        raise SymdiffError(f"expected an expression, a number or a string, got "
                           f"{type(f).__name__}") from None


def as_variables(wrt, exprs: Iterable[Expr] = ()) -> list[Expr]:
    """Symbols from symbols or names; ``None`` means the sorted free symbols of ``exprs``."""
    if wrt is None:
        return free_symbols(list(exprs))
    if isinstance(wrt, (str, Expr)):
        wrt = [wrt]
    variables = []
    for item in wrt:
        var = symbol(item) if isinstance(item, str) else item
        if not isinstance(var, Expr) or var.op != "symbol":
            raise SymdiffError(f"can only differentiate with respect to symbols, got {item!r}")
        variables.append(var)
    if len(set(variables)) != len(variables):
        raise SymdiffError("the variables to differentiate by contain a repeated symbol")
    return variables


def diff(f, *wrt, simplify: bool = True) -> Expr:
    """The successive partial derivative d^k f / d wrt[0] ... d wrt[k-1].

    ``diff(f, a, b)`` is d2f/da db; ``diff(f, a, a, a)`` the third derivative.  With no
    ``wrt``, ``f`` must depend on exactly one symbol.
    """
    f = as_expression(f)
    if not wrt:
        symbols = free_symbols([f])
        if len(symbols) != 1:
            names = ", ".join(s.value for s in symbols) or "none"
            raise SymdiffError(f"diff needs the variable(s): the expression depends on {names}")
        wrt = tuple(symbols)
    for var in wrt:
        (x,) = as_variables([var])
        (f,) = forward_mode([f], {x: ONE})
        if simplify:
            (f,) = optimize([f])
    return f


def grad(f, wrt=None, simplify: bool = True) -> list[Expr]:
    """Gradient of a scalar expression by reverse mode: one list entry per variable."""
    f = as_expression(f)
    variables = as_variables(wrt, [f])
    g = reverse_mode([(f, ONE)], variables)
    return optimize(g) if simplify else g


def jacobian(fs, wrt=None, simplify: bool = True) -> list[list[Expr]]:
    """Jacobian of a list of expressions: rows are outputs, columns variables.

    Reverse mode row by row when there are no more outputs than variables, else forward
    mode column by column.
    """
    outputs = [as_expression(f) for f in (fs if isinstance(fs, (list, tuple)) else [fs])]
    variables = as_variables(wrt, outputs)
    if len(outputs) <= len(variables):
        rows = [reverse_mode([(f, ONE)], variables) for f in outputs]
    else:
        order = topological_order(outputs)
        cols = [forward_mode(outputs, {x: ONE}, order) for x in variables]
        rows = [[col[i] for col in cols] for i in range(len(outputs))]
    return optimize(rows) if simplify else rows


def hessian(f, wrt=None, simplify: bool = True) -> list[list[Expr]]:
    """Hessian by forward-over-reverse: one forward walk of the gradient graph per column.

    Only the lower triangle is derived; the matrix holds the same node at (i, j), (j, i).
    """
    f = as_expression(f)
    variables = as_variables(wrt, [f])
    g = optimize(reverse_mode([(f, ONE)], variables))
    n = len(variables)
    h: list[list[Expr]] = [[ZERO] * n for _ in range(n)]
    for j, x in enumerate(variables):
        column = forward_mode(g[j:], {x: ONE})
        for i, entry in enumerate(column, start=j):
            h[i][j] = h[j][i] = entry
    return optimize(h) if simplify else h
