"""Shapes from the first call and JAX-style transformations (symdiff.runtime.transforms)."""

import numpy as np
import pytest
from scipy.optimize import minimize

import symdiff as sd


def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _central(f, x, step=1e-6):
    return np.array([(f(x + step * e) - f(x - step * e)) / (2 * step) for e in np.eye(x.size)])


@pytest.fixture(scope="module")
def by_shape():
    return sd.compile(rosen)  # no args: x[1:] of a scalar fails, so shapes come per call


def test_functions_written_for_arrays_take_shapes_from_each_call(by_shape):
    assert isinstance(by_shape, sd.ByShape)
    for n in (3, 10):
        x = np.linspace(-1.0, 1.5, n)
        assert by_shape(x) == pytest.approx(rosen(x), rel=1e-14)
        gradient = by_shape.grad(x)  # one array argument: the array, as jax.grad
        assert gradient.shape == (n,)
        np.testing.assert_allclose(gradient, _central(rosen, x), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(by_shape.hessian(x), _central(by_shape.grad, x),
                                   rtol=1e-6, atol=1e-5)
    assert len(by_shape._compiled) == 2  # once per shape signature
    by_shape(np.zeros(3))
    assert len(by_shape._compiled) == 2


def test_scipy_minimize_takes_the_gradient_and_hessian_products(by_shape):
    x0 = np.full(10, 1.3)
    result = minimize(by_shape, x0, jac=by_shape.grad, hessp=by_shape.hvp, method="trust-ncg")
    assert result.success and np.allclose(result.x, 1.0, atol=1e-6)
    result = minimize(by_shape, x0, jac=by_shape.grad, method="BFGS")
    assert result.success and np.allclose(result.x, 1.0, atol=1e-4)


def test_jax_style_transformations():
    x = np.array([0.3, -1.2, 2.0])
    np.testing.assert_allclose(sd.grad(rosen)(x), _central(rosen, x), rtol=1e-6)
    value, gradient = sd.value_and_grad(rosen)(x)
    assert value == pytest.approx(rosen(x)) and gradient.shape == (3,)
    hessian = sd.hessian(rosen)(x)
    np.testing.assert_allclose(hessian, _central(sd.grad(rosen), x), rtol=1e-6, atol=1e-5)

    def weighted(w, data):
        return np.sum(np.tanh(w * data) ** 2)

    data = np.array([0.5, 1.0, -2.0])
    by_w = sd.grad(weighted, 0)(x, data)  # argnums, as in JAX
    np.testing.assert_allclose(by_w, _central(lambda w: weighted(w, data), x), rtol=1e-6)
    fast = sd.jit(weighted)
    assert fast(x, data) == pytest.approx(weighted(x, data), rel=1e-14)
    jacobian = sd.jacobian(lambda v: np.tanh(v) * 2.0)(x)
    np.testing.assert_allclose(jacobian, np.diag(2.0 / np.cosh(x) ** 2), rtol=1e-13)


def test_errors_say_how_to_declare_shapes():
    def needs_a_matrix(x):
        return np.sum(x @ x)  # a matrix product of a vector with itself: fine; of 3 x 2: not

    with pytest.raises(sd.ShapeError, match="declare them with args="):
        sd.compile(needs_a_matrix)(np.ones((3, 2)))
    with pytest.raises(sd.ArgumentError,
                       match=r"rosen\(x\): missing a required argument: 'x'"):
        sd.jit(rosen)()


def test_slow_compiles_report_progress(monkeypatch, caplog):
    import logging

    from symdiff.runtime import progress

    monkeypatch.setattr(progress, "SLOW_S", 0.0)  # every compile counts as slow here
    with caplog.at_level(logging.INFO, logger="symdiff"):
        fn = sd.compile("sin(a) * b + a**3", background=False, lowering="python")
        fn(0.5, 2.0)
    messages = [r.getMessage() for r in caplog.records if r.name == "symdiff"]
    assert any(m.startswith("compiling forward (") and "operations" in m for m in messages)
    assert any(m.startswith("compiled forward in") for m in messages)
    handler = sd.show_progress()
    assert sd.show_progress() is handler  # once, however often it is asked


def test_points_keep_their_shape_as_in_a_ufunc():
    fn = sd.compile("sin(a) * b", background=False)
    grid = np.linspace(0.0, 1.0, 6).reshape(2, 3)  # was flattened to 6 points
    np.testing.assert_allclose(fn(grid, 2.0), np.sin(grid) * 2.0, rtol=1e-15)
    gradient = fn.grad(grid, 2.0)
    assert gradient.shape == (2, 3, 2)
    np.testing.assert_allclose(gradient[..., 0], np.cos(grid) * 2.0, rtol=1e-15)
    value, gradient = fn.value_and_grad(grid, np.full((2, 1), 2.0))  # broadcast
    assert value.shape == (2, 3) and gradient.shape == (2, 3, 2)
    assert fn(np.arange(3.0), 1.0).shape == (3,) and np.ndim(fn(0.5, 2.0)) == 0


def test_hessians_at_many_points():
    fn = sd.compile("sin(a)*b + a**2*b**3", background=False)
    points = np.linspace(0.0, 1.0, 4)
    hessians = fn.hessian(points, 2.0)  # was "argument a must be a float"
    assert hessians.shape == (4, 2, 2)
    for k, a in enumerate(points):
        np.testing.assert_allclose(hessians[k], fn.hessian(a, 2.0), rtol=1e-15)
    assert fn.hessian(points.reshape(2, 2), 2.0).shape == (2, 2, 2, 2)
