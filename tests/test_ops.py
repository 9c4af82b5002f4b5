"""Every elementwise op, from one table: value, first and second derivatives against SymPy
and against central finite differences, at several points including near the edges of
domains; and the compiled code against the reference evaluator.  (Array ops have their
own table in test_array_ops.py.)"""

import math

import numpy as np
import pytest
import sympy

import symdiff as sd
from codegen.llvm.elements import ELEMENTS as LLVM_ELEMENTS
from codegen.llvm.elements import FALLBACK as LLVM_FALLBACK
from codegen.numba.elements import LOOP, SCALAR
from symdiff.ir.nodes import OPS, apply
from tests.helpers import close

X, Y, Z = sd.symbols("x y z")
ELEMENTWISE = {name: op for name, op in OPS.items() if op.elementwise}

# One row per op: points (x,) or (x, y) away from kinks, near domain edges included.
POINTS = {
    "add": [(0.3, -1.7), (1e3, 2.5)],
    "sub": [(0.3, -1.7), (-4.0, 9.0)],
    "mul": [(0.3, -1.7), (-4.0, 1e-3)],
    "div": [(0.3, -1.7), (2.0, 1e-3), (-5.0, 40.0)],
    "neg": [(0.3,), (-2.0,)],
    "pow": [(0.5, 2.0), (2.0, -1.5), (1e-3, 3.0), (1.7, 0.5)],
    "sin": [(0.3,), (-2.0,), (10.0,)],
    "asinh": [(0.3,), (-2.0,), (40.0,)],
    "acosh": [(1.2,), (3.0,), (40.0,)],
    "atanh": [(0.3,), (-0.9,), (0.99,)],
    "cos": [(0.3,), (-2.0,), (10.0,)],
    "tan": [(0.3,), (-1.5,), (1.5,)],
    "exp": [(0.3,), (-20.0,), (5.0,)],
    "log": [(1e-3,), (0.5,), (100.0,)],
    "sqrt": [(1e-4,), (0.5,), (100.0,)],
    "tanh": [(0.3,), (-3.0,), (8.0,)],
    "sinh": [(0.3,), (-3.0,)],
    "cosh": [(0.3,), (-3.0,)],
    "asin": [(0.3,), (-0.999,), (0.999,)],
    "acos": [(0.3,), (-0.999,), (0.999,)],
    "atan": [(0.3,), (-30.0,)],
    "atan2": [(0.3, -1.7), (-1e-3, 1e-3), (2.0, 0.5), (-1.0, -1.0)],
    "log1p": [(0.3,), (-0.999,), (1e-8,)],
    "expm1": [(0.3,), (1e-8,), (-3.0,)],
    "erf": [(0.3,), (-2.0,), (1e-8,)],
    "erfc": [(0.3,), (-2.0,), (5.0,)],
    "abs": [(0.3,), (-2.0,)],
    "sign": [(0.3,), (-2.0,)],
    "step": [(0.3,), (-2.0,)],
    "sigmoid": [(0.3,), (-30.0,), (30.0,)],
    "relu": [(0.3,), (-2.0,)],
    "softplus": [(0.3,), (-30.0,), (30.0,)],
    "maximum": [(0.3, -1.7), (-4.0, 9.0)],
    "minimum": [(0.3, -1.7), (-4.0, 9.0)],
    "less": [(0.3, -1.7), (-4.0, 9.0)],
    "less_equal": [(0.3, -1.7), (-4.0, 9.0)],
    "greater": [(0.3, -1.7), (-4.0, 9.0)],
    "greater_equal": [(0.3, -1.7), (-4.0, 9.0)],
    "equal": [(0.3, -1.7), (2.0, 2.5)],
    "not_equal": [(0.3, -1.7), (2.0, 2.5)],
    "where": [(1.0, 0.3, -1.7), (0.0, 0.3, -1.7)],
    "stop_gradient": [(0.3,), (-2.0,)],
    "gammaln": [(0.3,), (4.5,), (-2.5,)],
    "digamma": [(0.3,), (12.0,), (-1.5,)],
    "polygamma": [(1.0, 0.7), (2.0, 3.5), (3.0, -1.3)],
    "log_ndtr": [(0.3,), (-8.0,), (3.0,)],
}
# polygamma's first operand is its integer order: a constant, derivative 0 by definition.
ORDER_OPERAND = {"polygamma"}
# Ops without LLVM text: functions using them keep the Python lowering (the LLVM table's
# declared fallback).
NO_LLVM = LLVM_FALLBACK
# Ops whose derivative is zero by definition, which SymPy's Piecewise cannot show.
ZERO_DERIVATIVE = {"less", "less_equal", "greater", "greater_equal", "equal", "not_equal",
                   "stop_gradient"}

