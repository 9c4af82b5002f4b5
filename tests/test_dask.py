"""Dask arrays as inputs (symdiff.runtime.chunked): chunked losses and points, against NumPy."""

import numpy as np
import pytest

import symdiff as sd
from symdiff.runtime.chunked import split_at_sums
from symdiff.runtime.compiled import cache_report

da = pytest.importorskip("dask.array")

RNG = np.random.default_rng(5)
ROWS = RNG.normal(size=(1000, 3))
TARGETS = RNG.normal(size=1000)
W = np.array([0.3, -0.2, 0.5])


@pytest.fixture(scope="module")
def mse():
    """A mean over the open dimension plus a regularizer (the part computed once)."""
    x, y, w = sd.matrix("X", None, 3), sd.vector("y", None), sd.vector("w", 3)
    loss = sd.mean((sd.tanh(x @ w) - y) ** 2) + 0.1 * sd.sum(w ** 2)
    return sd.compile(loss, w, args=[w, x, y], background=False)


@pytest.mark.parametrize("chunks", [1000, 300, 7])
def test_value_and_gradient_over_chunks_match_numpy(mse, chunks):
    xs, ys = da.from_array(ROWS, chunks=(chunks, 3)), da.from_array(TARGETS, chunks=chunks)
    value, gradient = mse.value_and_grad(W, xs, ys)
    want_value, want_gradient = mse.value_and_grad(W, ROWS, TARGETS)
    np.testing.assert_allclose(value, want_value, rtol=1e-13)
    np.testing.assert_allclose(gradient, want_gradient, rtol=1e-12)
    np.testing.assert_allclose(mse(W, xs, ys), want_value, rtol=1e-13)
    np.testing.assert_allclose(mse.grad(W, xs, ROWS[:, 0] * 0 + TARGETS), want_gradient,
                               rtol=1e-12)  # a NumPy array beside a Dask one is cut alike


def test_chunks_of_different_arguments_are_aligned(mse):
    xs, ys = da.from_array(ROWS, chunks=(400, 3)), da.from_array(TARGETS, chunks=150)
    np.testing.assert_allclose(mse.grad(W, xs, ys), mse.grad(W, ROWS, TARGETS), rtol=1e-12)


def test_array_valued_sums_and_any_function_of_them():
    # X.T @ r is a sum over the rows too (a product contracting the open dimension);
    # the log of a sum is no sum, but it runs once on the totals.
    x, y, w = sd.matrix("X", None, 3), sd.vector("y", None), sd.vector("w", 3)
    normal = x.T @ (x @ w - y)
    loss = sd.log(1.0 + sd.sum(normal ** 2)) + sd.sum(sd.exp(-x @ w))
    fn = sd.compile(loss, w, args=[w, x, y], background=False)
    assert [s.op for s in split_at_sums([loss])] == ["matmul", "sum"]
    xs, ys = da.from_array(ROWS, chunks=(256, 3)), da.from_array(TARGETS, chunks=256)
    np.testing.assert_allclose(fn.value_and_grad(W, xs, ys)[0], fn(W, ROWS, TARGETS),
                               rtol=1e-13)
    h, unit = 1e-6, np.eye(3)[1]
    central = (fn(W + h * unit, ROWS, TARGETS) - fn(W - h * unit, ROWS, TARGETS)) / (2 * h)
    np.testing.assert_allclose(fn.grad(W, xs, ys)[1], central, rtol=1e-7)


def test_scalar_parameters_and_captured_data():
    # A line fit by two scalars (their gradient a flat array), and a loss that also reads
    # an array from its closure (data passed to every chunk task).
    a, b, x, y = sd.symbol("a"), sd.symbol("b"), sd.vector("x", None), sd.vector("y", None)
    line = sd.compile(sd.mean((a * x + b - y) ** 2), [a, b], args=[a, b, x, y],
                      background=False)
    xs, ys = da.from_array(ROWS[:, 0], chunks=128), da.from_array(TARGETS, chunks=128)
    np.testing.assert_allclose(line.value_and_grad(0.3, -0.1, xs, ys)[1],
                               line.grad(0.3, -0.1, ROWS[:, 0], TARGETS), rtol=1e-12)
    captured = RNG.normal(size=(3, 2000))
    w, rows = sd.vector("w", 3), sd.matrix("X", None, 3)
    fn = sd.compile(lambda w, x: np.sum(np.tanh(x @ w)) + np.sum((captured.T @ w) ** 2),
                    wrt=0, args=[w, rows], background=False)
    np.testing.assert_allclose(fn.grad(W, da.from_array(ROWS, chunks=(64, 3))),
                               fn.grad(W, ROWS), rtol=1e-12)


