"""Sliced reads and zero padding in the native lowering (codegen.native.pieces, the
shared producers and hoisting of codegen.native.fused) and the rules that expose them
(symdiff.passes.rules: slices of concatenations, embeds of embeds).  Each function is
checked against the Numba lowering bit for bit, and the native text for the loops it
keeps: fusing must change how many arrays are written, never a number."""

import numpy as np
import pytest

import symdiff as sd
from codegen import array_function
from codegen.native.pieces import MAX_PIECES, embedded_box, pieces
from symdiff.ir.nodes import apply, flatten, topological_order
from symdiff.passes.pipeline import optimize
from symdiff.runtime import native

RNG = np.random.default_rng(11)


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def padded_laplacian(m):
    """A five-point stencil on a zero boundary, written as people do: pad, then slice."""
    def residual(x):
        u = np.reshape(x, (m, m))
        rows = np.concatenate([np.zeros((1, m)), u, np.zeros((1, m))], axis=0)
        p = np.concatenate([np.zeros((m + 2, 1)), rows, np.zeros((m + 2, 1))], axis=1)
        lap = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4.0 * u
        return np.reshape(lap + 6.0 * np.exp(u), (m * m,))
    return residual


def _both(function, args):
    return (sd.compile(function, args=args, backend="native", background=False),
            sd.compile(function, args=args, backend="numba", background=False))


def _text(fn, method):
    spec = fn.derivation.spec(method)
    return array_function(spec, native.layout()).text if method in (
        "hvp", "grad", "forward", "jvp", "value_and_grad") else \
        native._writer(spec)(spec, native.layout()).text


def _loops(text: str) -> int:
    return text.count("icmp slt i64")


@pytest.fixture(scope="module")
def rosen():
    return _both(rosenbrock, [sd.vector("x", 40)])


def test_the_adjoint_of_shifted_reads_is_one_loop_and_equals_numba(rosen):
    fast, reference = rosen
    x, v = RNG.uniform(-1, 1, 40), RNG.normal(size=40)
    for method, args in [("grad", (x,)), ("hvp", (x, v)), ("hessian", (x,))]:
        a, b = getattr(fast, method)(*args), getattr(reference, method)(*args)
        assert np.array_equal(a, b), method
    assert np.array_equal(fast.sparse_hessian(x).data, reference.sparse_hessian(x).data)
    # x[1:] and x[:-1] read by the adjoint: once as they are, once shifted, all in the
    # one loop of the middle piece (the two end pieces hold one element each).
    assert _loops(_text(fast, "hvp")) == 1
    assert _loops(_text(fast, "grad")) == 1


@pytest.fixture(scope="module")
def stencil():
    m = 6
    return m, _both(padded_laplacian(m), [sd.vector("x", m * m)])


def test_a_padded_stencil_reads_no_padded_copy(stencil):
    m, (fast, reference) = stencil
    graph = flatten(fast.derivation.spec("forward").result)
    ops = {n.op for n in topological_order(graph)}
    assert "concatenate" not in ops and "embed" in ops
    x = RNG.uniform(0, 1, m * m)
    assert np.allclose(fast(x), padded_laplacian(m)(x), rtol=1e-14, atol=1e-14)
    w = RNG.normal(size=m * m)
    for method, args in [("forward", (x,)), ("jvp", (x, w)), ("jacobian", (x,))]:
        assert np.array_equal(getattr(fast, method)(*args),
                              getattr(reference, method)(*args)), method
    assert np.array_equal(fast.sparse_jacobian(x).toarray(),
                          reference.sparse_jacobian(x).toarray())


def test_invariant_transcendentals_leave_the_loop_over_colors(stencil):
    _, (fast, _) = stencil
    text = _text(fast, "sparse_jacobian_data")
    # exp(u) does not depend on the color: one loop computes it before the colors' loop.
    assert text.count("call double @_sd_loop_exp") == 1


def test_slices_of_concatenations_simplify():
    x, y = sd.vector("x", 4), sd.vector("y", 3)
    joined = sd.concatenate([np.zeros(2), x, y])
    inside = optimize(joined[3:5])  # within x
    assert inside.op == "index" and inside.args[0] is x
    assert optimize(joined[0:2]).op == "broadcast_to"  # the padding alone: zeros
    padded = optimize(joined[1:4])  # a zero, then x[0:2]: x's slice placed into zeros
    assert padded.op == "embed" and padded.args[0].args[0] is x
    assert optimize(joined[5:7]).op == "index"  # x's end and y's start: left alone
    values = {"x": RNG.normal(size=4), "y": RNG.normal(size=3)}
    full = np.concatenate([np.zeros(2), values["x"], values["y"]])
    for expression, expected in [(inside, full[3:5]), (padded, full[1:4])]:
        assert np.array_equal(sd.evaluate(expression, values), expected)


