"""sd.scan against its unrolled equivalent (issue #10, evaluator stage): values and
derivatives to order 3, forward and reverse mode, tuple and array carries, reverse
scans, trip counts 0 and 1; derivative graphs of a scan do not grow with the trip count."""

import re

import numpy as np
import pytest

import symdiff as sd
from symdiff.autodiff.modes import forward_mode

W = sd.matrix("W", 3, 3)
H0 = sd.vector("h0", 3)
S = sd.symbol("s")


def _rnn(T, reverse=False):
    xs = sd.matrix("xs", T, 3)

    def step(carry, x):
        h, total = carry
        h2 = sd.tanh(W @ h + x * S) + 0.5 * h
        return (h2, total + sd.sum(h2 * h2)), sd.sum(h2) * S

    (hT, total), ys = sd.scan(step, (H0, sd.const(0.0)), xs, reverse=reverse)
    scanned = sd.sum(hT * hT) + total + sd.sum(ys * ys)
    h, acc, outs = H0, sd.const(0.0), [None] * T
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        h = sd.tanh(W @ h + xs[t] * S) + 0.5 * h
        acc = acc + sd.sum(h * h)
        outs[t] = sd.sum(h) * S
    unrolled = sd.sum(h * h) + acc + sum(o * o for o in outs) if T else sd.sum(h * h) + acc
    return scanned, unrolled, xs


def _point(T, seed=0):
    rng = np.random.default_rng(seed)
    return {"W": rng.normal(size=(3, 3)) * 0.5, "h0": rng.normal(size=3),
            "xs": rng.normal(size=(T, 3)), "s": 0.7}


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("T", [1, 4])
@pytest.mark.parametrize("reverse", [False, True])
def test_scan_value_and_gradient_match_the_unrolled_loop(T, reverse):
    scanned, unrolled, xs = _rnn(T, reverse)
    point = _point(T)
    _close(sd.evaluate(scanned, point), sd.evaluate(unrolled, point))
    wrt = [W, H0, S, xs]
    for a, b in zip(sd.grad(scanned, wrt), sd.grad(unrolled, wrt), strict=True):
        _close(sd.evaluate(a, point), sd.evaluate(b, point))


@pytest.mark.parametrize("rows", [0, 1, 4])
def test_one_scan_over_an_open_length_serves_every_trip_count(rows):
    xs = sd.symbol("xs", (None, 3))
    (hT, total), ys = sd.scan(
        lambda c, x: ((sd.tanh(W @ c[0] + x), c[1] + sd.sum(x)), sd.sum(c[0] * x)),
        (H0, sd.const(0.0)), xs)
    f = sd.sum(hT) + total * S + sd.sum(ys)
    point = _point(rows, seed=3)
    h, acc, extra = point["h0"], 0.0, 0.0
    for t in range(rows):
        extra += np.sum(h * point["xs"][t])
        h, acc = np.tanh(point["W"] @ h + point["xs"][t]), acc + np.sum(point["xs"][t])
    _close(sd.evaluate(f, point), np.sum(h) + acc * 0.7 + extra)
    grads = [sd.evaluate(g, point) for g in sd.grad(f, [H0, xs])]
    assert np.shape(grads[1]) == (rows, 3)
    eps, base = 1e-6, point["h0"].copy()
    for k in range(3):  # central differences of the value in h0
        point["h0"] = base + eps * np.eye(3)[k]
        up = sd.evaluate(f, point)
        point["h0"] = base - eps * np.eye(3)[k]
        down = sd.evaluate(f, point)
        assert abs((up - down) / (2 * eps) - grads[0][k]) < 1e-7
    point["h0"] = base


def test_forward_mode_of_a_scan_is_a_scan_and_matches():
    scanned, unrolled, xs = _rnn(4)
    point = _point(4, seed=1)
    tangents = {W: sd.matrix("dW", 3, 3), H0: sd.vector("dh", 3), S: sd.symbol("ds")}
    point.update(dW=np.ones((3, 3)) * 0.1, dh=np.array([1.0, -2.0, 0.5]), ds=0.3)
    (jvp_scan,) = forward_mode([scanned], tangents)
    (jvp_unrolled,) = forward_mode([unrolled], tangents)
    _close(sd.evaluate(jvp_scan, point), sd.evaluate(jvp_unrolled, point))


