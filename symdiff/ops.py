"""The op table: one record per operation (value, derivative rule, emission, SymPy).

Conventions at non-smooth points (the same in the evaluator, the generated code and at
every order, because derivatives are built from these same ops):

* relu'(0) = 0 (relu' is ``step``, with step(0) = 0); abs'(0) = 0 (abs' is ``sign``).
* maximum/minimum split ties: at x == y each operand gets 1/2 of the derivative.
* sign and step have derivative 0 everywhere.
* sqrt'(0) = inf, log(x < 0) = nan, 1/0 = inf: NumPy's float64 semantics throughout.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import sympy
from sympy.codegen.cfunctions import expm1 as sympy_expm1
from sympy.codegen.cfunctions import log1p as sympy_log1p

from .eager import eager
from .ir import OPS, Op, apply, const, register

ZERO = const(0.0)
ONE = const(1.0)


def _numpy_fallback(math_fn, numpy_fn):
    """Evaluate with ``math`` and fall back to NumPy where math raises (domain, overflow)."""

    def evaluate(*args):
        try:
            return math_fn(*args)
        except (ValueError, OverflowError, ZeroDivisionError):
            with np.errstate(all="ignore"):
                return float(numpy_fn(*(np.float64(a) for a in args)))

    evaluate.__name__ = numpy_fn.__name__
    return evaluate


def _sigmoid(x):
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def _softplus(x):
    return math.log1p(math.exp(-abs(x))) + (x if x > 0.0 else 0.0)


def _relu(x):
    return 0.0 if x <= 0.0 else x


def _step(x):
    return 1.0 if x > 0.0 else (0.0 if x <= 0.0 else x)


def _sign(x):
    return 1.0 if x > 0.0 else (-1.0 if x < 0.0 else x)


def _maximum(x, y):
    return x if x >= y else (y if y > x else x + y)


def _minimum(x, y):
    return x if x <= y else (y if y < x else x + y)


def _helper(name, params, body):
    lines = "\n".join("    " + line for line in body)
    return f'@numba.njit(error_model="numpy", cache=True)\ndef {name}({params}):\n{lines}\n'


# Derivative rules.  Each returns the IR of d out / d args[i].
def _rule(*partials):
    return lambda i, args, out: partials[i](*args, out)


def _tie_split(sign_of_x_operand):
    # d max(x, y)/dx = 1/2 + sign(x - y)/2: 1 if x > y, 1/2 at a tie, 0 if x < y.
    def rule(i, args, out):
        s = apply("sign", apply("sub", args[0], args[1]))
        half_s = apply("mul", 0.5, s)
        plus = (i == 0) == sign_of_x_operand
        return apply("add" if plus else "sub", 0.5, half_s)

    return rule


def _pow_base(x, y, out):
    if y.op == "const":
        return apply("mul", y, apply("pow", x, const(y.value - 1.0)))
    # The exponent's constant absorbs the 1, so d3/dx3 of x**a shows x**(a - 3).
    lowered = apply("sub", y, 1.0)
    if y.op in ("add", "sub") and y.args[1].op == "const":
        shift = y.args[1].value * (1.0 if y.op == "add" else -1.0) - 1.0
        lowered = apply("add" if shift > 0 else "sub", y.args[0], const(abs(shift)))
    return apply("mul", y, apply("pow", x, lowered))


def _one_over_sqrt_one_minus_square(x):
    return apply("div", 1.0, apply("sqrt", apply("sub", 1.0, apply("mul", x, x))))


def _atan2_denominator(y, x):
    return apply("add", apply("mul", x, x), apply("mul", y, y))


def _fn(name, arity, evaluate, rule, emit, to_sympy, ufuncs=(), helper=None):
    return register(Op(name, arity, evaluate, rule, emit, to_sympy, None, 50, helper, ufuncs))


# Arithmetic.  Precedences follow Python: + - (10) < * / (20) < unary - (30) < ** (40).
register(Op("add", 2, lambda x, y: x + y, _rule(lambda x, y, o: ONE, lambda x, y, o: ONE),
            "{0} + {1}", lambda x, y: x + y, "+", 10, None, ("add",)))
register(Op("sub", 2, lambda x, y: x - y, _rule(lambda x, y, o: ONE, lambda x, y, o: const(-1)),
            "{0} - {1}", lambda x, y: x - y, "-", 10, None, ("subtract",)))
register(Op("mul", 2, lambda x, y: x * y, _rule(lambda x, y, o: y, lambda x, y, o: x),
            "{0} * {1}", lambda x, y: x * y, "*", 20, None, ("multiply",)))
register(Op("div", 2, _numpy_fallback(lambda x, y: x / y, np.divide),
            _rule(lambda x, y, o: apply("div", 1.0, y),
                  lambda x, y, o: apply("neg", apply("div", o, y))),
            "{0} / {1}", lambda x, y: x / y, "/", 20, None, ("divide", "true_divide")))
register(Op("neg", 1, lambda x: -x, _rule(lambda x, o: const(-1)),
            "-{0}", lambda x: -x, "-", 30, None, ("negative",)))
register(Op("pow", 2, _numpy_fallback(math.pow, np.power),
            _rule(_pow_base, lambda x, y, o: apply("mul", o, apply("log", x))),
            "{0} ** {1}", lambda x, y: x**y, "**", 40, None, ("power", "float_power")))

# Elementary functions.
_fn("sin", 1, _numpy_fallback(math.sin, np.sin), _rule(lambda x, o: apply("cos", x)),
    "math.sin({0})", sympy.sin, ("sin",))
_fn("cos", 1, _numpy_fallback(math.cos, np.cos),
    _rule(lambda x, o: apply("neg", apply("sin", x))), "math.cos({0})", sympy.cos, ("cos",))
_fn("tan", 1, _numpy_fallback(math.tan, np.tan),
    _rule(lambda x, o: apply("add", 1.0, apply("mul", o, o))), "math.tan({0})", sympy.tan,
    ("tan",))
_fn("exp", 1, _numpy_fallback(math.exp, np.exp), _rule(lambda x, o: o),
    "math.exp({0})", sympy.exp, ("exp",))
_fn("log", 1, _numpy_fallback(math.log, np.log), _rule(lambda x, o: apply("div", 1.0, x)),
    "math.log({0})", sympy.log, ("log",))
_fn("sqrt", 1, _numpy_fallback(math.sqrt, np.sqrt), _rule(lambda x, o: apply("div", 0.5, o)),
    "math.sqrt({0})", sympy.sqrt, ("sqrt",))
_fn("tanh", 1, _numpy_fallback(math.tanh, np.tanh),
    _rule(lambda x, o: apply("sub", 1.0, apply("mul", o, o))), "math.tanh({0})", sympy.tanh,
    ("tanh",))
_fn("sinh", 1, _numpy_fallback(math.sinh, np.sinh), _rule(lambda x, o: apply("cosh", x)),
    "math.sinh({0})", sympy.sinh, ("sinh",))
_fn("cosh", 1, _numpy_fallback(math.cosh, np.cosh), _rule(lambda x, o: apply("sinh", x)),
    "math.cosh({0})", sympy.cosh, ("cosh",))
_fn("asin", 1, _numpy_fallback(math.asin, np.arcsin),
    _rule(lambda x, o: _one_over_sqrt_one_minus_square(x)), "math.asin({0})", sympy.asin,
    ("arcsin",))
_fn("acos", 1, _numpy_fallback(math.acos, np.arccos),
    _rule(lambda x, o: apply("neg", _one_over_sqrt_one_minus_square(x))), "math.acos({0})",
    sympy.acos, ("arccos",))
_fn("atan", 1, _numpy_fallback(math.atan, np.arctan),
    _rule(lambda x, o: apply("div", 1.0, apply("add", 1.0, apply("mul", x, x)))),
    "math.atan({0})", sympy.atan, ("arctan",))
_fn("atan2", 2, _numpy_fallback(math.atan2, np.arctan2),
    _rule(lambda y, x, o: apply("div", x, _atan2_denominator(y, x)),
          lambda y, x, o: apply("neg", apply("div", y, _atan2_denominator(y, x)))),
    "math.atan2({0}, {1})", sympy.atan2, ("arctan2",))
_fn("log1p", 1, _numpy_fallback(math.log1p, np.log1p),
    _rule(lambda x, o: apply("div", 1.0, apply("add", 1.0, x))), "math.log1p({0})",
    sympy_log1p, ("log1p",))
_fn("expm1", 1, _numpy_fallback(math.expm1, np.expm1), _rule(lambda x, o: apply("add", o, 1.0)),
    "math.expm1({0})", sympy_expm1, ("expm1",))


def _gaussian(x, scale):
    """scale * exp(-x^2): erf' = 2/sqrt(pi) exp(-x^2)."""
    return apply("mul", scale, apply("exp", apply("neg", apply("mul", x, x))))


