"""Compressed (sparse) evaluations: the gather positions of symdiff.autodiff.coloring,
read the same way by every lowering, and the native driver that computes the products a
tile of rows at a time (codegen.native.compressed)."""

import numpy as np
import pytest

import symdiff as sd
from codegen.directions import run_direction_loop
from codegen.native import driver
from symdiff.autodiff.coloring import TILE_BITS, products_end, seed_bits

ROWS = 1 << TILE_BITS  # rows per tile


def _rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _banded(x):  # a pentadiagonal Hessian: 5 seeds, so 3 bits of seed in a position
    return np.sum(x[2:] * x[:-2] ** 2) + np.sum(x[1:] ** 3 * x[:-1]) + np.sum(x ** 4)


class _Counted:
    """codegen.native.driver's tiled_products, counting the drivers written in tiles."""

    def __init__(self):
        self.calls, self.original = 0, driver.tiled_products

    def __call__(self, *args):
        self.calls += 1
        return self.original(*args)


def _native(f, n: int, monkeypatch):
    """``f`` compiled natively for vectors of ``n``, and whether its sparse Hessian's
    driver runs in tiles of rows."""
    counted = _Counted()
    monkeypatch.setattr(driver, "tiled_products", counted)
    fn = sd.compile(f, args=[sd.vector("x", n)], backend="native", background=False)
    fn.sparse_hessian(np.linspace(0.1, 0.9, n))
    return fn, counted.calls == 1


def _reference(fn, x, seeds, gather):
    """The nonzeros from the evaluator's loop over the compiled hvp."""
    loop = fn.derivation.spec("sparse_hessian_data")
    return run_direction_loop(loop, fn.hvp, fn.forward, (x,), (seeds, gather))


@pytest.mark.parametrize("n", [3, ROWS - 1, ROWS, ROWS + 1, 3 * ROWS + 5])
@pytest.mark.parametrize("f", [_rosenbrock, _banded])
def test_tiles_of_rows_give_the_nonzeros_of_the_loop_over_seeds(f, n, monkeypatch):
    fn, tiled = _native(f, n, monkeypatch)
    assert tiled  # one loop over the result: the whole kernel
    x = np.random.default_rng(n).uniform(-1.0, 1.0, n)
    coloring = fn.hessian_coloring()
    if n >= ROWS:  # (smaller ones are dense enough for a seed per column)
        assert coloring.count == (3 if f is _rosenbrock else 5)  # (3 bits of seed)
    got = fn.sparse_hessian(x)
    np.testing.assert_array_equal(got.data, _reference(fn, x, coloring.seeds,
                                                       coloring.gather))
    np.testing.assert_allclose(got.toarray(), fn.hessian(x), rtol=1e-14, atol=1e-14)


def test_the_numba_driver_reads_the_same_positions(monkeypatch):
    n = 2 * ROWS + 7
    x = np.random.default_rng(3).uniform(-1.0, 1.0, n)
    fast, _ = _native(_banded, n, monkeypatch)
    slow = sd.compile(_banded, args=[sd.vector("x", n)], backend="numba", background=False)
    np.testing.assert_allclose(slow.sparse_hessian(x).data, fast.sparse_hessian(x).data,
                               rtol=1e-14, atol=1e-14)


def _with_copies(coloring):
    """The coloring's gather with every nonzero below the diagonal a copy of its mirror
    (as a star coloring's symmetric reads are), and the mirror of each nonzero."""
    pattern = coloring.pattern
    rows = np.repeat(np.arange(pattern.shape[0]), np.diff(pattern.indptr))
    where = {(i, j): p for p, (i, j) in enumerate(zip(rows, pattern.indices, strict=True))}
    gather = coloring.gather.astype(np.int64)
    end = products_end(pattern.shape[0], seed_bits(coloring.count))
    mirror = np.array([where[j, i] for i, j in where])
    for (i, j), p in where.items():
        if i > j:
            gather[p] = end + where[j, i]
    return gather.astype(np.uint32), mirror


def test_copies_of_other_nonzeros_in_every_lowering(monkeypatch):
    n = 2 * ROWS + 7
    x = np.random.default_rng(0).uniform(-1.0, 1.0, n)
    fast, _ = _native(_banded, n, monkeypatch)
    coloring = fast.hessian_coloring()
    copies, mirror = _with_copies(coloring)
    assert (copies != coloring.gather).sum() == (coloring.pattern.nnz - n) // 2
    direct = fast.sparse_hessian(x).data  # (H[i, j] and H[j, i] may differ in an ulp)
    lower = np.repeat(np.arange(n), np.diff(coloring.pattern.indptr)) > coloring.pattern.indices
    want = np.where(lower, direct[mirror], direct)
    data = fast.loader.load("sparse_hessian_data")
    np.testing.assert_array_equal(data(x, coloring.seeds, copies), want)
    np.testing.assert_array_equal(_reference(fast, x, coloring.seeds, copies), want)
    slow = sd.compile(_banded, args=[sd.vector("x", n)], backend="numba", background=False)
    np.testing.assert_allclose(slow.loader.load("sparse_hessian_data")(
        x, coloring.seeds, copies), want, rtol=1e-14, atol=1e-14)


def test_an_arrowhead_is_read_by_symmetry_in_every_lowering():
    # Star coloring: 2 seeds, the first row's nonzeros copies of the first column's.
    def arrow(x):
        return x[0] * np.sum(x ** 2) + np.sum(x ** 4)

    x = np.random.default_rng(1).uniform(-1.0, 1.0, ROWS + 9)
    exact = 12.0 * np.diag(x ** 2) + 2.0 * x[0] * np.eye(len(x))
    exact[0, :] += 2.0 * x
    exact[:, 0] += 2.0 * x
    for backend in ("native", "numba"):
        fn = sd.compile(arrow, args=[sd.vector("x", len(x))], backend=backend,
                        background=False)
        coloring = fn.hessian_coloring()
        assert coloring.count == 2
        assert (coloring.gather >= products_end(len(x), 1)).sum() == len(x) - 1
        np.testing.assert_allclose(fn.sparse_hessian(x).toarray(), exact, rtol=1e-13)
    np.testing.assert_allclose(_reference(fn, x, coloring.seeds, coloring.gather),
                               fn.sparse_hessian(x).data, rtol=1e-15)


def test_rows_that_go_back_are_refused_in_every_lowering(monkeypatch):
    n = 3 * ROWS
    x = np.random.default_rng(2).uniform(-1.0, 1.0, n)
    fast, _ = _native(_rosenbrock, n, monkeypatch)
    coloring = fast.hessian_coloring()
    backwards = coloring.gather.copy()
    backwards[[0, -1]] = backwards[[-1, 0]]  # the last row's nonzero first
    with pytest.raises(ValueError, match="rows in order"):
        _reference(fast, x, coloring.seeds, backwards)
    slow = sd.compile(_rosenbrock, args=[sd.vector("x", n)], backend="numba",
                      background=False)
    for fn in (fast, slow):
        with pytest.raises(ValueError, match="rows in order"):
            fn.loader.load("sparse_hessian_data")(x, coloring.seeds, backwards)
