"""Emit Numba-jitted Python source: one statement per operation, from the op templates."""

from __future__ import annotations

import hashlib
import weakref
from dataclasses import replace

from symdiff.ir import Expr, flatten, topological_order
from symdiff.printer import to_infix

from ..llvm import emit as llvm
from ..llvm.elements import ELEMENTS as LLVM_ELEMENTS
from ..llvm.emit import emit_llvm_function
from ..naming import literal, parameter_names, temporary, unrolled_power
from ..schedule import expanded_lengths, schedule
from ..spec import LLVM_MIN_OPS, LOWERINGS, FunctionSpec, array_checks
from .arrays import ArrayEmitter, constant_name, constant_source, rows_name, rows_source
from .directions import DirectionLoop, emit_direction_loop
from .elements import LOOP, SCALAR, element, helpers
from .helpers import DECORATOR, PARALLEL_DECORATOR
from .loops import body_prefix, has_loops, loop_bodies, step_specs

COMMENT_CHARS = 60


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
    n = unrolled_power(exponent)
    if n is None:
        return None
    product = " * ".join([base] * abs(n))
    return product if n > 0 else f"1.0 / ({product})"


def statement(node: Expr, operand, loop: bool = False) -> str:
    """The Python/Numba expression of one element of ``node``, given operand names;
    ``loop``: inside a loop over array elements, where vectorizable templates exist."""
    operands = [operand(a) for a in node.args]
    if node.op == "pow":
        reduced = _power(operands[0], node.args[1])
        if reduced is not None:
            return reduced
    return element(node.op, loop).template.format(*operands)


def _result_lines(result, operand, label: str) -> tuple[list[str], str]:
    """Lines that build ``result`` and the expression that returns it."""
    if isinstance(result, Expr):
        return [], operand(result)
    if isinstance(result, tuple):
        lines, parts = [], []
        for k, part in enumerate(result):
            more, expr = _result_lines(part, operand, f"{label}{k}")
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


def uses_llvm(spec: FunctionSpec) -> bool:
    """Whether a function is lowered to LLVM IR directly (large straight-line scalar code).

    Loops (arrays, batches) always stay Python, and so does code with an op that has no
    LLVM text; "auto" lowers from LLVM_MIN_OPS on.
    """
    if spec.lowering not in LOWERINGS:
        raise ValueError(f"lowering must be one of {LOWERINGS}, not {spec.lowering!r}")
    if spec.batched or _has_arrays(spec) or spec.lowering == "python":
        return False
    order = schedule(flatten(spec.result))
    if any(n.op not in LLVM_ELEMENTS for n in order if n.args):
        return False  # an op the LLVM table falls back on (digamma): the Python lowering
    return spec.lowering == "llvm" or len(order) >= LLVM_MIN_OPS


def _has_arrays(spec: FunctionSpec) -> bool:
    return (any(s.shape for s in spec.inputs) or any(n.shape for n in flatten(spec.result))
            or has_loops(spec.result))


def emit_function(spec: FunctionSpec) -> str:
    """Source of one njit function (decorator included)."""
    names = _Names(spec)
    params = list(names.params) + [a.name for a in spec.arrays]
    decorator = DECORATOR
    if uses_llvm(spec):
        return emit_llvm_function(spec, decorator)
    if spec.batched:
        body, returned = _batched_body(spec, names)
        decorator = PARALLEL_DECORATOR
    elif _has_arrays(spec):
        emitter = ArrayEmitter(spec.inputs, names.params, names.of, spec.result, statement,
                               body_name, spec.checked)
        body = array_checks(spec) + emitter.emit()
        lines, returned = _result_lines(spec.result, emitter.returned, "_out")
        body += lines
    else:
        body = array_checks(spec) + _scalar_body(spec, names)
        lines, returned = _result_lines(spec.result, names.operand, "_out")
        body += lines
    body.append(f"return {returned}")
    doc = f'    """{spec.doc}"""\n' if spec.doc else ""
    return (f"{decorator}\ndef {spec.name}({', '.join(params)}):\n{doc}"
            + "".join(f"    {line}\n" for line in body))


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


def body_specs(specs) -> list:
    """The FunctionSpecs of every loop body the specs call, nested ones included, by
    name."""
    roots = [n for s in specs if hasattr(s, "result") for n in flatten(s.result)]
    found = {f.name: f for body in loop_bodies(roots) for f in step_specs(body, body_name(body))}
    return [found[name] for name in sorted(found)]


def point_specs(spec) -> list:
    """The one-point function a batched function with loops calls at every point."""
    if not getattr(spec, "batched", False) or not has_loops(spec.result):
        return []
    return [replace(spec, name=POINT + spec.name, batched=False, doc="one point of "
                    + spec.name)]


POINT = "_sd_point_"


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


def _batched_body(spec: FunctionSpec, names: _Names) -> tuple[list[str], str]:
    """One prange loop over points; inside it, the scalar body of the function (or, for
    a function with loops, a call of its one-point function: point_specs)."""
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
        inner = _scalar_body(spec, names)
        allocs, writes, returned = _batched_result(spec.result, names.operand, "_out")
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


def _scalar_body(spec: FunctionSpec, names: _Names) -> list[str]:
    body: list[str] = []
    order = schedule(flatten(spec.result))
    lengths = expanded_lengths(order, COMMENT_CHARS + 1)
    for index, node in enumerate(order):
        name = temporary(index)
        line = f"{name} = {statement(node, names.operand)}"
        # Name the subexpression where the statement alone does not show it.
        if lengths[node] <= COMMENT_CHARS and any(a.args for a in node.args):
            line += f"  # {to_infix(node)}"
        body.append(line)
        names.of[node] = name
    return body


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


def constants_used(specs: list[FunctionSpec]) -> list[str]:
    """Module-level definitions of the array constants and row positions the specs use,
    sorted by name."""
    found = {}
    for spec in specs:
        for n in topological_order(flatten(spec.result)):
            if n.op == "array":
                found[constant_name(n)] = constant_source(n)
            elif n.op in ("take", "scatter_add"):
                found[rows_name(n)] = rows_source(n)
    return [found[name] for name in sorted(found)]


def _with_kernels(specs: list) -> list:
    """The specs with the functions that direction loops call placed before them, once."""
    ordered: dict[str, object] = {}
    for spec in specs:
        for needed in getattr(spec, "specs", []) + [spec]:
            ordered.setdefault(needed.name, needed)
    return list(ordered.values())


def emit_module(specs: list, docstring: str) -> str:
    """A complete module: docstring, imports (math, numba, numpy only), helpers, functions.

    ``specs`` are FunctionSpecs and direction loops (codegen.emit_directions), whose
    kernels are emitted before them.
    """
    functions = _with_kernels(specs)
    functions = [f for spec in functions for f in point_specs(spec) + [spec]]
    functions = body_specs(functions) + functions  # the bodies of scans they run
    loops = {spec.name for spec in functions if isinstance(spec, DirectionLoop)}
    specs = [spec for spec in functions if spec.name not in loops]
    parts = [f'"""{docstring}\n"""\n\nimport math\n\nimport numba\nimport numpy as np\n']
    constants = constants_used(specs)
    if constants:
        parts.append("\n".join(constants) + "\n")
    lowered = [spec for spec in specs if uses_llvm(spec)]
    if lowered:
        parts.append(llvm.PRELUDE)
    parts += helpers_used([spec for spec in specs if not uses_llvm(spec)])
    parts += [emit_direction_loop(spec) if spec.name in loops else emit_function(spec)
              for spec in functions]
    return "\n\n".join(parts)
