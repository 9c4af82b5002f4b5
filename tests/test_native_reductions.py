"""Loop orders of the native lowering's reductions (codegen.native.reductions) and the
alias scopes of its temporaries (codegen.native.code): a sum over a short last axis runs
across its kept axis, a maximum over rows runs in lanes (inside that sum's loop where it
alone reads it), and loads and stores of temporaries say which buffer they touch.  Each
function is checked against the Numba lowering bit for bit: the loop order changes which
element is computed when, never the order of any element's additions."""

import re

import numpy as np
import pytest

import symdiff as sd
from codegen import array_function
from codegen.native.arrays import ArrayBody
from codegen.native.code import _alias_scopes
from symdiff.runtime import native

RNG = np.random.default_rng(5)


def kmeans_cost(points, centroids):
    return np.sum(np.min(np.sum((points[:, None] - centroids[None]) ** 2, axis=-1), axis=1))


def _both(function, args, wrt=None):
    return [sd.compile(function, args=args, wrt=wrt, backend=backend, background=False)
            for backend in ("native", "numba")]


def _sums(fn, method):
    """The sums over axes of ``fn``'s method and whether each runs across (the operands
    it copies first) or not (None)."""
    body = ArrayBody(fn.derivation.spec(method), "body")
    body.text()  # (the views the choice reads)
    return [body._across(n) for n in body.order if n.op == "sum" and n.shape]


@pytest.mark.parametrize("n, k, d", [(50, 12, 8), (7, 9, 3)])
def test_kmeans_sums_across_centroids_and_agree_with_numba(n, k, d):
    centroids = sd.matrix("C", k, d)
    fast, reference = _both(kmeans_cost, [sd.matrix("P", n, d), centroids], centroids)
    # The centroids are read with a stride across the row of distances: copied first.
    assert [copies and len(copies) for copies in _sums(fast, "forward")] == [1]
    points, c = RNG.normal(size=(n, d)), RNG.normal(size=(k, d))
    assert fast(points, c) == reference(points, c)
    assert np.array_equal(fast.grad(points, c), reference.grad(points, c))
    ones = np.ones((k, d))
    assert np.array_equal(fast.hvp(points, c, ones), reference.hvp(points, c, ones))
    # The distances are one row, made and reduced per point: no (n, k) array.
    body = ArrayBody(fast.derivation.spec("forward"), "body")
    body.text()
    assert [m.op for m in body.computed_ahead] == ["amax"]


def test_sums_across_an_open_number_of_rows_and_with_nan():
    def f(x, c):  # rows of x against the rows of c, the maximum of each row, summed
        return np.sum(np.max(np.sum(np.tanh(x[:, None] * c[None]), axis=-1), axis=1))
    fast, reference = _both(f, [sd.matrix("x", None, 5), sd.matrix("c", 11, 5)])
    for rows in (1, 3, 40):
        x, c = RNG.normal(size=(rows, 5)), RNG.normal(size=(11, 5))
        assert fast(x, c) == reference(x, c)
        for a, b in zip(fast.grad(x, c), reference.grad(x, c), strict=True):
            assert np.array_equal(a, b)
    x[2, 1] = np.nan
    assert np.isnan(fast(x, c)) and np.isnan(reference(x, c))


def test_across_sums_and_their_row_maxima_inside_scan_bodies():
    # In a loop body the fused maximum is computed with the forward step; the reverse
    # sweep's body holds the same nodes, not fused there (a fresh scope per body).  And
    # a maximum whose other operand is computed per step while the sum is invariant (so
    # written before the loop) is not fused.
    def carried(x, c):
        def step(h, t):
            s = np.sum((h[:, None] * t - c[None]) ** 2, axis=-1)
            m = np.max(s, axis=1)
            return np.tanh(h + m[:, None] * 0.01), np.sum(m)
        h, ys = sd.scan(step, x, np.linspace(0.1, 1.0, 30))
        return np.sum(h) + np.sum(ys)

    def invariant(x, c, h0):
        def step(h, t):
            u = np.tanh(h) * t
            s = np.sum((x[:, None] - c[None]) ** 2, axis=-1)
            m = np.max(u * s, axis=1)
            return h * 0.5 + np.sum(m) * 0.01, np.sum(m)
        h, ys = sd.scan(step, h0, np.arange(40.0))
        return np.sum(h) + np.sum(ys)
    cases = [(carried, [sd.matrix("x", 5, 4), sd.matrix("c", 9, 4)]),
             (invariant, [sd.matrix("x", 5, 3), sd.matrix("c", 9, 3), sd.vector("h", 9)])]
    for f, args in cases:
        fast, reference = _both(f, args)
        values = [RNG.normal(size=a.shape) for a in args]
        assert fast(*values) == reference(*values)
        for a, b in zip(fast.grad(*values), reference.grad(*values), strict=True):
            assert np.array_equal(a, b)


