"""Lower straight-line scalar functions to LLVM IR inside an njit function.

Numba's own pipeline types and lowers each Python statement, at a cost that grows faster
than linearly with function length (minutes for 10^4 statements).  Here the body is
LLVM assembly written by symdiff (a string constant of the generated module); a
``numba.extending.intrinsic`` links it into the library being compiled and calls it,
and a thin njit wrapper allocates the outputs and calls the intrinsic.  The result is an
ordinary njit function, callable from other njit code and cached on disk by Numba.  The
module imports only math, numpy, numba and llvmlite (which Numba is built on).

Long bodies are split into pieces, each its own never-inlined LLVM function, with the
values that cross pieces in a scratch array: LLVM's greedy register allocator takes time
superlinear in the length of a function (2.1 of the 2.7 s of code generation of a
26,000-operation gradient in one function; see benchmarks/README.md).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from symdiff.ir.nodes import Expr, flatten

from ..naming import input_names
from ..schedule import schedule
from ..spec import array_checks
from ..walker import Walk
from .elements import ELEMENTS

PRELUDE = '''import llvmlite.binding as _llvm
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_F64 = cgutils.ir.DoubleType()


def _data(context, bd, array_type, array):
    """Pointer to the first element of a contiguous float64 array."""
    return context.make_array(array_type)(context, bd, value=array).data


def _call_ir(context, bd, text, name, values, pointers):
    """Link the LLVM IR ``text`` into the library being compiled; call its ``name``."""
    module = _llvm.parse_assembly(text)
    module.triple = bd.module.triple
    module.data_layout = bd.module.data_layout
    context.active_code_library.add_llvm_module(module)
    kind = cgutils.ir.FunctionType(_F64, [_F64] * len(values) + [p.type for p in pointers])
    return bd.call(cgutils.get_or_insert_function(bd.module, kind, name),
                   [*values, *pointers])
'''

# Bodies longer than this many operations are split into pieces of this many.
PIECE_OPS = 2000

# Pieces: never inlined (that would undo the split); no implicit floating point, which
# keeps the SLP vectorizer away (it spent 0.8 s looking for vectors among the scratch
# slots and found none worth having).
PIECE_ATTRIBUTES = "attributes #0 = { noinline noimplicitfloat nounwind }"


def helpers_used(order: list[Expr]) -> list[str]:
    """Declarations and helper definitions the nodes need (for the module text)."""
    return [ELEMENTS[name][1] for name in sorted({n.op for n in order})
            if name in ELEMENTS and ELEMENTS[name][1]]


def _constant(value: float) -> str:
    """A double constant in LLVM's exact hexadecimal form (nan and inf included)."""
    bits = struct.unpack("<Q", struct.pack("<d", float(value)))[0]
    return f"0x{bits:016X}"


