"""Stacks of matrix products (symdiff.ops.stacked, issue #23's Gaussian mixture): einsum
contractions with a stack letter become batch_matmul, one BLAS call per matrix; values
against NumPy, derivatives to second order against central differences, the sparsity
pattern, and the native and Numba lowerings against each other."""

import numpy as np
import pytest

import symdiff as sd
from symdiff.autodiff.batch_axis import with_batch_axis
from symdiff.ir.evaluate import evaluate
from symdiff.ir.nodes import apply, internal_symbol, topological_order
from symdiff.ops.stacked import MATMUL_MIN_CONTRACTION, contraction

RNG = np.random.default_rng(7)
L = RNG.normal(size=(3, 9, 9))
X = RNG.normal(size=(6, 3, 9))


def mixture_term(factors, points):
    """A Gaussian mixture's factors applied to its centred points, squared and summed."""
    scaled = np.einsum("ijk,mik->mij", factors, points)
    return np.sum(np.tanh(scaled) ** 2) + np.sum(np.einsum("mij,mij->ij", scaled, points))


def reference(factors, points):
    scaled = np.einsum("ijk,mik->mij", factors, points)
    return np.sum(np.tanh(scaled) ** 2) + np.sum(scaled * points)


@pytest.fixture(scope="module", params=["native", "numba"])
def compiled(request):
    return sd.compile(mixture_term, args=[sd.symbol("L", L.shape), sd.symbol("X", X.shape)],
                      backend=request.param, background=False)


def test_einsum_with_a_stack_letter_is_one_stacked_product():
    scaled = np.einsum("ijk,mik->mij", sd.symbol("L", L.shape), sd.symbol("X", X.shape))
    ops = [n.op for n in topological_order([scaled])]
    assert ops.count("batch_matmul") == 1 and "sum" not in ops
    np.testing.assert_allclose(sd.evaluate(scaled, {"L": L, "X": X}),
                               np.einsum("ijk,mik->mij", L, X), rtol=1e-13)
    # Short contractions stay products summed in fused loops (no copies for BLAS).
    short = sd.symbol("s", (2, 3, MATMUL_MIN_CONTRACTION - 1))
    assert contraction("ijk", short, "mik", sd.symbol("t", (4, 2, short.shape[2])),
                       "mij") is None
    # A stack of dot products or matrix-vector products: fused loops too.
    rows, stacked = sd.symbol("r", (50, 16)), sd.symbol("m", (50, 4, 16))
    assert contraction("ij", rows, "ij", rows, "i") is None
    assert contraction("ikj", stacked, "ij", rows, "ik") is None


def test_einsum_takes_numpys_optimize_argument():
    a = sd.symbol("a", (4, 9))
    product = np.einsum("ij,kj->ik", a, a, optimize=True)
    data = RNG.normal(size=(4, 9))
    np.testing.assert_allclose(sd.evaluate(product, {"a": data}), data @ data.T, rtol=1e-13)


def test_values_and_derivatives(compiled):
    assert compiled(L, X) == pytest.approx(reference(L, X), rel=1e-12)
    grad_l, grad_x = compiled.grad(L, X)
    h = 1e-6
    for (index, which) in [((0, 2, 5), 0), ((2, 8, 1), 0), ((4, 1, 7), 1)]:
        step = [np.zeros_like(L), np.zeros_like(X)]
        step[which][index] = h
        central = (reference(L + step[0], X + step[1])
                   - reference(L - step[0], X - step[1])) / (2 * h)
        assert (grad_l, grad_x)[which][index] == pytest.approx(central, rel=1e-6, abs=1e-8)
    direction = (RNG.normal(size=L.shape), RNG.normal(size=X.shape))
    product = compiled.hvp(L, X, *direction)
    moved = [compiled.grad(L + s * h * direction[0], X + s * h * direction[1])
             for s in (1, -1)]
    for k in range(2):
        np.testing.assert_allclose(product[k], (moved[0][k] - moved[1][k]) / (2 * h),
                                   rtol=1e-5, atol=1e-6)


