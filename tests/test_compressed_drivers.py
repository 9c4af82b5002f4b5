"""Compressed (sparse) evaluations: the gather positions of symdiff.autodiff.coloring
(places among the products, or copies of other nonzeros) read the same way by every
lowering, and the native driver that keeps the products in tiles of rows from
TILED_PRODUCTS products on (codegen.native.compressed; here also from 64)."""

import dataclasses

import numpy as np
import pytest

import symdiff as sd
from codegen import direction_function
from codegen.directions import run_direction_loop
from codegen.native import compressed
from symdiff.autodiff.coloring import TILE_BITS, tiled_gather
from symdiff.runtime import native

ROWS = 1 << TILE_BITS  # rows per tile


@pytest.fixture(params=["by seed", "tiles"])
def layout(request, monkeypatch):
    """Both ways of the native driver: products by seed, and (from 64 products on, so
    at every size here) in tiles of rows."""
    if request.param == "tiles":
        monkeypatch.setattr(compressed, "TILED_PRODUCTS", 64)
    return request.param


def _rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _banded(x):  # a pentadiagonal Hessian: 5 seeds, so 3 bits of seed in a position
    return np.sum(x[2:] * x[:-2] ** 2) + np.sum(x[1:] ** 3 * x[:-1]) + np.sum(x ** 4)


def _native(f, n: int):
    """``f`` compiled natively for vectors of ``n``."""
    return sd.compile(f, args=[sd.vector("x", n)], backend="native", background=False)


def _reference(fn, x, seeds, gather):
    """The nonzeros from the evaluator's loop over the compiled hvp."""
    loop = fn.derivation.spec("sparse_hessian_data")
    return run_direction_loop(loop, fn.hvp, fn.forward, (x,), (seeds, gather))


@pytest.mark.parametrize("n", [3, ROWS - 1, ROWS, ROWS + 1, 3 * ROWS + 5])
@pytest.mark.parametrize("f", [_rosenbrock, _banded])
def test_the_native_driver_gives_the_nonzeros_of_the_loop_over_seeds(f, n, layout):
    fn = _native(f, n)
    x = np.random.default_rng(n).uniform(-1.0, 1.0, n)
    coloring = fn.hessian_coloring()
    if n >= ROWS:  # (smaller ones are dense enough for a seed per column)
        assert coloring.count == (3 if f is _rosenbrock else 5)  # (3 bits of seed)
    got = fn.sparse_hessian(x)
    assert fn.loader.tiled_from("sparse_hessian_data")  # one loop over the result
    np.testing.assert_array_equal(got.data, _reference(fn, x, coloring.seeds,
                                                       coloring.gather))
    np.testing.assert_allclose(got.toarray(), fn.hessian(x), rtol=1e-14, atol=1e-14)


def test_kernels_that_are_more_than_one_loop_keep_their_products_by_seed():
    def arrow(x):  # (a sum the directions reach: a loop of its own)
        return x[0] * np.sum(x ** 2) + np.sum(x ** 4)

    def grid(x):  # (a padded stencil: joined arrays of their own)
        u = np.reshape(x, (4, 4))
        padded = np.concatenate([np.zeros((1, 4)), u, np.zeros((1, 4))])
        return np.sum((padded[2:] - padded[:-2]) ** 2 * u)

    for f in (arrow, grid, _rosenbrock):
        loop = _native(f, 16).derivation.spec("sparse_hessian_data")
        tiled_from = direction_function(loop, native.layout()).tiled_from
        assert (tiled_from is not None) == (f is _rosenbrock)


def _with_copies(coloring):
    """The coloring's gather with every nonzero below the diagonal a copy of its mirror
    (as a star coloring's symmetric reads are), and the mirror of each nonzero."""
    pattern = coloring.pattern
    rows = np.repeat(np.arange(pattern.shape[0]), np.diff(pattern.indptr))
    where = {(i, j): p for p, (i, j) in enumerate(zip(rows, pattern.indices, strict=True))}
    gather = coloring.gather.astype(np.int64)
    end = coloring.count * pattern.shape[0]
    mirror = np.array([where[j, i] for i, j in where])
    for (i, j), p in where.items():
        if i > j:
            gather[p] = end + where[j, i]
    return gather.astype(np.uint32), mirror


