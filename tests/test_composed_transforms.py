"""Transformations that compose (issue #24, section 1): sd.grad, value_and_grad, jacobian
and hessian of a Python function, called on expressions inside a traced function, a loop
body or another transformation, return expressions (symdiff.autodiff.at_expressions), so
they nest as JAX's do.  Values against closed forms and finite differences."""

import numpy as np
import pytest

import symdiff as sd


def test_grad_inside_a_traced_function():
    w = sd.symbol("w")
    fn = sd.compile(lambda w: sd.grad(lambda v: v ** 3)(w - 0.1), args=[w])
    assert fn(0.5) == pytest.approx(3 * 0.4 ** 2, rel=1e-15)
    assert fn.grad(0.5)[0] == pytest.approx(6 * 0.4, rel=1e-15)


def test_grads_nest_to_any_depth_on_numbers():
    # One argument: its derivative alone, a float, as jax.grad gives it.
    assert sd.grad(sd.grad(lambda v: v ** 3))(2.0) == pytest.approx(12.0)
    assert sd.grad(sd.grad(sd.grad(lambda v: v ** 4)))(2.0) == pytest.approx(48.0)
    assert isinstance(sd.grad(lambda v: v ** 2)(3.0), float)
    x = np.array([0.5, 1.0])
    hessian = sd.jacobian(sd.grad(lambda v: np.sum(np.sin(v) * v)))(x)
    np.testing.assert_allclose(hessian, np.diag(2 * np.cos(x) - x * np.sin(x)), rtol=1e-14)


def test_array_arguments_keep_jax_shapes():
    x = sd.vector("x", 3)
    values = np.array([1.0, 2.0, 3.0])
    g = sd.compile(lambda x: sd.grad(lambda v: np.sum(v ** 3))(2 * x), args=[x])
    np.testing.assert_allclose(g(values), 3 * (2 * values) ** 2, rtol=1e-15)
    jac = sd.compile(lambda x: sd.jacobian(lambda v: np.sin(v) * v[0])(x), args=[x])
    expected = np.diag(np.cos(values) * values[0])
    expected[:, 0] += np.sin(values)
    np.testing.assert_allclose(jac(values), expected, rtol=1e-14)
    hess = sd.compile(lambda x: sd.hessian(lambda v: np.sum(v ** 3))(x), args=[x])
    np.testing.assert_allclose(hess(values), np.diag(6 * values), rtol=1e-15)
    both = sd.compile(lambda x: sd.value_and_grad(lambda a, b: np.sum(a * b), argnums=1)(
        x, x ** 2)[1] + sd.value_and_grad(lambda a: np.sum(a ** 2))(x)[0], args=[x])
    np.testing.assert_allclose(both(values), values + np.sum(values ** 2), rtol=1e-15)


def test_a_newton_loop_written_the_jax_way():
    def minimum(x0):
        def f(v):
            return (v - 2.0) ** 2 + v ** 4 / 10
        df, d2f = sd.grad(f), sd.grad(sd.grad(f))
        return sd.fori_loop(0, 20, lambda i, x: x - df(x) / d2f(x), x0)
    fn = sd.compile(minimum, args=[sd.symbol("x0")])
    x = fn(0.0)
    assert 2 * (x - 2) + 0.4 * x ** 3 == pytest.approx(0.0, abs=1e-12)


def test_a_residual_that_differentiates_an_inner_objective():
    def stationarity(p, y):
        return sd.grad(lambda z: np.sum((z - p) ** 2) + np.sum(z ** 4))(y)
    p, y = sd.vector("p", 2), sd.vector("y", 2)
    fn = sd.compile(lambda p, y: np.sum(stationarity(p, y) ** 2), args=[p, y])
    pv, yv = np.array([1.0, 2.0]), np.array([0.3, -0.4])
    residual = 2 * (yv - pv) + 4 * yv ** 3
    assert fn(pv, yv) == pytest.approx(np.sum(residual ** 2), rel=1e-14)
    h = 1e-6
    fd = [(fn(pv, yv + h * e) - fn(pv, yv - h * e)) / (2 * h) for e in np.eye(2)]
    np.testing.assert_allclose(fn.grad(pv, yv)[1], fd, rtol=1e-6)


