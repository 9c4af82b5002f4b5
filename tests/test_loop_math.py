"""The arithmetic-only exp, expm1, tanh and sigmoid used inside generated loops
(codegen.numba.loop_math): ulp accuracy against NumPy over wide ranges, special values exactly,
and the loops calling them instead of the C library."""

import numpy as np
import pytest

import symdiff as sd

SPECIAL = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-300, -1e-300, 5e-324, 0.3465, 0.3466,
           0.6931, 19.99, 20.0, 20.01, 36.0, 709.78, 709.79, 710.0, -708.4, -745.13,
           -745.14, -746.0, 1e308, -1e308]


def _points():
    rng = np.random.default_rng(5)
    return np.concatenate([
        SPECIAL, np.linspace(-750.0, 712.0, 60001), np.linspace(-3.0, 3.0, 60001),
        rng.normal(size=20000) * 10.0, np.geomspace(1e-300, 1.0, 3000),
        -np.geomspace(1e-300, 1.0, 3000)])


def sigmoid_reference(x):
    with np.errstate(over="ignore"):
        return np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))),
                        np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))))


FUNCTIONS = {  # name -> (symdiff function, NumPy reference, largest error in ulp)
    "exp": (np.exp, np.exp, 1),
    "expm1": (np.expm1, np.expm1, 2),
    "tanh": (np.tanh, np.tanh, 3),
    "sigmoid": (sd.sigmoid, sigmoid_reference, 2),
}


@pytest.fixture(scope="module")
def compiled():
    x = sd.vector("x", len(_points()))
    outputs = [function(x) for function, _, _ in FUNCTIONS.values()]
    return sd.compile(sd.stack(outputs), args=[x])


def test_loops_call_the_vectorizable_helpers(compiled):
    source = compiled.source
    for name in FUNCTIONS:
        assert f"_sd_loop_{name}(" in source
    assert "math.exp(" not in source.split("def forward")[1]
    assert "math.tanh(" not in source


@pytest.mark.parametrize("row,name", list(enumerate(FUNCTIONS)))
def test_accuracy_against_numpy(compiled, row, name):
    points = _points()
    with np.errstate(over="ignore"):
        got = compiled(points)[row]
        want = FUNCTIONS[name][1](points)
    finite = np.isfinite(want)
    assert np.array_equal(np.isnan(got), np.isnan(want)), name
    np.testing.assert_array_equal(got[~finite], want[~finite])
    # Units in the last place of the reference; subnormal results have a fixed spacing.
    spacing = np.spacing(np.maximum(np.abs(want[finite]), np.finfo(float).tiny))
    ulps = np.abs(got[finite] - want[finite]) / spacing
    assert ulps.max() <= FUNCTIONS[name][2], (name, points[finite][ulps.argmax()])
    signed_zero = want == 0
    assert np.array_equal(np.signbit(got[signed_zero]), np.signbit(want[signed_zero]))


def test_the_polynomial_is_the_fit_it_says_it_is():
    # codegen/exp_parts.py: mpmath's Chebyshev fit of (expm1(r) - r) / r**2 on
    # |r| <= ln(2)/2, 11 coefficients, rounded to doubles.
    import mpmath

    from codegen.exp_parts import POLYNOMIAL

    with mpmath.workdps(60):
        half = mpmath.log(2) / 2

        def inner(r):
            return (mpmath.expm1(r) - r) / r ** 2 if r else mpmath.mpf(1) / 2
        fitted, error = mpmath.chebyfit(inner, [-half, half], 11, error=True)
        assert error < 1e-17
    assert POLYNOMIAL == [float(c) for c in reversed(fitted)]
