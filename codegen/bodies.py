"""Loops as generated functions, whatever the backend: the functions a loop body becomes
(a scan's step; a while loop's step and condition), the bodies a graph runs, and whether
a function's graph needs the array lowering (arrays or loops)."""

from __future__ import annotations

from symdiff.ir.index_keys import least_open_length_of
from symdiff.ir.nodes import flatten, topological_order

from .naming import role_names
from .spec import FunctionSpec

# The loop ops: each runs a body, a generated function of its own.
LOOP_OPS = ("scan", "while")


def _body_spec(body, name: str) -> FunctionSpec:
    inputs = body.carries + body.xs + body.invariants
    params = role_names([("carry", body.carries), ("step", body.xs),
                         ("inv", body.invariants)])
    return FunctionSpec(name, tuple(inputs), tuple(body.new_carries) + tuple(body.ys),
                        "one step of a scan: (next carry..., y...)", lowering="python",
                        checked=False, params=tuple(params))


def _while_specs(body, name: str) -> list[FunctionSpec]:
    inputs = tuple(body.carries + body.invariants)
    params = tuple(role_names([("carry", body.carries), ("inv", body.invariants)]))
    return [FunctionSpec(name, inputs, tuple(body.new_carries),
                         "one step of a while loop: (next carry...)", lowering="python",
                         checked=False, params=params),
            FunctionSpec(name.replace("_sd_while_", "_sd_cond_"), inputs, body.cond,
                         "whether a while loop goes on (nonzero)", lowering="python",
                         checked=False, params=params)]


def step_specs(body, name: str) -> list[FunctionSpec]:
    """The functions a loop body becomes, its step named ``name`` (a while loop's
    condition: the same name with _sd_cond_)."""
    return _while_specs(body, name) if hasattr(body, "cond") else [_body_spec(body, name)]


def body_prefix(body) -> str:
    """The start of the generated name of a loop body's step function."""
    return "_sd_while_" if hasattr(body, "cond") else "_sd_scan_"


def body_roots(body) -> list:
    """The expressions a loop body computes per step: a while loop's next carry and
    condition, a scan's next carry and per-step outputs."""
    if hasattr(body, "cond"):
        return [*body.new_carries, body.cond]
    return [*body.new_carries, *body.ys]


def loop_bodies(roots) -> list:
    """The loop bodies the graph under ``roots`` runs, nested ones included, in the order
    they are first met (a walk of the graph, then of each body's graph)."""
    found: dict[int, object] = {}
    pending = [list(roots)]
    while pending:
        for node in topological_order(pending.pop()):
            if node.op in LOOP_OPS and id(node.value[0]) not in found:
                body = node.value[0]
                found[id(body)] = body
                pending.append(body_roots(body))
    return list(found.values())


def least_open_length_in(roots) -> int:
    """The least open length at which the graph under ``roots``, loop bodies included,
    reads and writes every position as NumPy would."""
    nodes = topological_order(list(roots))
    for body in loop_bodies(roots):
        nodes += topological_order(body_roots(body))
    return least_open_length_of(nodes)


def has_loops(result) -> bool:
    """Whether a graph contains a loop op or a root (it then needs the array emitter)."""
    return any(n.op in LOOP_OPS or n.op == "root"
               for n in topological_order(flatten(result)))


def has_arrays(spec: FunctionSpec) -> bool:
    """Whether a function has array inputs, array nodes or loops (the array lowering)."""
    return (any(s.shape for s in spec.inputs) or any(n.shape for n in flatten(spec.result))
            or has_loops(spec.result))