# Error functions (losses and likelihoods; scipy.special.erf/erfc are ufuncs of these names).
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_fn("erf", 1, math.erf, _rule(lambda x, o: _gaussian(x, _TWO_OVER_SQRT_PI)),
    "math.erf({0})", sympy.erf, ("erf",))
_fn("erfc", 1, math.erfc, _rule(lambda x, o: _gaussian(x, -_TWO_OVER_SQRT_PI)),
    "math.erfc({0})", sympy.erfc, ("erfc",))

# Piecewise functions, with the conventions of the module docstring.
_fn("abs", 1, abs, _rule(lambda x, o: apply("sign", x)), "math.fabs({0})", sympy.Abs,
    ("absolute", "fabs"))
_fn("sign", 1, _sign, _rule(lambda x, o: ZERO), "_sd_sign({0})", sympy.sign, ("sign",),
    _helper("_sd_sign", "x", ["if x > 0.0:", "    return 1.0", "if x < 0.0:", "    return -1.0",
                              "return x  # 0.0 for +-0, nan for nan"]))
_fn("step", 1, _step, _rule(lambda x, o: ZERO), "_sd_step({0})",
    lambda x: sympy.Heaviside(x, 0), (),
    _helper("_sd_step", "x", ["if x > 0.0:", "    return 1.0",
                              "return 0.0 if x <= 0.0 else x  # step(0) = 0; nan stays nan"]))