def test_the_lowerings_agree():
    args = [sd.symbol("L", L.shape), sd.symbol("X", X.shape)]
    results = [sd.compile(mixture_term, args=args, backend=b, background=False)
               .value_and_grad(L, X) for b in ("native", "numba")]
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-13)
    for a, b in zip(results[0][1], results[1][1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def test_the_sparsity_pattern_keeps_the_stack_apart():
    # Each stack member's products read only that member's matrices.
    a, b = sd.symbol("a", (2, 3, 8)), sd.symbol("b", (2, 8, 2))
    out = sd.sum(np.sin(sd.ir.apply("batch_matmul", a, b)))
    pattern = sd.compile(out, args=[a, b], background=False).hessian_sparsity().toarray()
    first, second = np.r_[0:24, 48:64], np.r_[24:48, 64:80]  # a[0], b[0] / a[1], b[1]
    assert not pattern[np.ix_(first, second)].any()
    assert pattern[np.ix_(first, first)].any() and pattern[np.ix_(second, second)].any()


@pytest.mark.parametrize("backend", ["native", "numba"])
def test_operands_blas_cannot_read_in_place_are_copied(backend):
    # Reversed rows (a negative stride) and open dimensions: BLAS takes neither as a
    # leading dimension, so the operand is copied C-ordered first.
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 9)), rng.normal(size=(9, 4))
    x, y = sd.symbol("a", (5, 9)), sd.symbol("b", (9, 4))
    open_x = sd.symbol("o", (None, 9))
    s, t = rng.normal(size=(3, 5, 9)), rng.normal(size=(3, 9, 4))
    stack, other = sd.symbol("S", s.shape), sd.symbol("T", t.shape)
    cases = [
        (np.flip(x, 0) @ y, [x, y], (a, b), a[::-1] @ b),
        (open_x[::-1] @ y, [open_x, y], (a, b), a[::-1] @ b),
        (np.transpose(np.flip(x, 1)) @ x, [x], (a,), a[:, ::-1].T @ a),
        (np.einsum("sij,sjk->sik", stack[:, ::-1], other), [stack, other], (s, t),
         np.einsum("sij,sjk->sik", s[:, ::-1], t)),
    ]
    for expression, args, values, want in cases:
        fn = sd.compile(expression, args=args, backend=backend, background=False)
        np.testing.assert_allclose(fn(*values), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("batched", ["a", "b", "both"])
def test_the_batching_rule_matches_one_evaluation_per_column(batched):
    # Blocks of directions (dense Hessians, Jacobians): the batch as columns of b, rows
    # of a, or matrices of the stack.
    size, rng = 3, np.random.default_rng(2)
    a, b = sd.symbol("a", (2, 3, 8)), sd.symbol("b", (2, 8, 4))
    v = internal_symbol("v", (2, 3, 8) if batched == "a" else (2, 8, 4))
    pair = (v, b) if batched == "a" else (a, v) if batched == "b" else (v, sd.tanh(v))
    if batched == "both":
        v = internal_symbol("w", (2, 8, 8))
        pair = (v, sd.tanh(v))
    graph = apply("batch_matmul", *pair)
    stand_in = internal_symbol("v_block", v.shape + (size,))
    (blocked,) = with_batch_axis([graph], {v: stand_in}, size)
    values = {"a": rng.normal(size=(2, 3, 8)), "b": rng.normal(size=(2, 8, 4))}
    columns = rng.normal(size=v.shape + (size,))
    got = evaluate(blocked, {**values, "$v_block": columns})
    for k in range(size):
        want = evaluate(graph, {**values, v.value: columns[..., k]})
        np.testing.assert_allclose(got[..., k], want, rtol=1e-13, atol=1e-13)


def test_hessians_and_vmap_agree_with_one_point_at_a_time():
    args = [sd.symbol("L", L.shape), sd.symbol("X", X.shape)]
    native = sd.compile(mixture_term, args=args, backend="native", background=False)
    numba = sd.compile(mixture_term, args=args, backend="numba", background=False)
    np.testing.assert_allclose(native.hessian(L, X), numba.hessian(L, X), rtol=1e-10,
                               atol=1e-10)
    factors = np.stack([L, 0.5 * L, -L])
    by_point = [native.grad(f, X)[0] for f in factors]
    np.testing.assert_allclose(native.vmap((0, None)).grad(factors, X)[0], by_point,
                               rtol=1e-12, atol=1e-12)
