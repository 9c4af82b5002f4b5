"""The op table: one record per operation (value, derivative rule, SymPy; how each
backend renders an op is in that backend's own table under codegen/).

Conventions at non-smooth points (the same in the evaluator, the generated code and at
every order, because derivatives are built from these same ops):

* relu'(0) = 0 (relu' is ``step``, with step(0) = 0); abs'(0) = 0 (abs' is ``sign``).
* maximum/minimum split ties: at x == y each operand gets 1/2 of the derivative.
* sign and step have derivative 0 everywhere.
* sqrt'(0) = inf, log(x < 0) = nan, 1/0 = inf: NumPy's float64 semantics throughout.
"""

from __future__ import annotations

import math

import numpy as np
import sympy
from sympy.codegen.cfunctions import expm1 as sympy_expm1
from sympy.codegen.cfunctions import log1p as sympy_log1p

from symdiff.ir.eager import eager
from symdiff.ir.nodes import OPS, Op, apply, const, register

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


# Derivative rules.  Each returns the IR of d out / d args[i].
def rule(*partials):
    """A derivative rule from one local partial per operand: ``partials[i](*args, out)``
    builds d out / d args[i]."""
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


def _fn(name, arity, evaluate, rule, to_sympy, ufuncs=()):
    return register(Op(name, arity, evaluate, rule, to_sympy, numpy_ufuncs=ufuncs))


# Arithmetic.  Precedences follow Python: + - (10) < * / (20) < unary - (30) < ** (40).
register(Op("add", 2, lambda x, y: x + y, rule(lambda x, y, o: ONE, lambda x, y, o: ONE),
            lambda x, y: x + y, "+", 10, ("add",)))
register(Op("sub", 2, lambda x, y: x - y, rule(lambda x, y, o: ONE, lambda x, y, o: const(-1)),
            lambda x, y: x - y, "-", 10, ("subtract",)))
register(Op("mul", 2, lambda x, y: x * y, rule(lambda x, y, o: y, lambda x, y, o: x),
            lambda x, y: x * y, "*", 20, ("multiply",)))
register(Op("div", 2, _numpy_fallback(lambda x, y: x / y, np.divide),
            rule(lambda x, y, o: apply("div", 1.0, y),
                  lambda x, y, o: apply("neg", apply("div", o, y))),
            lambda x, y: x / y, "/", 20, ("divide", "true_divide")))
register(Op("neg", 1, lambda x: -x, rule(lambda x, o: const(-1)),
            lambda x: -x, "-", 30, ("negative",)))
register(Op("pow", 2, _numpy_fallback(math.pow, np.power),
            rule(_pow_base, lambda x, y, o: apply("mul", o, apply("log", x))),
            lambda x, y: x**y, "**", 40, ("power", "float_power")))

# Elementary functions.
_fn("sin", 1, _numpy_fallback(math.sin, np.sin), rule(lambda x, o: apply("cos", x)),
    sympy.sin, ("sin",))
_fn("cos", 1, _numpy_fallback(math.cos, np.cos),
    rule(lambda x, o: apply("neg", apply("sin", x))), sympy.cos, ("cos",))
_fn("tan", 1, _numpy_fallback(math.tan, np.tan),
    rule(lambda x, o: apply("add", 1.0, apply("mul", o, o))), sympy.tan,
    ("tan",))
_fn("exp", 1, _numpy_fallback(math.exp, np.exp), rule(lambda x, o: o),
    sympy.exp, ("exp",))
_fn("log", 1, _numpy_fallback(math.log, np.log), rule(lambda x, o: apply("div", 1.0, x)),
    sympy.log, ("log",))
_fn("sqrt", 1, _numpy_fallback(math.sqrt, np.sqrt), rule(lambda x, o: apply("div", 0.5, o)),
    sympy.sqrt, ("sqrt",))
_fn("tanh", 1, _numpy_fallback(math.tanh, np.tanh),
    rule(lambda x, o: apply("sub", 1.0, apply("mul", o, o))), sympy.tanh,
    ("tanh",))
_fn("sinh", 1, _numpy_fallback(math.sinh, np.sinh), rule(lambda x, o: apply("cosh", x)),
    sympy.sinh, ("sinh",))
_fn("cosh", 1, _numpy_fallback(math.cosh, np.cosh), rule(lambda x, o: apply("sinh", x)),
    sympy.cosh, ("cosh",))
_fn("asin", 1, _numpy_fallback(math.asin, np.arcsin),
    rule(lambda x, o: _one_over_sqrt_one_minus_square(x)), sympy.asin,
    ("arcsin",))
_fn("acos", 1, _numpy_fallback(math.acos, np.arccos),
    rule(lambda x, o: apply("neg", _one_over_sqrt_one_minus_square(x))), sympy.acos,
    ("arccos",))
_fn("atan", 1, _numpy_fallback(math.atan, np.arctan),
    rule(lambda x, o: apply("div", 1.0, apply("add", 1.0, apply("mul", x, x)))),
    sympy.atan, ("arctan",))
_fn("atan2", 2, _numpy_fallback(math.atan2, np.arctan2),
    rule(lambda y, x, o: apply("div", x, _atan2_denominator(y, x)),
          lambda y, x, o: apply("neg", apply("div", y, _atan2_denominator(y, x)))),
    sympy.atan2, ("arctan2",))