_fn("sigmoid", 1, _sigmoid, _rule(lambda x, o: apply("mul", o, apply("sub", 1.0, o))),
    "_sd_sigmoid({0})", lambda x: 1 / (1 + sympy.exp(-x)), (),
    _helper("_sd_sigmoid", "x", ["if x >= 0.0:", "    return 1.0 / (1.0 + math.exp(-x))",
                                 "z = math.exp(x)  # x < 0 or nan: no overflow",
                                 "return z / (1.0 + z)"]))
_fn("relu", 1, _relu, _rule(lambda x, o: apply("step", x)), "_sd_relu({0})",
    lambda x: sympy.Max(x, 0), (),
    _helper("_sd_relu", "x", ["return 0.0 if x <= 0.0 else x  # nan stays nan"]))
_fn("softplus", 1, _softplus, _rule(lambda x, o: apply("sigmoid", x)), "_sd_softplus({0})",
    lambda x: sympy.log(1 + sympy.exp(x)), (),
    _helper("_sd_softplus", "x",
            ["# log(1 + e^x) without overflow: max(x, 0) + log1p(e^-|x|)",
             "return math.log1p(math.exp(-math.fabs(x))) + (x if x > 0.0 else 0.0)"]))
_fn("maximum", 2, _maximum, _tie_split(True), "_sd_maximum({0}, {1})", sympy.Max,
    ("maximum",),
    _helper("_sd_maximum", "x, y", ["if x >= y:", "    return x", "if y > x:", "    return y",
                                    "return x + y  # a nan operand gives nan"]))
_fn("minimum", 2, _minimum, _tie_split(False), "_sd_minimum({0}, {1})", sympy.Min,
    ("minimum",),
    _helper("_sd_minimum", "x, y", ["if x <= y:", "    return x", "if y < x:", "    return y",
                                    "return x + y  # a nan operand gives nan"]))


