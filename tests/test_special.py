"""Log-gamma, digamma, polygamma, log-ndtr and the scipy.special ufuncs of likelihoods."""

import numpy as np
import pytest
import scipy.special as sp
import sympy

import symdiff as sd

X = sd.symbol("x")
POINTS = np.array([-30.5, -7.3, -0.5, 0.1, 0.7, 1.0, 2.5, 9.9, 10.1, 25.0, 1e3, -19.9,
                   -20.1, -40.0, 5.9, 6.1, 40.0])
CASES = {
    "gammaln": (sd.gammaln(X), sp.gammaln),
    "digamma": (sd.digamma(X), sp.psi),
    "trigamma": (sd.polygamma(1, X), lambda v: sp.polygamma(1, v)),
    "tetragamma": (sd.polygamma(2, X), lambda v: sp.polygamma(2, v)),
    "log_ndtr": (sd.log_ndtr(X), sp.log_ndtr),
}


def _close(got, want, tolerance):
    finite = np.isfinite(want)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    error = np.abs(got[finite] - want[finite]) / np.maximum(1.0, np.abs(want[finite]))
    assert error.max() < tolerance, (error.max(), POINTS[finite][error.argmax()])


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("lowering", ["python", "llvm"])
def test_compiled_values_match_scipy(name, lowering):
    expr, reference = CASES[name]
    fn = sd.compile(expr, args=[X], background=False, lowering=lowering)
    _close(fn(POINTS), reference(POINTS), 2e-15)  # the batched (parallel) version
    _close(np.array([fn(p) for p in POINTS]), reference(POINTS), 2e-15)


@pytest.mark.parametrize("name", sorted(CASES))
def test_derivatives_to_second_order_match_sympy(name):
    expr = CASES[name][0]
    converted = sd.to_sympy(expr)
    (variable,) = converted.free_symbols
    first, second = sd.diff(expr, X), sd.diff(sd.diff(expr, X), X)
    for point in (0.3, 2.7, 14.0, -3.6):
        for order, derived in ((1, first), (2, second)):
            want = float(sympy.diff(converted, variable, order).subs(variable, point).evalf(30))
            got = sd.evaluate(derived, x=point)
            assert got == pytest.approx(want, rel=1e-12, abs=1e-14), (name, order, point)


def test_derivatives_compiled_against_central_differences():
    loss = sd.gammaln(X) + sd.log_ndtr(X) + sd.digamma(X)
    fn = sd.compile(loss, args=[X], background=False)
    h = 1e-5
    for point in (0.4, 3.3, -2.5, 11.0):
        central = (fn(point + h) - fn(point - h)) / (2 * h)
        assert fn.grad(point)[0] == pytest.approx(central, rel=1e-7)
        second = (fn.grad(point + h)[0] - fn.grad(point - h)[0]) / (2 * h)
        assert fn.hessian(point)[0, 0] == pytest.approx(second, rel=1e-6)


def test_scipy_special_ufuncs_trace():
    def log_likelihood(theta, counts):
        # Poisson counts with rate exp(theta), a probit and a logistic term: scipy's names.
        rate = np.exp(theta)
        poisson = np.sum(sp.xlogy(counts, rate) - rate - sp.gammaln(counts + 1.0))
        return (poisson + np.sum(sp.log_ndtr(theta)) + np.sum(sp.log_expit(theta))
                + np.sum(sp.ndtr(theta) * sp.expit(theta) + sp.logit(sp.expit(theta)))
                + np.sum(sp.psi(counts + 1.0)))

    counts = np.array([0.0, 3.0, 1.0, 7.0])
    theta = np.array([-0.3, 1.1, 0.2, 1.9])
    fn = sd.compile(log_likelihood, wrt=0, args=[sd.vector("theta", 4), sd.vector("k", 4)],
                    background=False)
    np.testing.assert_allclose(fn(theta, counts), log_likelihood(theta, counts), rtol=1e-14)
    h, unit = 1e-6, np.eye(4)[2]
    central = (log_likelihood(theta + h * unit, counts)
               - log_likelihood(theta - h * unit, counts)) / (2 * h)
    np.testing.assert_allclose(fn.grad(theta, counts)[2], central, rtol=1e-7)


def test_parsed_text_and_orders():
    f = sd.parse("gammaln(a) + polygamma(2, a) + log_ndtr(a)")
    assert str(f) == "gammaln(a) + polygamma(2, a) + log_ndtr(a)"
    assert str(sd.from_sympy(sympy.polygamma(0, sympy.Symbol("a")))) == "digamma(a)"
    with pytest.raises(ValueError, match="non-negative int"):
        sd.polygamma(1.5, X)
