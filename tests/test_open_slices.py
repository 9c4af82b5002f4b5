"""Slices, integers and concatenations on open (None) dimensions: one compile for any N.

Each function is checked against NumPy at several lengths (compiled and evaluated), with
gradients and Hessians against central differences.
"""

import numpy as np
import pytest

import symdiff as sd


def chain(x):
    """Neighbours, ends, reversal and a mean of a slice: what chain-like losses write."""
    return (np.sum(x[1:] * x[:-1] ** 2) + x[-1] * x[0] + np.mean(x[2:] ** 2)
            + np.sum(x[::-1] * x) + np.sum(x[-3:] ** 3) + np.sum(np.diff(x) ** 2))


def heat(u):
    """Right-hand side of the heat equation with fixed ends (an ODE of any size)."""
    return np.concatenate([[0.0], u[2:] - 2 * u[1:-1] + u[:-2], [0.0]]) - u ** 3


def rows(X):
    """Slices along the open first axis of a matrix, and a row of it."""
    return np.sum((X[1:] - X[:-1]) ** 2) + np.sum(X[-1] * X[0]) + np.sum(X[::-1, 0] * X[:, 1])


@pytest.fixture(scope="module")
def chain_fn():
    return sd.compile(chain, args=[sd.vector("x", None)], background=False)


@pytest.fixture(scope="module")
def heat_fn():
    fn = sd.compile(heat, args={"u": (None,)}, background=False)  # names to shapes
    assert fn.args == [sd.vector("u", None)]
    return fn


def central_gradient(f, x, h=1e-6):
    steps = np.eye(x.size).reshape((x.size,) + x.shape) * h
    return np.array([(f(x + s) - f(x - s)) / (2 * h) for s in steps]).reshape(
        x.shape + np.shape(f(x)))


@pytest.mark.parametrize("n", [3, 4, 7, 12])
def test_chain_loss_at_any_length_matches_numpy(chain_fn, n):
    x = np.random.default_rng(n).normal(size=n)
    assert chain_fn(x) == pytest.approx(chain(x), rel=1e-13)
    np.testing.assert_allclose(chain_fn.grad(x), central_gradient(chain, x), rtol=1e-6,
                               atol=1e-7)
    hessian = central_gradient(lambda v: central_gradient(chain, v, 1e-4), x, 1e-4)
    np.testing.assert_allclose(chain_fn.hessian(x), hessian, rtol=1e-5, atol=1e-5)
    traced = chain(sd.vector("x", None))
    assert sd.evaluate(traced, x=x) == pytest.approx(chain(x), rel=1e-13)


@pytest.mark.parametrize("n", [2, 5, 9])
def test_ode_right_hand_side_and_its_jacobian(heat_fn, n):
    u = np.linspace(-1.0, 1.0, n) ** 2
    np.testing.assert_allclose(heat_fn(u), heat(u), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(heat_fn.jacobian(u), central_gradient(heat, u).T,
                               rtol=1e-7, atol=1e-8)
    assert heat_fn.jacobian(u).shape == (n, n)


def test_slices_of_a_matrix_along_its_open_axis():
    fn = sd.compile(rows, args=[sd.matrix("X", None, 2)], background=False)
    for n in (2, 6):
        X = np.arange(2.0 * n).reshape(n, 2) ** 1.5 / 7
        assert fn(X) == pytest.approx(rows(X), rel=1e-13)
        np.testing.assert_allclose(fn.grad(X), central_gradient(rows, X), rtol=1e-6)


def test_shapes_offset_from_the_open_length_are_exact():
    x = sd.vector("x", None)
    assert x[1:].shape == np.diff(x).shape and x[:-2][1:].shape == x[3:].shape
    assert (x[1:] * x[:-1]).shape == x[1:].shape
    assert x[2:5].shape == (3,) and x[-4:-1].shape == (3,) and x[::-1].shape == (None,)
    assert sd.concatenate([x[1:], [0.0]]).shape == x.shape
    a = sd.matrix("A", None, 3)
    assert sd.reshape(a[1:, :1], (-1,)).shape == x[1:].shape
    with pytest.raises(sd.ShapeError, match="open dimension only"):
        sd.reshape(a[1:], (-1,))  # 3 (N - 1) elements: not N plus a constant
    assert str(x[1:] - x[:-1]) == "x[1:] - x[:-1]"
    assert str(sd.grad(x[-1], [x])[0]) == "embed(1; at [-1] of (None,))"
    assert 'label="index [::-1] (batch,)"' in sd.to_dot(x[::-1] * x)


@pytest.mark.parametrize("build,message", [
    (lambda x: x[1:] * x, "do not broadcast"),
    (lambda x: x[::2], "step"),
    (lambda x: x[-2:3], "shrink"),
    (lambda x: x[3:3], "empty"),
    (lambda x: x[[0, 1]], "open"),
])
def test_slices_that_have_no_length_in_n_are_refused(build, message):
    with pytest.raises(sd.ShapeError, match=message):
        build(sd.vector("x", None))


def test_data_too_short_for_a_slice_is_refused_at_run_time(chain_fn):
    x = sd.vector("x", None)
    with pytest.raises(sd.ShapeError, match="at least 3"):
        sd.evaluate(chain(x), x=np.ones(2))
    with pytest.raises(ValueError, match="at least 3"):
        chain_fn(np.ones(2))


def test_a_mean_over_a_slice_divides_by_its_own_length():
    y = sd.vector("y", None)
    loss = sd.mean((y[1:] - y[:-1]) ** 2)
    fn = sd.compile(loss, args=[y], background=False)
    for n in (2, 5):
        data = np.arange(n, dtype=float) ** 2
        assert fn(data) == pytest.approx(np.mean(np.diff(data) ** 2), rel=1e-14)


def test_scans_and_running_sums_over_slices():
    x = sd.vector("x", None)
    carry, ys = sd.scan(lambda c, r: (0.5 * c + r, c * r), 0.0, x[1:] * x[:-1])
    loss = carry + sd.sum(ys) + sd.sum(sd.cumsum(x[2:]) ** 2)

    def reference(v):
        c = s = 0.0
        for r in v[1:] * v[:-1]:
            s, c = s + c * r, 0.5 * c + r
        return c + s + np.sum(np.cumsum(v[2:]) ** 2)

    fn = sd.compile(loss, args=[x], background=False)
    for n in (3, 6):
        v = np.random.default_rng(n).normal(size=n)
        assert fn(v) == pytest.approx(reference(v), rel=1e-13)
        assert sd.evaluate(loss, x=v) == pytest.approx(reference(v), rel=1e-13)
        np.testing.assert_allclose(fn.grad(v), central_gradient(reference, v), rtol=1e-6,
                                   atol=1e-8)


def test_a_loop_body_slicing_an_open_invariant_checks_the_length_too():
    w, xs = sd.vector("w", None), sd.vector("xs", 3)
    carry, _ = sd.scan(lambda c, r: (c + sd.sum(w[-2:]) * r, c), 0.0, xs)
    fn = sd.compile(carry, args=[w, xs], background=False)
    value, (dw, dxs) = fn.value_and_grad(np.arange(1.0, 5.0), np.ones(3))
    assert value == 21.0 and list(dw) == [0, 0, 3, 3] and list(dxs) == [7, 7, 7]
    for method in (fn, fn.grad):  # the body is not checked on its own
        with pytest.raises(ValueError, match="argument w is too short"):
            method(np.ones(1), np.ones(3))
