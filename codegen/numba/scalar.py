"""The Numba lowering of scalar code: one Python statement per operation, rendered from
the element table (codegen.numba.elements) along the walk shared with the LLVM lowering
(codegen.walker); results written into arrays and tuples; and batched functions, the
scalar body once per point in a ``prange``."""

from __future__ import annotations

import re

from symdiff.ir.nodes import Expr, flatten
from symdiff.ir.printer import to_infix

from ..bodies import has_loops
from ..naming import POINT, input_names, literal, temporary, unrolled_power
from ..schedule import expanded_lengths, schedule
from ..spec import FunctionSpec
from ..walker import Walk
from .elements import element

COMMENT_CHARS = 60


class Names:
    """The names of a function's inputs: scalar parameters, and array parameters' items."""

    def __init__(self, spec: FunctionSpec):
        self.params = input_names(spec)
        self.of: dict[Expr, str] = dict(zip(spec.inputs, self.params, strict=True))
        for array in spec.arrays:
            for i, sym in enumerate(array.symbols):
                self.of[sym] = f"{array.name}[{i}]"


def placeholders(inputs, params) -> dict[str, str]:
    """The parameter names of the inputs that are symdiff's own symbols (``$scan0_c0``),
    by symbol name: what formula comments show in their places."""
    return {sym.value: p for sym, p in zip(inputs, params, strict=True)
            if sym.value.startswith("$")}


def formula(node: Expr, shown: dict[str, str]) -> str:
    """The infix text of ``node`` with the placeholders in ``shown`` as the code names
    them (``carry_c0``, not ``$scan0_c0``)."""
    text = to_infix(node)
    if shown and "$" in text:
        text = _SYMBOL.sub(lambda m: shown.get(m.group(0), m.group(0)), text)
    return text


_SYMBOL = re.compile(r"\$\w+")


def product(base: str, n: int) -> str:
    """``base ** n`` for an unrolled power n: |n| factors (inverted for n < 0)."""
    factors = " * ".join([base] * abs(n))
    return factors if n > 0 else f"1.0 / ({factors})"


def statement(node: Expr, operand, loop: bool = False) -> str:
    """The Python/Numba expression of one element of ``node``, given operand names;
    ``loop``: inside a loop over array elements, where vectorizable templates exist."""
    operands = [operand(a) for a in node.args]
    n = unrolled_power(node.args[1]) if node.op == "pow" else None
    if n is not None:
        return product(operands[0], n)
    return element(node.op, loop).template.format(*operands)


class Statements:
    """The Numba rendering of the scalar walk (codegen.walker.Renderer): one assignment
    per operation, with its formula as a comment where the statement alone does not show
    it and the formula is short."""

    def __init__(self, order: list[Expr], shown: dict[str, str]):
        self.lines: list[str] = []
        self.lengths = expanded_lengths(order, COMMENT_CHARS + 1)
        self.shown = shown

    temporary = staticmethod(temporary)
    constant = staticmethod(literal)

    @staticmethod
    def leaf(node: Expr) -> str:
        raise ValueError(f"symbol {node.value!r} is not an input of the generated function")

    def power(self, name: str, base: str, n: int, node: Expr) -> str:
        return self.assign(name, product(base, n), node)

    def operation(self, name: str, operands: list[str], node: Expr) -> str:
        return self.assign(name, element(node.op).template.format(*operands), node)

    def assign(self, name: str, text: str, node: Expr) -> str:
        line = f"{name} = {text}"
        if self.lengths[node] <= COMMENT_CHARS and any(a.args for a in node.args):
            line += f"  # {formula(node, self.shown)}"
        self.lines.append(line)
        return name


def scalar_body(spec: FunctionSpec, names: dict) -> tuple[list[str], Walk]:
    """The statements of a scalar function's body, and the walk that made them (its
    ``operand`` names the results); ``names``: the inputs' names.  Comments show
    placeholders by their parameter names in loop bodies (``spec.params``) only: other
    functions' source is the saved-module format."""
    order = schedule(flatten(spec.result))
    shown = placeholders(spec.inputs, spec.params) if spec.params else {}
    statements = Statements(order, shown)
    walk = Walk(order, statements, names)
    walk.run()
    return statements.lines, walk


