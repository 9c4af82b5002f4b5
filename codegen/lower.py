"""Which lowering writes a function, and its source: the LLVM lowering for large
straight-line scalar code, the Numba lowering for everything else; and the names of loop
bodies' step functions, digests of their source."""

from __future__ import annotations

import hashlib
import weakref

from symdiff.ir.nodes import flatten

from .bodies import body_prefix, has_arrays, step_specs
from .llvm.elements import ELEMENTS as LLVM_ELEMENTS
from .llvm.emit import emit_llvm_function
from .numba.function import emit_numba_function
from .numba.helpers import DECORATOR
from .schedule import schedule
from .spec import LLVM_MIN_OPS, LOWERINGS, FunctionSpec


def uses_llvm(spec: FunctionSpec) -> bool:
    """Whether a function is lowered to LLVM IR directly (large straight-line scalar code).

    Loops (arrays, batches) always stay Python, and so does code with an op that has no
    LLVM text; "auto" lowers from LLVM_MIN_OPS on.
    """
    if spec.lowering not in LOWERINGS:
        raise ValueError(f"lowering must be one of {LOWERINGS}, not {spec.lowering!r}")
    if spec.lowering == "python" or not llvm_lowerable(spec):
        return False
    return spec.lowering == "llvm" or len(schedule(flatten(spec.result))) >= LLVM_MIN_OPS


def llvm_lowerable(spec: FunctionSpec) -> bool:
    """Whether the LLVM text can express a function: straight-line scalar code (no
    loops, arrays or batches) whose every op has an entry in its table (not digamma)."""
    if spec.batched or has_arrays(spec):
        return False
    order = schedule(flatten(spec.result))
    return all(n.op in LLVM_ELEMENTS for n in order if n.args)


def emit_function(spec: FunctionSpec) -> str:
    """Source of one njit function (decorator included), by the lowering it takes."""
    if uses_llvm(spec):
        return emit_llvm_function(spec, DECORATOR)
    return emit_numba_function(spec, body_name)


# Loop body -> the name of its step function; weak, so bodies (and the graphs they hold)
# are freed with the last node that uses them.
_BODY_NAMES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def body_name(body) -> str:
    """The generated name of a loop body's step function: a digest of its source, so the
    same body has the same name in any process, and equal bodies share one function."""
    name = _BODY_NAMES.get(body)
    if name is None:
        # Rendered under a fixed placeholder name (the digest names the rest).
        placeholder = "_sd_while_" if body_prefix(body) == "_sd_while_" else "_sd"
        text = "".join(emit_function(spec) for spec in step_specs(body, placeholder))
        name = body_prefix(body) + hashlib.sha256(text.encode()).hexdigest()[:16]
        _BODY_NAMES[body] = name
    return name
