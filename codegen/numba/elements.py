"""How the Numba lowering writes one element of each elementwise op.

``SCALAR[op]`` is a Python template (``{0}``, ``{1}``: the operands) and the source of
the njit helper it calls, if any.  ``LOOP[op]`` overrides it inside loops over array
elements with an arithmetic-only version that LLVM can inline and vectorize
(codegen.numba.loop_math); scalar code keeps the C library.  A test checks that every
elementwise op of the IR has an entry (tests/test_ops.py).
"""

from __future__ import annotations

from typing import NamedTuple

from . import loop_math, special
from .helpers import helper


class Element(NamedTuple):
    """One element of an op: the expression template and the helper source it calls."""

    template: str
    helper: str | None = None


def _call(name: str, params: str, body: list[str]) -> Element:
    """An element computed by the helper ``_sd_<name>``."""
    operands = ", ".join(f"{{{k}}}" for k in range(len(params.split(","))))
    return Element(f"_sd_{name}({operands})", helper(f"_sd_{name}", params, body))


def _compare(symbol: str) -> Element:
    return Element(f"(1.0 if {{0}} {symbol} {{1}} else 0.0)")


SCALAR: dict[str, Element] = {
    "add": Element("{0} + {1}"), "sub": Element("{0} - {1}"), "mul": Element("{0} * {1}"),
    "div": Element("{0} / {1}"), "neg": Element("-{0}"), "pow": Element("{0} ** {1}"),
    **{name: Element(f"math.{name}({{0}})") for name in (
        "sin", "cos", "tan", "exp", "log", "sqrt", "tanh", "sinh", "cosh", "asin", "acos",
        "atan", "log1p", "expm1", "erf", "erfc", "asinh", "acosh", "atanh")},
    "atan2": Element("math.atan2({0}, {1})"),
    "abs": Element("math.fabs({0})"),
    "sign": _call("sign", "x", ["if x > 0.0:", "    return 1.0", "if x < 0.0:",
                                "    return -1.0", "return x  # 0.0 for +-0, nan for nan"]),
    "step": _call("step", "x", ["if x > 0.0:", "    return 1.0",
                                "return 0.0 if x <= 0.0 else x  # step(0) = 0; nan stays nan"]),
    "sigmoid": _call("sigmoid", "x", ["if x >= 0.0:", "    return 1.0 / (1.0 + math.exp(-x))",
                                      "z = math.exp(x)  # x < 0 or nan: no overflow",
                                      "return z / (1.0 + z)"]),
    "relu": _call("relu", "x", ["return 0.0 if x <= 0.0 else x  # nan stays nan"]),
    "softplus": _call("softplus", "x", [
        "# log(1 + e^x) without overflow: max(x, 0) + log1p(e^-|x|)",
        "return math.log1p(math.exp(-math.fabs(x))) + (x if x > 0.0 else 0.0)"]),
    "maximum": _call("maximum", "x, y", ["if x >= y:", "    return x", "if y > x:",
                                         "    return y",
                                         "return x + y  # a nan operand gives nan"]),
    "minimum": _call("minimum", "x, y", ["if x <= y:", "    return x", "if y < x:",
                                         "    return y",
                                         "return x + y  # a nan operand gives nan"]),
    "less": _compare("<"), "less_equal": _compare("<="), "greater": _compare(">"),
    "greater_equal": _compare(">="), "equal": _compare("=="), "not_equal": _compare("!="),
    "where": Element("({1} if {0} != 0.0 else {2})"),
    "stop_gradient": Element("{0}"),
    "gammaln": Element("math.lgamma({0})"),
    "digamma": Element("_sd_digamma({0})", special.DIGAMMA),
    "polygamma": Element("_sd_polygamma({0}, {1})", special.POLYGAMMA),
    "log_ndtr": Element("_sd_log_ndtr({0})", special.LOG_NDTR),
}

LOOP: dict[str, Element] = {name: Element(f"_sd_loop_{name}({{0}})", source)
                            for name, source in loop_math.LOOP.items()}


def element(op_name: str, in_loop: bool = False) -> Element:
    """The element of ``op_name`` in scalar code, or inside a loop over array elements."""
    return LOOP.get(op_name, SCALAR[op_name]) if in_loop else SCALAR[op_name]


def helpers(scalar_ops, loop_ops) -> list[str]:
    """The helper sources that elements of these ops call (each once): scalar elements'
    helpers, then the loop prelude and the loop helpers with their dependencies."""
    sources = [SCALAR[name].helper for name in sorted(set(scalar_ops)) if SCALAR[name].helper]
    return loop_math.loop_helpers(loop_ops) + sources
