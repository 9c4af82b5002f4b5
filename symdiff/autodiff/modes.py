"""Differentiation over the DAG: reverse mode (adjoints) and forward mode (tangents).

Both return ordinary IR, so higher orders are compositions: ``diff`` applies forward
mode once per variable, ``hessian`` runs forward mode over the (optimized) gradient
graph once per variable (forward-over-reverse), never re-deriving entries from scratch.

Zero partials (sign' = 0, constants) are structural: their terms are dropped, the way
JAX drops symbolic zeros, rather than multiplied by 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from symdiff.errors import ShapeError, SymdiffError
from symdiff.ir.dims import has_open
from symdiff.ir.nodes import (
    OPS,
    Expr,
    apply,
    as_expr,
    const,
    fold,
    free_symbols,
    symbol,
    topological_order,
)
from symdiff.ops.arrays import concatenate, reshape, stack, transpose
from symdiff.ops.elementwise import ONE, ZERO
from symdiff.ops.structural import broadcast_to, sum_to, zeros
from symdiff.passes.pipeline import optimize

MINUS_ONE = const(-1.0)


def _times(x: Expr, y: Expr) -> Expr:
    """x * y, skipping multiplications by the structural ones of the derivative rules and
    gathering constant factors into one: the chain rule's 10000 * (2 * u) is 20000 * u
    (the derivative's own form, chosen here; the optimizer never reassociates)."""
    if y is ONE:
        return x
    if x is ONE:
        return y
    if y is MINUS_ONE:
        return apply("neg", x)
    if x is MINUS_ONE:
        return apply("neg", y)
    if y.op == "const" and x.op != "const":
        x, y = y, x
    if x.op == "const" and not x.shape:
        factor, rest = _constant_factor(y)
        if factor is not None:
            return _times(const(x.value * factor), rest)
    return apply("mul", x, y)


def _constant_factor(y: Expr):
    """(c, z) with y = c * z for a constant c (a product with a constant, a negation)."""
    if y.op == "neg":
        factor, rest = _constant_factor(y.args[0])
        return (-1.0, y.args[0]) if factor is None else (-factor, rest)
    if y.op == "mul":
        for k in (0, 1):
            if y.args[k].op == "const" and not y.args[k].shape and y.args[1 - k].op != "const":
                return y.args[k].value, y.args[1 - k]
    return None, y


def _active(order: list[Expr], variables: set[Expr]) -> set[Expr]:
    """Nodes that depend on at least one of ``variables``."""
    active: set[Expr] = set()
    for node in order:
        if node in variables or any(a in active for a in node.args):
            active.add(node)
    return active


def _contribution(node: Expr, i: int, adjoint: Expr) -> Expr | None:
    """What ``node``'s adjoint adds to the adjoint of operand i (None: nothing)."""
    op = OPS[node.op]
    if not op.elementwise:
        return op.vjp(i, node, adjoint)
    partial = op.derivative(i, node.args, node)
    if partial is ZERO:
        return None
    return sum_to(_times(adjoint, partial), node.args[i].shape)


def _tangent(node: Expr, tangents: list) -> Expr | None:
    """The tangent of ``node`` from its operands' tangents (None entries are zero)."""
    op = OPS[node.op]
    if not op.elementwise:
        return op.jvp(node, tangents)
    terms = []
    for i, t in enumerate(tangents):
        if t is not None:
            partial = op.derivative(i, node.args, node)
            if partial is not ZERO:
                terms.append(_times(partial, t))
    return broadcast_to(fold("add", terms), node.shape) if terms else None


class _Siblings:
    """The outputs of multi-output ops (loops) in a reverse walk: a group's outputs are
    differentiated together (one joint VJP) once the last of them is reached, when all
    their users have been."""

    def __init__(self, order: list[Expr], active: set[Expr]):
        self.active = active
        self.unvisited: dict[tuple, int] = {}  # outputs of each group not reached yet
        self.gathered: dict[tuple, dict] = {}  # adjoints of each group's outputs so far
        for node in order:
            if self.holds(node):
                key = _group(node)
                self.unvisited[key] = self.unvisited.get(key, 0) + 1

    def holds(self, node: Expr) -> bool:
        """Whether ``node`` is an active output of a multi-output op."""
        return bool(node.args) and OPS[node.op].joint_vjp is not None and node in self.active

    def reach(self, node: Expr, terms, pending: dict) -> None:
        """Record ``node``'s adjoint terms; the group's last output sends the joint VJP's
        contributions to the operands' pending terms."""
        key = _group(node)
        group = self.gathered.setdefault(key, {})
        if terms:
            group[node.value[1]] = fold("add", terms)
        self.unvisited[key] -= 1
        if self.unvisited[key] or not group:
            return
        needed = [arg in self.active for arg in node.args]
        contributions = OPS[node.op].joint_vjp(node, group, needed)
        for arg, contribution in zip(node.args, contributions, strict=True):
            if arg in self.active and contribution is not None:
                pending.setdefault(arg, []).append(contribution)


def _group(node: Expr) -> tuple:
    # Outputs of one loop share the op, the operands and the body (value[0]).
    return (node.op, node.args, node.value[0])


def reverse_mode(seeded: Sequence[tuple[Expr, Expr]], wrt: Sequence[Expr]) -> list[Expr]:
    """Adjoints of ``wrt`` for outputs with given seeds: sum_k seed_k * d out_k / d wrt.

    One reverse topological walk; each node's local partials are built once.  Seeds
    have their output's shape (or broadcast to it); adjoints have their symbol's shape.
    """
    order = topological_order([out for out, _ in seeded])
    active = _active(order, set(wrt))
    pending: dict[Expr, list[Expr]] = {}
    for out, seed in seeded:
        if out in active and seed is not ZERO:
            pending.setdefault(out, []).append(broadcast_to(seed, out.shape))
    adjoints: dict[Expr, Expr] = {}
    siblings = _Siblings(order, active)
    for node in reversed(order):
        terms = pending.pop(node, None)
        if siblings.holds(node):
            siblings.reach(node, terms, pending)
            continue
        if not terms:
            continue
        adjoint = fold("add", terms)
        if not node.args:
            adjoints[node] = adjoint
            continue
        for i, arg in enumerate(node.args):
            if arg in active:
                contribution = _contribution(node, i, adjoint)
                if contribution is not None:
                    pending.setdefault(arg, []).append(contribution)
    return [adjoints[w] if w in adjoints else zeros(w.shape) for w in wrt]


def forward_mode(outputs: Sequence[Expr], tangents: dict[Expr, Expr],
                 order: list[Expr] | None = None) -> list[Expr]:
    """Tangents of ``outputs`` given tangents of some symbols (one forward walk)."""
    if order is None:
        order = topological_order(outputs)
    tangent: dict[Expr, Expr] = {s: broadcast_to(t, s.shape) for s, t in tangents.items()
                                 if t is not ZERO}
    for node in order:
        if node.args:
            incoming = [tangent.get(arg) for arg in node.args]
            if any(t is not None for t in incoming):
                t = _tangent(node, incoming)
                if t is not None:
                    tangent[node] = t
    return [tangent[out] if out in tangent else zeros(out.shape) for out in outputs]


def as_expression(f) -> Expr:
    """An expression from an expression or a number (text and SymPy are read by the
    frontend: symdiff.frontend.trace.read_expression)."""
    try:
        return as_expr(f)
    except TypeError:
        raise SymdiffError(f"expected an expression or a number, got "
                           f"{type(f).__name__}") from None


def as_variables(wrt, exprs: Iterable[Expr] = ()) -> list[Expr]:
    """Symbols from symbols or names; ``None`` means the sorted free symbols of ``exprs``.

    A name resolves to the symbol of that name in ``exprs`` (keeping its shape), else to
    a new scalar symbol.
    """
    exprs = list(exprs)
    if wrt is None:
        return free_symbols(exprs)
    if isinstance(wrt, (str, Expr)):
        wrt = [wrt]
    by_name = {s.value: s for s in free_symbols(exprs)} if any(
        isinstance(item, str) for item in wrt) else {}
    variables = []
    for item in wrt:
        # A name means the symbol of that name in the expressions (with its shape).
        if isinstance(item, str):
            var = by_name[item] if item in by_name else symbol(item)
        else:
            var = item
        if not isinstance(var, Expr) or var.op != "symbol":
            raise SymdiffError(f"can only differentiate with respect to symbols, got {item!r}")
        variables.append(var)
    if len(set(variables)) != len(variables):
        raise SymdiffError("the variables to differentiate by contain a repeated symbol")
    return variables


def diff(f, *wrt, simplify: bool = True) -> Expr:
    """The successive partial derivative d^k f / d wrt[0] ... d wrt[k-1].

    ``diff(f, a, b)`` is d2f/da db; ``diff(f, a, a, a)`` the third derivative.  With no
    ``wrt``, ``f`` must depend on exactly one symbol.  By an array symbol, the derivative
    of a scalar is its gradient, shaped like the symbol.
    """
    f = as_expression(f)
    if not wrt:
        symbols = free_symbols([f])
        if len(symbols) != 1:
            names = ", ".join(s.value for s in symbols) or "none"
            raise SymdiffError(f"diff needs the variable(s): the expression depends on {names}")
        wrt = tuple(symbols)
    for var in wrt:
        (x,) = as_variables([var], [f])
        if x.shape:  # by an array symbol: the gradient, shaped like the symbol
            if f.shape:
                raise ShapeError(f"diff of an array expression by the array {x.value}: "
                                 "use jacobian")
            (f,) = reverse_mode([(f, ONE)], [x])
        else:
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


def _basis(var: Expr, k: int) -> Expr:
    """The unit tangent of ``var`` along its k-th element (C order)."""
    if not var.shape:
        return ONE
    position = tuple(("i", int(i)) for i in np.unravel_index(k, var.shape))
    return apply("embed", ONE, payload=(position, var.shape))


def _flat(exprs: Sequence[Expr]) -> Expr:
    """One vector of all elements of ``exprs`` (C order), for array Jacobians/Hessians."""
    parts = [reshape(e, (e.size,)) for e in exprs]
    return concatenate(parts) if len(parts) > 1 else parts[0]


def _check_static(exprs: Sequence[Expr], what: str) -> None:
    for e in exprs:
        if has_open(e.shape):
            raise SymdiffError(f"{what} needs static shapes; {e} has an open dimension")


def jacobian(fs, wrt=None, simplify: bool = True):
    """Jacobian of expressions with respect to variables.

    Scalar outputs and scalar variables give a list of lists (rows are outputs).  With
    arrays, outputs and variables are flattened in C order and the result is one (m, n)
    expression.  Reverse mode row by row when there are no more outputs than
    variables, else forward mode column by column.
    """
    outputs = [as_expression(f) for f in (fs if isinstance(fs, (list, tuple)) else [fs])]
    variables = as_variables(wrt, outputs)
    arrays = any(e.shape for e in outputs + variables)
    if arrays:
        _check_static(outputs + variables, "jacobian")
        flat = _flat(outputs)
        m = flat.shape[0]
        sizes = [v.size for v in variables]
        if m <= sum(sizes):
            rows = [_flat(reverse_mode([(flat, _basis(flat, k))], variables)) for k in range(m)]
        else:
            order = topological_order([flat])
            cols = [forward_mode([flat], {v: _basis(v, k)}, order)[0]
                    for v, size in zip(variables, sizes, strict=True) for k in range(size)]
            rows = [transpose(stack(cols, axis=0))]
        result = stack(rows, axis=0) if len(rows) > 1 or rows[0].ndim == 1 else rows[0]
        return optimize(result) if simplify else result
    if len(outputs) <= len(variables):
        rows = [reverse_mode([(f, ONE)], variables) for f in outputs]
    else:
        order = topological_order(outputs)
        cols = [forward_mode(outputs, {x: ONE}, order) for x in variables]
        rows = [[col[i] for col in cols] for i in range(len(outputs))]
    return optimize(rows) if simplify else rows


def hessian(f, wrt=None, simplify: bool = True):
    """Hessian by forward-over-reverse: one forward walk of the gradient graph per column.

    For scalar variables a list of lists; only the lower triangle is derived and the
    matrix holds the same node at (i, j) and (j, i).  With array variables one (n, n)
    expression over all their elements (C order).
    """
    f = as_expression(f)
    variables = as_variables(wrt, [f])
    g = grad(f, variables)
    if any(v.shape for v in variables):
        _check_static(variables, "hessian")
        flat = _flat(g)
        order = topological_order([flat])
        cols = [forward_mode([flat], {v: _basis(v, k)}, order)[0]
                for v in variables for k in range(v.size)]
        result = stack(cols, axis=1)
        return optimize(result) if simplify else result
    n = len(variables)
    h: list[list[Expr]] = [[ZERO] * n for _ in range(n)]
    for j, x in enumerate(variables):
        column = forward_mode(g[j:], {x: ONE})
        for i, entry in enumerate(column, start=j):
            h[i][j] = h[j][i] = entry
    return optimize(h) if simplify else h


def hvp(f, wrt, v, simplify: bool = True):
    """Hessian-vector product H v by forward-over-reverse, without forming H.

    ``wrt`` is a symbol (``v`` an expression of its shape) or a list of symbols (``v`` a
    list of the same shapes); the result has the same structure.
    """
    f = as_expression(f)
    single = isinstance(wrt, (str, Expr))
    variables = as_variables(wrt, [f])
    directions = [as_expr(d) for d in ([v] if single else v)]
    if len(directions) != len(variables):
        raise SymdiffError("hvp needs one direction per variable")
    for var, d in zip(variables, directions, strict=True):
        if d.shape not in (var.shape, ()):
            raise ShapeError(f"direction of shape {d.shape} for {var.value} of shape {var.shape}")
    result = forward_mode(grad(f, variables), dict(zip(variables, directions, strict=True)))
    if simplify:
        result = optimize(result)
    return result[0] if single else result
