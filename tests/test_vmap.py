"""fn.vmap / sd.vmap: a compiled function over a batch axis, against a Python loop."""

import numpy as np
import pytest

import symdiff as sd
from symdiff.errors import ArgumentError, ShapeError
from symdiff.runtime import native
from symdiff.runtime.points import points_spec

RNG = np.random.default_rng(7)


def loss(w, x):
    return np.sum((np.tanh(x @ w) - 1.0) ** 2)


@pytest.fixture(scope="module")
def fn():
    w = sd.vector("w", 3)
    return sd.compile(loss, w, args=[w, sd.matrix("x", 4, 3)], background=False)


@pytest.fixture(scope="module")
def batch():
    return RNG.normal(size=(5, 3)), RNG.normal(size=(4, 3))


@pytest.mark.parametrize("method", ["forward", "grad", "hessian", "hvp"])
def test_every_method_matches_a_python_loop(fn, batch, method):
    weights, data = batch
    mapped = fn.vmap((0, None))
    if method == "hvp":
        directions = RNG.normal(size=weights.shape)
        got = mapped.hvp(weights, data, directions)
        want = [fn.hvp(w, data, d) for w, d in zip(weights, directions, strict=True)]
    else:
        got = getattr(mapped, method)(weights, data)
        want = [getattr(fn, method)(w, data) for w in weights]
    np.testing.assert_allclose(got, np.array(want), rtol=1e-13, atol=1e-13)


def test_value_and_grad_stacks_each_part(fn, batch):
    weights, data = batch
    values, grads = fn.vmap((0, None)).value_and_grad(weights, data)
    assert values.shape == (5,) and grads.shape == (5, 3)
    np.testing.assert_allclose(values, [fn(w, data) for w in weights], rtol=1e-14)
    np.testing.assert_allclose(grads, [fn.grad(w, data) for w in weights], rtol=1e-13)


def test_in_axes_choose_the_batch_axis_of_each_argument(fn, batch):
    weights, data = batch
    datasets = RNG.normal(size=(4, 6, 3))  # the batch on axis 1
    got = fn.vmap((None, 1))(weights[0], datasets)
    want = [fn(weights[0], datasets[:, k]) for k in range(6)]
    np.testing.assert_allclose(got, want, rtol=1e-14)
    # Negative axes count from the end.
    both = fn.vmap((-1, 0))(weights.T[:, :2], np.moveaxis(datasets, 1, 0)[:2])
    np.testing.assert_allclose(both, [fn(weights[k], datasets[:, k]) for k in range(2)],
                               rtol=1e-14)


def test_an_empty_batch_gives_empty_stacks(fn, batch):
    _, data = batch
    mapped = fn.vmap((0, None))
    assert mapped(np.zeros((0, 3)), data).shape == (0,)
    assert mapped.hessian(np.zeros((0, 3)), data).shape == (0, 3, 3)


def test_errors_name_the_argument_at_fault(fn, batch):
    weights, data = batch
    with pytest.raises(ArgumentError, match="batch size"):
        fn.vmap(0)(weights, RNG.normal(size=(4, 4, 3)))
    with pytest.raises(ArgumentError, match="no batch axis 2"):
        fn.vmap((None, 2))(weights[0], data)
    with pytest.raises(ShapeError, match="argument w"):
        fn.vmap((0, None))(RNG.normal(size=(5, 4)), data)
    with pytest.raises(ArgumentError, match="in_axes"):
        fn.vmap((0,))
    with pytest.raises(AttributeError, match="no method 'gradient'"):
        fn.vmap(0).gradient  # noqa: B018


def test_sd_vmap_of_a_python_function_compiles_per_point_shape():
    def residuals(p, t):  # a vector-valued function of an array: the Jacobian per point
        return p[0] * np.exp(-p[1] * t) - 1.0

    mapped = sd.vmap(residuals, (0, None), background=False)
    params, times = RNG.uniform(0.5, 1.5, size=(4, 2)), np.linspace(0.0, 1.0, 5)
    fn = sd.compile(residuals, args=[sd.vector("p", 2), sd.vector("t", 5)], background=False)
    np.testing.assert_allclose(mapped(params, times), [fn(p, times) for p in params],
                               rtol=1e-14)
    jac = mapped.jacobian(params, times)
    assert jac.shape == (4, 5, 7)
    np.testing.assert_allclose(jac, [fn.jacobian(p, times) for p in params], rtol=1e-13)
    cotangents = RNG.normal(size=(4, 5))
    got = mapped.vjp(params, times, cotangents)
    want = [fn.vjp(p, times, c) for p, c in zip(params, cotangents, strict=True)]
    for k in range(2):  # one stack per argument
        np.testing.assert_allclose(got[k], [w[k] for w in want], rtol=1e-13)


