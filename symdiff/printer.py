"""Infix printing with minimal parentheses; ``parse(to_infix(e)) is e`` for every node.

Printing is iterative.  A DAG with heavy sharing can expand to a tree far larger than
the graph; past ``MAX_INFIX_CHARS`` characters ``str()`` switches to ``to_let_form``,
which names shared subexpressions instead of repeating them.
"""

from __future__ import annotations

import math

from .ir import OPS, Expr, topological_order

MAX_INFIX_CHARS = 2_000_000

ATOM = 50
UNARY = 30


def format_number(value: float) -> str:
    """A number as text that Python (and ``sd.parse``) reads back to the same float."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0.0 and math.copysign(1.0, value) < 0:
        return "-0.0"
    if value == int(value) and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def _leaf(node: Expr) -> tuple[str, int]:
    if node.op == "symbol":
        return node.value, ATOM
    text = format_number(node.value)
    return text, UNARY if text.startswith("-") else ATOM


def _combine(node: Expr, operands: list[tuple[str, int]]) -> tuple[str, int]:
    op = OPS[node.op]
    if op.infix is None:
        return f"{node.op}({', '.join(text for text, _ in operands)})", ATOM
    prec = op.precedence
    if op.arity == 1:
        text, p = operands[0]
        return f"-({text})" if p <= UNARY else f"-{text}", UNARY
    (left, lp), (right, rp) = operands
    if node.op == "pow":
        # The base of ** must be an atom; the exponent may be a unary or a power.
        left = left if lp > prec else f"({left})"
        right = right if rp >= UNARY else f"({right})"
        return f"{left}**{right}", prec
    left = left if lp >= prec else f"({left})"
    # Same-precedence right operands keep their parentheses (the tree is left-nested);
    # unary right operands get them for readability: a*(-b), a - (-1).
    right = right if rp > prec and rp != UNARY else f"({right})"
    sep = f" {op.infix} " if prec == 10 else op.infix
    return f"{left}{sep}{right}", prec


def _tree_size_exceeds(roots, limit: int) -> bool:
    size: dict[Expr, int] = {}
    for node in topological_order(roots):
        own = len(node.value) if node.op == "symbol" else (8 if node.op == "const" else 6)
        size[node] = min(limit + 1, own + sum(size[a] for a in node.args))
    return any(size[r] > limit for r in roots)


def to_infix(node: Expr) -> str:
    """Readable infix text of one expression (let-form when the tree would be huge)."""
    if _tree_size_exceeds([node], MAX_INFIX_CHARS):
        return to_let_form([node])
    done: dict[Expr, tuple[str, int]] = {}
    for n in topological_order([node]):
        done[n] = _leaf(n) if not n.args else _combine(n, [done[a] for a in n.args])
    return done[node][0]


def to_let_form(exprs) -> str:
    """Print expressions as a sequence of bindings, naming every node used more than once.

    Output lines look like ``_1 = a + b`` and end with ``out0 = ...``; the text is for
    reading, not for ``sd.parse``.
    """
    roots = list(exprs)
    order = topological_order(roots)
    uses: dict[Expr, int] = {}
    for n in order:
        for a in n.args:
            uses[a] = uses.get(a, 0) + 1
    done: dict[Expr, tuple[str, int]] = {}
    lines = []
    for n in order:
        text = _leaf(n) if not n.args else _combine(n, [done[a] for a in n.args])
        if n.args and uses.get(n, 0) > 1:
            name = f"_{len(lines) + 1}"
            lines.append(f"{name} = {text[0]}")
            text = (name, ATOM)
        done[n] = text
    lines += [f"out{i} = {done[r][0]}" for i, r in enumerate(roots)]
    return "\n".join(lines)