def test_higher_orders_match_the_unrolled_loop():
    scanned, unrolled, _ = _rnn(3)
    point = _point(3, seed=2)
    # Reverse over reverse (Hessian), and a third mixed partial.
    _close(sd.evaluate(sd.hessian(scanned, [H0]), point),
           sd.evaluate(sd.hessian(unrolled, [H0]), point))
    _close(sd.evaluate(sd.diff(scanned, S, S, S), point),
           sd.evaluate(sd.diff(unrolled, S, S, S), point))


def test_derivative_graphs_do_not_grow_with_the_trip_count():
    sizes = {}
    for T in (5, 50):
        scanned, unrolled, _ = _rnn(T)
        sizes[T] = (sd.count_ops(sd.grad(scanned, [W])), sd.count_ops(sd.grad(unrolled, [W])))
    assert sizes[5][0] == sizes[50][0]
    assert sizes[50][1] > 5 * sizes[5][0]


def test_scan_checks_its_arguments():
    xs = sd.vector("xs", 4)
    with pytest.raises(sd.ShapeError, match="carry's shapes"):
        sd.scan(lambda c, x: (sd.stack([c, x]), None), sd.symbol("c"), xs)
    with pytest.raises(sd.SymdiffError, match=r"\(carry, y\)"):
        sd.scan(lambda c, x: c + x, sd.symbol("c"), xs)
    with pytest.raises(sd.ShapeError, match="same leading length"):
        sd.scan(lambda c, x: (c, None), sd.symbol("c"), (xs, sd.vector("ys", 3)))


@pytest.fixture(scope="module")
def compiled_rnn():
    xs = sd.symbol("xs", (None, 3))

    def loss(W, h0, s, xs):
        (hT, total), ys = sd.scan(
            lambda c, x: ((sd.tanh(W @ c[0] + x * s) + 0.5 * c[0], c[1] + sd.sum(c[0] * x)),
                          sd.sum(c[0]) * s), (h0, sd.const(0.0)), xs)
        return sd.sum(hT * hT) + total + sd.sum(ys * ys)

    f = sd.compile(loss, args=[W, H0, S, xs])
    return f, loss(W, H0, S, xs), xs


@pytest.mark.parametrize("rows", [0, 1, 6])
def test_compiled_scan_matches_the_evaluator(compiled_rnn, rows):
    f, expr, xs = compiled_rnn
    point = _point(rows, seed=4)
    args = (point["W"], point["h0"], point["s"], point["xs"])
    _close(f(*args), sd.evaluate(expr, point))
    for got, want in zip(f.grad(*args), sd.grad(expr, [W, H0, S, xs]), strict=True):
        _close(got, sd.evaluate(want, point))
    direction = (np.ones((3, 3)), np.array([1.0, 0.5, -1.0]), 0.25, np.ones((rows, 3)))
    hvp = f.hvp(*args, *direction)
    eps = 1e-6
    plus = f.grad(*(a + eps * d for a, d in zip(args, direction, strict=True)))
    minus = f.grad(*(a - eps * d for a, d in zip(args, direction, strict=True)))
    for h, p, m in zip(hvp, plus, minus, strict=True):
        np.testing.assert_allclose(h, (np.asarray(p) - np.asarray(m)) / (2 * eps),
                                   rtol=1e-5, atol=1e-6)


def test_fori_loop_source_does_not_grow_with_its_bounds():
    a = sd.symbol("a")
    sources = {n: sd.compile(sd.fori_loop(0, n, lambda i, c: c * a + i, a), args=[a]).source
               for n in (10, 100_000)}
    # The same lines; only numbers differ (the static trip count and what it resolves:
    # the checkpoint interval and the number of segments).
    assert len(sources[10].splitlines()) == len(sources[100_000].splitlines())
    assert re.sub(r"\d+", "N", sources[10]) == re.sub(r"\d+", "N", sources[100_000])
    # No array of T zeros to count the steps: each step gets the constant.
    assert re.search(r"_sd_scan_\w+\([^)]*, 0\.0[,)]", sources[100_000])
    assert "[_i0] = 0.0" not in sources[100_000]