class Instructions:
    """The instructions of one LLVM function under construction, and the rendering of the
    shared scalar walk into it (codegen.walker.Renderer): an instruction per operation."""

    def __init__(self, load=None):
        self.lines: list[str] = []
        self.count = 0
        self.load = load  # a leaf's first read in this function: an array element, a slot

    def fresh(self) -> str:
        self.count += 1
        return f"%g{self.count}"

    def address(self, pointer: str, index: int) -> str:
        """A new name for the address of element ``index`` of a double array."""
        address = self.fresh()
        self.lines.append(f"{address} = getelementptr inbounds double, ptr {pointer}, "
                          f"i64 {index}")
        return address

    def element(self, name: str, pointer: str, index: int, atomic: bool = False) -> str:
        """Load element ``index`` of a double array into ``name``."""
        address = self.address(pointer, index)
        kind = "load atomic double" if atomic else "load double"
        self.lines.append(f"{name} = {kind}, ptr {address}{' monotonic' * atomic}, align 8")
        return name

    def store(self, value: str, pointer: str, index: int, atomic: bool = False):
        address = self.address(pointer, index)
        kind = "store atomic double" if atomic else "store double"
        self.lines.append(f"{kind} {value}, ptr {address}{' monotonic' * atomic}, align 8")

    # The rendering of the walk.
    @staticmethod
    def temporary(index: int) -> str:
        return f"%t{index}"

    constant = staticmethod(_constant)

    def leaf(self, node: Expr) -> str:
        return self.load(self, node)

    def power(self, name: str, base: str, n: int, node: Expr) -> str:
        """x ** n as products (a division for n < 0)."""
        product = base
        for j in range(abs(n) - 1):
            last = j == abs(n) - 2 and n > 0
            step = name if last else f"{name}.{j}"
            self.lines.append(f"{step} = fmul double {product}, {base}")
            product = step
        if n < 0:
            self.lines.append(f"{name} = fdiv double {_constant(1.0)}, {product}")
        return name

    def operation(self, name: str, operands: list[str], node: Expr) -> str:
        template = ELEMENTS[node.op][0]
        if template == "{0}":  # the identity (stop_gradient): no instruction
            return operands[0]
        self.lines.append(f"{name} = {template.format(*operands)}")
        return name


def _outputs(result, label="_out"):
    """(scalar parts, array parts) of a result; array parts: (name, shape, nodes)."""
    scalars, arrays = [], []

    def visit(part, name):
        if isinstance(part, tuple):
            for k, item in enumerate(part):
                visit(item, f"{name}{k}")
        elif isinstance(part, Expr):
            scalars.append((name, part))
        elif part and isinstance(part[0], list):
            arrays.append((name, (len(part), len(part[0])), [x for row in part for x in row]))
        else:
            arrays.append((name, (len(part),), list(part)))

    visit(result, label)
    return scalars, arrays


def _returned(result, scalars, label="_out") -> str:
    first = scalars[0][0] if scalars else None

    def text(part, name):
        if isinstance(part, tuple):
            items = [text(item, f"{name}{k}") for k, item in enumerate(part)]
            return f"({', '.join(items)}{',' if len(items) == 1 else ''})"
        if isinstance(part, Expr):
            return "_value" if name == first else f"{name}[0]"
        return name

    return text(result, label)


