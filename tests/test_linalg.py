"""Linear algebra on expressions (issue #24, section 3): np.linalg.inv, det, slogdet and
solve (vector and matrix right-hand sides), with JAX's derivative rules, against NumPy
values and central differences to second order, compiled (Numba: these ops are not
native) and evaluated."""

import numpy as np
import pytest

import symdiff as sd

RNG = np.random.default_rng(21)
A_VALUE = RNG.normal(size=(3, 3)) + 3.0 * np.eye(3)  # well conditioned
B_VECTOR, B_MATRIX = RNG.normal(size=3), RNG.normal(size=(3, 2))

FUNCTIONS = {
    "inv": lambda a: np.sum(np.linalg.inv(a) ** 2),
    "det": lambda a: np.linalg.det(a),
    "slogdet": lambda a: np.linalg.slogdet(a)[0] * np.linalg.slogdet(a)[1],
    "solve vector": lambda a: np.sum(np.linalg.solve(a, B_VECTOR) ** 2),
    "solve matrix": lambda a: np.sum(np.sin(np.linalg.solve(a, B_MATRIX))),
}


def _central(f, x, h=1e-6):
    steps = np.eye(x.size).reshape(-1, *x.shape)
    return np.array([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in steps])


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_values_and_derivatives_to_second_order(name):
    f = FUNCTIONS[name]
    fn = sd.compile(f, args=[sd.matrix("A", 3, 3)], background=False)
    assert fn(A_VALUE) == pytest.approx(f(A_VALUE), rel=1e-12)
    gradient = fn.grad(A_VALUE)
    np.testing.assert_allclose(gradient.ravel(), _central(f, A_VALUE), rtol=1e-6, atol=1e-8)
    hessian = fn.hessian(A_VALUE)
    by_differences = _central(lambda m: fn.grad(m).ravel(), A_VALUE)
    np.testing.assert_allclose(hessian, by_differences.T, rtol=1e-5, atol=1e-7)
    assert sd.evaluate(f(sd.matrix("A", 3, 3)), {"A": A_VALUE}) == pytest.approx(
        f(A_VALUE), rel=1e-12)


def test_negative_determinants_keep_their_sign():
    flipped = A_VALUE[[1, 0, 2]]
    fn = sd.compile(lambda a: np.linalg.det(a), args=[sd.matrix("A", 3, 3)])
    assert fn(flipped) == pytest.approx(np.linalg.det(flipped), rel=1e-12) and fn(flipped) < 0
    np.testing.assert_allclose(fn.grad(flipped), np.linalg.det(flipped)
                               * np.linalg.inv(flipped).T, rtol=1e-12)


def test_square_matrices_only():
    with pytest.raises(sd.ShapeError, match="square matrix"):
        np.linalg.inv(sd.matrix("R", 2, 3))


def test_cholesky_along_symmetric_perturbations_to_second_order():
    m = RNG.normal(size=(3, 3))
    a = m @ m.T + 3.0 * np.eye(3)
    weights = RNG.normal(size=(3, 3))

    def f(x):
        factor = np.linalg.cholesky(x)
        return np.sum(factor * weights) + np.sum(np.log(np.diagonal(factor)))
    fn = sd.compile(f, args=[sd.matrix("A", 3, 3)], background=False)
    assert fn(a) == pytest.approx(f(a), rel=1e-13)
    gradient, hessian = fn.grad(a), fn.hessian(a)
    np.testing.assert_array_equal(gradient, gradient.T)  # a symmetric matrix's gradient
    h = 1e-6
    for e in RNG.normal(size=(4, 3, 3)):
        s = 0.5 * (e + e.T)  # perturbations that keep the matrix symmetric
        along = (f(a + h * s) - f(a - h * s)) / (2 * h)
        assert np.sum(gradient * s) == pytest.approx(along, rel=1e-6, abs=1e-9)
        second = (fn.grad(a + h * s) - fn.grad(a - h * s)).ravel() / (2 * h)
        np.testing.assert_allclose(hessian @ s.ravel(), second, rtol=1e-5, atol=1e-8)


