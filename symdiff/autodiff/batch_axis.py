"""A graph over a batch of values: the nodes that depend on some symbols rebuilt with a
trailing batch axis, as ``jax.vmap`` does with its batching rules.

Given symbols and their batched stand-ins (each with one more, trailing axis of length
``size``), every node that reads a batched operand is rebuilt by its op's ``batch`` rule
(symdiff.ir.nodes.Op); elementwise ops broadcast, the operands that do not vary getting a
trailing axis of length 1.  Nodes that depend on none of the symbols stay as they are
and are computed once for the whole batch.

The batch is the trailing (fastest) axis so that reshapes, index keys, row gathers and
reductions keep their payloads, and a product ``A @ v`` over a batch of ``v`` is one
matrix product ``A @ V``.  The dense Hessian and Jacobian drivers use it to evaluate a
block of directions together (codegen.native.driver).
"""

from __future__ import annotations

from symdiff.ir.nodes import OPS, Expr, apply, topological_order
from symdiff.ops.structural import lifted, with_unit_axis


def _elementwise(node: Expr, operands, batched, size) -> Expr:
    """The op itself: operands without the batch axis get a trailing axis of length 1."""
    return apply(node.op, *(x if b else with_unit_axis(x)
                            for x, b in zip(operands, batched, strict=True)))


def with_batch_axis(roots, symbols: dict, size) -> list[Expr] | None:
    """``roots`` over a batch: ``symbols`` maps symbols to their batched stand-ins (shape
    + (size,); ``size`` an int, or None for the open length N), and each root comes back
    with the batch axis appended (repeated where it does not depend on the symbols).
    None when some node on the way has no batching rule (a loop, a root, a running sum):
    the caller then loops instead."""
    rebuilt: dict[Expr, Expr] = dict(symbols)
    for node in topological_order(roots):
        if node in rebuilt or not node.args:
            continue
        batched = tuple(a in rebuilt for a in node.args)
        if not any(batched):
            continue
        op = OPS[node.op]
        rule = _elementwise if op.elementwise else op.batch
        if rule is None:
            return None
        operands = tuple(rebuilt.get(a, a) for a in node.args)
        out = rule(node, operands, batched, size)
        if out is None:
            return None
        if out.shape != node.shape + (size,):
            raise AssertionError(f"batching rule of {node.op} gave shape {out.shape} for "
                                 f"{node.shape} + ({size},)")
        rebuilt[node] = out
    return [rebuilt[r] if r in rebuilt else lifted(r, size) for r in roots]
