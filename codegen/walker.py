"""The walk every scalar lowering makes over a function's graph: the order of its
operations, the names of their values, constants and powers.  A backend supplies only its
rendering (``Renderer``): the Numba lowering one Python statement per operation
(codegen.numba.scalar), the LLVM lowering one instruction (codegen.llvm.emit).

The walk computes the nodes in ``codegen.schedule`` order, the k-th into the temporary
``renderer.temporary(k)``; an operand is a constant written in place, a value computed
before (or named in advance: the function's parameters), or a leaf the renderer reads at
its first use (an array element, a value of an earlier LLVM piece).  ``x ** n`` with a
small integer ``n`` (``naming.unrolled_power``) is a product of ``|n|`` factors, inverted
for ``n < 0``, in every lowering.
"""

from __future__ import annotations

from typing import Protocol

from symdiff.ir.nodes import Expr

from .naming import unrolled_power


class Renderer(Protocol):
    """How one backend writes a walked graph (the lines it writes are its own)."""

    def temporary(self, index: int) -> str:
        """The name of the value of the index-th node of the order."""

    def constant(self, value: float) -> str:
        """A constant operand, written in place."""

    def leaf(self, node: Expr) -> str:
        """The name of a leaf with no name yet, read at its first use."""

    def power(self, name: str, base: str, n: int, node: Expr) -> str:
        """Compute ``base ** n`` into ``name`` as |n| factors (n < 0: inverted); return
        the name that holds the value."""

    def operation(self, name: str, operands: list[str], node: Expr) -> str:
        """Compute ``node`` from its operands into ``name``; return the name that holds
        the value (an identity may return its operand)."""


class Walk:
    """One walk of ``order`` (scheduled operations, operands first) with ``renderer``;
    ``names`` holds the values named in advance (parameters), and then every value."""

    def __init__(self, order: list[Expr], renderer: Renderer, names: dict | None = None):
        self.order = order
        self.renderer = renderer
        self.names: dict[Expr, str] = {} if names is None else names

    def operand(self, node: Expr) -> str:
        """The text of an operand: a constant, or the name of its value."""
        if node.op == "const":
            return self.renderer.constant(node.value)
        name = self.names.get(node)
        if name is None:
            name = self.names[node] = self.renderer.leaf(node)
        return name

    def step(self, index: int) -> str:
        """Compute the index-th node of the order; return the name of its value."""
        node = self.order[index]
        operands = [self.operand(a) for a in node.args]
        name = self.renderer.temporary(index)
        n = unrolled_power(node.args[1]) if node.op == "pow" else None
        if n is not None:
            value = self.renderer.power(name, operands[0], n, node)
        else:
            value = self.renderer.operation(name, operands, node)
        self.names[node] = value
        return value

    def run(self, start: int = 0, stop: int | None = None) -> None:
        """Compute the nodes ``order[start:stop]`` in turn."""
        for index in range(start, len(self.order) if stop is None else stop):
            self.step(index)