def test_eigh_along_symmetric_perturbations_to_second_order():
    m = RNG.normal(size=(4, 4))
    a = m + m.T  # distinct eigenvalues (almost surely)
    weights = np.arange(1.0, 5.0)

    def f(x):
        # The eigenvectors enter through sign-free quantities: squares of their entries.
        w, v = np.linalg.eigh(x)
        return np.sum(w * weights) + np.sum((v[:, 0] * v[:, 1]) ** 2) + np.sum(
            np.linalg.eigvalsh(x) ** 3)
    fn = sd.compile(f, args=[sd.matrix("A", 4, 4)], background=False)
    assert fn(a) == pytest.approx(f(a), rel=1e-12)
    assert sd.evaluate(f(sd.matrix("A", 4, 4)), {"A": a}) == pytest.approx(f(a), rel=1e-12)
    gradient, hessian = fn.grad(a), fn.hessian(a)
    np.testing.assert_allclose(gradient, gradient.T, rtol=1e-12)
    h = 1e-6
    for e in RNG.normal(size=(3, 4, 4)):
        s = 0.5 * (e + e.T)
        along = (f(a + h * s) - f(a - h * s)) / (2 * h)
        assert np.sum(gradient * s) == pytest.approx(along, rel=1e-6, abs=1e-9)
        second = (fn.grad(a + h * s) - fn.grad(a - h * s)).ravel() / (2 * h)
        np.testing.assert_allclose(hessian @ s.ravel(), second, rtol=1e-5, atol=1e-7)
    _, tangent = sd.jvp(f, (a,), (s,))  # forward mode agrees with the gradient
    assert tangent == pytest.approx(np.sum(gradient * s), rel=1e-10)
    lopsided = np.tril(a) + 5.0 * np.triu(m, 1)  # NumPy reads the lower triangle: so do we
    np.testing.assert_allclose(fn(lopsided), f(lopsided), rtol=1e-12)


def test_sort_moves_each_derivative_with_its_element():
    x = np.array([0.3, -1.2, 2.5, 0.3, 1.1])  # a tie: the stable order splits it
    weights = np.arange(1.0, 6.0)

    def f(v):
        return np.sum(np.sort(v) ** 3 * weights)
    fn = sd.compile(f, args=[sd.vector("x", 5)], background=False)
    assert fn(x) == pytest.approx(f(x), rel=1e-15)
    rank = np.argsort(np.argsort(x, kind="stable"), kind="stable")
    np.testing.assert_allclose(fn.grad(x), 3 * x ** 2 * weights[rank], rtol=1e-14)
    np.testing.assert_allclose(fn.hessian(x), np.diag(6 * x * weights[rank]), rtol=1e-14)
    symbolic = sd.grad(f(sd.vector("x", 5)), [sd.vector("x", 5)])[0]
    np.testing.assert_allclose(sd.evaluate(symbolic, {"x": x}), fn.grad(x), rtol=1e-14)
    with pytest.raises(sd.ShapeError, match="sorts a vector"):
        np.sort(sd.matrix("M", 2, 2))


NAN_CASES = {
    "solve": lambda a: np.sum(np.linalg.solve(a, B_VECTOR)),
    "inv": lambda a: np.sum(np.linalg.inv(a)),
    "det": lambda a: np.linalg.det(a),
    "cholesky": lambda a: np.sum(np.linalg.cholesky(a)),
    "eigvalsh": lambda a: np.sum(np.linalg.eigvalsh(a)),
}


def test_one_answer_from_both_tiers_for_non_finite_and_singular_matrices():
    # One behaviour in the evaluator and in compiled code: a matrix with a non-finite
    # entry, or a singular one, raises NumPy's LinAlgError in both (Numba's LAPACK
    # wrappers refuse the first; the evaluator, which NumPy would let return NaN, too).
    def every(a):
        return sd.stack([f(a) for f in NAN_CASES.values()])
    spd = A_VALUE @ A_VALUE.T
    evaluator = sd.compile(every, args=[sd.matrix("A", 3, 3)],
                           background=True).loader.evaluator("forward")
    compiled = sd.compile(every, args=[sd.matrix("A", 3, 3)], background=False)
    np.testing.assert_allclose(evaluator(spd), compiled(spd), rtol=1e-12)
    for name, f in NAN_CASES.items():
        single = sd.compile(f, args=[sd.matrix("A", 3, 3)], background=True)
        for k in range(2):  # the upper and the lower triangle
            bad = spd.copy()
            bad[(0, 2) if k == 0 else (2, 0)] = np.nan
            if name == "cholesky" and k == 0:  # it reads the lower triangle only
                direct = sd.compile(f, args=[sd.matrix("A", 3, 3)], background=False)
                assert single.loader.evaluator("forward")(bad) == direct(bad) == f(bad)
                continue
            for call in (single.loader.evaluator("forward"), compiled):
                with pytest.raises(np.linalg.LinAlgError, match="infs or NaNs"):
                    call(bad)
        if name in ("solve", "inv"):
            for call in (single.loader.evaluator("forward"), compiled):
                with pytest.raises(np.linalg.LinAlgError):
                    call(np.zeros((3, 3)))
