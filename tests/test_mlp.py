"""The lecture's network at the array level: hand-written delta backprop, finite
differences, open batch sizes, Hessians and Hessian-vector products, stable softmax."""

import importlib.util
import pathlib

import numpy as np
import pytest

import symdiff as sd

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def _example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_symdiff_gradient_equals_the_delta_recursion():
    by_hand = _example("backprop_by_hand")
    loss, weights, data = by_hand.symbolic_loss()
    fn = sd.compile(loss, wrt=weights, args=weights + data)
    rng = np.random.default_rng(3)
    n0, n1, n2 = by_hand.SIZES
    for _ in range(3):
        params = [(rng.normal(size=(n1, n0)), rng.normal(size=n1)),
                  (rng.normal(size=(n2, n1)), rng.normal(size=n2))]
        x, y = rng.normal(size=n0), rng.normal(size=n2)
        flat = [p for layer in params for p in layer]
        expected = by_hand.backprop(params, x, y)
        symbolic = sd.evaluate(sd.grad(loss, weights), dict(
            zip(["W1", "b1", "W2", "b2", "x", "y"], flat + [x, y], strict=True)))
        for e, c, s in zip(expected, fn.grad(*flat, x, y), symbolic, strict=True):
            np.testing.assert_allclose(c, e, rtol=1e-13, atol=1e-15)
            np.testing.assert_allclose(s, e, rtol=1e-13, atol=1e-15)


def _classifier(n_in=5, n_hidden=4, n_out=3):
    w1, b1 = sd.matrix("W1", n_hidden, n_in), sd.vector("b1", n_hidden)
    w2, b2 = sd.matrix("W2", n_out, n_hidden), sd.vector("b2", n_out)
    x, y = sd.matrix("X", None, n_in), sd.matrix("Y", None, n_out)
    logits = np.tanh(x @ w1.T + b1) @ w2.T + b2
    loss = -sd.sum(y * sd.log_softmax(logits, axis=1))
    return loss, [w1, b1, w2, b2], [x, y]


@pytest.fixture(scope="module")
def classifier():
    loss, weights, data = _classifier()
    return loss, weights, data, sd.compile(loss, wrt=weights, args=weights + data)


def _values(rng, batch):
    params = [rng.normal(size=(4, 5)), rng.normal(size=4), rng.normal(size=(3, 4)),
              rng.normal(size=3)]
    return params, rng.normal(size=(batch, 5)), np.eye(3)[rng.integers(0, 3, batch)]


def test_mlp_loss_gradient_matches_finite_differences(classifier):
    loss, weights, _, fn = classifier
    rng = np.random.default_rng(1)
    params, x, y = _values(rng, 6)
    _, grads = fn.value_and_grad(*params, x, y)
    h = 1e-6
    for k, p in enumerate(params):
        fd = np.zeros(p.shape)
        for index in np.ndindex(p.shape):
            up = [q.copy() for q in params]
            down = [q.copy() for q in params]
            up[k][index] += h
            down[k][index] -= h
            fd[index] = (fn(*up, x, y) - fn(*down, x, y)) / (2 * h)
        np.testing.assert_allclose(grads[k], fd, rtol=1e-6, atol=1e-8)


def test_batch_size_changes_between_calls(classifier):
    loss, weights, _, fn = classifier
    rng = np.random.default_rng(2)
    params, _, _ = _values(rng, 1)
    for batch in (6, 2, 9, 1):
        _, x, y = _values(rng, batch)
        value, grads = fn.value_and_grad(*params, x, y)
        env = dict(zip(["W1", "b1", "W2", "b2", "X", "Y"], params + [x, y], strict=True))
        assert np.isclose(value, sd.evaluate(loss, env), rtol=1e-13)
        for g, e in zip(grads, sd.evaluate(sd.grad(loss, weights), env), strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-14)
    _, x, y = _values(rng, 4)
    with pytest.raises(ValueError, match="Y must have shape"):
        fn(*params, x, y[:3])


def test_generated_code_does_not_grow_with_layer_sizes():
    sources = []
    for sizes in [(64, 32, 10), (784, 128, 10)]:
        loss, weights, data = _classifier(*sizes)
        fn = sd.compile(loss, wrt=weights, args=weights + data)
        sources.append(fn.lower("value_and_grad").source)
    assert len(sources[0].splitlines()) == len(sources[1].splitlines())


@pytest.fixture(scope="module")
def curved():
    x = sd.vector("x", 4)
    f = sd.logsumexp(x * x) + sd.sum(np.sin(x[1:] * x[:-1])) + sd.sum(sd.softplus(x)) ** 2
    return f, x, sd.compile(f, wrt=x)