def test_grad_in_a_scan_body():
    def f(k, xs):
        def step(carry, x):
            slope = sd.grad(lambda c: k * c ** 2 + np.sin(c))(carry)
            return carry - 0.1 * slope + x, carry
        last, _ = sd.scan(step, 1.0, xs)
        return last
    fn = sd.compile(f, args=[sd.symbol("k"), sd.vector("xs", 5)])
    xs = np.linspace(0.0, 0.4, 5)
    carry = 1.0
    for x in xs:
        carry = carry - 0.1 * (2 * 0.7 * carry + np.cos(carry)) + x
    assert fn(0.7, xs) == pytest.approx(carry, rel=1e-14)


def test_clear_errors():
    x = sd.vector("x", 3)
    with pytest.raises(sd.ShapeError, match="scalar function"):
        sd.compile(lambda x: sd.grad(lambda v: v * 2)(x), args=[x])
    with pytest.raises(sd.SymdiffError, match="position 3 is out of range"):
        sd.compile(lambda x: sd.grad(lambda v: np.sum(v), argnums=3)(x), args=[x])


def test_jvp_on_numbers_and_inside_traced_functions():
    value, tangent = sd.jvp(lambda x: np.sin(x) * x, (0.5,), (1.0,))
    assert value == pytest.approx(np.sin(0.5) * 0.5, rel=1e-15)
    assert tangent == pytest.approx(np.cos(0.5) * 0.5 + np.sin(0.5), rel=1e-15)
    v, t = np.array([0.1, 0.2, 0.3]), np.array([1.0, 0.0, 2.0])
    value, tangent = sd.jvp(lambda a, b: np.sum(a * b ** 2), (v, v), (t, t))
    assert tangent == pytest.approx(np.sum(t * v ** 2) + np.sum(v * 2 * v * t), rel=1e-15)
    w = sd.symbol("w")
    fn = sd.compile(lambda w: sd.jvp(lambda u: u ** 3, (w,), (2.0,))[1], args=[w])
    assert fn(0.5) == pytest.approx(1.5, rel=1e-15)
    with pytest.raises(sd.SymdiffError, match="one tangent per primal"):
        sd.jvp(lambda a: a, (1.0,), (1.0, 2.0))


def test_expressions_and_numbers_give_the_same_structure():
    # Defaults are constants unless asked for, and Jacobians and Hessians are flattened
    # (size x size), on expressions as on numbers.
    def g(w, scale=2.0):
        return np.sum(w ** 2) * scale
    w = sd.vector("w", 3)
    on_expressions = sd.compile(lambda w: sd.grad(g)(w, 3.0), args=[w])(np.ones(3))
    np.testing.assert_array_equal(on_expressions, sd.grad(g)(np.ones(3), 3.0))
    hess = sd.compile(lambda w: sd.hessian(g)(w, 3.0), args=[w])(np.ones(3))
    np.testing.assert_array_equal(hess, 6.0 * np.eye(3))
    m = sd.matrix("M", 2, 2)

    def cube(a):
        return np.sum(a @ a @ a)
    symbolic = sd.compile(lambda a: sd.hessian(cube)(a), args=[m])(np.ones((2, 2)))
    np.testing.assert_allclose(symbolic, sd.hessian(cube)(np.ones((2, 2))), rtol=1e-15)
    s = sd.symbol("s")
    column = sd.compile(lambda s: sd.jacobian(lambda t: np.sin(t) * np.ones(3))(s), args=[s])
    assert column(2.0).shape == (3, 1)


def _central(f, x, dx, h=1e-6):
    return (f(x + h * dx) - f(x - h * dx)) / (2 * h)


