"""Scheduling: the order in which generated code computes the operations of a graph."""

from __future__ import annotations

from symdiff.ir.nodes import Expr, topological_order


def schedule(outputs: list[Expr]) -> list[Expr]:
    """Operations (no leaves) reachable from ``outputs``, operands first.

    The order is a depth-first postorder, so it depends on the graph alone and generated
    source is byte-for-byte reproducible.
    """
    return [node for node in topological_order(outputs) if node.args]


def consumers_of(order: list[Expr]) -> dict[Expr, list[Expr]]:
    """Each node's consumers in ``order`` (a schedule), once each however often they
    read it (x * x has one consumer)."""
    consumers: dict[Expr, list[Expr]] = {}
    for node in order:
        for arg in dict.fromkeys(node.args):
            consumers.setdefault(arg, []).append(node)
    return consumers


def expanded_lengths(order: list[Expr], cap: int) -> dict[Expr, int]:
    """Rough length of each node printed as a tree, capped (to choose comments cheaply)."""
    length: dict[Expr, int] = {}
    for node in order:
        total = 4
        for arg in node.args:
            total += length.get(arg, len(str(arg.value)) if not arg.args else cap)
        length[node] = min(total, cap)
    return length


# Ops computed in a loop that accumulates their operand's elements into another shape.
REDUCTIONS = ("sum", "sum_to", "amax", "scatter_add", "embed")


def iteration_shape(node: Expr) -> tuple:
    """The shape a node's loop runs over (its operand's, for reductions)."""
    return node.args[0].shape if node.op in REDUCTIONS else node.shape


def fused_members(root: Expr, fused, position: dict, sealed=()) -> list[Expr]:
    """The producers computed inside the loop of ``root``: its operands in ``fused``
    (inlined into their consumer's loop), theirs, and so on, in schedule order
    (``position``); every lowering that fuses loops shares this rule.  A member in
    ``sealed`` computes its own operands (at other positions): they are not members."""
    found, stack = {}, [root]
    while stack:
        node = stack.pop()
        found[node] = None
        if node is root or node not in sealed:
            stack.extend(a for a in node.args if a in fused and a not in found)
    del found[root]
    return sorted(found, key=position.__getitem__)


def depending(order: list[Expr], sources) -> set[Expr]:
    """``sources`` and the nodes of ``order`` (a schedule) that read one of them,
    directly or not."""
    found = set(sources)
    for node in order:
        if any(a in found for a in node.args):
            found.add(node)
    return found
