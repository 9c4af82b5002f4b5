"""Pytrees (issue #24, section 2): parameters as dicts, tuples and lists of arrays are
arguments of jit/grad/value_and_grad/hessian/hvp/jvp/vjp, with gradients of the same
structure as jax.grad gives them, and results; functools.partial and callable objects
compile; keyword arguments bind; sd.ravel_pytree flattens for SciPy.  Gradients against
finite differences."""

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


def test_hessians_and_directional_products_of_trees():
    # Matrices over the leaves in sd.ravel_pytree's order; hvp and vjp shaped like the
    # gradient, jvp like the value; directions are trees of the argument's structure.
    fn = sd.jit(loss, wrt=0)
    flat, unravel = sd.ravel_pytree(PARAMS)
    hessian = fn.hessian(PARAMS, X, Y)
    assert hessian.shape == (flat.size, flat.size)
    by_differences = _finite_differences(
        lambda tree: sd.ravel_pytree(fn.grad(tree, X, Y))[0], PARAMS)
    np.testing.assert_allclose(hessian, by_differences, rtol=1e-5, atol=1e-8)
    np.testing.assert_array_equal(hessian, sd.hessian(loss, argnums=0)(PARAMS, X, Y))
    direction = unravel(RNG.normal(size=flat.size))
    product = fn.hvp(PARAMS, X, Y, direction)
    assert product["out"][0].shape == (4,) and isinstance(product["out"][1], float)
    np.testing.assert_allclose(sd.ravel_pytree(product)[0],
                               hessian @ sd.ravel_pytree(direction)[0], rtol=1e-12)
    gradient = sd.ravel_pytree(fn.grad(PARAMS, X, Y))[0]
    assert fn.jvp(PARAMS, X, Y, direction) == pytest.approx(
        gradient @ sd.ravel_pytree(direction)[0], rel=1e-12)
    np.testing.assert_allclose(sd.ravel_pytree(fn.vjp(PARAMS, X, Y, 2.0))[0], 2 * gradient,
                               rtol=1e-14)
    with pytest.raises(sd.ArgumentError, match="structure"):
        fn.hvp(PARAMS, X, Y, {"w1": direction["w1"]})


def test_sparse_matrices_and_patterns_of_trees_are_over_the_leaves():
    fn = sd.jit(loss, wrt=0)
    dense = fn.hessian(PARAMS, X, Y)
    np.testing.assert_array_equal(fn.sparse_hessian(PARAMS, X, Y).toarray(), dense)
    assert (fn.hessian_sparsity(PARAMS, X, Y).toarray() != 0)[dense != 0].all()

    def residual(p):
        return np.tanh(p["a"] * p["b"][0]) + p["b"][1:] ** 2
    tree = {"a": np.full(3, 0.3), "b": np.array([0.5, 1.0, 2.0, 3.0])}
    residuals = sd.jit(residual)
    np.testing.assert_array_equal(residuals.sparse_jacobian(tree).toarray(),
                                  residuals.jacobian(tree))
    pattern = residuals.jacobian_sparsity(tree).toarray() != 0  # columns: a, then b
    np.testing.assert_array_equal(pattern, np.hstack([np.eye(3), np.ones((3, 1)), np.eye(3)]))


def test_trees_of_scalars():
    gradient = sd.grad(lambda q: q["a"] * q["b"] ** 2)({"a": 1.0, "b": 2.0})
    assert gradient == {"a": 4.0, "b": 4.0}
    value, again = sd.value_and_grad(lambda q: q["a"] * q["b"] ** 2)({"a": 1.0, "b": 2.0})
    assert value == 4.0 and again == gradient
    one = sd.jit(lambda q: q["a"] ** 3)  # one scalar leaf: a float too, not a 1-vector
    assert one.grad({"a": 2.0}) == {"a": 12.0} and one.hvp({"a": 2.0}, {"a": 1.0}) == {
        "a": 12.0}


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