def test_generated_code_is_one_loop_whatever_the_length(compiled_rnn):
    f, _, _ = compiled_rnn
    source = f.source
    assert source.count("def _sd_scan_") >= 1 and "for _s in range(" in source
    T10, _, _ = _rnn(10)
    T40, _, _ = _rnn(40)
    sizes = [len(sd.compile(e, [W, H0, S]).source.splitlines()) for e in (T10, T40)]
    assert sizes[0] == sizes[1]


def test_sparsity_of_a_scan_is_conservative_and_sparse_hessians_match(compiled_rnn):
    f, expr, xs = compiled_rnn
    point = _point(2, seed=5)
    args = (point["W"], point["h0"], point["s"], point["xs"])
    pattern = f.hessian_sparsity(*args)
    assert pattern.shape == (19, 19) and pattern.nnz == 19 * 19
    np.testing.assert_allclose(f.sparse_hessian(*args).toarray(), f.hessian(*args),
                               rtol=1e-12, atol=1e-12)


def test_function_of_scalars_with_a_scan_over_constant_data():
    c = sd.symbol("c")
    hT, ys = sd.scan(lambda h, x: (sd.sin(h) * x + h, h * h), c, np.linspace(0, 1, 5))
    f = hT + sd.sum(ys)
    fn = sd.compile(f, args=[c])
    _close(fn(0.5), sd.evaluate(f, c=0.5))
    _close(fn.hessian(0.5), sd.evaluate(sd.hessian(f, [c]), c=0.5))
    points = np.array([0.5, -0.2, 1.5])  # batched: a parallel loop over the one-point code
    _close(fn(points), [sd.evaluate(f, c=p) for p in points])
    _close(fn.grad(points)[:, 0], [sd.evaluate(sd.diff(f, c), c=p) for p in points])
    value, slope = fn.value_and_grad(points)
    _close(slope, fn.grad(points))
    assert "for _p in numba.prange(_np):" in fn.source and "_sd_point_" in fn.source


def test_fori_loop_matches_the_python_loop():
    a, b = sd.symbols("a b")
    horner = sd.fori_loop(0, 12, lambda i, c: c * a + sd.sin(i * b), sd.const(1.0))
    unrolled = sd.const(1.0)
    for i in range(12):
        unrolled = unrolled * a + sd.sin(float(i) * b)
    point = {"a": 0.9, "b": 0.3}
    _close(sd.evaluate(horner, point), sd.evaluate(unrolled, point))
    for wrt in ([a], [b], [a, b]):
        _close(sd.evaluate(sd.diff(horner, *wrt), point),
               sd.evaluate(sd.diff(unrolled, *wrt), point))
    fn = sd.compile(horner, args=[a, b], background=False)  # compiled, to order 2
    _close(fn(0.9, 0.3), sd.evaluate(unrolled, point))
    _close(fn.grad(0.9, 0.3), sd.evaluate(sd.grad(unrolled, [a, b]), point))
    _close(fn.hessian(0.9, 0.3), sd.evaluate(sd.hessian(unrolled, [a, b]), point))
    assert sd.fori_loop(3, 3, lambda i, c: c * 2, a) is a
    with pytest.raises(sd.SymdiffError, match="ints or scalar expressions"):
        sd.fori_loop(0, True, lambda i, c: c, a)


def test_one_reverse_sweep_for_every_output_of_a_loop():
    scanned, _, xs = _rnn(6)  # its loss reads the final carries and the stacked outputs
    graph = sd.ir.topological_order(sd.grad(scanned, [W, H0, S, xs]))
    loops = {n.value[0] for n in graph if n.op == "scan"}
    assert sum(body.reverse for body in loops) == 1


def test_while_loop_with_a_bound_values_and_derivatives_both_modes():
    x0, r = sd.symbols("x0 r")
    final = sd.while_loop(lambda c: c[0] < 10.0, lambda c: (c[0] * r, c[1] + 1.0),
                          (x0, sd.const(0.0)), max_steps=40)
    point = {"x0": 1.0, "r": 1.3}
    n = 9  # 1.3**9 = 10.6 is the first power above 10
    _close(sd.evaluate(list(final), point), [1.3 ** n, n])
    _close(sd.evaluate(sd.diff(final[0], r), point), n * 1.3 ** (n - 1))  # reverse
    (tangent,) = forward_mode([final[0]], {r: sd.const(1.0), x0: sd.const(0.0)})
    _close(sd.evaluate(tangent, point), n * 1.3 ** (n - 1))
    fn = sd.compile(final[0], args=[x0, r])
    _close(fn(1.0, 1.3), 1.3 ** n)
    _close(fn.grad(1.0, 1.3), [1.3 ** n, n * 1.3 ** (n - 1)])
    _close(fn(20.0, 1.3), 20.0)  # cond false at once: zero steps
    with pytest.raises(sd.SymdiffError, match="max_steps"):
        sd.while_loop(lambda c: c < 1.0, lambda c: c * 2.0, x0, max_steps=0)