def test_vmap_of_a_function_of_scalars_and_its_derivatives_by_finite_differences():
    mapped = sd.vmap(lambda a, b: sd.sin(a) * b ** 2, (0, None), background=False)
    a, b, h = np.linspace(-1.0, 1.0, 7), 1.5, 1e-6
    values, grads = mapped.value_and_grad(a, b)
    da, db = grads.T
    np.testing.assert_allclose(values, np.sin(a) * b ** 2, rtol=1e-15)
    np.testing.assert_allclose(da, (np.sin(a + h) - np.sin(a - h)) / (2 * h) * b ** 2,
                               rtol=1e-8)
    np.testing.assert_allclose(db, np.sin(a) * 2 * b, rtol=1e-14)
    hessians = mapped.hessian(a, b)
    assert hessians.shape == (7, 2, 2)
    np.testing.assert_allclose(hessians[:, 0, 1], np.cos(a) * 2 * b, rtol=1e-14)


def _mlp_loss(w, x):
    # Weight matrices that vary per point: transposes become permutations of axes.
    w1 = w[:12].reshape(4, 3)
    hidden = np.tanh(x @ w1.T + w[12:16])
    return np.mean((hidden @ w[16:20] - 0.5) ** 2)


@pytest.fixture(scope="module")
def mlp():
    w, x = sd.vector("w", 20), sd.matrix("x", 6, 3)
    return sd.compile(_mlp_loss, w, args=[w, x], backend="native", background=False)


@pytest.mark.parametrize("method", ["forward", "grad", "value_and_grad", "hvp", "jvp"])
def test_the_native_vmap_runs_one_graph_over_chunks_of_points(mlp, method):
    # 600 points: two chunks of 256 and one of 88 (symdiff.runtime.batching.POINTS_CHUNK),
    # against the method at each point.
    weights, data = RNG.normal(size=(600, 20)) * 0.5, RNG.normal(size=(6, 3))
    extra = [RNG.normal(size=(600, 20))] if method in ("hvp", "jvp") else []
    mapped = mlp.vmap((0, None))
    got = getattr(mapped, method)(weights, data, *extra)
    assert all(getattr(d, "native", False) for _, d in mapped._drivers.values())
    for k in (0, 255, 256, 599):
        want = getattr(mlp, method)(weights[k], data, *[e[k] for e in extra])
        for g, v in zip(got if isinstance(got, tuple) else [got],
                        want if isinstance(want, tuple) else [want], strict=True):
            assert g[k].shape == np.shape(v)
            np.testing.assert_allclose(g[k], v, rtol=1e-12, atol=1e-14)


def test_points_spec_gives_way_to_the_loop_where_it_does_not_apply():
    w = sd.vector("w", 3)
    fn = sd.compile(loss, w, args=[w, sd.matrix("x", 4, 3)], background=False)
    sparse = fn.derivation.spec("sparse_hessian_data")  # its seeds are per call
    assert points_spec(sparse, (True, False), False) is None
    big = sd.vector("b", 40)  # more directions than MATRIX_DIRECTIONS
    wide = sd.compile(sd.sum(sd.tanh(big) ** 2), args=[big], background=False)
    assert points_spec(wide.derivation.spec("hessian"), (True,), False) is None
    grad = fn.derivation.spec("grad")
    spec = points_spec(grad, (True, False), False)
    assert [s.shape for s in spec.inputs] == [(None, 3), (4, 3)]
    assert spec.result.shape == (None, 3)


def test_the_native_vmap_spreads_points_over_threads(mlp, monkeypatch):
    monkeypatch.setattr(native, "point_threads", lambda: 3)  # 1,000 points: 3 pieces
    fast = mlp
    weights, data = RNG.normal(size=(1000, 20)) * 0.5, RNG.normal(size=(6, 3))
    values, grads = fast.vmap((0, None)).value_and_grad(weights, data)
    assert values.shape == (1000,) and grads.shape == (1000, 20)
    for k in (0, 333, 334, 999):
        value, grad = fast.value_and_grad(weights[k], data)
        np.testing.assert_allclose(values[k], value, rtol=1e-13)
        np.testing.assert_allclose(grads[k], grad, rtol=1e-12, atol=1e-14)