def test_hessians_and_jacobians_of_trees_inside_a_traced_function():
    # On expressions as on numbers: matrices over the leaves in ravel_pytree's order.
    def inner(p):
        return np.sum(p["w"] ** 2 * p["b"]) + p["b"] ** 3 + np.sum(np.sin(p["m"]))

    def features(p):
        return np.tanh(p["w"] * p["b"] + p["m"][0])

    def as_tree(z):
        return {"w": z[:2], "b": z[2], "m": np.reshape(z[3:], (2, 2))}

    def outer(z):  # (called on numbers too, where the transformations give numbers)
        tree = as_tree(z)
        return np.sum(sd.hessian(inner)(tree) @ z) + np.sum(sd.jacobian(features)(tree) @ z)

    z = np.linspace(0.2, 1.5, 7)
    tree = as_tree(z)
    hessian, jacobian = sd.hessian(inner)(tree), sd.jacobian(features)(tree)
    assert hessian.shape == (7, 7) and jacobian.shape == (2, 7)
    flat, unravel = sd.ravel_pytree(tree)
    by_differences = _finite_differences(
        lambda t: sd.ravel_pytree(sd.grad(inner)(t))[0], tree)
    np.testing.assert_allclose(hessian, by_differences, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(
        jacobian, _finite_differences(lambda t: features(t), tree).T, rtol=1e-6)
    fn = sd.compile(outer, args=[sd.vector("z", 7)])
    np.testing.assert_allclose(fn(z), outer(z), rtol=1e-13)
    h = 1e-6  # and its gradient, through the inner Hessian and Jacobian
    central = [(outer(z + h * e) - outer(z - h * e)) / (2 * h) for e in np.eye(7)]
    np.testing.assert_allclose(fn.grad(z), central, rtol=1e-6)


def test_matrices_by_several_arguments_match_numbers_inside_traces():
    # One matrix over every argument asked for (leaves in order), traced as on numbers;
    # an empty tree not asked for is no trouble.
    def pair(p, q):
        return p["w"] * q

    def energy(x, options):
        return np.sum(x ** 3) * q_scale(options)

    def q_scale(options):
        return 2.0 if options else 1.0

    def outer(z):
        tree = {"w": z[:2]}
        jacobian = sd.jacobian(pair, argnums=(0, 1))(tree, z[2])
        hessian = sd.hessian(lambda p, q: np.sum(p["w"] ** 2) * q ** 3, argnums=(0, 1))(
            tree, z[2])
        return np.sum(jacobian[0]) + np.sum(hessian @ z) + np.sum(
            sd.hessian(energy, argnums=0)(z, {}))

    z = np.array([1.0, 2.0, 3.0])
    assert sd.jacobian(pair, argnums=(0, 1))({"w": z[:2]}, z[2]).shape == (2, 3)
    fn = sd.compile(outer, args=[sd.vector("z", 3)], background=False)
    assert fn(z) == pytest.approx(outer(z), rel=1e-13)


def test_ravel_pytree_and_shapes_inside_a_traced_function():
    # sd.ravel_pytree of expressions (and np.shape / np.ndim / np.size, which it reads).
    def f(p):
        flat, unravel = sd.ravel_pytree(p)
        doubled = unravel(flat * 2.0)
        assert np.shape(p["w"]) == (3,) and np.ndim(flat) == 1 and np.size(flat) == 5
        return np.sum(flat ** 2) + np.sum(doubled["w"])
    gradient = sd.grad(f)({"w": np.ones(3), "b": np.full(2, 3.0)})
    np.testing.assert_array_equal(gradient["w"], np.full(3, 4.0))
    np.testing.assert_array_equal(gradient["b"], np.full(2, 6.0))


def after_one_step_numeric(p, x):
    residual = p["w"] @ x + p["b"]
    gradient = {"w": 2 * np.outer(residual, x), "b": 2 * residual}
    moved = {k: p[k] - 0.1 * gradient[k] for k in p}
    return np.sum((moved["w"] @ x + moved["b"]) ** 2)


def test_pytree_results_come_back_in_their_structure():
    def f(x):
        return {"energy": np.sum(x ** 2), "forces": (np.sin(x), x[0] * x)}
    fn = sd.jit(f)
    x = np.array([0.1, 0.2, 0.3])
    value = fn(x)
    assert value["energy"] == pytest.approx(0.14, rel=1e-15)
    np.testing.assert_allclose(value["forces"][0], np.sin(x), rtol=1e-15)
    np.testing.assert_allclose(value["forces"][1], x[0] * x, rtol=1e-15)
    jac = sd.jacobian(f)(x)  # one block of rows per leaf: (leaf size, n)
    np.testing.assert_allclose(jac["energy"], [2 * x], rtol=1e-15)
    np.testing.assert_allclose(jac["forces"][0], np.diag(np.cos(x)), rtol=1e-15)
    np.testing.assert_allclose(jac["forces"][1], x[0] * np.eye(3) + np.outer(
        x, [1.0, 0.0, 0.0]), rtol=1e-15)
    t = np.array([1.0, -1.0, 0.5])
    tangent = fn.jvp(x, t)
    np.testing.assert_allclose(tangent["forces"][0], np.cos(x) * t, rtol=1e-15)
    cotangent = {"energy": 1.0, "forces": (np.ones(3), np.zeros(3))}
    np.testing.assert_allclose(fn.vjp(x, cotangent), 2 * x + np.cos(x), rtol=1e-15)
    with pytest.raises(sd.ArgumentError, match="structure"):
        fn.vjp(x, {"energy": 1.0})
    assert sd.jit(lambda v: (v[0], v[1]))(x).tolist() == [0.1, 0.2]  # scalars: a vector
    with pytest.raises(sd.SymdiffError, match="sd.jit"):
        sd.compile(f, args=[sd.vector("x", 3)])


def _energy_and_forces(x):
    return {"u": x * 2.0, "s": np.sum(x)}


def _tree_product(q):
    return q["a"] * q["b"] ** 2


def test_pytree_results_through_vmap_and_pickle():
    import pickle
    fn = sd.jit(_energy_and_forces)
    points = np.arange(6.0).reshape(3, 2)
    batched = sd.vmap(fn)(points)  # each leaf with the points' axis first
    np.testing.assert_array_equal(batched["u"], points * 2.0)
    np.testing.assert_array_equal(batched["s"], points.sum(axis=1))
    fn(np.array([1.0, 2.0]))
    again = pickle.loads(pickle.dumps(fn))
    assert again(np.array([1.0, 2.0]))["s"] == 3.0
    product = sd.jit(_tree_product)
    assert product.grad({"a": 1.0, "b": 2.0}) == {"a": 4.0, "b": 4.0}
    assert pickle.loads(pickle.dumps(product)).grad({"a": 1.0, "b": 2.0}) == {"a": 4.0,
                                                                                "b": 4.0}