def test_copies_of_other_nonzeros_in_every_lowering(layout):
    n = 2 * ROWS + 7
    x = np.random.default_rng(0).uniform(-1.0, 1.0, n)
    fast = _native(_banded, n)
    coloring = fast.hessian_coloring()
    copies, mirror = _with_copies(coloring)
    assert (copies != coloring.gather).sum() == (coloring.pattern.nnz - n) // 2
    direct = fast.sparse_hessian(x).data  # (H[i, j] and H[j, i] may differ in an ulp)
    lower = np.repeat(np.arange(n), np.diff(coloring.pattern.indptr)) > coloring.pattern.indices
    want = np.where(lower, direct[mirror], direct)
    data = fast.loader.load("sparse_hessian_data")
    copied = dataclasses.replace(coloring, gather=copies)
    given = tiled_gather(copied) if layout == "tiles" else copies
    np.testing.assert_array_equal(data(x, coloring.seeds, given), want)
    np.testing.assert_array_equal(_reference(fast, x, coloring.seeds, copies), want)
    slow = sd.compile(_banded, args=[sd.vector("x", n)], backend="numba", background=False)
    np.testing.assert_allclose(slow.loader.load("sparse_hessian_data")(
        x, coloring.seeds, copies), want, rtol=1e-14, atol=1e-14)


def test_an_arrowhead_is_read_by_symmetry_in_every_lowering(layout):
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
        assert (coloring.gather >= 2 * len(x)).sum() == len(x) - 1
        np.testing.assert_allclose(fn.sparse_hessian(x).toarray(), exact, rtol=1e-13)
    np.testing.assert_allclose(_reference(fn, x, coloring.seeds, coloring.gather),
                               fn.sparse_hessian(x).data, rtol=1e-15)


def test_the_numba_driver_reads_the_same_positions():
    n = 2 * ROWS + 7
    x = np.random.default_rng(3).uniform(-1.0, 1.0, n)
    slow = sd.compile(_banded, args=[sd.vector("x", n)], backend="numba", background=False)
    np.testing.assert_allclose(slow.sparse_hessian(x).data,
                               _native(_banded, n).sparse_hessian(x).data,
                               rtol=1e-14, atol=1e-14)


def test_tiled_positions_whose_rows_go_back_are_refused(monkeypatch):
    monkeypatch.setattr(compressed, "TILED_PRODUCTS", 64)
    n = 3 * ROWS
    x = np.random.default_rng(2).uniform(-1.0, 1.0, n)
    fast = _native(_rosenbrock, n)
    coloring = fast.hessian_coloring()
    backwards = tiled_gather(coloring).copy()
    backwards[[0, -1]] = backwards[[-1, 0]]  # the last row's nonzero first
    data = fast.loader.load("sparse_hessian_data")
    with pytest.raises(ValueError, match="_gather positions"):
        data(x, coloring.seeds, backwards)
    # (By seed, the positions may come in any order.)
    swapped = coloring.gather.copy()
    swapped[[0, -1]] = swapped[[-1, 0]]
    monkeypatch.setattr(compressed, "TILED_PRODUCTS", 1 << 20)
    by_seed = _native(_rosenbrock, n)
    np.testing.assert_array_equal(by_seed.loader.load("sparse_hessian_data")(
        x, coloring.seeds, swapped)[[-1, 0]], by_seed.sparse_hessian(x).data[[0, -1]])


def _products_of_neighbours(x):  # a vector function: its Jacobian's jvp is one loop
    return x[1:] * x[:-1] ** 2 + np.sin(x[1:])


@pytest.mark.parametrize("n", [2, ROWS, 2 * ROWS + 3])
def test_sparse_jacobians_in_tiles_of_rows(n, layout):
    fn = sd.compile(_products_of_neighbours, args=[sd.vector("x", n)], backend="native",
                    background=False)
    x = np.random.default_rng(n).uniform(-1.0, 1.0, n)
    got = fn.sparse_jacobian(x)
    assert fn.loader.tiled_from("sparse_jacobian_data") is not None
    np.testing.assert_allclose(got.toarray(), fn.jacobian(x), rtol=1e-14, atol=1e-14)
    loop = fn.derivation.spec("sparse_jacobian_data")
    coloring = fn.jacobian_coloring()
    np.testing.assert_array_equal(got.data, run_direction_loop(
        loop, fn.jvp, fn.forward, (x,), (coloring.seeds, coloring.gather)))


def test_the_rule_a_driver_was_compiled_with_is_the_one_its_positions_follow(monkeypatch):
    # (A later change of TILED_PRODUCTS does not reach a driver compiled before it.)
    n = 2 * ROWS
    x = np.random.default_rng(4).uniform(-1.0, 1.0, n)
    fn = _native(_rosenbrock, n)
    want = fn.hessian(x)
    np.testing.assert_allclose(fn.sparse_hessian(x).toarray(), want, rtol=1e-14)
    monkeypatch.setattr(compressed, "TILED_PRODUCTS", 64)
    np.testing.assert_allclose(fn.sparse_hessian(x).toarray(), want, rtol=1e-14)
    tiled = _native(_rosenbrock, n)
    np.testing.assert_allclose(tiled.sparse_hessian(x).toarray(), want, rtol=1e-14)
    assert tiled.loader.tiled_from("sparse_hessian_data") == 64
    monkeypatch.setattr(compressed, "TILED_PRODUCTS", 1 << 20)
    np.testing.assert_allclose(tiled.sparse_hessian(x).toarray(), want, rtol=1e-14)