def test_hessian_and_hvp_match_finite_differences_of_the_gradient(curved):
    f, x, fn = curved
    rng = np.random.default_rng(4)
    point, v = rng.normal(size=4), rng.normal(size=4)
    h = 1e-6
    fd = np.stack([(fn.grad(point + h * e) - fn.grad(point - h * e)) / (2 * h)
                   for e in np.eye(4)], axis=1)
    hessian = fn.hessian(point)
    np.testing.assert_allclose(hessian, fd, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(hessian, hessian.T, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(sd.evaluate(sd.hessian(f, x), x=point), hessian, rtol=1e-12)
    np.testing.assert_allclose(fn.hvp(point, v), fd @ v, rtol=1e-6, atol=1e-7)
    direction = sd.vector("v", 4)
    np.testing.assert_allclose(sd.evaluate(sd.hvp(f, x, direction), x=point, v=v),
                               hessian @ v, rtol=1e-12)


def test_mixed_partials_of_array_expressions(curved):
    f, x, _ = curved
    point = np.array([0.3, -0.2, 0.5, 1.1])
    d2 = sd.diff(sd.grad(f, x)[0][2], x)  # d/dx (df/dx_2): row 2 of the Hessian
    np.testing.assert_allclose(sd.evaluate(d2, x=point),
                               sd.evaluate(sd.hessian(f, x), x=point)[2], rtol=1e-12)


def test_softmax_family_is_finite_for_large_inputs():
    z = sd.vector("z", 4)
    big = np.array([1e3, -1e3, 999.0, 0.0])
    exprs = [sd.logsumexp(z), sd.softmax(z), sd.log_softmax(z)]
    for e in exprs:
        assert np.all(np.isfinite(sd.evaluate(e, z=big)))
        grads = sd.grad(sd.sum(e * np.arange(1.0, 1 + np.prod(e.shape or (1,))).reshape(
            e.shape)) if e.shape else e, z)[0]
        assert np.all(np.isfinite(sd.evaluate(grads, z=big)))
    fn = sd.compile(sd.sum(sd.log_softmax(z) * np.array([1.0, 0.0, 0.0, 0.0])), wrt=z)
    value, grad = fn.value_and_grad(big)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(fn.value_and_grad(big * 1.0)[1], grad)
    assert np.isclose(sd.evaluate(sd.logsumexp(z), z=big), 1e3 + np.log1p(np.exp(-1.0)))


def test_batched_points_use_the_scalar_kernel(lecture):
    rng = np.random.default_rng(5)
    points = rng.normal(size=(3, 1000))
    grads = lecture.grad(*points)
    assert grads.shape == (1000, 3)
    for k in (0, 517, 999):
        np.testing.assert_array_equal(grads[k], lecture.grad(*points[:, k]))
    values, grads2 = lecture.value_and_grad(points[0], points[1], 2.0)  # scalars broadcast
    assert values.shape == (1000,) and np.allclose(values, lecture(points[0], points[1], 2.0))


def test_compiled_vector_products_of_array_functions(classifier):
    loss, weights, data, fn = classifier
    rng = np.random.default_rng(6)
    params, x, y = _values(rng, 3)
    env = dict(zip(["W1", "b1", "W2", "b2", "X", "Y"], params + [x, y], strict=True))
    directions = [rng.normal(size=p.shape) for p in params]
    symbols = [sd.symbol(f"d{k}", w.shape) for k, w in enumerate(weights)]
    expected = sd.evaluate(sd.hvp(loss, weights, symbols),
                           {**env, **{f"d{k}": d for k, d in enumerate(directions)}})
    for got, want in zip(fn.hvp(*params, x, y, *directions), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    grads = fn.grad(*params, x, y)
    for got, want in zip(fn.vjp(*params, x, y, 2.0), grads, strict=True):
        np.testing.assert_allclose(got, 2.0 * want, rtol=1e-14)
    along = fn.jvp(*params, x, y, *directions)
    assert np.isclose(along, sum(np.sum(g * d) for g, d in zip(grads, directions, strict=True)),
                      rtol=1e-12)
    assert "def hvp(" in fn.source and "def hessian(" in fn.source  # 83 x 83 is small enough


def test_compiled_results_never_alias_the_arguments():
    v, m = sd.vector("v", 3), sd.matrix("m", 2, 3)
    x, y = np.ones(3), np.ones((2, 3))
    for out in (sd.stop_gradient(v), m.T, sd.reshape(m, (3, 2)), m):
        result = sd.compile(out, args=[v, m])(x, y)
        assert not np.shares_memory(result, x) and not np.shares_memory(result, y), str(out)