class _Body:
    """What the LLVM text of one function needs: its inputs, order and results."""

    def __init__(self, spec, stored, returned):
        self.order = schedule(flatten(spec.result))
        self.params = list(spec.inputs)
        self.elements = {sym: (k, i) for k, array in enumerate(spec.arrays)
                         for i, sym in enumerate(array.symbols)}
        self.stored = stored
        self.returned = returned
        self.pointers = [f"%in{k}" for k in range(len(spec.arrays))] + [
            f"%d{k}" for k in range(len(stored))]

    def walk(self, function: Instructions, load_slot=None) -> Walk:
        """The walk of the body into ``function``: array elements loaded (and values of
        other pieces from their slots) at first use."""
        def load(function: Instructions, node: Expr) -> str:
            if node in self.elements:
                k, i = self.elements[node]
                return function.element(f"%a{k}_{i}", f"%in{k}", i)
            return load_slot(node)
        function.load = load
        return Walk(self.order, function)

    def store_results(self, function: Instructions, operand):
        for k, (_, _, nodes) in enumerate(self.stored):  # C order: 2-D results by index
            for i, x in enumerate(nodes):
                function.store(operand(x), f"%d{k}", i)

    def single(self) -> tuple[list[str], list[str]]:
        """(entry instructions, other definitions) with the body in the entry."""
        entry = Instructions()
        walk = self.walk(entry)
        walk.names.update({sym: f"%p{j}" for j, sym in enumerate(self.params)})
        walk.run()
        self.store_results(entry, walk.operand)
        value = walk.operand(self.returned) if self.returned is not None else _constant(0.0)
        return entry.lines + [f"ret double {value}"], []

    def _slots(self, piece_of: dict[Expr, int], last: int) -> dict[Expr, int]:
        """Scratch slots of the values used in a later piece than their own.

        A slot is reused once the last piece reading its value has run, so the scratch
        array stays as small as the largest set of values live across a piece boundary
        (26,000 slots of a 78,000-operation gradient fit in far fewer, closer to L1).
        """
        params = set(self.params)
        last_use = {sym: -1 for sym in self.params}
        for node in self.order:
            for arg in node.args:
                if arg in params or (arg in piece_of and piece_of[arg] < piece_of[node]):
                    last_use[arg] = max(last_use.get(arg, -1), piece_of[node])
        results = [x for _, _, nodes in self.stored for x in nodes] + (
            [self.returned] if self.returned is not None else [])
        for x in results:
            if x in params or (x in piece_of and piece_of[x] < last):
                last_use[x] = last
        expiring: dict[int, list[Expr]] = {}
        for value, piece in last_use.items():
            expiring.setdefault(piece, []).append(value)
        slot = {sym: j for j, sym in enumerate(self.params)}
        size = len(slot)
        free: list[int] = []
        defined: dict[int, list[Expr]] = {}
        for node in self.order:
            if node in last_use:
                defined.setdefault(piece_of[node], []).append(node)
        for piece in range(last + 1):
            free.extend(slot[v] for v in expiring.get(piece - 1, ()))
            for node in defined.get(piece, ()):
                if free:
                    slot[node] = free.pop()
                else:
                    slot[node], size = size, size + 1
        return slot

    def pieces(self) -> tuple[list[str], list[str]]:
        """(entry instructions, piece definitions): the entry calls the pieces in turn.

        A value used in a later piece than its own (parameters included) has a slot of
        the scratch array ``%s``, loaded at its first use in a piece; the last piece
        stores the results (the returned value into the last slot).
        """
        piece_of = {node: index // PIECE_OPS for index, node in enumerate(self.order)}
        last = piece_of[self.order[-1]]
        slot = self._slots(piece_of, last)
        returned_slot = max(slot.values(), default=-1) + 1
        pointers = ", ".join(f"ptr noalias {p}" for p in ["%s", *self.pointers])
        entry = Instructions()
        entry.lines.append(f"%s = alloca double, i64 {returned_slot + 1}, align 8")
        for j in range(len(self.params)):
            entry.store(f"%p{j}", "%s", j, atomic=True)
        definitions = []
        for piece in range(last + 1):
            function = Instructions()

            def load_slot(node, function=function):
                return function.element(f"%v{slot[node]}", "%s", slot[node], atomic=True)

            walk = self.walk(function, load_slot)
            for index in range(piece * PIECE_OPS, min((piece + 1) * PIECE_OPS,
                                                      len(self.order))):
                value = walk.step(index)
                if self.order[index] in slot:
                    function.store(value, "%s", slot[self.order[index]], atomic=True)
            if piece == last:
                self.store_results(function, walk.operand)
                if self.returned is not None:
                    function.store(walk.operand(self.returned), "%s", returned_slot,
                                   atomic=True)
            definitions.append(f"define internal void @piece{piece}({pointers}) #0 {{\n"
                               + "".join(f"  {line}\n" for line in function.lines)
                               + "  ret void\n}")
            entry.lines.append(f"call void @piece{piece}({pointers})")
        value = entry.fresh()
        entry.element(value, "%s", returned_slot, atomic=True)
        return entry.lines + [f"ret double {value}"], definitions


def _module_text(spec, stored, returned) -> tuple[str, str]:
    """(LLVM assembly of the body, name of its entry function)."""
    body = _Body(spec, stored, returned)
    split = len(body.order) > PIECE_OPS
    entry_lines, definitions = body.pieces() if split else body.single()
    helpers = helpers_used(body.order)
    declarations = sorted({line for text in helpers for line in text.splitlines()
                           if line.startswith("declare ")})
    helper_definitions = ["\n".join(line for line in text.splitlines()
                                    if not line.startswith("declare "))
                          for text in helpers]
    signature = ", ".join([f"double %p{j}" for j in range(len(body.params))]
                          + [f"ptr noalias {p}" for p in body.pointers])
    text = "\n\n".join(
        [*declarations, *(d for d in helper_definitions if d), *definitions,
         f"define weak_odr double @ENTRY({signature}) {{\n"
         + "".join(f"  {line}\n" for line in entry_lines) + "}",
         *([PIECE_ATTRIBUTES] if split else [])]) + "\n"
    # Named by content: every library defining it holds the same code.
    entry = f"_sd_{spec.name}_{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    return text.replace("@ENTRY(", f"@{entry}(", 1), entry


@dataclass(frozen=True)
class LLVMBody:
    """The LLVM text of a function's body and its calling convention: ``entry`` takes the
    scalar inputs (doubles), a pointer per flat array parameter, then a pointer per
    ``stored`` result (name, shape, nodes; C order), and returns the first scalar result
    (``returned``; 0.0 if none).  ``result_text`` is the Python expression that rebuilds
    the function's result from ``_value`` and the stored arrays."""

    text: str
    entry: str
    stored: list
    returned: Expr | None
    result_text: str


def llvm_body(spec) -> LLVMBody:
    """The LLVM text of a straight-line scalar function's body (see LLVMBody)."""
    scalars, outs = _outputs(spec.result)
    # The first scalar result is the returned value; others go through arrays.
    stored = [(name, (1,), [node]) for name, node in scalars[1:]] + outs
    returned = scalars[0][1] if scalars else None
    text, entry = _module_text(spec, stored, returned)
    return LLVMBody(text, entry, stored, returned, _returned(spec.result, scalars))


def emit_llvm_function(spec, decorator: str) -> str:
    """The LLVM text of the body, the intrinsic calling it and the njit wrapper."""
    params = input_names(spec)
    arrays = [a.name for a in spec.arrays]
    body = llvm_body(spec)
    text, entry, stored, returned = body.text, body.entry, body.stored, body.returned
    body_name = f"_{spec.name}_ir"
    ir_args = params + [f"{a}_c" for a in arrays] + [name for name, _, _ in stored]
    lines = [f"{', '.join(ir_args)}, = args"] if ir_args else []
    first = len(params)
    pointers = [f"_data(context, bd, signature.args[{first + k}], {name})"
                for k, name in enumerate(ir_args[first:])]
    lines.append(f"_value = _call_ir(context, bd, _{spec.name}_llvm, {entry!r}, "
                 f"[{', '.join(params)}], [{', '.join(pointers)}])")
    lines.append("return _value" if returned is not None
                 else "return context.get_dummy_value()")
    returned_type = "types.float64" if returned is not None else "types.none"
    intrinsic_source = (
        f"_{spec.name}_llvm = '''\\\n{text}'''\n\n\n"
        f"@intrinsic\ndef {body_name}(typingctx, {', '.join(ir_args)}):\n"
        f"    def codegen(context, bd, signature, args):\n"
        + "".join(f"        {line}\n" for line in lines)
        + f"\n    return {returned_type}({', '.join(ir_args)}), codegen\n")

    wrapper = array_checks(spec) + [f"{a}_c = np.ascontiguousarray({a})" for a in arrays]
    wrapper += [f"{name} = np.empty({shape})" for name, shape, _ in stored]
    call = f"{body_name}({', '.join(ir_args)})"
    wrapper.append(f"_value = {call}" if returned is not None else call)
    wrapper.append(f"return {body.result_text}")
    doc = f'    """{spec.doc}"""\n' if spec.doc else ""
    return (intrinsic_source + "\n\n" + f"{decorator}\ndef {spec.name}("
            f"{', '.join(params + arrays)}):\n{doc}"
            + "".join(f"    {line}\n" for line in wrapper))
