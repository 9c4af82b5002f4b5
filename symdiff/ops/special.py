"""Special functions of likelihoods and losses: log-gamma, digamma, polygamma, log-ndtr.

One op record each, like ops.py.  Their derivatives are ops of this family, so every order
exists: gammaln' = digamma, digamma' = polygamma(1, .), polygamma(n, .)' = polygamma(n+1, .),
log_ndtr' = exp(-x^2/2 - log_ndtr(x)) / sqrt(2 pi) (the normal density over its CDF, as a
ratio of logs: no 0/0 far in the left tail).  The evaluator uses SciPy; generated code
uses helpers of the backends (codegen/numba/special.py: recurrence up to a large
argument, then the asymptotic series with Bernoulli numbers), within a few ulps of SciPy
over the tested range.  The order n of polygamma is a constant (its derivative in n is
taken as 0).
"""

from __future__ import annotations

import math

import scipy.special
import sympy

from symdiff.ir.eager import eager
from symdiff.ir.nodes import OPS, Op, apply, register
from symdiff.ops.elementwise import FUNCTIONS, PUBLIC, ZERO, public_function, rule

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _scipy(fn):
    def evaluate(*args):
        return float(fn(*args))

    evaluate.__name__ = fn.__name__
    return evaluate


def _log_ndtr_derivative(x, out):
    # pdf(x) / ndtr(x) = exp(-x^2/2 - log(sqrt(2 pi)) - log_ndtr(x))
    exponent = apply("sub", apply("mul", -0.5, apply("mul", x, x)), apply("add", out,
                                                                           _LOG_SQRT_2PI))
    return apply("exp", exponent)


def _sympy_log_ndtr(x):
    return sympy.log(sympy.erfc(-x / sympy.sqrt(2)) / 2)


def _sympy_polygamma(n, x):
    return sympy.polygamma(sympy.Integer(int(n)) if n.is_number else n, x)


def _op(name, arity, evaluate, rule, to_sympy, ufuncs):
    register(Op(name, arity, evaluate, rule, to_sympy, numpy_ufuncs=ufuncs))


_op("gammaln", 1, _scipy(scipy.special.gammaln), rule(lambda x, o: apply("digamma", x)),
    sympy.loggamma, ("gammaln",))
_op("digamma", 1, _scipy(scipy.special.psi),
    rule(lambda x, o: apply("polygamma", 1.0, x)), sympy.digamma, ("psi",))
_op("polygamma", 2, lambda n, x: float(scipy.special.polygamma(int(n), x)),
    rule(lambda n, x, o: ZERO, lambda n, x, o: apply("polygamma", apply("add", n, 1.0), x)),
    _sympy_polygamma, ())
_op("log_ndtr", 1, _scipy(scipy.special.log_ndtr), rule(_log_ndtr_derivative),
    _sympy_log_ndtr, ("log_ndtr",))

FUNCTIONS.update((name, OPS[name]) for name in ("gammaln", "digamma", "polygamma", "log_ndtr"))
PUBLIC.update((name, public_function(name)) for name in ("gammaln", "digamma", "log_ndtr"))


@eager
def polygamma(n, x):
    """polygamma(n, x), the n-th derivative of digamma (n a non-negative int)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"polygamma's order must be a non-negative int, got {n!r}")
    return apply("digamma", x) if n == 0 else apply("polygamma", float(n), x)


PUBLIC["polygamma"] = polygamma