def test_an_embed_of_an_embed_is_one_placement():
    x = sd.vector("x", 3)
    inner = apply("embed", x, payload=((("s", 1, 4, 1),), (5,)))
    outer = apply("embed", inner, payload=((("s", 2, 7, 1),), (8,)))
    folded = optimize(outer)
    assert folded.op == "embed" and folded.args[0] is x
    assert folded.value == ((("s", 3, 6, 1),), (8,))
    value = RNG.normal(size=3)
    assert np.array_equal(sd.evaluate(folded, {"x": value}), sd.evaluate(outer, {"x": value}))


def test_pieces_cut_a_loop_at_every_edge():
    x = sd.vector("x", 4)
    left = apply("embed", x, payload=((("s", 0, 4, 1),), (5,)))
    right = apply("embed", x, payload=((("s", 1, 5, 1),), (5,)))
    boxes = {left: embedded_box(left), right: embedded_box(right)}
    found = pieces((5,), boxes)
    assert [box for box, _ in found] == [[(0, 1)], [(1, 4)], [(4, 5)]]
    assert [set(inside) for _, inside in found] == [{left}, {left, right}, {right}]
    stepped = apply("embed", sd.vector("y", 3), payload=((("s", 0, 6, 2),), (6,)))
    assert embedded_box(stepped) is None  # a step of 2: written as an array


@pytest.mark.parametrize("case", ["positions and steps", "too many pieces"])
def test_embeds_that_stay_arrays_still_agree(case):
    if case == "positions and steps":
        x = sd.matrix("X", 4, 5)
        expression = (sd.sum(x[0] * x[3]) + sd.sum(x[::2, 1:] ** 2)
                      + sd.sum(sd.tanh(x[1:, :-1] - x[:-1, 1:])))
        args = [x]
        values = (RNG.normal(size=(4, 5)),)
    else:  # a 3-D seven-point stencil's adjoint: 5 x 5 x 5 pieces, past MAX_PIECES
        x = sd.symbol("x", (5, 5, 5))
        core = x[1:-1, 1:-1, 1:-1]
        expression = sd.sum((x[2:, 1:-1, 1:-1] + x[:-2, 1:-1, 1:-1] + x[1:-1, 2:, 1:-1]
                             + x[1:-1, :-2, 1:-1] + x[1:-1, 1:-1, 2:] + x[1:-1, 1:-1, :-2]
                             - 6.0 * core) ** 2)
        args = [x]
        values = (RNG.normal(size=(5, 5, 5)),)
        assert 5 ** 3 > MAX_PIECES
    fast, reference = _both(expression, args)
    assert np.array_equal(fast.grad(*values), reference.grad(*values))
    assert np.isclose(fast(*values), reference(*values), rtol=1e-14)


def test_a_cheap_broadcast_read_by_two_loops_is_computed_in_each():
    # k-means: the (n, k, d) differences feed the distances' sum and the gradient's
    # sum_to.  Written once they were an array of n k d doubles; now each loop computes
    # them from P and C.
    from codegen.native.arrays import ArrayBody

    n, k, d = 6, 5, 3

    def cost(points, centroids):
        return np.sum(np.min(np.sum((points[:, None] - centroids[None]) ** 2, axis=-1),
                             axis=1))
    centroids = sd.matrix("C", k, d)
    args = [sd.matrix("P", n, d), centroids]
    fast = sd.compile(cost, args=args, wrt=centroids, backend="native", background=False)
    reference = sd.compile(cost, args=args, wrt=centroids, backend="numba", background=False)
    body = ArrayBody(fast.derivation.spec("grad"), "body")
    differences = [x for x in body.order if x.op == "sub" and x.shape == (n, k, d)]
    assert differences and all(x in body.inlined for x in differences)
    values = (RNG.normal(size=(n, d)), RNG.normal(size=(k, d)))
    assert np.array_equal(fast.grad(*values), reference.grad(*values))
    ones = np.ones((k, d))
    assert np.array_equal(fast.hvp(*values, ones), reference.hvp(*values, ones))


