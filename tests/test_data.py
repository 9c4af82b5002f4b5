"""Captured NumPy arrays are passed as data (hidden arguments), not pasted into source."""

import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

import symdiff as sd

RNG = np.random.default_rng(11)
X = RNG.normal(size=(3000, 10))
Y = X @ np.linspace(-1.0, 1.0, 10) + 0.1 * RNG.normal(size=3000)


def mse(w):
    return np.mean((X @ w - Y) ** 2)


@pytest.fixture(scope="module")
def fn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumbaWarning: Cannot cache ... large global arrays
        compiled = sd.compile(mse, args=[sd.vector("w", 10)], background=False)
        compiled.grad(np.zeros(10))
    return compiled


def test_the_source_holds_no_copy_of_the_data(fn):
    assert len(fn.source) < 20_000  # 3,000 x 10 numbers as literals: ~600 KB
    assert repr(float(X[0, 0])) not in fn.source
    assert "_data0 array(3000, 10)" in fn.source  # the docstring lists it


def test_values_and_derivatives_match_numpy(fn):
    w = np.linspace(0.3, -0.2, 10)
    value, gradient = fn.value_and_grad(w)
    np.testing.assert_allclose(value, np.mean((X @ w - Y) ** 2), rtol=1e-13)
    np.testing.assert_allclose(gradient, 2 * X.T @ (X @ w - Y) / len(Y), rtol=1e-12)
    np.testing.assert_allclose(fn.hessian(w), 2 * X.T @ X / len(Y), rtol=1e-12)
    direction = np.arange(10.0)
    np.testing.assert_allclose(fn.hvp(w, direction), 2 * X.T @ (X @ direction) / len(Y),
                               rtol=1e-12)


def test_new_data_of_the_same_shapes_gives_the_same_source(fn):
    other = RNG.normal(size=X.shape)
    again = sd.compile(lambda w: np.mean((other @ w - Y) ** 2), args=[sd.vector("w", 10)],
                       background=False)
    assert again.source == fn.source  # so the cached machine code serves it
    w = np.ones(10)
    np.testing.assert_allclose(again.grad(w), 2 * other.T @ (other @ w - Y) / len(Y),
                               rtol=1e-12)


def test_a_pickled_function_keeps_its_data(fn):
    w = np.linspace(-1.0, 1.0, 10)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(fn)).grad(w), fn.grad(w))


def test_a_saved_module_loads_its_data_beside_it(fn, tmp_path):
    path = fn.save(tmp_path / "fit.py")
    assert os.path.exists(tmp_path / "fit.npz")
    script = ("import sys; sys.modules['symdiff'] = None; import numpy as np, fit; "
              "print(float(fit.gradient(np.ones(10), *fit.DATA)[3]))")
    out = subprocess.run([sys.executable, "-c", script], cwd=os.path.dirname(path),
                         capture_output=True, text=True, check=True).stdout
    assert float(out) == fn.grad(np.ones(10))[3]


CACHE_SCRIPT = """
import numpy as np, symdiff as sd
X = np.random.default_rng(int(__import__("sys").argv[1])).normal(size=(2000, 5))
fn = sd.compile(lambda w: np.sum(np.tanh(X @ w)), args=[sd.vector("w", 5)], background=False,
                backend="numba")  # Numba's disk cache
fn.grad(np.ones(5))
print(sum(fn.grad.dispatcher.stats.cache_hits.values()))
"""


def test_the_disk_cache_serves_other_data_of_the_same_shapes(tmp_path):
    env = {**os.environ, "SYMDIFF_CACHE_DIR": str(tmp_path)}
    hits = [int(subprocess.run([sys.executable, "-c", CACHE_SCRIPT, str(seed)], env=env,
                               capture_output=True, text=True, check=True).stdout.split()[-1])
            for seed in (1, 2)]
    assert hits[0] == 0 and hits[1] >= 1


def test_arrays_captured_in_a_scan_body_are_data_too():
    a = RNG.normal(size=(40, 40)) / 40

    def rollout(x):
        def step(c, _):
            return np.tanh(a @ c), None
        c, _ = sd.scan(step, x, np.zeros(4))
        return np.sum(c ** 2)

    def reference(x):
        for _ in range(4):
            x = np.tanh(a @ x)
        return np.sum(x ** 2)

    fn = sd.compile(rollout, args=[sd.vector("x", 40)], background=False)
    assert repr(float(a[0, 0])) not in fn.source
    x, h = np.linspace(-1.0, 1.0, 40), 1e-5
    np.testing.assert_allclose(fn(x), reference(x), rtol=1e-13)
    unit = np.eye(40)[7]
    central = (reference(x + h * unit) - reference(x - h * unit)) / (2 * h)
    np.testing.assert_allclose(fn.grad(x)[7], central, rtol=1e-6)


