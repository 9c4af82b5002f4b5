"""Infix printing with minimal parentheses; ``parse(to_infix(e)) is e`` for every node.

Printing is iterative.  A DAG with heavy sharing can expand to a tree far larger than
the graph; past ``MAX_INFIX_CHARS`` characters ``str()`` switches to ``to_let_form``,
which names shared subexpressions instead of repeating them.
"""

from __future__ import annotations

import math

from symdiff.errors import SymdiffError
from symdiff.ir.index_keys import key_text
from symdiff.ir.nodes import OPS, Expr, install_methods, topological_order

MAX_INFIX_CHARS = 10_000_000

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
    if node.op == "array":
        return f"array{node.shape}", ATOM
    text = format_number(node.value)
    return text, UNARY if text.startswith("-") else ATOM


def _precedence(node: Expr, names: dict[Expr, str]) -> int:
    if node in names:
        return ATOM
    if not node.args:
        return _leaf(node)[1]
    op = OPS[node.op]
    return ATOM if op.infix is None else op.precedence


def _numpy_pieces(node: Expr, names: dict[Expr, str]) -> list | None:
    """Indexing and reductions in NumPy's notation (``y[1:]``, ``sum(M, axis=0)``)."""
    if node.op == "index":
        text = key_text(node.value)
        arg = node.args[0]
        operand = [arg] if _precedence(arg, names) == ATOM else ["(", arg, ")"]
        return operand + [f"[{text}]"]
    if node.op in ("sum", "amax") and node.value is not None:
        axes, keepdims = node.value
        extra = "" if axes is None else f", axis={axes[0] if len(axes) == 1 else tuple(axes)}"
        return [f"{node.op}(", node.args[0], extra + ", keepdims=True" * keepdims + ")"]
    return None


def _pieces(node: Expr, names: dict[Expr, str]) -> list:
    """The text of ``node`` as a list of strings and operand nodes still to print."""
    op = OPS[node.op]
    numpy_form = _numpy_pieces(node, names)
    if numpy_form is not None:
        return numpy_form
    if op.infix is None:
        pieces = [f"{node.op}("]
        for i, arg in enumerate(node.args):
            pieces += [", "] * (i > 0) + [arg]
        if node.value is not None:  # array ops print their parameters (not parseable)
            pieces.append(f"; {op.describe(node) if op.describe else node.value}")
        return pieces + [")"]
    prec = op.precedence

    def wrapped(arg, needs_parens):
        return ["(", arg, ")"] if needs_parens else [arg]

    if op.arity == 1:
        return ["-"] + wrapped(node.args[0], _precedence(node.args[0], names) <= UNARY)
    left, right = node.args
    lp, rp = _precedence(left, names), _precedence(right, names)
    if node.op == "pow":
        # The base of ** must be an atom; the exponent may be a unary or a power.
        return wrapped(left, lp <= prec) + ["**"] + wrapped(right, rp < UNARY)
    # Same-precedence right operands keep their parentheses (the tree is left-nested);
    # unary right operands get them for readability: a*(-b), a - (-1).
    sep = f" {op.infix} " if prec == 10 else op.infix
    return wrapped(left, lp < prec) + [sep] + wrapped(right, rp <= prec or rp == UNARY)


def _write(root: Expr, names: dict[Expr, str]) -> str:
    """Print the tree of ``root`` iteratively; nodes in ``names`` print as their name."""
    out: list[str] = []
    stack: list = [root]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif item in names and item is not root:
            out.append(names[item])
        elif not item.args:
            out.append(_leaf(item)[0])
        else:
            stack.extend(reversed(_pieces(item, names)))
    return "".join(out)


def _tree_size_exceeds(roots, limit: int) -> bool:
    size: dict[Expr, int] = {}
    for node in topological_order(roots):
        if node.args:  # operator or call text, and room for one pair of parentheses
            own = len(node.op) + 2 if OPS[node.op].infix is None else 5
        else:
            own = len(_leaf(node)[0])
        size[node] = min(limit + 1, own + sum(size[a] for a in node.args))
    return any(size[r] > limit for r in roots)


def summary(node: Expr, limit: int = 160) -> str:
    """Infix text of ``node``, cut to about ``limit`` characters (for descriptions)."""
    if _tree_size_exceeds([node], limit):
        return f"<{node.op} of {sum(1 for n in topological_order([node]) if n.args)} ops>"
    return _write(node, {})


def to_infix(node: Expr) -> str:
    """Readable infix text of one expression (let-form when the tree would be huge)."""
    if _tree_size_exceeds([node], MAX_INFIX_CHARS):
        return to_let_form([node])
    return _write(node, {})


def to_let_form(exprs, names=None) -> str:
    """Print expressions as a sequence of bindings, naming every node used more than once.

    Output lines look like ``_1 = a + b`` and end with ``out0 = ...`` (or the given
    ``names`` of the outputs); the text is for reading, not for ``sd.parse``.  ``exprs``:
    one expression or a list of them.
    """
    roots = [exprs] if isinstance(exprs, Expr) else list(exprs)
    names_out = [f"out{i}" for i in range(len(roots))] if names is None else list(names)
    if len(names_out) != len(roots):
        raise SymdiffError(f"to_let_form: {len(roots)} expressions, {len(names_out)} names")
    order = topological_order(roots)
    uses: dict[Expr, int] = {}
    for n in order:
        for a in n.args:
            uses[a] = uses.get(a, 0) + 1
    names: dict[Expr, str] = {}
    lines = []
    for n in order:
        if n.args and uses.get(n, 0) > 1:
            names[n] = f"_{len(names) + 1}"
            lines.append(f"{names[n]} = {_write(n, names)}")
    lines += [f"{name} = {_write(r, names)}" for name, r in zip(names_out, roots, strict=True)]
    return "\n".join(lines)


install_methods(__str__=to_infix, __repr__=to_infix)  # str(expr) is its infix text
