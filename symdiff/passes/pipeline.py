"""Optimization passes: pure functions Graph -> Graph, listed once in ``PIPELINE``.

Sharing needs no pass: nodes are interned, so equal subexpressions are one node.
"""

from __future__ import annotations

from dataclasses import dataclass

from symdiff.ir.nodes import (
    OPS,
    Expr,
    apply,
    const,
    flatten,
    restructure,
    topological_order,
    with_operands,
)
from symdiff.passes.rules import RULES

MAX_REWRITES_PER_NODE = 32


@dataclass(frozen=True)
class Graph:
    """Outputs plus a topological list of nodes, which may hold dead ones after rewrites."""

    outputs: tuple[Expr, ...]
    nodes: tuple[Expr, ...]

    @classmethod
    def of(cls, outputs) -> Graph:
        """The graph of everything reachable from ``outputs``."""
        outputs = tuple(outputs)
        return cls(outputs, tuple(topological_order(outputs)))


def _rewrite(graph: Graph, rewrite_node) -> Graph:
    """Rebuild each node on rewritten operands, then apply ``rewrite_node`` to it."""
    mapping: dict[Expr, Expr] = {}
    emitted: set[Expr] = set()
    nodes: list[Expr] = []
    for node in graph.nodes:
        new = node
        if node.args:
            args = tuple([mapping[a] for a in node.args])
            if args != node.args:  # nodes compare by identity
                new = apply(node.op, *args, payload=node.value)
            new = rewrite_node(new)
        mapping[node] = new
        if new in emitted:
            continue
        if emitted.issuperset(new.args):
            emitted.add(new)
            nodes.append(new)
        else:  # the rewrite created nodes the list does not hold yet: add them in order
            nodes.extend(topological_order([new], emitted))
    return Graph(tuple(mapping[o] for o in graph.outputs), tuple(nodes))


def _fold_constant(node: Expr) -> Expr:
    if node.args and all(a.op == "const" for a in node.args) and OPS[node.op].elementwise:
        return const(OPS[node.op].evaluate(*(a.value for a in node.args)))
    return node


def fold_constants(graph: Graph) -> Graph:
    """Replace every operation on constants by its value (``2*3 -> 6``)."""
    return _rewrite(graph, _fold_constant)


def _rules_by_op(fast_math: bool) -> dict[str, list]:
    table: dict[str, list] = {}
    for rule in RULES:
        if fast_math or not rule.fast_math:
            names = [n for n, op in OPS.items() if op.elementwise] if (
                rule.op == "elementwise") else [rule.op]
            for name in names:
                table.setdefault(name, []).append(rule)
    return table


_TABLES: dict[bool, dict] = {}


def simplify(graph: Graph, fast_math: bool = False) -> Graph:
    """Apply the rules of ``rules.RULES`` to each node until none applies."""
    if fast_math not in _TABLES:  # built on first use, once every op is registered
        _TABLES[fast_math] = _rules_by_op(fast_math)
    table = _TABLES[fast_math]

    def rewrite(node: Expr) -> Expr:
        for _ in range(MAX_REWRITES_PER_NODE):
            for rule in table.get(node.op, ()):
                replacement = rule.rewrite(node)
                # A rule may not change the shape (x * 1 -> x needs x as large as x * 1).
                if replacement is not None and replacement.shape == node.shape:
                    node = replacement
                    break
            else:
                return node
        return node

    return _rewrite(graph, rewrite)


def eliminate_dead_code(graph: Graph) -> Graph:
    """Drop the nodes that no output depends on."""
    live = set(graph.outputs)
    for node in reversed(graph.nodes):
        if node in live:
            live.update(node.args)
    return Graph(graph.outputs, tuple(n for n in graph.nodes if n in live))


PIPELINE = (fold_constants, simplify, eliminate_dead_code)
MAX_ROUNDS = 8


def run_pipeline(graph: Graph, fast_math: bool = False) -> Graph:
    """Run ``PIPELINE`` until the outputs stop changing."""
    for _ in range(MAX_ROUNDS):
        before = graph.outputs
        for run_pass in PIPELINE:
            graph = run_pass(graph, fast_math) if run_pass is simplify else run_pass(graph)
        if all(a is b for a, b in zip(before, graph.outputs, strict=True)):
            break
    return graph


def optimize(exprs, fast_math: bool = False):
    """Optimized copies of an expression or a (nested) list of expressions, same shape."""
    single = isinstance(exprs, Expr)
    flat = [exprs] if single else flatten(exprs)
    outputs = iter(run_pipeline(Graph.of(flat), fast_math).outputs)
    if single:
        return next(outputs)
    return restructure(exprs, outputs)


def rewrite(exprs, rule) -> list[Expr]:
    """``exprs`` rebuilt bottom up (one iterative walk): ``rule(node, operands)``, given
    a node and its operands rewritten, returns the node's replacement, or None to keep it
    (over the new operands)."""
    new: dict[Expr, Expr] = {}
    for node in topological_order(exprs):
        args = tuple(new[a] for a in node.args)
        found = rule(node, args)
        if found is not None:
            new[node] = found
        else:
            same = all(a is b for a, b in zip(args, node.args, strict=True))
            new[node] = node if same else with_operands(node, args)
    return [new[e] for e in exprs]


def substitute(exprs, mapping: dict) -> list[Expr]:
    """``exprs`` with the nodes of ``mapping`` replaced (one iterative rebuild)."""
    return rewrite(exprs, lambda node, args: mapping.get(node))