def _checkpointed(checkpoint, reverse):
    xs = sd.symbol("xs", (None, 3))

    def loss(W, h0, s, xs):
        # The third carry is a tanh: the sweep reads its stored next value for tanh'.
        (hT, total, g), ys = sd.scan(
            lambda c, x: ((sd.tanh(W @ c[0] + x * s) + 0.5 * c[0], c[1] + sd.sum(c[0] * x),
                           sd.tanh(c[2] * s + sd.sum(x))),
                          sd.sum(c[0]) * s), (h0, sd.const(0.0), s), xs, reverse=reverse,
            checkpoint=checkpoint)
        return sd.sum(hT * hT) + total + sd.sum(ys * ys) + g * g

    return sd.compile(loss, args=[W, H0, S, xs], background=False)


def test_static_loops_resolve_their_checkpoints_when_generating():
    # 20 steps checkpointed every step, or in one segment of 20 (an interval of 100):
    # degenerate, so every carry is stored as with "all" (no `if _s % 1 == 0:`, no loop
    # over one segment); every 4 steps: 5 segments, each recomputed.  Same numbers.
    x = sd.vector("x", 3)

    def gradient(checkpoint):
        c, _ = sd.scan(lambda c, _: (c + 0.1 * sd.sin(c), None), x, np.zeros(20),
                       checkpoint=checkpoint)
        fn = sd.compile(sd.sum(c * c), args=[x], background=False)
        source = fn.lower("grad").source
        return fn, source[source.index("def gradient("):]

    compiled = {k: gradient(k) for k in ("all", 1, 100, 4)}
    assert compiled[1][1] == compiled[100][1] == compiled["all"][1]
    assert "for _g in range(" not in compiled[1][1] and "% 1" not in compiled[1][1]
    assert "for _g in range(4, -1, -1):" in compiled[4][1] and "_s % 4 == 0" in compiled[4][1]
    point = np.array([0.3, -1.2, 2.0])
    want = compiled["all"][0].grad(point)
    for fn, _ in compiled.values():
        np.testing.assert_array_equal(fn.grad(point), want)


@pytest.mark.parametrize("reverse, schedules", [(False, ["all", 3, "sqrt", 50]),
                                                (True, ["all", 2])])
def test_checkpointing_schedules_give_identical_results(reverse, schedules):
    """Every schedule recomputes the same carries with the same body function: the
    gradients and Hessian-vector products agree bit for bit, also for lengths that are
    not a multiple of the interval, 0 and 1."""
    results = {}
    for schedule in schedules:
        f = _checkpointed(schedule, reverse)
        assert ("for _g in range(" in f.source) == (schedule != "all")  # segments
        assert "step_n2" in f.source  # the sweep reads the next carry for tanh'
        for rows in (0, 1, 7):
            point = _point(rows, seed=6)
            args = (point["W"], point["h0"], point["s"], point["xs"])
            direction = (np.ones((3, 3)), np.array([1.0, 0.5, -1.0]), 0.25,
                         np.linspace(-1, 1, rows * 3).reshape(rows, 3))
            results[schedule, rows] = list(f.grad(*args)) + list(f.hvp(*args, *direction))
            if reverse and rows == 7:  # reverse over reverse: sweeps of sweeps
                results[schedule, rows].append(f.hessian(*args))
            if rows == 7:  # against central differences in s and h0
                eps, grads = 1e-6, f.grad(*args)
                for k, e in ((2, 1.0), (1, np.array([0.0, 1.0, 0.0]))):
                    up, down = list(args), list(args)
                    up[k], down[k] = args[k] + eps * e, args[k] - eps * e
                    fd = (f(*up) - f(*down)) / (2 * eps)
                    np.testing.assert_allclose(np.sum(grads[k] * e), fd, rtol=1e-6)
    for (schedule, rows), got in results.items():
        for a, b in zip(got, results["all", rows], strict=True):
            assert np.array_equal(a, b), (schedule, rows)


