"""Random expression trees (hypothesis), orders 1 to 3: symdiff's derivative, through the
reference evaluator and through compiled code, equals SymPy's derivative."""

import math

import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symdiff as sd

A, B = sd.symbols("a b")
POINT = {"a": 0.7, "b": -0.4}
SYMPY_POINT = {sympy.Symbol("a", real=True): sympy.Rational(7, 10),
               sympy.Symbol("b", real=True): sympy.Rational(-2, 5)}

UNARY = ["sin", "cos", "exp", "tanh", "sigmoid", "atan", "softplus", "neg", "sinh",
         "log1p_sq", "sqrt_sq", "log_sq"]
BINARY = ["add", "sub", "mul", "div_safe", "pow_int", "atan2"]


def _unary(name, x):
    if name.endswith("_sq"):  # keep log/sqrt/log1p inside their domains
        return sd.ir.apply(name[:-3], 1.5 + x * x)
    return sd.ir.apply(name, x)


def _binary(name, x, y):
    if name == "div_safe":
        return x / (2.0 + sd.sin(y))
    if name == "pow_int":
        return x ** sd.const(float(len(str(y)) % 3 + 2))
    if name == "atan2":  # away from the origin, where it has no derivative (a - a, a - a)
        return sd.ir.apply(name, 0.5 + x * x, y)
    return sd.ir.apply(name, x, y)


leaves = st.sampled_from([A, B, sd.const(0.5), sd.const(-1.25), sd.const(2.0)])
trees = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.builds(_unary, st.sampled_from(UNARY), children),
        st.builds(_binary, st.sampled_from(BINARY), children, children),
    ),
    max_leaves=10,
)
# Every case has at least one operation on top of two subtrees.
expressions = st.one_of(
    st.builds(_binary, st.sampled_from(BINARY), trees, trees),
    st.builds(_unary, st.sampled_from(UNARY), st.builds(_binary, st.sampled_from(BINARY),
                                                        trees, trees)),
)
orders = st.lists(st.sampled_from([A, B]), min_size=1, max_size=3)


def _sympy_reference(f, wrt):
    expr = sd.to_sympy(f)
    for v in wrt:
        expr = sympy.diff(expr, sympy.Symbol(v.value, real=True))
    value = complex(sympy.N(expr.subs(SYMPY_POINT), 30))
    return value.real if value.imag == 0 else math.nan


def _agrees(got, ref):
    if not math.isfinite(ref):
        return True
    return abs(got - ref) <= 1e-9 * max(1.0, abs(ref))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions, orders)
def test_evaluator_matches_sympy(f, wrt):
    derivative = sd.diff(f, *wrt)
    ref = _sympy_reference(f, wrt)
    got = sd.evaluate(derivative, POINT)
    assert _agrees(got, ref), (str(f), [v.value for v in wrt], got, ref)
    # The printed derivative parses back to the same node.
    assert sd.parse(str(derivative)) is derivative


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(expressions, orders), min_size=25, max_size=25),
       st.sampled_from(["python", "llvm"]))
def test_compiled_code_matches_sympy(cases, lowering):
    # One compile for many derivatives: Numba compiles cost seconds.
    derivatives = [sd.diff(f, *wrt) for f, wrt in cases]
    fn = sd.compile(derivatives, [A, B], lowering=lowering)
    values = fn(POINT["a"], POINT["b"])
    for (f, wrt), got, expr in zip(cases, values, derivatives, strict=True):
        ref = _sympy_reference(f, wrt)
        assert _agrees(got, ref), (str(f), [v.value for v in wrt], got, ref)
        assert _agrees(got, sd.evaluate(expr, POINT)), str(expr)
