"""Special functions of likelihoods and losses: log-gamma, digamma, polygamma, log-ndtr.

One op record each, like ops.py.  Their derivatives are ops of this family, so every order
exists: gammaln' = digamma, digamma' = polygamma(1, .), polygamma(n, .)' = polygamma(n+1, .),
log_ndtr' = exp(-x^2/2 - log_ndtr(x)) / sqrt(2 pi) (the normal density over its CDF, as a
ratio of logs: no 0/0 far in the left tail).  The evaluator uses SciPy; generated code
uses these helpers (recurrence up to a large argument, then the asymptotic series with
Bernoulli numbers), within a few ulps of SciPy over the tested range.  The order n of
polygamma is a constant (its derivative in n is taken as 0).  digamma and polygamma have
no LLVM text: functions that use them keep the Python lowering.
"""

from __future__ import annotations

import math
import struct

import scipy.special
import sympy

from .eager import eager
from .ir import OPS, Op, apply, register
from .ops import FUNCTIONS, ZERO, _declare, _helper, _ir_helper, _public, _rule

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _llvm_double(value: float) -> str:
    """A double constant of LLVM assembly, exactly (its IEEE bits in hex)."""
    return f"0x{struct.unpack('<Q', struct.pack('<d', value))[0]:016X}"


def _scipy(fn):
    def evaluate(*args):
        return float(fn(*args))

    evaluate.__name__ = fn.__name__
    return evaluate


# Bernoulli numbers B_2 .. B_16 of the asymptotic series.
_BERNOULLI = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510)
_DIGAMMA = _helper("_sd_digamma", "x", [
    "if x <= 0.0 and x == math.floor(x):",
    "    return -math.inf if x == 0.0 else math.nan  # the poles, as SciPy",
    "result = 0.0",
    "if x < 0.0:  # reflection: psi(x) = psi(1 - x) - pi / tan(pi x)",
    "    result = -math.pi / math.tan(math.pi * (x - math.floor(x)))  # exact reduction",
    "    x = 1.0 - x",
    "while x < 10.0:  # psi(x) = psi(x + 1) - 1 / x",
    "    result -= 1.0 / x",
    "    x += 1.0",
    "f = 1.0 / (x * x)",
    "series = f * (" + " + f * (".join(
        repr(b / (2 * k)) for k, b in enumerate(_BERNOULLI[:7], 1)) + ")" * 7,
    "return result + math.log(x) - 0.5 / x - series",
])
_POLYGAMMA = _helper("_sd_polygamma", "order, x", [
    "n = int(order)  # >= 1: order 0 is the digamma op",
    "sign = 1.0 if n % 2 == 1 else -1.0  # (-1)^(n+1)",
    "factorial = math.gamma(n + 1.0)",
    "result = 0.0",
    "while x < 20.0 + n:  # psi_n(x) = psi_n(x + 1) + (-1)^(n+1) n! / x^(n+1)",
    "    result += sign * factorial / x ** (n + 1)",
    "    x += 1.0",
    "series = math.gamma(n) / x ** n + factorial / (2.0 * x ** (n + 1))",
    f"bernoulli = ({', '.join(map(repr, _BERNOULLI))})",
    "for k in range(1, 9):",
    "    series += (bernoulli[k - 1] * math.gamma(2.0 * k + n) / math.gamma(2.0 * k + 1.0)",
    "               / x ** (2 * k + n))",
    "return result + sign * series",
])
_LOG_NDTR = _helper("_sd_log_ndtr", "x", [
    "if x > 6.0:  # log(1 - q) for the tiny upper tail q",
    "    return -0.5 * math.erfc(x / math.sqrt(2.0))",
    "if x > -20.0:",
    "    return math.log(0.5 * math.erfc(-x / math.sqrt(2.0)))",
    "# the lower tail: log(pdf(x) / -x * (1 - 1/x^2 + 3/x^4 - 15/x^6 + ...))",
    "f = 1.0 / (x * x)",
    f"return (-0.5 * x * x - {_LOG_SQRT_2PI!r} - math.log(-x) + math.log1p(",
    "    f * (-1.0 + f * (3.0 + f * (-15.0 + f * (105.0 + f * (-945.0 + f * 10395.0)))))))",
])


def _log_ndtr_derivative(x, out):
    # pdf(x) / ndtr(x) = exp(-x^2/2 - log(sqrt(2 pi)) - log_ndtr(x))
    exponent = apply("sub", apply("mul", -0.5, apply("mul", x, x)), apply("add", out,
                                                                           _LOG_SQRT_2PI))
    return apply("exp", exponent)


def _sympy_log_ndtr(x):
    return sympy.log(sympy.erfc(-x / sympy.sqrt(2)) / 2)


def _sympy_polygamma(n, x):
    return sympy.polygamma(sympy.Integer(int(n)) if n.is_number else n, x)


def _op(name, arity, evaluate, rule, emit, to_sympy, ufuncs, helper, llvm=None):
    register(Op(name, arity, evaluate, rule, emit, to_sympy, None, 50, helper, ufuncs))
    if llvm is not None:
        import dataclasses

        OPS[name] = dataclasses.replace(OPS[name], llvm=llvm[0], llvm_helper=llvm[1])


_op("gammaln", 1, _scipy(scipy.special.gammaln), _rule(lambda x, o: apply("digamma", x)),
    "math.lgamma({0})", sympy.loggamma, ("gammaln",), None,
    ("call double @lgamma(double {0})", _declare("lgamma")))
_op("digamma", 1, _scipy(scipy.special.psi),
    _rule(lambda x, o: apply("polygamma", 1.0, x)), "_sd_digamma({0})", sympy.digamma,
    ("psi",), _DIGAMMA)
_op("polygamma", 2, lambda n, x: float(scipy.special.polygamma(int(n), x)),
    _rule(lambda n, x, o: ZERO, lambda n, x, o: apply("polygamma", apply("add", n, 1.0), x)),
    "_sd_polygamma({0}, {1})", _sympy_polygamma, (),
    _POLYGAMMA)
_op("log_ndtr", 1, _scipy(scipy.special.log_ndtr), _rule(_log_ndtr_derivative),
    "_sd_log_ndtr({0})", _sympy_log_ndtr, ("log_ndtr",), _LOG_NDTR,
    _ir_helper("log_ndtr", "x", [
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
        [_declare("erfc"), _declare("llvm.log.f64"), _declare("log1p")]))

gammaln, digamma, log_ndtr = map(_public, ("gammaln", "digamma", "log_ndtr"))
FUNCTIONS.update((name, OPS[name]) for name in ("gammaln", "digamma", "polygamma", "log_ndtr"))


@eager
def polygamma(n, x):
    """polygamma(n, x), the n-th derivative of digamma (n a non-negative int)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"polygamma's order must be a non-negative int, got {n!r}")
    return apply("digamma", x) if n == 0 else apply("polygamma", float(n), x)