def test_checkpoint_is_checked():
    with pytest.raises(sd.SymdiffError, match="checkpoint must be"):
        sd.scan(lambda c, x: (c + x, None), S, sd.vector("xs", 3), checkpoint=0)
    with pytest.raises(sd.SymdiffError, match="checkpoint must be"):
        sd.scan(lambda c, x: (c + x, None), S, sd.vector("xs", 3), checkpoint="revolve")


def test_unbounded_while_loop_values_and_forward_mode_to_third_order():
    x0, r = sd.symbols("x0 r")
    final = sd.while_loop(lambda c: c[0] < 10.0, lambda c: (c[0] * r, c[1] + 1.0),
                          (x0, sd.const(0.0)))
    point = {"x0": 1.0, "r": 1.3}
    n = 9
    _close(sd.evaluate(list(final), point), [1.3 ** n, n])
    for order in (1, 2, 3):  # d^k/dr^k r**9, by forward mode through the loop
        want = np.prod(np.arange(n, n - order, -1)) * 1.3 ** (n - order)
        _close(sd.evaluate(sd.diff(final[0], *[r] * order), point), want)
    fn = sd.compile(final[0], args=[x0, r], background=False)
    _close(fn(1.0, 1.3), 1.3 ** n)
    _close(fn(20.0, 1.3), 20.0)  # zero steps
    _close(fn.jvp(1.0, 1.3, [0.5, 1.0]), 0.5 * 1.3 ** n + n * 1.3 ** (n - 1))
    assert "while _sd_cond_" in fn.source and "def gradient" not in fn.source
    _close(fn(np.array([1.0, 20.0]), np.array([1.3, 1.3])), [1.3 ** n, 20.0])  # batched
    with pytest.raises(sd.NotDifferentiableError, match="max_steps"):
        fn.grad(1.0, 1.3)


def test_forward_mode_runs_one_tangent_loop_for_all_outputs():
    a = sd.symbol("a")
    x, y = sd.while_loop(lambda c: c[0] < 10.0, lambda c: (c[0] * a + 1.0, c[1] + c[0]),
                         (1.0, 0.0))
    for derivative in (sd.diff(x * y, a), sd.diff(x * y, a, a)):
        bodies = [n.value[0] for n in sd.ir.topological_order([derivative]) if n.op == "while"]
        assert len({id(b) for b in bodies}) == len(set(bodies))  # one object per loop
    first = sd.diff(x * y, a)
    # The primal loop and one tangent loop (carrying both outputs' tangents).
    assert len({id(n.value[0]) for n in sd.ir.topological_order([first])
                if n.op == "while"}) == 2
    h = 1e-6
    want = (sd.evaluate(x * y, a=1.5 + h) - sd.evaluate(x * y, a=1.5 - h)) / (2 * h)
    assert sd.evaluate(first, a=1.5) == pytest.approx(want, rel=1e-8)


def test_unbounded_while_loop_over_an_array_carry():
    # Newton's iteration for the square roots of v, until the residual is small.
    v = sd.vector("v", 3)
    root = sd.while_loop(lambda x: sd.amax(sd.abs(x * x - v)) > 1e-12,
                         lambda x: 0.5 * (x + v / x), np.ones(3))
    fn = sd.compile(sd.sum(root * root * root), args=[v], background=False)
    point = np.array([2.0, 9.0, 0.25])
    _close(fn(point), np.sum(point ** 1.5))
    _close(fn.jvp(point, np.array([1.0, 0.0, 0.0])), 1.5 * np.sqrt(2.0))


@pytest.mark.parametrize("trips", [0, 1, 5])
def test_fori_loop_with_a_runtime_trip_count(trips):
    a, n = sd.symbols("a n")
    horner = sd.fori_loop(0, n, lambda i, c: c * a + sd.sin(i), sd.const(1.0))
    fn = _runtime_fori(horner, a, n)
    want, slope = 1.0, 0.0
    for i in range(trips):
        want, slope = want * 0.9 + np.sin(i), slope * 0.9 + want
    _close(sd.evaluate(horner, a=0.9, n=trips), want)
    _close(fn(0.9, trips), want)
    _close(fn.jvp(0.9, trips, [1.0, 0.0]), slope)
    _close(sd.evaluate(sd.diff(horner, a), a=0.9, n=trips), slope)