def test_what_cannot_be_added_up_is_refused_by_name():
    x, w = sd.matrix("X", None, 3), sd.vector("w", 3)
    xs = da.from_array(ROWS, chunks=(300, 3))
    r = x @ w
    centered = sd.compile(sd.sum((r - sd.mean(r)) ** 2), w, args=[w, x], background=False)
    with pytest.raises(sd.SymdiffError, match="sub combines rows"):
        centered.grad(W, xs)
    largest = sd.compile(sd.amax(r), w, args=[w, x], background=False)
    with pytest.raises(sd.SymdiffError, match="amax reads the open dimension"):
        largest(W, xs)
    shifted = sd.compile(sd.sum(r[1:] * r[:-1]), w, args=[w, x], background=False)
    with pytest.raises(sd.SymdiffError, match="index reads the open dimension"):
        shifted(W, xs)  # neighbours across the edge of a chunk
    reversed_ = sd.compile(sd.sum(r[::-1] * r), w, args=[w, x], background=False)
    with pytest.raises(sd.SymdiffError, match="index reads the open dimension"):
        reversed_(W, xs)
    both = sd.compile(sd.sum(r), args=[w, x], background=False)
    with pytest.raises(sd.SymdiffError, match="respect to X"):
        both.grad(W, xs)


def test_a_function_traced_on_dask_arrays_gets_an_open_first_axis():
    def loss(w, x):
        return np.mean(np.tanh(x @ w) ** 2)

    xs = da.from_array(ROWS, chunks=(333, 3))
    got = sd.grad(loss, argnums=0)(W, xs)
    np.testing.assert_allclose(got, sd.grad(loss, argnums=0)(W, ROWS), rtol=1e-12)


def test_points_in_dask_arrays_give_lazy_results():
    fn = sd.compile("sin(a)*b + a*a", background=False)
    a = da.linspace(-1.0, 1.0, 50, chunks=16)
    values = fn(a, 2.0)
    assert isinstance(values, da.Array) and values.chunks == a.chunks
    points = a.compute()
    np.testing.assert_array_equal(values.compute(), fn(points, 2.0))
    value, gradient = fn.value_and_grad(a, da.ones(50, chunks=25))
    assert gradient.shape == (50, 2)
    np.testing.assert_allclose(value.compute(), np.sin(points) + points ** 2, rtol=1e-14)
    np.testing.assert_allclose(gradient.compute(),
                               np.stack([np.cos(points) + 2 * points, np.sin(points)], axis=1),
                               rtol=1e-14)


def test_vmap_over_dask_points(mse):
    weights = RNG.normal(size=(9, 3))
    lazy = mse.vmap((0, None, None)).grad(da.from_array(weights, chunks=4), ROWS, TARGETS)
    assert isinstance(lazy, da.Array) and lazy.shape == (9, 3)
    np.testing.assert_allclose(lazy.compute(), [mse.grad(w, ROWS, TARGETS) for w in weights],
                               rtol=1e-13)


@pytest.mark.slow
def test_a_local_cluster_of_worker_processes_loads_the_compiled_code(mse):
    distributed = pytest.importorskip("distributed")
    mse.value_and_grad(W, da.from_array(ROWS, chunks=(500, 3)), TARGETS)  # fills the cache
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        xs = da.from_array(ROWS, chunks=(100, 3))
        value, gradient = mse.value_and_grad(W, xs, da.from_array(TARGETS, chunks=100))
        want_value, want_gradient = mse.value_and_grad(W, ROWS, TARGETS)
        np.testing.assert_allclose(value, want_value, rtol=1e-13)
        np.testing.assert_allclose(gradient, want_gradient, rtol=1e-12)
        reports = client.run(cache_report)
    assert len(reports) == 2
    for report in reports.values():  # every method a worker ran came from the disk cache
        assert report and all(hits >= 1 and misses == 0 for hits, misses in report.values())
