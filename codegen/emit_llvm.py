"""Lower straight-line scalar functions to LLVM IR inside an njit function.

Numba's own pipeline types and lowers each Python statement, at a cost that grows faster
than linearly with function length (minutes for 10^4 statements).  Here the body becomes
a ``numba.extending.intrinsic`` whose codegen builds the IR directly with llvmlite's
builder (reached through numba.core.cgutils, so the module still imports only math,
numpy and numba); a thin njit wrapper allocates the outputs and calls it.  The result is
an ordinary njit function, callable from other njit code and cached on disk by Numba.
"""

from __future__ import annotations

from symdiff.ir import OPS, Expr, flatten

from .naming import literal, parameter_names, temporary, unrolled_power
from .schedule import schedule

PRELUDE = '''from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_ir = cgutils.ir
_F64 = _ir.DoubleType()
_I64 = _ir.IntType(64)


def _k(value):
    """A float64 constant."""
    return _ir.Constant(_F64, value)


def _call(bd, name, *args):
    """Call an LLVM intrinsic (llvm.*) or a C math function on float64 values."""
    try:
        function = bd.module.get_global(name)
    except KeyError:
        function = _ir.Function(bd.module, _ir.FunctionType(_F64, [_F64] * len(args)), name)
    return bd.call(function, list(args))


def _data(context, bd, array_type, array):
    """Pointer to the first element of a contiguous float64 array."""
    return context.make_array(array_type)(context, bd, value=array).data


def _load(bd, data, index):
    return bd.load(bd.gep(data, [_ir.Constant(_I64, index)]))


def _store(bd, value, data, index):
    bd.store(value, bd.gep(data, [_ir.Constant(_I64, index)]))
'''

def helpers_used(order: list[Expr]) -> list[str]:
    """IR helper sources the nodes need, in op-name order."""
    used = sorted({n.op for n in order if OPS[n.op].llvm_helper})
    return [OPS[name].llvm_helper for name in used]


def _constant(value: float) -> str:
    return f"_k({literal(value)})"


def _element(node: Expr, operand) -> str:
    operands = [operand(a) for a in node.args]
    n = unrolled_power(node.args[1]) if node.op == "pow" else None
    if n is not None:
        product = operands[0]
        for _ in range(abs(n) - 1):
            product = f"bd.fmul({product}, {operands[0]})"
        return product if n > 0 else f"bd.fdiv(_k(1.0), {product})"
    return OPS[node.op].llvm.format(*operands)


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


def emit_llvm_function(spec, decorator: str) -> str:
    """An intrinsic holding the IR of the body and the njit function that calls it."""
    from .emit_numba import array_checks  # emit_numba imports this module
    params = parameter_names([s.value for s in spec.inputs])
    arrays = [a.name for a in spec.arrays]
    scalars, outs = _outputs(spec.result)
    # The first scalar result is the intrinsic's return value; others go through arrays.
    stored = [(name, (1,), [node]) for name, node in scalars[1:]] + outs
    returns_value = bool(scalars)
    body_name = f"_{spec.name}_ir"
    names: dict[Expr, str] = dict(zip(spec.inputs, params, strict=True))

    def operand(node: Expr) -> str:
        return _constant(node.value) if node.op == "const" else names[node]

    ir_args = params + [f"{a}_c" for a in arrays] + [name for name, _, _ in stored]
    lines = [f"{', '.join(ir_args)}, = args"] if ir_args else []
    for k, array in enumerate(spec.arrays):
        lines.append(f"_in{k} = _data(context, bd, signature.args[{len(params) + k}], "
                     f"{array.name}_c)")
        for i, sym in enumerate(array.symbols):
            names[sym] = f"_a{k}_{i}"
            lines.append(f"_a{k}_{i} = _load(bd, _in{k}, {i})")
    first_out = len(params) + len(arrays)
    for k, (name, _, _) in enumerate(stored):
        lines.append(f"_d{k} = _data(context, bd, signature.args[{first_out + k}], {name})")
    for index, node in enumerate(schedule(flatten(spec.result))):
        names[node] = temporary(index)
        lines.append(f"{names[node]} = {_element(node, operand)}")
    for k, (_, _, nodes) in enumerate(stored):  # C order: 2-D results by flat index
        lines += [f"_store(bd, {operand(x)}, _d{k}, {i})" for i, x in enumerate(nodes)]
    lines.append(f"return {operand(scalars[0][1])}" if returns_value
                 else "return context.get_dummy_value()")
    returned_type = "types.float64" if returns_value else "types.none"
    intrinsic_source = (
        f"@intrinsic\ndef {body_name}(typingctx, {', '.join(ir_args)}):\n"
        f"    def codegen(context, bd, signature, args):\n"
        + "".join(f"        {line}\n" for line in lines)
        + f"\n    return {returned_type}({', '.join(ir_args)}), codegen\n")

    wrapper = array_checks(spec) + [f"{a}_c = np.ascontiguousarray({a})" for a in arrays]
    wrapper += [f"{name} = np.empty({shape})" for name, shape, _ in stored]
    call = f"{body_name}({', '.join(ir_args)})"
    wrapper.append(f"_value = {call}" if returns_value else call)
    wrapper.append(f"return {_returned(spec.result, scalars)}")
    doc = f'    """{spec.doc}"""\n' if spec.doc else ""
    return (intrinsic_source + "\n\n" + f"{decorator}\ndef {spec.name}("
            f"{', '.join(params + arrays)}):\n{doc}"
            + "".join(f"    {line}\n" for line in wrapper))