_FORI = {}


def _runtime_fori(expr, a, n):
    if expr not in _FORI:  # one compile serves every trip count
        _FORI[expr] = sd.compile(expr, args=[a, n], background=False)
    return _FORI[expr]


def _cubic_root():
    th, a = sd.symbols("th a")
    newton = lambda f, x0: sd.while_loop(  # noqa: E731 - unbounded: no reverse mode itself
        lambda x: sd.abs(f(x)) > 1e-14, lambda x: x - f(x) / (3 * x * x + th), x0)
    root = sd.custom_root(lambda x: x ** 3 + th * x - a, sd.const(1.0), newton)
    return root * root, th, a


def _real_cubic_root_squared(t, a):
    r = np.roots([1.0, 0.0, t, -a])
    return float(r[np.abs(r.imag) < 1e-9].real[0]) ** 2


def test_implicit_derivatives_of_a_root_against_finite_differences():
    f, th, a = _cubic_root()
    fn = sd.compile(f, args=[th, a], background=False)
    point, eps = np.array([0.7, 2.0]), 1e-5
    _close(fn(*point), _real_cubic_root_squared(*point))
    fd = [(_real_cubic_root_squared(*(point + eps * e)) - _real_cubic_root_squared(
        *(point - eps * e))) / (2 * eps) for e in np.eye(2)]
    np.testing.assert_allclose(fn.grad(*point), fd, rtol=1e-8)
    np.testing.assert_allclose(sd.evaluate(sd.grad(f, [th, a]), th=0.7, a=2.0), fd, rtol=1e-8)
    # Second order: implicit derivatives of the implicit derivatives.
    fd2 = [(fn.grad(*(point + eps * e)) - fn.grad(*(point - eps * e))) / (2 * eps)
           for e in np.eye(2)]
    np.testing.assert_allclose(fn.hessian(*point), fd2, rtol=1e-6)
    assert "while _sd_cond_" in fn.source  # the solver is a while loop, never unrolled


def test_implicit_derivatives_of_a_vector_fixed_point():
    # A deep-equilibrium layer: z = tanh(W z + b) / 2, solved by iterating to convergence.
    W, b = sd.matrix("W", 3, 3), sd.vector("b", 3)

    def iterate(f, z0):
        return sd.while_loop(lambda z: sd.amax(sd.abs(f(z))) > 1e-14,
                             lambda z: z - f(z), z0)

    z = sd.custom_root(lambda z: z - 0.5 * sd.tanh(W @ z + b), np.zeros(3), iterate)
    loss = sd.sum(z * z * z) + sd.sum(z)
    fn = sd.compile(loss, args=[W, b], background=False)
    rng = np.random.default_rng(7)
    Wv, bv = rng.normal(size=(3, 3)), rng.normal(size=3)

    def direct(Wm, bm):
        zv = np.zeros(3)
        for _ in range(300):
            zv = 0.5 * np.tanh(Wm @ zv + bm)
        return np.sum(zv ** 3) + np.sum(zv)

    _close(fn(Wv, bv), direct(Wv, bv))
    gW, gb = fn.grad(Wv, bv)
    eps = 1e-6
    fd_b = [(direct(Wv, bv + eps * e) - direct(Wv, bv - eps * e)) / (2 * eps)
            for e in np.eye(3)]
    np.testing.assert_allclose(gb, fd_b, rtol=1e-7, atol=1e-9)
    E = np.zeros((3, 3))
    E[1, 2] = 1.0
    np.testing.assert_allclose(gW[1, 2], (direct(Wv + eps * E, bv) - direct(Wv - eps * E, bv))
                               / (2 * eps), rtol=1e-7)
    d = (np.ones((3, 3)) * 0.1, np.array([1.0, -1.0, 0.5]))
    plus = fn.grad(Wv + eps * d[0], bv + eps * d[1])
    minus = fn.grad(Wv - eps * d[0], bv - eps * d[1])
    for h, p, m in zip(fn.hvp(Wv, bv, *d), plus, minus, strict=True):
        np.testing.assert_allclose(h, (p - m) / (2 * eps), rtol=1e-5, atol=1e-7)