CASES = [(name, p) for name in sorted(POINTS) for p in POINTS[name]]


def _variables(name):
    return (X, Y, Z)[: OPS[name].arity]


def _sympy_value(expr, point):
    subs = {sympy.Symbol(v.value, real=True): value
            for v, value in zip((X, Y, Z), point, strict=False)}
    return complex(sympy.N(expr.subs(subs), 30)).real


def test_every_op_has_every_piece():
    assert set(POINTS) == set(ELEMENTWISE), "each op needs a row in POINTS"
    for op in ELEMENTWISE.values():
        assert callable(op.evaluate) and callable(op.derivative) and callable(op.to_sympy)
        if op.infix is None:
            assert op.name in sd.ops.FUNCTIONS and getattr(sd, op.name) is not None
        # The derivative rule builds IR for every operand.
        args = _variables(op.name)
        node = apply(op.name, *args)
        for i in range(op.arity):
            assert isinstance(op.derivative(i, node.args, node), sd.Expr)


@pytest.mark.parametrize("name,point", CASES)
def test_value_and_derivatives_match_sympy(name, point):
    variables = _variables(name)
    f = apply(name, *variables)
    env = {v.value: p for v, p in zip(variables, point, strict=True)}
    ref = sd.to_sympy(f)
    assert close(sd.evaluate(f, env), _sympy_value(ref, point), rel=1e-12)
    for v in variables:
        first = sd.diff(f, v)
        if name in ZERO_DERIVATIVE or (name in ORDER_OPERAND and v is X):
            assert first is sd.const(0)
            continue
        sym_v = sympy.Symbol(v.value, real=True)
        ref_first = sympy.diff(ref, sym_v)
        assert close(sd.evaluate(first, env), _sympy_value(ref_first, point), rel=1e-10), v
        for w in variables:
            second = sd.diff(f, v, w)
            if name in ORDER_OPERAND and w is X:
                assert second is sd.const(0)
                continue
            ref_second = sympy.diff(ref_first, sympy.Symbol(w.value, real=True))
            assert close(sd.evaluate(second, env), _sympy_value(ref_second, point),
                         rel=1e-9), (v, w)


def _central(fn, point, i, h):
    up, down = list(point), list(point)
    up[i] += h
    down[i] -= h
    return (fn(up) - fn(down)) / (2 * h)


@pytest.mark.parametrize("name,point", CASES)
def test_derivatives_match_finite_differences(name, point):
    variables = _variables(name)
    f = apply(name, *variables)
    if name == "stop_gradient":  # by definition its derivative is 0, not the slope
        assert sd.diff(f, X) is sd.const(0) and sd.evaluate(f, x=point[0]) == point[0]
        return

    def at(expr):
        return lambda p: sd.evaluate(expr, dict(zip([v.value for v in variables], p,
                                                    strict=True)))

    for i, v in enumerate(variables):
        if name in ORDER_OPERAND and v is X:  # an integer: no finite differences
            continue
        h = 1e-6 * max(1e-3, min(abs(p) for p in point if p != 0) if any(point) else 1)
        first = sd.diff(f, v)
        fd = _central(at(f), point, i, h)
        assert math.isclose(at(first)(point), fd, rel_tol=1e-5, abs_tol=1e-6), (v, fd)
        for j, w in enumerate(variables):
            if name in ORDER_OPERAND and w is X:
                continue
            second = sd.diff(f, v, w)
            fd2 = _central(at(first), point, j, h)
            assert math.isclose(at(second)(point), fd2, rel_tol=1e-4, abs_tol=1e-5), (v, w)


