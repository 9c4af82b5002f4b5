"""The Numba lowering of one function: its decorator, signature and body (scalar
statements, array loops, or a prange over points), and the helpers a module of such
functions defines once."""

from __future__ import annotations

from symdiff.ir.nodes import flatten

from ..bodies import has_arrays
from ..schedule import schedule
from ..spec import FunctionSpec, array_checks
from .arrays import ArrayEmitter
from .elements import LOOP, SCALAR, helpers
from .helpers import DECORATOR, PARALLEL_DECORATOR
from .scalar import Names, batched_body, result_lines, scalar_body


def emit_numba_function(spec: FunctionSpec, body_name) -> str:
    """Source of one njit function (decorator included); ``body_name`` names the step
    function of a loop body (codegen.lower.body_name)."""
    names = Names(spec)
    params = list(names.params) + [a.name for a in spec.arrays]
    decorator = DECORATOR
    if spec.batched:
        body, returned = batched_body(spec, names)
        decorator = PARALLEL_DECORATOR
    elif has_arrays(spec):
        emitter = ArrayEmitter(spec.inputs, names.params, names.of, spec.result, body_name,
                               spec.checked)
        body = array_checks(spec) + emitter.emit()
        lines, returned = result_lines(spec.result, emitter.returned, "_out")
        body += lines
    else:
        lines, walk = scalar_body(spec, names.of)
        more, returned = result_lines(spec.result, walk.operand, "_out")
        body = array_checks(spec) + lines + more
    body.append(f"return {returned}")
    doc = f'    """{spec.doc}"""\n' if spec.doc else ""
    return (f"{decorator}\ndef {spec.name}({', '.join(params)}):\n{doc}"
            + "".join(f"    {line}\n" for line in body))


def helpers_used(specs: list[FunctionSpec]) -> list[str]:
    """Sources of the helper functions the specs need, in op-name order: loop helpers for
    array elements (see ArrayEmitter), ordinary helpers for scalars."""
    used, in_loops = set(), set()
    for spec in specs:
        for n in schedule(flatten(spec.result)):
            (in_loops if n.shape and n.op in LOOP else used).add(n.op)
    if "amax" in used:  # max reductions update with the nan-propagating maximum
        used.add("maximum")
    return helpers([name for name in used if name in SCALAR], in_loops)