def test_custom_root_checks_shapes():
    x0 = sd.const(1.0)
    with pytest.raises(sd.ShapeError, match="f\\(x\\) must have"):
        sd.custom_root(lambda x: sd.stack([x, x]), x0, lambda f, x: x)
    with pytest.raises(sd.ShapeError, match="scalar or a vector"):
        sd.custom_root(lambda x: x, np.zeros((2, 2)), lambda f, x: x)


def test_loops_print_their_step_and_unroll_in_sympy_where_meaningful():
    import sympy

    a, b = sd.symbols("a b")
    horner = sd.fori_loop(0, 4, lambda i, c: c * a + sd.sin(i * b), sd.const(1.0))
    assert ("step($scan0_c0, $scan0_c1, $scan0_x0) -> carry ($scan0_c0 + 1, "
            "$scan0_c1*a + sin($scan0_c0*b))") in str(horner)
    A, B = sympy.symbols("a b", real=True)
    want = ((A ** 2 + sympy.sin(B)) * A + sympy.sin(2 * B)) * A + sympy.sin(3 * B)
    assert sympy.expand(sd.to_sympy(horner) - want) == 0
    assert sympy.expand(sd.to_sympy(sd.diff(horner, a)) - sympy.diff(want, A)) == 0
    x0, r = sd.symbols("x0 r")
    loop = sd.while_loop(lambda c: c < 10.0, lambda c: c * r, x0)
    assert "while less($while0_c0, 10)" in str(loop)
    with pytest.raises(sd.SymdiffError, match="no SymPy form"):
        sd.to_sympy(loop)
    # Over a symbolic array the steps unroll on its elements (xs[0], xs[1], ...).
    total = sd.to_sympy(sd.scan(lambda c, x: (c * x, None), a, sd.vector("xs", 3))[0])
    xs = sympy.IndexedBase("xs", real=True)
    assert sympy.expand(total - A * xs[0] * xs[1] * xs[2]) == 0
    with pytest.raises(sd.SymdiffError, match="scalar carries"):
        sd.to_sympy(sd.scan(lambda c, x: (c * 2.0, None), sd.vector("v", 2), sd.vector("xs", 3)
                            )[0])


def test_loops_in_text_and_on_the_command_line(tmp_path):
    import io

    from symdiff.cli import run

    text = "fori_loop(0, 3, lambda i, c: c*a + sin(i*b), 1)"
    loop = sd.parse(text)
    c = 1.0
    for i in range(3):
        c = c * 0.5 + np.sin(i * 1.0)
    _close(sd.evaluate(loop, a=0.5, b=1.0), c)
    _close(sd.evaluate(sd.parse("while_loop(lambda c: c < 10, lambda c: c*r, x0)"),
                       r=1.3, x0=1.0), 1.3 ** 9)
    _close(sd.evaluate(sd.parse("fori_loop(0, n, lambda i, c: c + i, 0)"), n=4.0), 6.0)
    out = io.StringIO()
    assert run([text, "--wrt", "a", "--at", "a=0.5", "b=1", "-o",
                str(tmp_path / "m.py")], out=out) == 0
    want = float(3 * 0.5 ** 2 + np.sin(1.0))  # d/da of a**3 + a*sin(b) + sin(2b)
    assert f"= {want!r}" in out.getvalue() and (tmp_path / "m.py").exists()
    for bad, message in [("fori_loop(0, 3, lambda i: i, 1)", "2 plain parameter"),
                         ("fori_loop(0, 3, c, 1)", "must be a lambda"),
                         ("while_loop(lambda c: c < 1, lambda c: c)", "is called as"),
                         ("a < b < c", "chained comparison")]:
        with pytest.raises(sd.ParseError, match=message):
            sd.parse(bad)


