"""Emit Numba-jitted Python source: one statement per operation, from the op templates."""

from __future__ import annotations

from dataclasses import dataclass, field

from symdiff.ir import OPS, Expr, flatten
from symdiff.printer import to_infix

from .naming import literal, parameter_names, temporary
from .schedule import expanded_lengths, schedule

DECORATOR = '@numba.njit(error_model="numpy")'
COMMENT_CHARS = 60
# x ** n for small integer n is emitted as a product (strength reduction).
MAX_UNROLLED_POWER = 4


@dataclass(frozen=True)
class ArrayParam:
    """A 1-D float64 array parameter whose items stand for the given symbols."""

    name: str
    symbols: tuple[Expr, ...]


@dataclass(frozen=True)
class FunctionSpec:
    """One generated function: positional scalar inputs, optional array inputs, a result.

    ``result`` is an expression (returns a float), a list (1-D array), a list of lists
    (2-D array) or a tuple of those (returns a tuple).
    """

    name: str
    inputs: tuple[Expr, ...]
    result: object
    doc: str
    arrays: tuple[ArrayParam, ...] = field(default=())


class _Names:
    def __init__(self, spec: FunctionSpec):
        self.params = parameter_names([s.value for s in spec.inputs])
        self.of: dict[Expr, str] = dict(zip(spec.inputs, self.params, strict=True))
        for array in spec.arrays:
            for i, sym in enumerate(array.symbols):
                self.of[sym] = f"{array.name}[{i}]"

    def operand(self, node: Expr) -> str:
        if node.op == "const":
            return literal(node.value)
        name = self.of.get(node)
        if name is None:
            raise ValueError(f"symbol {node.value!r} is not an input of the generated function")
        return name


def _power(base: str, exponent: Expr) -> str | None:
    n = exponent.value if exponent.op == "const" else None
    if n is None or n != int(n) or not 2 <= abs(n) <= MAX_UNROLLED_POWER:
        return None
    product = " * ".join([base] * int(abs(n)))
    return product if n > 0 else f"1.0 / ({product})"


def _statement(node: Expr, names: _Names) -> str:
    operands = [names.operand(a) for a in node.args]
    if node.op == "pow":
        reduced = _power(operands[0], node.args[1])
        if reduced is not None:
            return reduced
    return OPS[node.op].emit.format(*operands)


def _result_lines(result, names: _Names, label: str) -> tuple[list[str], str]:
    """Lines that build ``result`` and the expression that returns it."""
    if isinstance(result, Expr):
        return [], names.operand(result)
    if isinstance(result, tuple):
        lines, parts = [], []
        for k, part in enumerate(result):
            more, expr = _result_lines(part, names, f"{label}{k}")
            lines += more
            parts.append(expr)
        return lines, ", ".join(parts)
    rows = list(result)
    if rows and isinstance(rows[0], list):
        ncols = len(rows[0])
        lines = [f"{label} = np.empty(({len(rows)}, {ncols}))"]
        lines += [f"{label}[{i}, {j}] = {names.operand(x)}"
                  for i, row in enumerate(rows) for j, x in enumerate(row)]
    else:
        lines = [f"{label} = np.empty({len(rows)})"]
        lines += [f"{label}[{i}] = {names.operand(x)}" for i, x in enumerate(rows)]
    return lines, label


def emit_function(spec: FunctionSpec) -> str:
    """Source of one njit function (decorator included)."""
    names = _Names(spec)
    params = list(names.params) + [a.name for a in spec.arrays]
    body: list[str] = []
    order = schedule(flatten(spec.result))
    lengths = expanded_lengths(order, COMMENT_CHARS + 1)
    for index, node in enumerate(order):
        name = temporary(index)
        line = f"{name} = {_statement(node, names)}"
        # Name the subexpression where the statement alone does not show it.
        if lengths[node] <= COMMENT_CHARS and any(a.args for a in node.args):
            line += f"  # {to_infix(node)}"
        body.append(line)
        names.of[node] = name
    lines, returned = _result_lines(spec.result, names, "_out")
    body += lines
    body.append(f"return {returned}")
    doc = f'    """{spec.doc}"""\n' if spec.doc else ""
    return (f"{DECORATOR}\ndef {spec.name}({', '.join(params)}):\n{doc}"
            + "".join(f"    {line}\n" for line in body))


def helpers_used(specs: list[FunctionSpec]) -> list[str]:
    """Sources of the helper functions the specs need, in op-name order."""
    used = {n.op for spec in specs for n in schedule(flatten(spec.result))}
    return [OPS[name].helper for name in sorted(used) if OPS[name].helper]


def emit_module(specs: list[FunctionSpec], docstring: str) -> str:
    """A complete module: docstring, imports (math, numba, numpy only), helpers, functions."""
    parts = [f'"""{docstring}\n"""\n\nimport math\n\nimport numba\nimport numpy as np\n']
    parts += helpers_used(specs)
    parts += [emit_function(spec) for spec in specs]
    return "\n\n".join(parts)
