"""Conventions at non-smooth points and domain edges: the same in the evaluator, the
compiled code, and at every order."""

import math

import pytest

import symdiff as sd
from tests.helpers import close

x, y = sd.symbols("x y")

# (function, point, [value, first, second, third derivative along x]).
CONVENTIONS = [
    (sd.relu(x), 0.0, [0.0, 0.0, 0.0, 0.0]),        # relu'(0) = 0
    (sd.relu(x), -0.0, [0.0, 0.0, 0.0, 0.0]),
    (abs(x), 0.0, [0.0, 0.0, 0.0, 0.0]),            # abs'(0) = 0
    (sd.step(x), 0.0, [0.0, 0.0, 0.0, 0.0]),
    (sd.sign(x), 0.0, [0.0, 0.0, 0.0, 0.0]),
    (sd.maximum(x, 1.0), 1.0, [1.0, 0.5, 0.0, 0.0]),  # ties split
    (sd.minimum(x, 1.0), 1.0, [1.0, 0.5, 0.0, 0.0]),
    (sd.maximum(x, x), 2.0, [2.0, 1.0, 0.0, 0.0]),    # split halves add up
    (sd.sqrt(x), 0.0, [0.0, math.inf, -math.inf, math.inf]),
    (sd.log(x), -1.0, [math.nan, -1.0, -1.0, -2.0]),
    (sd.log(x), 0.0, [-math.inf, math.inf, -math.inf, math.inf]),
    (1 / x, 0.0, [math.inf, -math.inf, math.inf, -math.inf]),
    (sd.relu(x) * x, 0.0, [0.0, 0.0, 0.0, 0.0]),
    (sd.sigmoid(x), 1000.0, [1.0, 0.0, 0.0, 0.0]),
    (sd.sigmoid(x), -1000.0, [0.0, 0.0, 0.0, 0.0]),
    (sd.softplus(x), 1000.0, [1000.0, 1.0, 0.0, 0.0]),
    (sd.softplus(x), -1000.0, [0.0, 0.0, 0.0, 0.0]),
]


def _derivatives(f):
    out = [f]
    for _ in range(3):
        out.append(sd.diff(out[-1], x))
    return out


@pytest.fixture(scope="module", params=["python", "llvm"])
def compiled(request):
    exprs = [d for f, _, _ in CONVENTIONS for d in _derivatives(f)]
    return sd.compile(exprs, [x], lowering=request.param)


@pytest.mark.parametrize("index", range(len(CONVENTIONS)))
def test_evaluator_and_compiled_follow_conventions(compiled, index):
    f, point, expected = CONVENTIONS[index]
    got = sd.evaluate(_derivatives(f), x=point)
    assert all(close(g, e) for g, e in zip(got, expected, strict=True)), (str(f), got)
    values = compiled(point)[4 * index: 4 * index + 4]
    assert all(close(g, e) for g, e in zip(values, expected, strict=True)), (str(f), values)


def test_compiled_gradient_and_hessian_at_kinks():
    fn = sd.compile(sd.relu(x) + abs(y) + sd.maximum(x, y), [x, y])
    assert list(fn.grad(0.0, 0.0)) == [0.5, 0.5]
    assert fn.hessian(0.0, 0.0).tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert list(fn.grad(1.0, -1.0)) == [2.0, -1.0]
