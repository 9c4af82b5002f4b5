"""Numba helpers of the special functions of symdiff.ops.special: digamma by the recurrence
psi(x) = psi(x + 1) - 1/x up to x >= 10, then the asymptotic series with Bernoulli numbers
(reflection for x < 0); polygamma(n, x) the same way; log_ndtr by erfc in the middle and
its asymptotic series in the far left tail.  Within a few ulps of SciPy over the tested
range (tests/test_special.py)."""

from __future__ import annotations

import math

from .helpers import helper as _helper

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)

# Bernoulli numbers B_2 .. B_16 of the asymptotic series.
_BERNOULLI = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510)
DIGAMMA = _helper("_sd_digamma", "x", [
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
POLYGAMMA = _helper("_sd_polygamma", "order, x", [
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
LOG_NDTR = _helper("_sd_log_ndtr", "x", [
    "if x > 6.0:  # log(1 - q) for the tiny upper tail q",
    "    return -0.5 * math.erfc(x / math.sqrt(2.0))",
    "if x > -20.0:",
    "    return math.log(0.5 * math.erfc(-x / math.sqrt(2.0)))",
    "# the lower tail: log(pdf(x) / -x * (1 - 1/x^2 + 3/x^4 - 15/x^6 + ...))",
    "f = 1.0 / (x * x)",
    f"return (-0.5 * x * x - {_LOG_SQRT_2PI!r} - math.log(-x) + math.log1p(",
    "    f * (-1.0 + f * (3.0 + f * (-15.0 + f * (105.0 + f * (-945.0 + f * 10395.0)))))))",
])