def test_vmap_passes_the_data_to_every_point(fn):
    weights = RNG.normal(size=(3, 10))
    np.testing.assert_allclose(fn.vmap(0).grad(weights), [fn.grad(w) for w in weights],
                               rtol=1e-13)


# Row positions of gathers and scatters (x[idx], .at[idx].add) are data too.
ROWS = RNG.integers(0, 300, size=1500)
OTHER_ROWS = RNG.integers(0, 300, size=1500)


def binned(rows):
    def loss(x):  # a scatter (histogram of x by row) and a gather of its bins
        counts = sd.zeros(300).at[rows].add(x)
        return np.sum(counts ** 2) + np.sum(np.tanh(counts[rows]) * x)
    return loss


def binned_reference(rows, x):
    counts = np.zeros(300)
    np.add.at(counts, rows, x)
    return np.sum(counts ** 2) + np.sum(np.tanh(counts[rows]) * x)


@pytest.fixture(scope="module", params=["auto", "numba"])
def binned_fn(request):
    return sd.compile(binned(ROWS), args=[sd.vector("x", 1500)], background=False,
                      backend=request.param)


def test_row_positions_are_data_not_source(binned_fn):
    source = binned_fn.source
    assert len(source) < 20_000  # 1,500 positions as literals: ~6 KB per copy
    assert ", ".join(map(str, ROWS[8:16])) not in source
    assert "_rows0 int64 array(1500,)" in source  # the docstring lists it
    again = sd.compile(binned(OTHER_ROWS), args=[sd.vector("x", 1500)], background=False)
    assert again.source == source  # so the cached machine code serves other positions


def test_values_and_derivatives_with_row_positions_as_data(binned_fn):
    x = np.linspace(-1.0, 1.0, 1500)
    np.testing.assert_allclose(binned_fn(x), binned_reference(ROWS, x), rtol=1e-12)
    h, unit = 1e-6, np.eye(1500)[[3, 700]]
    gradient = binned_fn.grad(x)
    for e in unit:
        central = (binned_reference(ROWS, x + h * e) - binned_reference(ROWS, x - h * e)) / (2 * h)
        np.testing.assert_allclose(gradient @ e, central, rtol=1e-6)
    direction = np.cos(np.arange(1500.0))
    hvp = binned_fn.hvp(x, direction)
    central = (binned_fn.grad(x + h * direction) - binned_fn.grad(x - h * direction)) / (2 * h)
    np.testing.assert_allclose(hvp, central, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(binned_fn.sparse_hessian(x).toarray(), binned_fn.hessian(x),
                               rtol=1e-12, atol=1e-12)
    other = sd.compile(binned(OTHER_ROWS), args=[sd.vector("x", 1500)], background=False)
    np.testing.assert_allclose(other(x), binned_reference(OTHER_ROWS, x), rtol=1e-12)


def test_a_saved_module_loads_its_row_positions(binned_fn, tmp_path):
    path = binned_fn.save(tmp_path / "bins.py")
    script = ("import sys; sys.modules['symdiff'] = None; import numpy as np, bins; "
              "print(bins.DATA[0].dtype, float(bins.gradient(np.ones(1500), *bins.DATA)[5]))")
    out = subprocess.run([sys.executable, "-c", script], cwd=os.path.dirname(path),
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "int64" and float(out[1]) == binned_fn.grad(np.ones(1500))[5]


def test_the_outputs_shown_hold_the_positions(binned_fn):
    # fn.outputs are the expressions as given: they evaluate, compile and pickle alone.
    x = np.linspace(-1.0, 1.0, 1500)
    (output,) = binned_fn.outputs
    assert sd.evaluate(output, {"x": x}) == pytest.approx(binned_reference(ROWS, x), rel=1e-12)
    assert pickle.loads(pickle.dumps(output)) is output
    again = sd.compile(output, args=[sd.vector("x", 1500)], background=False)
    assert again(x) == pytest.approx(binned_reference(ROWS, x), rel=1e-12)


def test_pickles_and_vmap_keep_the_row_positions(binned_fn):
    points = np.stack([np.linspace(-1.0, 1.0, 1500), np.linspace(0.5, -0.5, 1500)])
    np.testing.assert_allclose(binned_fn.vmap(0)(points),
                               [binned_reference(ROWS, p) for p in points], rtol=1e-12)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(binned_fn)).grad(points[0]),
                                  binned_fn.grad(points[0]))