def test_linear_solve_values_and_derivatives():
    A, b = sd.matrix("A", 3, 3), sd.vector("b", 3)
    x = sd.solve(A, b)
    f = sd.sum(x * x * x)
    fn = sd.compile(f, args=[A, b], background=False)
    rng = np.random.default_rng(3)
    Av, bv = rng.normal(size=(3, 3)) + 3 * np.eye(3), rng.normal(size=3)

    def direct(Am, bm):
        return np.sum(np.linalg.solve(Am, bm) ** 3)

    _close(fn(Av, bv), direct(Av, bv))
    gA, gb = fn.grad(Av, bv)
    _close(sd.evaluate(sd.grad(f, [A]), A=Av, b=bv)[0], gA)
    eps = 1e-6
    for k in range(3):
        e = np.eye(3)[k]
        assert abs((direct(Av, bv + eps * e) - direct(Av, bv - eps * e)) / (2 * eps)
                   - gb[k]) < 1e-7
        E = np.outer(e, np.eye(3)[(k + 1) % 3])
        assert abs((direct(Av + eps * E, bv) - direct(Av - eps * E, bv)) / (2 * eps)
                   - np.sum(gA * E)) < 1e-7
    with pytest.raises(sd.ShapeError, match="square matrix"):
        sd.solve(sd.matrix("M", 2, 3), sd.vector("c", 2))


def test_loop_counters_stay_exact_or_say_why_not():
    # A float64 index past 2**53 cannot take every value: static bounds there are an
    # error; runtime bounds count steps exactly, so the loop ends (it never did).
    with pytest.raises(sd.SymdiffError, match="beyond 2\\*\\*53"):
        sd.fori_loop(2 ** 60, 2 ** 60 + 4, lambda i, c: c + (i - 2 ** 60), 0.0)
    with pytest.raises(sd.SymdiffError, match="max_steps must be an int from 1 to 2\\*\\*53"):
        sd.while_loop(lambda c: c < 1.0, lambda c: c + 1.0, 0.0, max_steps=2 ** 70)
    lo, hi = sd.symbols("lo hi")
    total = sd.fori_loop(lo, hi, lambda i, c: c + i * i, 0.0)
    fn = sd.compile(total, args=[lo, hi], background=False)
    assert fn(2.0, 5.0) == 29.0 and fn(2.5, 5.0) == 38.75  # i = 2.5, 3.5, 4.5
    assert fn(2.0 ** 60, 2.0 ** 60 + 1024) == pytest.approx(1024 * 2.0 ** 120, rel=1e-12)
    assert sd.evaluate(sd.diff(total, lo), lo=2.0, hi=5.0) == 18.0


def test_a_while_loop_limit_raises_in_both_tiers_and_changes_nothing_else():
    r = sd.symbol("r")
    loop = sd.while_loop(lambda c: c < 10.0, lambda c: c * r, 1.0, limit=100)
    free = sd.while_loop(lambda c: c < 10.0, lambda c: c * r, 1.0)
    for background in (True, False):
        fn = sd.compile(loop, args=[r], background=background)
        call = fn.loader.evaluator("forward") if background else fn
        assert call(1.3) == sd.evaluate(free, r=1.3)  # ends in time: the same answer
        with pytest.raises(RuntimeError, match="ran past its limit of 100 iterations"):
            call(1.0)  # would never end
    fn = sd.compile(loop, args=[r], background=False)
    assert "raise RuntimeError" in fn.source
    _close(fn.jvp(1.3, np.array([1.0])), sd.evaluate(sd.diff(free, r), r=1.3))
    with pytest.raises(sd.SymdiffError, match="limit must be an int"):
        sd.while_loop(lambda c: c < 1.0, lambda c: c, 0.0, limit=0)
    with pytest.raises(sd.SymdiffError, match="max_steps bounds the loop already"):
        sd.while_loop(lambda c: c < 1.0, lambda c: c, 0.0, limit=5, max_steps=5)


def test_fori_loop_number_bounds():
    x = sd.symbol("x")
    whole = sd.fori_loop(0, np.float64(3), lambda i, c: c * x + i, 1.0)  # a scan: grads too
    fn = sd.compile(whole, args=[x], background=False)
    assert fn(2.0) == 12.0 and fn.grad(2.0).tolist() == [13.0]
    assert sd.fori_loop(0.5, 3.5, lambda i, c: c + i, 0.0) == 4.5  # i = 0.5, 1.5, 2.5
    for bound in (float("inf"), 2.0 ** 60):
        with pytest.raises(sd.SymdiffError, match="finite number of at most 2\\*\\*53"):
            sd.fori_loop(0.0, bound, lambda i, c: c + i, 0.0)
