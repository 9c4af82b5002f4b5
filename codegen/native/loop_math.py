"""exp, expm1, tanh and sigmoid from arithmetic only, for the elements of native loops:
the LLVM text of the Numba lowering's loop helpers (codegen.numba.loop_math), operation
for operation and with the same constants (codegen.exp_parts), so the two lowerings
agree bit for bit and LLVM inlines and vectorizes them (a call of the C library's exp is
opaque to it).  The accuracy is theirs: exp
within 1 ulp, expm1 and sigmoid 2, tanh 3 (tests/test_loop_math.py).

``LOOP[op]`` is (the call, with ``{0}`` for the operand; the definitions it needs).
"""

from __future__ import annotations

import struct

from ..exp_parts import (
    EXPONENT_BIAS,
    INV_LN2,
    LN2_HIGH,
    LN2_LOW,
    OVERFLOW,
    POLYNOMIAL,
    POW2_HIGH,
    POW2_LOW,
    ROUND,
    TANH_SATURATION,
    UNDERFLOW,
)


def _double(value: float) -> str:
    return f"0x{struct.unpack('<Q', struct.pack('<d', value))[0]:016X}"


_ROUND = _double(ROUND)


def _horner(variable: str, coefficients: list[float], lines: list[str]) -> str:
    """c0 + v (c1 + v (...)) by fused multiply-adds; returns the value's name."""
    value = _double(coefficients[-1])
    for j, c in enumerate(reversed(coefficients[:-1])):
        name = f"%h{j}"
        lines.append(f"{name} = call double @llvm.fmuladd.f64(double {variable}, "
                     f"double {value}, double {_double(c)})")
        value = name
    return value


def _parts() -> str:
    lines = [f"%high = fcmp ogt double %x, {_double(OVERFLOW)}",
             f"%x1 = select i1 %high, double {_double(OVERFLOW)}, double %x",
             f"%low = fcmp olt double %x1, {_double(UNDERFLOW)}",
             f"%x2 = select i1 %low, double {_double(UNDERFLOW)}, double %x1",
             f"%kr = call double @llvm.fmuladd.f64(double %x2, double {_double(INV_LN2)}, "
             f"double {_ROUND})",
             f"%k = fsub double %kr, {_ROUND}",
             f"%r1 = call double @llvm.fmuladd.f64(double %k, double {_double(-LN2_HIGH)}, "
             "double %x2)",
             f"%r = call double @llvm.fmuladd.f64(double %k, double {_double(-LN2_LOW)}, "
             "double %r1)"]
    inner = _horner("%r", POLYNOMIAL, lines)
    lines += [f"%q = call double @llvm.fmuladd.f64(double %r, double {inner}, double 1.0)",
              "%p = fmul double %r, %q",
              "%pair = insertvalue {double, double} undef, double %p, 0",
              "%both = insertvalue {double, double} %pair, double %k, 1",
              "ret {double, double} %both"]
    return _define("{double, double}", "expm1_parts", lines)


def _pow2() -> str:
    return _define("double", "pow2", [
        f"%shifted = fadd double %x, {_ROUND}",
        "%bits = bitcast double %shifted to i64",
        f"%unbiased = sub i64 %bits, {struct.unpack('<q', struct.pack('<d', ROUND))[0]}",
        f"%biased = add i64 %unbiased, {EXPONENT_BIAS}",
        "%exponent = shl i64 %biased, 52",
        "%r = bitcast i64 %exponent to double",
        "ret double %r"])


def _define(kind: str, name: str, lines: list[str]) -> str:
    return (f"define internal {kind} @_sd_loop_{name}(double %x) alwaysinline {{\n"
            + "".join(f"  {line}\n" for line in lines) + "}")