def test_the_numba_table_covers_every_elementwise_op():
    assert set(SCALAR) == set(ELEMENTWISE), "each elementwise op needs a Numba element"
    assert set(LOOP) <= set(SCALAR)
    for name, (template, helper) in {**SCALAR, **{f"loop {n}": e for n, e in LOOP.items()}
                                     }.items():
        arity = OPS[name.removeprefix("loop ")].arity
        assert all(f"{{{i}}}" in template for i in range(arity)), name
        if "_sd_" in template:  # the helper it calls is defined beside it
            assert helper and f"def {template.split('(')[0]}(" in helper, name


def test_the_llvm_table_covers_every_elementwise_op_or_declares_a_fallback():
    assert not set(LLVM_ELEMENTS) & LLVM_FALLBACK
    assert set(LLVM_ELEMENTS) | LLVM_FALLBACK == set(ELEMENTWISE)
    for name, (template, helper) in LLVM_ELEMENTS.items():
        assert all(f"{{{i}}}" in template for i in range(OPS[name].arity)), name
        if template.startswith("call "):  # declared or defined beside it
            callee = template.split("@")[1].split("(")[0]
            assert helper and f"@{callee}(" in helper, name


@pytest.fixture(scope="module", params=["python", "llvm", "native"])
def compiled_table(request):
    """All ops with their first and second derivatives, compiled as one vector function
    (by Numba with each lowering, or by the native backend)."""
    outputs, rows = [], []
    for name in sorted(ELEMENTWISE):
        if request.param != "python" and name in NO_LLVM:
            continue  # it would keep the whole table on the Python lowering
        variables = _variables(name)
        f = apply(name, *variables)
        exprs = [f] + [sd.diff(f, v) for v in variables]
        exprs += [sd.diff(f, v, w) for v in variables for w in variables]
        rows.append((name, len(outputs), exprs))
        outputs += exprs
    if request.param == "native":
        return sd.compile(outputs, [X, Y, Z], backend="native"), rows
    return sd.compile(outputs, [X, Y, Z], lowering=request.param), rows


@pytest.mark.parametrize("name,point", CASES)
def test_compiled_code_matches_evaluator(compiled_table, name, point):
    fn, rows = compiled_table
    x, y, z = (point + (0.7, -0.2))[:3]
    if name in NO_LLVM and fn.backend == "native":  # no LLVM text: Numba compiles it
        variables = _variables(name)
        f = apply(name, *variables)
        fn = sd.compile([f] + [sd.diff(f, v) for v in variables], [X, Y, Z], backend="native")
        rows = [(name, 0, [f] + [sd.diff(f, v) for v in variables])]
        fn(x, y, z)
        assert "native" not in fn.loader.tiers.values()
    if name in NO_LLVM and fn.lowering == "llvm":  # asked for LLVM, it falls back to Python
        variables = _variables(name)
        f = apply(name, *variables)
        fn = sd.compile([f] + [sd.diff(f, v) for v in variables], [X, Y, Z], lowering="llvm")
        rows = [(name, 0, [f] + [sd.diff(f, v) for v in variables])]
        assert "def forward(x, y, z):" in fn.source and "_call_ir" not in fn.source
    values = fn(x, y, z)
    start, exprs = next((s, e) for n, s, e in rows if n == name)
    expected = sd.evaluate(exprs, x=x, y=y, z=z)
    got = values[start:start + len(exprs)]
    assert all(close(g, e, rel=1e-13) for g, e in zip(got, expected, strict=True)), (got,
                                                                                      expected)
    assert isinstance(values, np.ndarray) and values.dtype == np.float64
