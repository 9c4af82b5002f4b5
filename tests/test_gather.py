"""Gathering rows by constant integer arrays (``x[I]``) and its adjoint, the scatter-add:
a Lennard-Jones pair list, compiled, against a NumPy all-pairs reference."""

import numpy as np
import pytest

import symdiff as sd

ATOMS = 5
FIRST, SECOND = np.triu_indices(ATOMS, 1)


def lj_pairs(x):
    d = x[FIRST] - x[SECOND]
    r2 = sd.sum(d * d, axis=1)
    inv6 = 1.0 / r2**3
    return 4.0 * sd.sum(inv6 * inv6 - inv6)


def lj_reference(x):
    """Energy and forces over all pairs i < j, written out in NumPy."""
    d = x[:, None, :] - x[None, :, :]
    r2 = np.sum(d * d, axis=2) + np.eye(ATOMS)
    inv6 = 1.0 / r2**3
    upper = np.triu(np.ones((ATOMS, ATOMS)), 1)
    energy = 4.0 * np.sum(upper * (inv6 * inv6 - inv6))
    de = 4.0 * (-6.0 * inv6 * inv6 / r2 + 3.0 * inv6 / r2) * (upper + upper.T)
    return energy, 2.0 * np.sum(de[:, :, None] * d, axis=1)


@pytest.fixture(scope="module")
def compiled():
    x = sd.matrix("x", ATOMS, 3)
    return x, sd.compile(lj_pairs(x), [x])


@pytest.fixture(scope="module")
def point():
    grid = np.array([(i, j, k) for i in range(2) for j in range(2) for k in range(2)], float)
    return grid[:ATOMS] * 1.1 + np.random.default_rng(1).normal(scale=0.05, size=(ATOMS, 3))


def test_pair_list_value_and_forces_match_all_pairs(compiled, point):
    _, fn = compiled
    energy, forces = lj_reference(point)
    value, (grad,) = fn.value_and_grad(point)
    assert value == pytest.approx(energy, rel=1e-13)
    np.testing.assert_allclose(grad, forces, rtol=1e-12, atol=1e-12)


def test_pair_list_hessian_and_hvp_match_finite_differences(compiled, point):
    _, fn = compiled
    h, n = 1e-6, ATOMS * 3
    columns = []
    for k in range(n):
        step = np.zeros(n)
        step[k] = h
        up = lj_reference(point + step.reshape(ATOMS, 3))[1]
        down = lj_reference(point - step.reshape(ATOMS, 3))[1]
        columns.append(((up - down) / (2 * h)).ravel())
    hessian = fn.hessian(point)
    np.testing.assert_allclose(hessian, np.array(columns).T, rtol=1e-5, atol=1e-4)
    direction = np.random.default_rng(2).normal(size=(ATOMS, 3))
    (product,) = fn.hvp(point, direction)
    np.testing.assert_allclose(product.ravel(), hessian @ direction.ravel(), rtol=1e-10,
                               atol=1e-9)


def test_gather_loops_visit_only_the_listed_rows(compiled):
    _, fn = compiled
    source = fn.source
    pairs = len(FIRST)
    assert f"for _i0 in range({pairs}):" in source
    assert f"np.empty(({ATOMS}, {ATOMS}" not in source  # no all-pairs intermediate
    # The forward pass reads x at the gathered rows directly (the gather is fused).
    assert "x[_r" in source


def test_repeated_rows_accumulate_gradient():
    v = sd.vector("v", 3)
    f = sd.sum(v[[0, 0, 2, 0]] * np.array([1.0, 2.0, 3.0, 4.0]))
    (g,) = sd.evaluate(sd.grad(f, [v]), {"v": np.zeros(3)})
    np.testing.assert_array_equal(g, [7.0, 0.0, 3.0])


def test_different_row_lists_are_different_nodes():
    v = sd.vector("v", 4)
    assert v[[0, 1]] is v[[0, 1]]
    assert v[[0, 1]] is not v[[1, 0]]
    assert str(v[[0, 1]]) != str(v[[1, 0]])


def test_rows_gathered_from_arrays_with_an_open_dimension():
    x = sd.matrix("x", 4, None)
    f = sd.sum(x[[0, 2, 2, -1]] ** 2 * np.array([[1.0], [2.0], [3.0], [4.0]]))
    fn = sd.compile(f, [x])
    for batch in (1, 3):
        point = np.random.default_rng(batch).normal(size=(4, batch))
        value, (grad,) = fn.value_and_grad(point)
        assert value == pytest.approx(sd.evaluate(f, {"x": point}), rel=1e-13)
        np.testing.assert_allclose(grad, sd.evaluate(sd.grad(f, [x]), {"x": point})[0],
                                   rtol=1e-13)