_SPLIT = ["%parts = call {double, double} @_sd_loop_expm1_parts(double %x)",
          "%p = extractvalue {double, double} %parts, 0",
          "%k = extractvalue {double, double} %parts, 1",
          f"%lo1 = call double @llvm.maxnum.f64(double %k, double {_double(POW2_LOW)})",
          f"%lo = call double @llvm.minnum.f64(double %lo1, double {_double(POW2_HIGH)})"]

_DEFINITIONS = {
    "exp": _define("double", "exp", [
        *_SPLIT, "%one = fadd double 1.0, %p",
        "%s1 = call double @_sd_loop_pow2(double %lo)", "%a = fmul double %one, %s1",
        "%rest = fsub double %k, %lo", "%s2 = call double @_sd_loop_pow2(double %rest)",
        "%r = fmul double %a, %s2", "ret double %r"]),
    "expm1": _define("double", "expm1", [
        *_SPLIT, "%s = call double @_sd_loop_pow2(double %lo)",
        "%sp = fmul double %s, %p", "%s1 = fsub double %s, 1.0",
        "%small = fadd double %sp, %s1",
        "%one = fadd double 1.0, %p", "%a = fmul double %one, %s",
        "%rest = fsub double %k, %lo", "%s2 = call double @_sd_loop_pow2(double %rest)",
        "%b = fmul double %a, %s2", "%large = fsub double %b, 1.0",
        "%below = fcmp olt double %k, 1000.0",
        "%other = select i1 %below, double %small, double %large",
        "%zero = fcmp oeq double %k, 0.0",
        "%r = select i1 %zero, double %p, double %other", "ret double %r"]),
    "tanh": _define("double", "tanh", [
        "%a0 = call double @llvm.fabs.f64(double %x)",
        f"%big = fcmp ogt double %a0, {_double(TANH_SATURATION)}",
        f"%a = select i1 %big, double {_double(TANH_SATURATION)}, double %a0",
        "%twice = fmul double 2.0, %a",
        "%parts = call {double, double} @_sd_loop_expm1_parts(double %twice)",
        "%p = extractvalue {double, double} %parts, 0",
        "%k = extractvalue {double, double} %parts, 1",
        "%s = call double @_sd_loop_pow2(double %k)",
        "%sp = fmul double %s, %p", "%s1 = fsub double %s, 1.0",
        "%e = fadd double %sp, %s1", "%d = fadd double %e, 2.0",
        "%q = fdiv double %e, %d",
        "%r = call double @llvm.copysign.f64(double %q, double %x)", "ret double %r"]),
    "sigmoid": _define("double", "sigmoid", [
        "%a = call double @llvm.fabs.f64(double %x)", "%na = fneg double %a",
        "%z = call double @_sd_loop_exp(double %na)", "%d = fadd double 1.0, %z",
        "%high = fdiv double 1.0, %d", "%low = fdiv double %z, %d",
        "%positive = fcmp oge double %x, 0.0",
        "%r = select i1 %positive, double %high, double %low", "ret double %r"]),
}
_NEEDS = {"exp": ("parts", "pow2"), "expm1": ("parts", "pow2"), "tanh": ("parts", "pow2"),
          "sigmoid": ("exp", "parts", "pow2")}
_DECLARATIONS = ("declare double @llvm.fmuladd.f64(double, double, double)",
                 "declare double @llvm.maxnum.f64(double, double)",
                 "declare double @llvm.minnum.f64(double, double)",
                 "declare double @llvm.fabs.f64(double)",
                 "declare double @llvm.copysign.f64(double, double)")

LOOP = {op: f"call double @_sd_loop_{op}(double {{0}})" for op in _DEFINITIONS}


def loop_definitions(ops) -> list[str]:
    """Declarations and definitions the loop helpers of ``ops`` need, each once."""
    used: set[str] = set()
    for op in ops:
        if op in _DEFINITIONS:
            used.update((op, *_NEEDS[op]))
    if not used:
        return []
    shared = {"parts": _parts(), "pow2": _pow2()}
    return [*_DECLARATIONS, *(shared.get(name) or _DEFINITIONS[name] for name in sorted(used))]