# Comparisons give 1.0 or 0.0 (nan compares false, as in NumPy); they and stop_gradient
# have derivative 0.  where(c, x, y) picks x where c is nonzero.
def _compare(name, symbol, test, relation):
    _fn(name, 2, lambda x, y: 1.0 if test(x, y) else 0.0, _rule(lambda x, y, o: ZERO,
                                                              lambda x, y, o: ZERO),
        f"(1.0 if {{0}} {symbol} {{1}} else 0.0)",
        lambda x, y: sympy.Piecewise((1, relation(x, y)), (0, True)), (name,))


_compare("less", "<", lambda x, y: x < y, sympy.Lt)
_compare("less_equal", "<=", lambda x, y: x <= y, sympy.Le)
_compare("greater", ">", lambda x, y: x > y, sympy.Gt)
_compare("greater_equal", ">=", lambda x, y: x >= y, sympy.Ge)
_compare("equal", "==", lambda x, y: x == y, sympy.Eq)
_compare("not_equal", "!=", lambda x, y: x != y, sympy.Ne)
_fn("where", 3, lambda c, x, y: x if c != 0.0 else y,
    _rule(lambda c, x, y, o: ZERO, lambda c, x, y, o: apply("not_equal", c, 0.0),
          lambda c, x, y, o: apply("equal", c, 0.0)),
    "({1} if {0} != 0.0 else {2})",
    lambda c, x, y: sympy.Piecewise((x, sympy.Ne(c, 0)), (y, True)))
_fn("stop_gradient", 1, lambda x: x, _rule(lambda x, o: ZERO), "{0}", lambda x: x)



# LLVM assembly of one element, for codegen.emit_llvm: the right-hand side of one
# instruction, with ``llvm_helper`` the declarations or (always inlined) function
# definitions it calls.  Comparisons are ordered (false for nan) except !=, as in NumPy.
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
_LLVM = {
    "add": ("fadd double {0}, {1}", None), "sub": ("fsub double {0}, {1}", None),
    "mul": ("fmul double {0}, {1}", None), "div": ("fdiv double {0}, {1}", None),
    "neg": ("fneg double {0}", None), "pow": _intrinsic_call("llvm.pow.f64", 2),
    **{name: _intrinsic_call(f"llvm.{name}.f64") for name in (
        "sin", "cos", "exp", "log", "sqrt")},
    "abs": _intrinsic_call("llvm.fabs.f64"),
    **{name: _intrinsic_call(name) for name in (
        "tan", "tanh", "sinh", "cosh", "asin", "acos", "atan", "log1p", "expm1", "erf",
        "erfc")},
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
}
for _name, (_template, _helper_source) in _LLVM.items():
    OPS[_name] = dataclasses.replace(OPS[_name], llvm=_template, llvm_helper=_helper_source)

from . import loop_math  # noqa: E402, F401  (sets the loop templates of exp, tanh, ...)


def _public(name):
    def function(*args):
        return apply(name, *args)

    function.__name__ = name
    function.__qualname__ = name
    arity = ", ".join("cxy"[3 - OPS[name].arity:]) if OPS[name].arity > 1 else "x"
    function.__doc__ = (f"{name}({arity}): an expression (numbers become constants); with no "
                        "expression among the arguments, its value (a float or an array).")
    return eager(function)


sin, cos, tan, exp, log, sqrt = map(_public, ("sin", "cos", "tan", "exp", "log", "sqrt"))
tanh, sinh, cosh, asin, acos, atan = map(_public, ("tanh", "sinh", "cosh", "asin", "acos", "atan"))
atan2, log1p, expm1, sign, step = map(_public, ("atan2", "log1p", "expm1", "sign", "step"))
erf, erfc = map(_public, ("erf", "erfc"))
sigmoid, relu, softplus = map(_public, ("sigmoid", "relu", "softplus"))
maximum, minimum = map(_public, ("maximum", "minimum"))
less, less_equal, greater, greater_equal, equal, not_equal = map(_public, (
    "less", "less_equal", "greater", "greater_equal", "equal", "not_equal"))
where, stop_gradient = map(_public, ("where", "stop_gradient"))
abs_ = _public("abs")

# Ops callable by name in parsed text: every op that prints as a function call.
FUNCTIONS = {name: op for name, op in OPS.items() if op.infix is None and op.elementwise}
