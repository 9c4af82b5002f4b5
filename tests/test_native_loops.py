"""The native lowering of loops (codegen.native.loops): scans, fori and while loops with
their bodies written into the loop, scalar carries in registers, array carries in two
buffers made once, invariants computed before the loop.  Each function is checked
against the Numba lowering bit for bit, for values and derivatives to second order."""

import numpy as np
import pytest

import symdiff as sd
from codegen import array_function, array_lowerable
from symdiff.runtime import native

RNG = np.random.default_rng(11)


def _rnn():
    """A scalar carry over an open length; invariants read through indexing."""
    def f(w, xs):
        def step(h, x):
            h2 = np.tanh(w[0] * h + w[1] * x + w[2])
            return h2, h2 * h2
        last, ys = sd.scan(step, 0.0, xs)
        return last + np.sum(ys)
    return f, [sd.vector("w", 3), sd.vector("xs", None)]


def _pendulum():
    """RK4 on a 2-vector carry (fori_loop: a scan over a constant)."""
    def f(p, y0):
        def rhs(y):
            return sd.concatenate([y[1:], -p[0] * np.sin(y[:1]) - p[1] * y[1:]])

        def body(i, y):
            h = 0.05
            k1 = rhs(y)
            k2 = rhs(y + h / 2 * k1)
            k3 = rhs(y + h / 2 * k2)
            k4 = rhs(y + h * k3)
            return y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        y = sd.fori_loop(0, 20, body, y0)
        return np.sum(y * y)
    return f, [sd.vector("p", 2), sd.vector("y0", 2)]


def _reverse_two_carries():
    """A reverse scan carrying a scalar and a vector whose parts trade places, with
    array per-step outputs."""
    def f(a, xs):
        def step(carry, x):
            s, v = carry
            v2 = sd.concatenate([v[1:], v[:1] * s]) + x * a
            return (s * 0.9 + np.sum(v) * 0.1, v2), np.sin(v2)
        (s, v), ys = sd.scan(step, (1.0, a), xs, reverse=True)
        return s + np.sum(v ** 2) + np.sum(ys * ys)
    return f, [sd.vector("a", 3), sd.matrix("xs", 5, 3)]


def _bounded_while():
    """A while loop with max_steps (a scan whose steps keep the carry once done)."""
    def f(x):
        def body(c):
            return (c[0] * 0.5 + np.sum(x ** 2), c[1] + 1.0)
        return sd.while_loop(lambda c: c[1] < 6.0, body, (x[0], 0.0), max_steps=9)[0]
    return f, [sd.vector("x", 3)]


def _nested():
    """A scan whose body runs a scan over the same data."""
    def f(w, xs):
        def outer(h, x):
            inner, _ = sd.scan(lambda g, z: (np.tanh(g * w[0] + z * x), None), h, xs)
            return inner * w[1], inner
        last, ys = sd.scan(outer, w[2], xs)
        return last + np.sum(ys)
    return f, [sd.vector("w", 3), sd.vector("xs", 4)]


FUNCTIONS = {"rnn": _rnn, "pendulum": _pendulum, "reverse": _reverse_two_carries,
             "bounded while": _bounded_while, "nested": _nested}


def _flat(result) -> np.ndarray:
    """A result's numbers (nested tuples of floats and arrays) in one vector."""
    if isinstance(result, tuple):
        return np.concatenate([_flat(part) for part in result])
    return np.ravel(np.asarray(result, dtype=float))


def _arguments(args, length=7):
    return [RNG.uniform(0.2, 0.9, tuple(length if d is None else d for d in s.shape))
            for s in args]


@pytest.fixture(scope="module", params=sorted(FUNCTIONS))
def pair(request):
    function, args = FUNCTIONS[request.param]()
    return (sd.compile(function, args=args, backend="native", background=False),
            sd.compile(function, args=args, backend="numba", background=False), args)


