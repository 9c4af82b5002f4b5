"""Pytrees (issue #24, section 2): parameters as dicts, tuples and lists of arrays are
arguments of jit/grad/value_and_grad, with gradients of the same structure as jax.grad
gives them; functools.partial and callable objects compile; keyword arguments bind;
sd.ravel_pytree flattens for SciPy.  Gradients against finite differences."""

import functools

import numpy as np
import pytest

import symdiff as sd

RNG = np.random.default_rng(3)
PARAMS = {"w1": RNG.normal(size=(4, 3)), "b1": np.zeros(4),
          "out": (RNG.normal(size=4), 0.5)}
X, Y = RNG.normal(size=(10, 3)), RNG.normal(size=10)


def loss(params, x, y):
    h = np.tanh(x @ params["w1"].T + params["b1"])
    w, c = params["out"]
    return np.mean((h @ w + c - y) ** 2)


def _finite_differences(f, tree):
    flat, unravel = sd.ravel_pytree(tree)
    h = 1e-6
    return np.array([(f(unravel(flat + h * e)) - f(unravel(flat - h * e))) / (2 * h)
                     for e in np.eye(len(flat))])


def test_gradients_have_the_structure_of_the_argument():
    gradient = sd.grad(loss, argnums=0)(PARAMS, X, Y)
    assert set(gradient) == {"w1", "b1", "out"} and isinstance(gradient["out"], tuple)
    assert gradient["w1"].shape == (4, 3) and np.ndim(gradient["out"][1]) == 0
    flat, _ = sd.ravel_pytree(gradient)
    expected = _finite_differences(lambda p: loss(p, X, Y), PARAMS)
    np.testing.assert_allclose(flat, expected, rtol=1e-6, atol=1e-9)
    value, again = sd.value_and_grad(loss, argnums=0)(PARAMS, X, Y)
    assert value == pytest.approx(loss(PARAMS, X, Y), rel=1e-14)
    np.testing.assert_array_equal(sd.ravel_pytree(again)[0], flat)


def test_jit_and_every_argument_by_default():
    assert sd.jit(loss)(PARAMS, X, Y) == pytest.approx(loss(PARAMS, X, Y), rel=1e-14)
    gradients = sd.grad(loss)(PARAMS, X, y=Y)  # all required arguments, y by keyword
    assert isinstance(gradients, tuple) and len(gradients) == 3
    assert isinstance(gradients[0], dict) and gradients[1].shape == X.shape


def test_partials_callable_objects_and_lists():
    bound = functools.partial(loss, x=X, y=Y)
    np.testing.assert_array_equal(sd.ravel_pytree(sd.grad(bound)(PARAMS))[0],
                                  sd.ravel_pytree(sd.grad(loss, argnums=0)(PARAMS, X, Y))[0])

    class Quadratic:
        def __call__(self, layers):
            return sum(np.sum(w ** 2) for w in layers)
    layers = [np.ones(2), np.arange(3.0)]
    gradient = sd.grad(Quadratic())(layers)
    assert isinstance(gradient, list)
    np.testing.assert_array_equal(gradient[1], 2 * np.arange(3.0))


def test_a_new_structure_compiles_again_and_a_list_of_numbers_is_a_vector():
    f = sd.jit(lambda p: np.sum(p["a"] ** 2))
    assert f({"a": np.ones(3)}) == 3.0 and f({"a": np.ones(4)}) == 4.0
    assert len(f.signatures) == 2
    g = sd.grad(lambda v: np.sum(v ** 2))([1.0, 2.0])  # numbers: a vector, as before
    np.testing.assert_array_equal(g, [2.0, 4.0])


def test_ravel_pytree_round_trips():
    flat, unravel = sd.ravel_pytree(PARAMS)
    assert flat.shape == (4 * 3 + 4 + 4 + 1,)
    back = unravel(flat)
    assert np.array_equal(back["w1"], PARAMS["w1"]) and back["out"][1] == 0.5
    with pytest.raises(sd.ArgumentError, match="21 elements"):
        unravel(flat[:-1])


def test_unsupported_methods_say_what_to_do():
    with pytest.raises(sd.SymdiffError, match="ravel_pytree"):
        sd.hessian(loss, argnums=0)(PARAMS, X, Y)


def test_trees_of_scalars():
    gradient = sd.grad(lambda q: q["a"] * q["b"] ** 2)({"a": 1.0, "b": 2.0})
    assert gradient == {"a": 4.0, "b": 4.0}
    value, again = sd.value_and_grad(lambda q: q["a"] * q["b"] ** 2)({"a": 1.0, "b": 2.0})
    assert value == 4.0 and again == gradient


def test_a_gradient_step_on_a_tree_inside_a_traced_function():
    def inner(p, x):
        return np.sum((p["w"] @ x + p["b"]) ** 2)

    def after_one_step(p, x):
        gradient = sd.grad(inner, argnums=0)(p, x)  # on expressions: a tree of them
        return inner({k: p[k] - 0.1 * gradient[k] for k in p}, x)
    params, x = {"w": np.ones((2, 3)), "b": np.ones(2)}, np.ones(3)
    gradient = sd.grad(inner, argnums=0)(params, x)
    expected = inner({k: params[k] - 0.1 * gradient[k] for k in params}, x)
    assert sd.jit(after_one_step)(params, x) == pytest.approx(expected, rel=1e-14)
    meta = sd.grad(after_one_step, argnums=0)(params, x)  # through the inner gradient
    expected = _finite_differences(lambda p: after_one_step_numeric(p, x), params)
    np.testing.assert_allclose(sd.ravel_pytree(meta)[0], expected, rtol=1e-6)


def after_one_step_numeric(p, x):
    residual = p["w"] @ x + p["b"]
    gradient = {"w": 2 * np.outer(residual, x), "b": 2 * residual}
    moved = {k: p[k] - 0.1 * gradient[k] for k in p}
    return np.sum((moved["w"] @ x + moved["b"]) ** 2)
