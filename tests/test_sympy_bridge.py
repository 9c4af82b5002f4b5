"""to_sympy / from_sympy for every op, and the SymPy forms users write."""

import math

import pytest
import sympy

import symdiff as sd
from symdiff.ir.nodes import OPS, apply
from tests.helpers import close

x, y = sd.symbols("x y")
X, Y = sympy.symbols("x y", real=True)


CONVERTIBLE = sorted(n for n, op in OPS.items() if op.elementwise and op.name not in (
    "less", "less_equal", "greater", "greater_equal", "equal", "not_equal", "where"))


@pytest.mark.parametrize("name", CONVERTIBLE)
def test_round_trip_keeps_the_value(name):
    f = apply(name, *((2.0, y) if name == "polygamma" else (x, y))[: OPS[name].arity])
    back = sd.from_sympy(sd.to_sympy(f))
    for point in [(0.3, 0.7), (-0.4, 2.0), (0.9, -0.2)]:
        env = {"x": point[0], "y": point[1]}
        assert close(sd.evaluate(back, env), sd.evaluate(f, env), rel=1e-14), str(back)


@pytest.mark.parametrize("expr,expected", [
    (X / 2, "x/2"), (1 / X, "1/x"), (sympy.sqrt(X), "sqrt(x)"), (X**-2, "x**-2"),
    (sympy.exp(X) * sympy.pi, None), (sympy.Max(X, Y, 1), None), (sympy.log(X, 2), None),
    (sympy.Heaviside(X), None), (sympy.Heaviside(X, 0), "step(x)"), (sympy.Rational(3, 4), "0.75"),
    (sympy.E**X, "exp(x)"), (sympy.Abs(X) + sympy.sign(Y), None),
])
def test_from_sympy(expr, expected):
    e = sd.from_sympy(expr)
    if expected is not None:
        assert sd.optimize(e) is sd.optimize(sd.parse(expected))
    for point in [(0.3, 0.7), (1.5, -2.0)]:
        ref = float(expr.subs({X: point[0], Y: point[1]}).evalf(20))
        assert math.isclose(sd.evaluate(e, x=point[0], y=point[1]), ref, rel_tol=1e-14)


@pytest.mark.parametrize("expr", [sympy.Piecewise((X, X > 0), (0, True)), sympy.I * X,
                                  sympy.gamma(X)])
def test_unsupported_sympy_is_a_clear_error(expr):
    with pytest.raises(sd.SymdiffError, match="SymPy"):
        sd.from_sympy(expr)


def test_sympy_derivatives_agree_with_ours():
    f = sd.parse("sigmoid(x*y) + softplus(x - y) + atan2(y, x)")
    for v, sv in [(x, X), (y, Y)]:
        ref = sympy.diff(sd.to_sympy(f), sv)
        got = sd.evaluate(sd.diff(f, v), x=0.4, y=-1.1)
        assert math.isclose(got, float(ref.subs({X: 0.4, Y: -1.1})), rel_tol=1e-12)


def test_text_is_parsed_by_symdiff_never_evaluated_by_sympify():
    assert sd.from_sympy("sin(a)*b") is sd.parse("sin(a)*b")
    with pytest.raises(sd.ParseError):
        sd.from_sympy("__import__('os').system('echo evaluated')")
