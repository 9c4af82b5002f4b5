"""How the LLVM lowering writes one element of each elementwise op (codegen.llvm.emit).

``ELEMENTS[op]`` is the right-hand side of one LLVM instruction (``{0}``, ``{1}``: the
operands) and the declarations or always-inlined function definitions it calls.
Comparisons are ordered (false for nan) except !=, as in NumPy.  ``FALLBACK`` lists the
ops this lowering has no text for: a function using one of them is lowered by the Numba
(Python) lowering instead.  A test checks that every elementwise op is in one of the two
(tests/test_ops.py).
"""

from __future__ import annotations

import math
import struct

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _llvm_double(value: float) -> str:
    """A double constant of LLVM assembly, exactly (its IEEE bits in hex)."""
    return f"0x{struct.unpack('<Q', struct.pack('<d', value))[0]:016X}"


def _declare(name, arity=1):
    return f"declare double @{name}({', '.join(['double'] * arity)})"


def _intrinsic_call(name, arity=1):
    operands = ", ".join(f"double {{{k}}}" for k in range(arity))
    return f"call double @{name}({operands})", _declare(name, arity)


def _ir_helper(name, params, body, uses=()):
    """An always-inlined LLVM function ``@_sd_<name>`` of doubles, and its call."""
    signature = ", ".join(f"double %{p}" for p in params)
    operands = ", ".join(f"double {{{k}}}" for k in range(len(params)))
    lines = "\n".join("  " + line for line in body)
    definition = (f"define internal double @_sd_{name}({signature}) alwaysinline {{\n"
                  f"{lines}\n}}")
    return f"call double @_sd_{name}({operands})", "\n".join([*uses, definition])


def _compare_ir(name, condition):
    return _ir_helper(name, "xy", [f"%c = fcmp {condition} double %x, %y",
                                   "%r = select i1 %c, double 1.0, double 0.0",
                                   "ret double %r"])