@pytest.mark.parametrize("method", ["forward", "value_and_grad", "hvp", "hessian"])
def test_native_loops_agree_with_numba(pair, method):
    fast, numba, args = pair
    values = _arguments(args)
    if method == "hvp":
        values += [np.ones(np.shape(v)) for v in values]
    got, want = getattr(fast, method)(*values), getattr(numba, method)(*values)
    assert fast.loader.tiers[method] == "native" and not fast.loader.modules
    assert type(got) is type(want)
    np.testing.assert_array_equal(_flat(got), _flat(want))


def test_one_compile_serves_every_length_including_none():
    function, args = _rnn()
    fast = sd.compile(function, args=args, backend="native", background=False)
    numba = sd.compile(function, args=args, backend="numba", background=False)
    for length in (0, 1, 3, 40):
        values = _arguments(args, length)
        np.testing.assert_array_equal(_flat(fast.value_and_grad(*values)),
                                      _flat(numba.value_and_grad(*values)))


def _halving(x):
    """Halve until below 1: an unbounded while loop over an array carry."""
    return sd.while_loop(lambda c: np.sum(c * c) > 1.0, lambda c: c * 0.5 + 0.0 * x, x)


def test_unbounded_while_loops_values_and_forward_mode():
    x = sd.vector("x", 3)
    t = sd.vector("t", 3)
    fast = sd.compile(lambda x: np.sum(_halving(x) ** 3), args=[x], backend="native",
                      background=False)
    numba = sd.compile(lambda x: np.sum(_halving(x) ** 3), args=[x], backend="numba",
                       background=False)
    for value in ([0.1, 0.2, 0.3], [5.0, -7.0, 2.0], [40.0, 1.0, 0.0]):
        value = np.array(value)
        assert fast(value) == numba(value)
        np.testing.assert_array_equal(fast.jvp(value, np.ones(3)), numba.jvp(value, np.ones(3)))
    assert fast.loader.tiers["forward"] == "native"
    del t


def test_runtime_trip_counts_and_zero_steps():
    n = sd.symbol("n")
    x = sd.vector("x", 2)

    def f(n, x):
        return np.sum(sd.fori_loop(0, n, lambda i, y: y * 0.9 + i, x))
    fast = sd.compile(f, args=[n, x], backend="native", background=False)
    for trips in (0.0, 1.0, 5.0):
        y = np.array([1.0, 2.0])
        for _ in range(int(trips)):
            y = y * 0.9 + (_ + 0.0)
        assert fast(trips, np.array([1.0, 2.0])) == pytest.approx(np.sum(y), rel=1e-15)
    assert fast.loader.tiers["forward"] == "native"


@pytest.mark.parametrize(("checkpoint", "reverse", "length"), [
    ("sqrt", False, 50), (3, True, 50), (7, False, None), ("auto", True, None),
    ("sqrt", True, None), (1, False, 50), (1, False, None), ("auto", False, None),
    ("auto", False, 50)])
def test_checkpointed_sweeps_agree_with_numba(checkpoint, reverse, length):
    """Segmented sweeps (every k-th carry kept, the rest recomputed), static and at run
    time (an open length), over a scalar and a vector carry, to second order.  Where a
    forward loop keeps every carry (k = 1: an interval of 1, or "auto" under its memory
    bound) the sweep reads the checkpoint rows in place (Segments._segment_rows)."""
    def f(w, xs):
        def step(carry, x):
            h, v = carry
            h2 = np.tanh(w[0] * h + x + np.sum(v) * w[1])
            return (h2, v * 0.9 + h2), h2 * x
        (last, v), ys = sd.scan(step, (0.5, w), xs, reverse=reverse, checkpoint=checkpoint)
        return last + np.sum(v ** 2) + np.sum(ys)
    args = [sd.vector("w", 2), sd.vector("xs", length)]
    fast = sd.compile(f, args=args, backend="native", background=False)
    numba = sd.compile(f, args=args, backend="numba", background=False)
    for steps in ([50] if length else [0, 1, 2, 9, 50]):
        values = _arguments(args, steps)
        for method, extra in (("value_and_grad", []), ("hvp", [np.ones(2), np.ones(steps)])):
            got = getattr(fast, method)(*values, *extra)
            np.testing.assert_array_equal(_flat(got),
                                          _flat(getattr(numba, method)(*values, *extra)))
    assert fast.loader.tiers["hvp"] == "native"