def test_operands_that_vary_across_rows_keep_the_usual_order():
    # Both operands vary with the point: a copy per point would not pay, so the sum
    # keeps its loop nest (each distance summed innermost).
    def f(a, b):
        return np.sum(np.sum((a - b) ** 2, axis=-1) * np.arange(1.0, 9.0))
    fast, reference = _both(f, [sd.symbol("a", (20, 8, 4)), sd.symbol("b", (20, 8, 4))])
    assert _sums(fast, "forward") == [None]
    a, b = RNG.normal(size=(20, 8, 4)), RNG.normal(size=(20, 8, 4))
    assert fast(a, b) == reference(a, b)
    for x, y in zip(fast.grad(a, b), reference.grad(a, b), strict=True):
        assert np.array_equal(x, y)


@pytest.mark.parametrize("keepdims", [False, True])
def test_row_maxima_in_lanes_agree_with_numba_and_propagate_nan(keepdims):
    # (Lanes may return the other one of a -0.0 and 0.0 tie, as the full maximum does.)
    def f(x):
        return np.sum(np.max(x * x, axis=1, keepdims=keepdims) * 2.0)
    fast, reference = _both(f, [sd.matrix("x", 6, 13)])
    x = RNG.normal(size=(6, 13))
    assert fast(x) == reference(x)
    assert np.array_equal(fast.grad(x), reference.grad(x))
    x[4, 11] = np.nan
    assert np.isnan(fast(x)) and np.isnan(reference(x))


def test_temporaries_are_tagged_with_their_own_alias_scope():
    centroids = sd.matrix("C", 12, 8)
    fast = sd.compile(kmeans_cost, args=[sd.matrix("P", 50, 8), centroids], wrt=centroids,
                      backend="native", background=False)
    text = array_function(fast.derivation.spec("grad"), native.layout()).text
    tagged = re.findall(r"(load|store) .*, !alias\.scope (!\d+), !noalias (!\d+)", text)
    assert tagged and len({scope for _, scope, _ in tagged}) > 2
    assert "!<" not in text  # every placeholder resolved


@pytest.mark.parametrize("count", [2, 3, 8, 33])
def test_alias_scopes_tell_every_two_buffers_apart_and_no_buffer_from_itself(count):
    names, nodes = _alias_scopes(count, 2)
    text = {line.split(" = ", 1)[0]: line.split(" = ", 1)[1] for line in nodes}

    def members(name):
        return set(re.findall(r"!\d+", text[name]))

    def domain(scope):
        return re.findall(r"!\d+", text[scope])[1]
    for a in range(count):
        for b in range(count):
            # LLVM's rule: no alias if, in some domain, b's scopes are among a's noalias.
            noalias, scopes = members(names[f"na{a}"]), members(names[f"as{b}"])
            apart = any({s for s in scopes if domain(s) == d} <= noalias
                        for d in {domain(s) for s in noalias})
            assert apart == (a != b)


def test_the_hand_tracking_model_jacobian_against_differences():
    # benchmarks/hand_tracking.py: 22 bones composed in a Python loop, skinning by an
    # einsum, the points' vertices gathered; its Jacobian as the benchmark takes it.
    from benchmarks import hand_tracking as ht

    hand, correspondences, points, theta = ht.problem(40)
    residuals = ht.objective(np, hand, correspondences, points)
    # (Native only: the Numba lowering of this Jacobian takes about 100 s to compile.)
    fast = sd.compile(residuals, args=[sd.vector("theta", ht.PARAMETERS)], background=False)
    assert np.allclose(fast(theta), residuals(theta), rtol=1e-12, atol=1e-12)
    jacobian = fast.jacobian(theta)
    assert jacobian.shape == (120, ht.PARAMETERS)
    step, differences = 1e-6, np.empty_like(jacobian)
    for k in range(ht.PARAMETERS):
        e = np.zeros(ht.PARAMETERS)
        e[k] = step
        differences[:, k] = (residuals(theta + e) - residuals(theta - e)) / (2 * step)
    assert np.allclose(jacobian, differences, rtol=1e-6, atol=1e-7)