_EXP = _declare("llvm.exp.f64")
ELEMENTS: dict[str, tuple[str, str | None]] = {
    "add": ("fadd double {0}, {1}", None), "sub": ("fsub double {0}, {1}", None),
    "mul": ("fmul double {0}, {1}", None), "div": ("fdiv double {0}, {1}", None),
    "neg": ("fneg double {0}", None), "pow": _intrinsic_call("llvm.pow.f64", 2),
    **{name: _intrinsic_call(f"llvm.{name}.f64") for name in (
        "sin", "cos", "exp", "log", "sqrt")},
    "abs": _intrinsic_call("llvm.fabs.f64"),
    **{name: _intrinsic_call(name) for name in (
        "tan", "tanh", "sinh", "cosh", "asin", "acos", "atan", "log1p", "expm1", "erf",
        "erfc", "asinh", "acosh", "atanh")},
    "atan2": _intrinsic_call("atan2", 2),
    "sign": _ir_helper("sign", "x", [
        "%positive = fcmp ogt double %x, 0.0", "%negative = fcmp olt double %x, 0.0",
        "%rest = select i1 %negative, double -1.0, double %x",
        "%r = select i1 %positive, double 1.0, double %rest", "ret double %r"]),
    "step": _ir_helper("step", "x", [
        "%positive = fcmp ogt double %x, 0.0", "%low = fcmp ole double %x, 0.0",
        "%rest = select i1 %low, double 0.0, double %x",
        "%r = select i1 %positive, double 1.0, double %rest", "ret double %r"]),
    "relu": _ir_helper("relu", "x", [
        "%low = fcmp ole double %x, 0.0", "%r = select i1 %low, double 0.0, double %x",
        "ret double %r"]),
    "sigmoid": _ir_helper("sigmoid", "x", [
        "; both stable forms, then the one for the sign of x (nan takes the second)",
        "%nx = fneg double %x", "%en = call double @llvm.exp.f64(double %nx)",
        "%dn = fadd double 1.0, %en", "%high = fdiv double 1.0, %dn",
        "%z = call double @llvm.exp.f64(double %x)", "%dz = fadd double 1.0, %z",
        "%low = fdiv double %z, %dz", "%c = fcmp oge double %x, 0.0",
        "%r = select i1 %c, double %high, double %low", "ret double %r"], [_EXP]),
    "softplus": _ir_helper("softplus", "x", [
        "%a = call double @llvm.fabs.f64(double %x)", "%na = fneg double %a",
        "%e = call double @llvm.exp.f64(double %na)",
        "%tail = call double @log1p(double %e)", "%c = fcmp ogt double %x, 0.0",
        "%head = select i1 %c, double %x, double 0.0",
        "%r = fadd double %tail, %head", "ret double %r"],
        [_EXP, _declare("llvm.fabs.f64"), _declare("log1p")]),
    "maximum": _ir_helper("maximum", "xy", [
        "%s = fadd double %x, %y", "%c1 = fcmp ogt double %y, %x",
        "%other = select i1 %c1, double %y, double %s", "%c2 = fcmp oge double %x, %y",
        "%r = select i1 %c2, double %x, double %other", "ret double %r"]),
    "minimum": _ir_helper("minimum", "xy", [
        "%s = fadd double %x, %y", "%c1 = fcmp olt double %y, %x",
        "%other = select i1 %c1, double %y, double %s", "%c2 = fcmp ole double %x, %y",
        "%r = select i1 %c2, double %x, double %other", "ret double %r"]),
    "less": _compare_ir("less", "olt"), "less_equal": _compare_ir("less_equal", "ole"),
    "greater": _compare_ir("greater", "ogt"),
    "greater_equal": _compare_ir("greater_equal", "oge"),
    "equal": _compare_ir("equal", "oeq"), "not_equal": _compare_ir("not_equal", "une"),
    "where": _ir_helper("where", "cxy", [
        "%t = fcmp une double %c, 0.0", "%r = select i1 %t, double %x, double %y",
        "ret double %r"]),
    "stop_gradient": ("{0}", None),
    "gammaln": _intrinsic_call("lgamma"),
    "log_ndtr": _ir_helper("log_ndtr", "x", [
        f"%u = fmul double %x, {_llvm_double(math.sqrt(0.5))}",  # x / sqrt(2)
        "%nu = fneg double %u",
        "%low = call double @erfc(double %nu)", "%half = fmul double %low, 0.5",
        "%mid = call double @llvm.log.f64(double %half)",
        "%q = call double @erfc(double %u)", "%high = fmul double %q, -0.5",
        "%xx = fmul double %x, %x", "%f = fdiv double 1.0, %xx",
        "%q1 = fmul double %f, 10395.0", "%q2 = fadd double %q1, -945.0",
        "%q3 = fmul double %f, %q2", "%q4 = fadd double %q3, 105.0",
        "%p1 = fmul double %f, %q4", "%p2 = fadd double %p1, -15.0",
        "%p3 = fmul double %f, %p2", "%p4 = fadd double %p3, 3.0",
        "%p5 = fmul double %f, %p4", "%p6 = fadd double %p5, -1.0",
        "%p7 = fmul double %f, %p6", "%tail = call double @log1p(double %p7)",
        "%nx = fneg double %x", "%lognx = call double @llvm.log.f64(double %nx)",
        "%g = fmul double %xx, -0.5",
        f"%g1 = fsub double %g, {_llvm_double(_LOG_SQRT_2PI)}",
        "%g2 = fsub double %g1, %lognx", "%asym = fadd double %g2, %tail",
        "%isHigh = fcmp ogt double %x, 6.0", "%isMid = fcmp ogt double %x, -20.0",
        "%lowOrMid = select i1 %isMid, double %mid, double %asym",
        "%r = select i1 %isHigh, double %high, double %lowOrMid", "ret double %r"],
        [_declare("erfc"), _declare("llvm.log.f64"), _declare("log1p")]),
}

# digamma and polygamma: their series loops have no LLVM text here.
FALLBACK = frozenset({"digamma", "polygamma"})