def result_lines(result, operand, label: str) -> tuple[list[str], str]:
    """Lines that build ``result`` and the expression that returns it."""
    if isinstance(result, Expr):
        return [], operand(result)
    if isinstance(result, tuple):
        lines, parts = [], []
        for k, part in enumerate(result):
            more, expr = result_lines(part, operand, f"{label}{k}")
            lines += more
            parts.append(expr)
        return lines, f"({', '.join(parts)}{',' if len(parts) == 1 else ''})"
    rows = list(result)
    if rows and isinstance(rows[0], list):
        ncols = len(rows[0])
        lines = [f"{label} = np.empty(({len(rows)}, {ncols}))"]
        lines += [f"{label}[{i}, {j}] = {operand(x)}"
                  for i, row in enumerate(rows) for j, x in enumerate(row)]
    else:
        lines = [f"{label} = np.empty({len(rows)})"]
        lines += [f"{label}[{i}] = {operand(x)}" for i, x in enumerate(rows)]
    return lines, label


def _positions(result, at: str, found: dict) -> dict:
    """Where each node of ``result`` is in what its function returns (``at``)."""
    if isinstance(result, tuple):
        for k, part in enumerate(result):
            _positions(part, f"{at}[{k}]", found)
    elif isinstance(result, Expr):
        found.setdefault(result, at)
    elif result and isinstance(result[0], list):
        for i, row in enumerate(result):
            for j, x in enumerate(row):
                found.setdefault(x, f"{at}[{i}, {j}]")
    else:
        for i, x in enumerate(result):
            found.setdefault(x, f"{at}[{i}]")
    return found


def batched_body(spec: FunctionSpec, names: Names) -> tuple[list[str], str]:
    """One prange loop over points; inside it, the scalar body of the function (or, for
    a function with loops, a call of its one-point function: codegen.module.point_specs)."""
    first = names.params[0]
    lines = [f"_np = {first}.shape[0]"]
    for p in names.params[1:]:
        lines += [f"if {p}.shape[0] != _np:",
                  f'    raise ValueError("argument {p} has another number of points than {first}")']
    for sym, p in zip(spec.inputs, names.params, strict=True):
        names.of[sym] = f"{p}[_p]"
    if has_loops(spec.result):
        arguments = ", ".join(f"{p}[_p]" for p in names.params)
        inner = [f"_pt = {POINT}{spec.name}({arguments})"]
        at = _positions(spec.result, "_pt", {})
        allocs, writes, returned = _batched_result(spec.result, at.__getitem__, "_out")
    else:
        inner, walk = scalar_body(spec, names.of)
        allocs, writes, returned = _batched_result(spec.result, walk.operand, "_out")
    lines += allocs + ["for _p in numba.prange(_np):"]
    lines += ["    " + line for line in inner + writes]
    return lines, returned


def _batched_result(result, operand, label):
    """Allocations, per-point writes and the return expression of a batched result."""
    if isinstance(result, tuple):
        allocs, writes, parts = [], [], []
        for k, part in enumerate(result):
            a, w, r = _batched_result(part, operand, f"{label}{k}")
            allocs, writes, parts = allocs + a, writes + w, parts + [r]
        return allocs, writes, f"({', '.join(parts)}{',' if len(parts) == 1 else ''})"
    if isinstance(result, Expr):
        return [f"{label} = np.empty(_np)"], [f"{label}[_p] = {operand(result)}"], label
    rows = list(result)
    if rows and isinstance(rows[0], list):
        alloc = f"{label} = np.empty((_np, {len(rows)}, {len(rows[0])}))"
        writes = [f"{label}[_p, {i}, {j}] = {operand(x)}" for i, row in enumerate(rows)
                  for j, x in enumerate(row)]
    else:
        alloc = f"{label} = np.empty((_np, {len(rows)}))"
        writes = [f"{label}[_p, {i}] = {operand(x)}" for i, x in enumerate(rows)]
    return [alloc], writes, label