_fn("log1p", 1, _numpy_fallback(math.log1p, np.log1p),
    rule(lambda x, o: apply("div", 1.0, apply("add", 1.0, x))), sympy_log1p, ("log1p",))
_fn("expm1", 1, _numpy_fallback(math.expm1, np.expm1), rule(lambda x, o: apply("add", o, 1.0)),
    sympy_expm1, ("expm1",))

_fn("asinh", 1, _numpy_fallback(math.asinh, np.arcsinh),
    rule(lambda x, o: apply("div", 1.0, apply("sqrt", apply("add", apply("mul", x, x), 1.0)))),
    sympy.asinh, ("arcsinh",))
_fn("acosh", 1, _numpy_fallback(math.acosh, np.arccosh),
    rule(lambda x, o: apply("div", 1.0, apply("sqrt", apply("sub", apply("mul", x, x), 1.0)))),
    sympy.acosh, ("arccosh",))
_fn("atanh", 1, _numpy_fallback(math.atanh, np.arctanh),
    rule(lambda x, o: apply("div", 1.0, apply("sub", 1.0, apply("mul", x, x)))), sympy.atanh,
    ("arctanh",))

def _gaussian(x, scale):
    """scale * exp(-x^2): erf' = 2/sqrt(pi) exp(-x^2)."""
    return apply("mul", scale, apply("exp", apply("neg", apply("mul", x, x))))


# Error functions (losses and likelihoods; scipy.special.erf/erfc are ufuncs of these names).
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_fn("erf", 1, math.erf, rule(lambda x, o: _gaussian(x, _TWO_OVER_SQRT_PI)),
    sympy.erf, ("erf",))
_fn("erfc", 1, math.erfc, rule(lambda x, o: _gaussian(x, -_TWO_OVER_SQRT_PI)),
    sympy.erfc, ("erfc",))

# Piecewise functions, with the conventions of the module docstring.
_fn("abs", 1, abs, rule(lambda x, o: apply("sign", x)), sympy.Abs,
    ("absolute", "fabs"))
_fn("sign", 1, _sign, rule(lambda x, o: ZERO), sympy.sign, ("sign",))
_fn("step", 1, _step, rule(lambda x, o: ZERO), lambda x: sympy.Heaviside(x, 0), ())
_fn("sigmoid", 1, _sigmoid, rule(lambda x, o: apply("mul", o, apply("sub", 1.0, o))),
    lambda x: 1 / (1 + sympy.exp(-x)), ())
_fn("relu", 1, _relu, rule(lambda x, o: apply("step", x)), lambda x: sympy.Max(x, 0), ())
_fn("softplus", 1, _softplus, rule(lambda x, o: apply("sigmoid", x)),
    lambda x: sympy.log(1 + sympy.exp(x)), ())
_fn("maximum", 2, _maximum, _tie_split(True), sympy.Max, ("maximum",))
_fn("minimum", 2, _minimum, _tie_split(False), sympy.Min, ("minimum",))


# Comparisons give 1.0 or 0.0 (nan compares false, as in NumPy); they and stop_gradient
# have derivative 0.  where(c, x, y) picks x where c is nonzero.
def _compare(name, test, relation):
    _fn(name, 2, lambda x, y: 1.0 if test(x, y) else 0.0, rule(lambda x, y, o: ZERO,
                                                              lambda x, y, o: ZERO),
        lambda x, y: sympy.Piecewise((1, relation(x, y)), (0, True)), (name,))


_compare("less", lambda x, y: x < y, sympy.Lt)
_compare("less_equal", lambda x, y: x <= y, sympy.Le)
_compare("greater", lambda x, y: x > y, sympy.Gt)
_compare("greater_equal", lambda x, y: x >= y, sympy.Ge)
_compare("equal", lambda x, y: x == y, sympy.Eq)
_compare("not_equal", lambda x, y: x != y, sympy.Ne)
_fn("where", 3, lambda c, x, y: x if c != 0.0 else y,
    rule(lambda c, x, y, o: ZERO, lambda c, x, y, o: apply("not_equal", c, 0.0),
          lambda c, x, y, o: apply("equal", c, 0.0)),
    lambda c, x, y: sympy.Piecewise((x, sympy.Ne(c, 0)), (y, True)))
_fn("stop_gradient", 1, lambda x: x, rule(lambda x, o: ZERO), lambda x: x)



def public_function(name):
    """The ``sd.<name>`` function of an elementwise op (numbers become constants)."""
    def function(*args):
        return apply(name, *args)

    function.__name__ = name
    function.__qualname__ = name
    arity = ", ".join("cxy"[3 - OPS[name].arity:]) if OPS[name].arity > 1 else "x"
    function.__doc__ = (f"{name}({arity}): an expression (numbers become constants); with no "
                        "expression among the arguments, its value (a float or an array).")
    return eager(function)


# Ops callable by name, in parsed text and as sd.<name>: every elementwise op that prints as
# a function call.  Both tables derive from the records, so a new op needs neither listed.
FUNCTIONS = {name: op for name, op in OPS.items() if op.infix is None and op.elementwise}
PUBLIC = {name: public_function(name) for name in FUNCTIONS}