@pytest.mark.parametrize("case", ["an embed under another", "a minimal surface"])
def test_embeds_read_at_shifted_positions_stay_arrays(case):
    # An embed inside another inlined embed's operand runs at that embed's shifted
    # positions: it is an array of its own (pieces.settle_embeds).  Shared producers take
    # no embed in (fused.share).  Both gave wrong derivatives before they were ruled out.
    if case == "an embed under another":
        def f(x):
            return np.sum(np.sin((x[1:] * 2)[:-1]) ** 2) + np.sum(x ** 2)
        n = 8
    else:
        m = 5
        n = m * m
        boundary = np.linspace(0.0, 1.0, (m + 2) ** 2).reshape(m + 2, m + 2)

        def f(x):
            u = np.reshape(x, (m, m))
            rows = np.concatenate([boundary[1:-1, :1], u, boundary[1:-1, -1:]], axis=1)
            full = np.concatenate([boundary[:1], rows, boundary[-1:]], axis=0)
            dx, dy = full[1:, :-1] - full[:-1, :-1], full[:-1, 1:] - full[:-1, :-1]
            return np.sum(np.sqrt(1.0 + dx * dx + dy * dy))
    fast, reference = _both(f, [sd.vector("x", n)])
    x, v = RNG.normal(size=n) * 0.3, RNG.normal(size=n)
    assert np.array_equal(fast.grad(x), reference.grad(x))
    assert np.array_equal(fast.hvp(x, v), reference.hvp(x, v))
    assert np.array_equal(fast.sparse_hessian(x).toarray(),
                          reference.sparse_hessian(x).toarray())


def _random_sliced_terms(rng, x, count: int):
    """Sums of random compositions of slices, shifts, padding and elementwise ops of x
    (the shapes fused embeds meet: adjoints of slices, under other slices, shared)."""
    n = x.shape[0]
    terms = []
    for _ in range(count):
        length = int(rng.integers(3, n - 2))
        a, b = (int(v) for v in rng.integers(0, n - length + 1, size=2))
        t = x[a:a + length] * x[b:b + length]
        for _ in range(int(rng.integers(1, 4))):
            pick = rng.integers(0, 5)
            if pick == 0:
                t = np.sin(t[1:]) * t[:-1]
            elif pick == 1:
                t = np.pad(t, (1, 2))[2:] + 2.0 * t[1:][:-1].sum()
            elif pick == 2:
                t = np.concatenate([t, t[:2] ** 2])
            elif pick == 3:
                t = (t[1:] * 2)[:-1] + t[2:] * t[:-2]
            else:
                t = np.tanh(t) * x[:t.shape[0]]
        terms.append(np.sum(t ** 2))
    return sum(terms)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_random_slices_and_pads_agree_with_numba(seed):
    rng = np.random.default_rng(100 + seed)
    x = sd.vector("x", 12)
    expression = _random_sliced_terms(rng, x, 6)
    fast = sd.compile(expression, args=[x], backend="native", background=False)
    reference = sd.compile(expression, args=[x], backend="numba", background=False)
    values, direction = rng.normal(size=12) * 0.5, rng.normal(size=12)
    assert np.array_equal(fast.grad(values), reference.grad(values))
    assert np.array_equal(fast.hvp(values, direction), reference.hvp(values, direction))
    # (The dense Hessian is the HVP's loop over directions, in one block of 12: the same
    # graphs, with sums that may round in another order; compiling it in both lowerings
    # would double this test's time.)


def test_a_fused_root_read_by_a_producer_recomputed_elsewhere_is_stored():
    # x[:5] * x[1:] is recomputed in several loops (share); the where's branches, fused
    # with it into one loop, are read there too: they must be written (a KeyError before).
    def f(x):
        p = x[:5] * x[1:]
        return np.sum(np.where(p > 0, p ** 2, np.sin(p)) ** 2)
    fast, reference = _both(f, [sd.vector("x", 6)])
    v, d = np.linspace(-1.0, 1.0, 6), np.ones(6)
    assert np.array_equal(fast.hvp(v, d), reference.hvp(v, d))
    assert np.array_equal(fast.grad(v), reference.grad(v))


def test_a_fused_root_read_by_a_member_of_a_recomputed_producer_is_stored():
    # A state read element by element and stepped in scalars: in the Hessian's blocks of
    # directions, a fused producer of a recomputed node reads a root of another fused
    # loop, which must be written (a KeyError before).
    def f(y, k):
        a, b = y[0], y[1]
        for _ in range(2):
            a, b = a + 0.01 * b, b - 0.01 * k * np.sin(a)
        return a ** 2 + b ** 2
    fast, reference = _both(f, [sd.vector("y", 2), sd.symbol("k")])
    y = np.array([1.0, 0.0])
    np.testing.assert_allclose(fast.hessian(y, 2.0), reference.hessian(y, 2.0), rtol=1e-14)


def test_a_cheap_producer_read_by_an_alias_is_stored():
    # stop_gradient is emitted as a view of its operand: a producer it reads must be an
    # array, not computed where it is read (a KeyError before).
    def f(v):
        return np.sum(np.exp(v * 2) + sd.stop_gradient(v * 2) * v)
    fast, reference = _both(f, [sd.vector("v", 2)])
    x = np.array([0.3, -0.2])
    assert fast(x) == reference(x)
    np.testing.assert_array_equal(fast.grad(x), reference.grad(x))
