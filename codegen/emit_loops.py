"""Emission of structured loops (``sd.scan``): the first op whose emission lives with the
backend, not in its ``ir.Op`` record.

A scan is one ``for`` loop in the generated code around a call of its body, and the body
one more njit function of the module (emitted once, whatever the trip count).  All
outputs of one loop (final carries, stacked per-step outputs, stacked carries) that a
function uses come from the same loop.
"""

from __future__ import annotations

import hashlib
import weakref

from symdiff.ir import Expr, flatten, topological_order

# ScanBody -> its function's name (a digest of its source); weak, so bodies (and the
# graphs they hold) are freed with the last node that uses them.
_NAMES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _body_spec(body, name: str):
    from .emit_numba import FunctionSpec

    inputs = body.carries + body.xs + body.invariants
    return FunctionSpec(name, tuple(inputs), tuple(body.new_carries) + tuple(body.ys),
                        "one step of a scan: (next carry..., y...)", lowering="python")


def body_name(body) -> str:
    """The generated name of a scan body: the same body, the same name in any process."""
    name = _NAMES.get(body)
    if name is None:
        from .emit_numba import emit_function

        text = emit_function(_body_spec(body, "_sd_scan"))
        name = _NAMES[body] = "_sd_scan_" + hashlib.sha256(text.encode()).hexdigest()[:16]
    return name


def body_specs(specs) -> list:
    """The FunctionSpecs of every scan body the specs call, nested ones included."""
    found: dict[str, object] = {}
    pending = [s for s in specs if hasattr(s, "result")]
    while pending:
        spec = pending.pop()
        for node in topological_order(flatten(spec.result)):
            if node.op == "scan":
                body = node.value[0]
                name = body_name(body)
                if name not in found:
                    found[name] = _body_spec(body, name)
                    pending.append(found[name])
    return [found[name] for name in sorted(found)]


def has_loops(result) -> bool:
    """Whether a graph contains a scan (it then needs the array emitter)."""
    return any(n.op == "scan" for n in topological_order(flatten(result)))


def emit_scan(emitter, node: Expr) -> None:
    """Lines of the loop computing ``node`` and every other output of the same loop that
    the function uses (``emitter`` is a codegen.emit_arrays.ArrayEmitter)."""
    from .emit_arrays import _dim

    body = node.value[0]
    group = [n for n in emitter.order if n.op == "scan" and n.args == node.args
             and n.value[0] is body]
    c, x = len(body.carries), len(body.xs)
    operands = [emitter.operand(a) for a in node.args]
    carry = [emitter.new_name() for _ in range(c)]
    steps = emitter.new_name()
    lines = [f"{steps} = {operands[c]}.shape[0]"]
    lines += [f"{name} = {value}" for name, value in zip(carry, operands[:c], strict=True)]
    stacked = {}
    for n in group:
        kind, j = n.value[1]
        if kind == "carry":
            continue
        part = body.ys[j] if kind == "ys" else body.carries[j]
        stacked[n] = emitter.new_name()
        shape = ", ".join([steps] + [_dim(d) for d in part.shape])
        lines.append(f"{stacked[n]} = np.empty(({shape},))")
    index = "_s"
    order = f"range({steps} - 1, -1, -1)" if body.reverse else f"range({steps})"
    lines.append(f"for {index} in {order}:")
    for n, name in stacked.items():
        kind, j = n.value[1]
        if kind == "carries":
            lines.append(f"    {name}[{index}] = {carry[j]}")
    result = emitter.new_name()
    arguments = carry + [f"{xs}[{index}]" for xs in operands[c:c + x]] + operands[c + x:]
    lines.append(f"    {result} = {body_name(body)}({', '.join(arguments)})")
    for n, name in stacked.items():
        kind, j = n.value[1]
        if kind == "ys":
            lines.append(f"    {name}[{index}] = {result}[{c + j}]")
    lines += [f"    {name} = {result}[{k}]" for k, name in enumerate(carry)]
    emitter.lines += lines
    for n in group:
        kind, j = n.value[1]
        emitter.names[n] = carry[j] if kind == "carry" else stacked[n]