def test_the_native_vmap_names_wrong_directions():
    w = sd.vector("w", 3)
    fn = sd.compile(lambda w, x: np.sum(np.sin(w)) * x, args=[w, sd.symbol("x")],
                    backend="native", background=False)
    with pytest.raises(ArgumentError, match="hvp takes 4 arguments here, got 3"):
        fn.vmap(0).hvp(np.ones((4, 3)), np.ones(4), np.ones((4, 3)))
    with pytest.raises(ShapeError, match=r"_direction0 must have shape \(3,\) at each point"):
        fn.vmap(0).hvp(np.ones((4, 3)), np.ones(4), np.ones((4, 2)), np.ones(4))


def _reprojection(p, point):
    c, s = np.cos(p[0]), np.sin(p[0])
    depth = point[2] + 5.0
    return sd.stack([p[3] * (c * point[0] - s * point[1] + p[1]) / depth,
                     p[3] * (s * point[0] + c * point[1] + p[2]) / depth])


@pytest.mark.parametrize("method", ["jacobian", "hessian"])
def test_the_native_vmap_of_dense_matrices_is_one_graph(method):
    # Jacobian rows by vjp over two wrt arrays (a tuple of parts); a Hessian by hvp.
    if method == "jacobian":
        p, point = sd.vector("p", 4), sd.vector("X", 3)
        fn = sd.compile(_reprojection, args=[p, point], backend="native", background=False)
        shared, points = RNG.normal(size=4), RNG.normal(size=(300, 3))
    else:
        w = sd.vector("w", 3)
        fn = sd.compile(loss, w, args=[w, sd.matrix("x", 4, 3)], backend="native",
                        background=False)
        shared, points = RNG.normal(size=(4, 3)), RNG.normal(size=(300, 3))
    axes = (None, 0) if method == "jacobian" else (0, None)
    args = (shared, points) if method == "jacobian" else (points, shared)
    mapped = fn.vmap(axes)
    got = getattr(mapped, method)(*args)
    assert all(getattr(d, "native", False) for _, d in mapped._drivers.values())
    for k in (0, 150, 299):
        one = (shared, points[k]) if method == "jacobian" else (points[k], shared)
        np.testing.assert_allclose(got[k], getattr(fn, method)(*one), rtol=1e-12,
                                   atol=1e-14)


def test_pytree_arguments_are_refused_clearly():
    fn = sd.jit(lambda p, x: np.sum(p["w"] @ x), wrt="p")
    with pytest.raises(sd.ArgumentError, match="not pytrees.*ravel_pytree"):
        fn.vmap((None, 0)).grad({"w": np.ones((2, 3))}, np.ones((4, 3)))
    with pytest.raises(sd.ArgumentError, match="not pytrees"):
        sd.vmap(lambda p: np.sum(p["w"]))({"w": np.ones((4, 3))})


def test_a_pytree_result_keeps_its_structure_in_every_method():
    # As sd.jacobian gives one point's: a block of rows per leaf, here with the points'
    # axis first (it came back as one (points, 4, 2) array), also for no points.
    def f(x):
        return {"a": x[0] * x[1], "b": [np.sin(x[0]), x ** 2]}

    points = np.array([[0.5, 2.0], [1.5, -1.0], [0.1, 0.3]])
    mapped = sd.vmap(f)
    jacobians, values = mapped.jacobian(points), mapped(points)
    assert np.shape(jacobians["b"][1]) == (3, 2, 2) and np.shape(values["b"][1]) == (3, 2)
    for k, point in enumerate(points):
        one = sd.jacobian(f)(point)
        np.testing.assert_allclose(jacobians["a"][k], one["a"], rtol=1e-14)
        np.testing.assert_allclose(jacobians["b"][0][k], one["b"][0], rtol=1e-14)
        np.testing.assert_allclose(jacobians["b"][1][k], one["b"][1], rtol=1e-14)
        np.testing.assert_allclose(values["b"][1][k], point ** 2, rtol=1e-14)
    empty = mapped.jacobian(np.empty((0, 2)))
    assert [np.shape(b) for b in empty["b"]] == [(0, 1, 2), (0, 2, 2)]