def test_jvp_vjp_and_hvp_of_array_functions_on_numbers():
    rng = np.random.default_rng(0)
    x, dx = rng.normal(size=3), rng.normal(size=3)

    def f(v):  # array-valued
        return np.sin(v) * np.sum(v ** 2)
    value, tangent = sd.jvp(f, (x,), (dx,))
    np.testing.assert_allclose(value, f(x), rtol=1e-14)
    np.testing.assert_allclose(tangent, _central(f, x, dx), rtol=1e-7)
    value, pullback = sd.vjp(f, x)
    np.testing.assert_allclose(value, f(x), rtol=1e-14)
    ct = rng.normal(size=3)
    (got,) = pullback(ct)
    jac = np.stack([_central(f, x, e) for e in np.eye(3)], axis=1)
    np.testing.assert_allclose(got, ct @ jac, rtol=1e-7)

    def g(v, y):  # scalar, of an array and a scalar
        return np.sum(np.sin(v)) * y ** 2
    parts = sd.hvp(g, (x, 2.0), (dx, 0.5))
    assert isinstance(parts[1], float)
    hess_x = np.diag(-np.sin(x) * 4.0)
    np.testing.assert_allclose(parts[0], hess_x @ dx + 4.0 * np.cos(x) * 0.5, rtol=1e-13)
    assert parts[1] == pytest.approx(4.0 * np.cos(x) @ dx + 2 * np.sum(np.sin(x)) * 0.5,
                                     rel=1e-13)
    _, pullback = sd.vjp(g, x, 2.0)
    grads = pullback(1.0)
    np.testing.assert_allclose(grads[0], np.cos(x) * 4.0, rtol=1e-14)
    assert grads[1] == pytest.approx(4.0 * np.sum(np.sin(x)), rel=1e-14)
    with pytest.raises(sd.ShapeError, match="cotangent has shape"):
        pullback(np.ones(2))


def test_vjp_and_hvp_inside_traced_functions():
    w = sd.symbol("w")
    # A Newton step on u**3 sin(u): g / (H 1), both from Python functions on expressions.
    objective = lambda u: u ** 3 * sd.sin(u)  # noqa: E731

    def newton_step(w):
        _, pullback = sd.vjp(objective, w)
        (gradient,) = pullback(1.0)
        return w - gradient / sd.hvp(objective, (w,), (1.0,))
    step = sd.compile(newton_step, args=[w])
    u = 0.7
    g = 3 * u ** 2 * np.sin(u) + u ** 3 * np.cos(u)
    h = 6 * u * np.sin(u) + 6 * u ** 2 * np.cos(u) - u ** 3 * np.sin(u)
    assert step(u) == pytest.approx(u - g / h, rel=1e-14)
    assert step.grad(u) == pytest.approx(_central(step, u, 1.0), rel=1e-6)
    v = sd.vector("v", 2)
    value, pullback = sd.vjp(lambda a: a * a[0], v)
    assert value.shape == (2,) and pullback(np.ones(2))[0].shape == (2,)
    with pytest.raises(sd.SymdiffError, match="one tangent per primal"):
        sd.hvp(objective, (w,), (1.0, 2.0))
    with pytest.raises(sd.ShapeError, match="scalar function"):
        sd.hvp(lambda a: a * 2, (v,), (np.ones(2),))


def test_transformations_at_numbers_of_closures_over_traced_symbols():
    # The primals are numbers, but the function reads the enclosing trace's symbol w:
    # the answers are expressions of w (a compile of the closure alone raised before).
    assert sd.jit(lambda w: sd.vjp(lambda u: u ** 2 * w, 2.0)[1](1.0)[0])(3.0) == 12.0
    assert sd.jit(lambda w: sd.jvp(lambda u: u ** 2 * w, (2.0,), (1.0,))[1])(3.0) == 12.0
    assert sd.jit(lambda w: sd.hvp(lambda u: u ** 3 * w, (2.0,), (1.0,)))(3.0) == 36.0
    inner = sd.jit(lambda w: sd.grad(lambda u: u ** 3 * w)(2.0))
    assert inner(3.0) == 36.0 and inner.grad(3.0) == 12.0


def test_vjp_of_a_function_returning_a_tuple_takes_a_tree_cotangent():
    def f(x):
        return np.sin(x), np.sum(x ** 2)
    x = np.array([0.1, 0.2, 0.3])
    value, pullback = sd.vjp(f, x)
    np.testing.assert_allclose(value[0], np.sin(x), rtol=1e-15)
    (got,) = pullback((np.ones(3), 1.0))
    np.testing.assert_allclose(got, np.cos(x) + 2 * x, rtol=1e-14)
    with pytest.raises(sd.ShapeError, match="structure"):
        pullback(np.ones(3))
    symbolic_value, symbolic = sd.vjp(f, sd.vector("x", 3))
    assert isinstance(symbolic_value, tuple) and symbolic((np.ones(3), 1.0))[0].shape == (3,)