def test_a_sweep_over_every_kept_carry_copies_and_recomputes_nothing():
    def loops(checkpoint):
        def f(w, xs):
            v, _ = sd.scan(lambda v, x: (np.tanh(v * w + x), None), w, xs,
                           checkpoint=checkpoint)
            return np.sum(v ** 2)
        fn = sd.compile(f, args=[sd.vector("w", 4), sd.vector("xs", 20)], backend="native")
        return array_function(fn.derivation.spec("value_and_grad"),
                              native.layout()).text.count("icmp slt i64")
    # k = 2: the segment's carries recomputed into a buffer (a copy in, a loop of steps,
    # the next checkpoint copied); k = 1: read where they were kept.
    assert loops(1) < loops(2)


def test_the_text_does_not_grow_with_trip_counts():
    texts = []
    for steps in (10, 100_000):  # past the loops LLVM unrolls fully (trip counts to 8)
        function, args = _pendulum()
        xs = sd.vector("xs", steps)

        def f(p, y0, xs):
            y, _ = sd.scan(lambda y, x: (y * p + x, None), y0, xs)
            return np.sum(y)
        fn = sd.compile(f, args=args + [xs], backend="native")
        spec = fn.derivation.spec("value_and_grad")
        assert array_lowerable(spec)
        texts.append(array_function(spec, native.layout()).text)
    assert len(texts[0].splitlines()) == len(texts[1].splitlines())


def test_one_sweep_over_loops_of_different_carry_sizes_uses_one_interval():
    """A Hessian-vector product's sweep reads the forward loop and its tangent loop
    (twice the carry): under "auto" over an open length, both are kept at the interval
    their carries decide together, else the sweep read one with the other's interval."""
    def f(w, xs):
        def step(carry, x):
            h, v = carry
            h2 = np.tanh(h * w[0] + x + np.sum(v) * 1e-3)
            return (h2, v * 0.999 + h2 * w[1]), None
        (last, v), _ = sd.scan(step, (0.5, w[1] + sd.zeros((500,))), xs)
        return last + np.sum(v * v) * 1e-3

    args = [sd.vector("w", 2), sd.vector("xs", None)]
    # 3,000 steps: the forward carry (4 kB a step) alone would be stored whole (12 MB),
    # the tangent loop's (8 kB) checkpointed.
    values = [np.array([0.7, 0.3]), np.linspace(-1.0, 1.0, 3000)]
    direction = [np.array([1.0, -0.5]), np.zeros(3000)]
    kept = sd.compile(lambda w, xs: f(w, xs), args=args, background=False)
    got = kept.hvp(*values, *direction)
    numba = sd.compile(f, args=args, backend="numba", background=False)
    np.testing.assert_array_equal(_flat(got), _flat(numba.hvp(*values, *direction)))
    assert kept.loader.tiers["hvp"] == "native"

    def stored(w, xs):
        def step(carry, x):
            h, v = carry
            h2 = np.tanh(h * w[0] + x + np.sum(v) * 1e-3)
            return (h2, v * 0.999 + h2 * w[1]), None
        (last, v), _ = sd.scan(step, (0.5, w[1] + sd.zeros((500,))), xs,
                               checkpoint="all")
        return last + np.sum(v * v) * 1e-3
    reference = sd.compile(stored, args=args, background=False)
    np.testing.assert_allclose(_flat(got), _flat(reference.hvp(*values, *direction)),
                               rtol=1e-12, atol=1e-12)
