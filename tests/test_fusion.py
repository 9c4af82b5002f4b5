"""Elementwise arrays of one shape computed in one loop (codegen.numba.fused)."""

import numpy as np

import symdiff as sd

N = 50
PERMUTATION = np.random.default_rng(1).permutation(N)


def _chain():
    x = sd.vector("x", N)
    a = x * 2.0 + 1.0
    b = a * a - x  # a read twice: materialized on its own before fusion
    c = b * a + sd.tanh(b)
    # Next in the schedule, read twice (an array): reads a at other positions, so a must
    # be complete before it runs, and it cannot join a's loop.
    backwards = a[::-1]  # read twice: a view, index arithmetic in the loops reading it
    reversed_ = backwards * c + backwards * b
    shuffled = a[PERMUTATION] * c  # the same through a gather
    f = (sd.sum(reversed_ * reversed_) + sd.sum(reversed_) + sd.sum(c * c)
         + sd.sum(b[1:] * a[:-1]) + sd.sum(sd.sin(c)) + sd.sum(shuffled * shuffled)
         + sd.sum(shuffled))
    return x, f


def test_a_chain_of_arrays_is_one_loop_and_keeps_its_values():
    x, f = _chain()
    fn = sd.compile(f, args=[x], background=False)
    source = fn.lower("forward").source
    forward = source[source.index("def forward"):]
    # a, b and c in one loop, the reversed and the shuffled arrays in loops of their own.
    assert forward.count(f"for _i0 in range({N}):") == 3
    v = np.random.default_rng(0).normal(size=N)
    np.testing.assert_allclose(fn(v), sd.evaluate(f, {"x": v}), rtol=1e-13)
    value, grad = fn.value_and_grad(v)
    want = sd.evaluate(sd.grad(f, [x])[0], {"x": v})
    np.testing.assert_allclose(grad, want, rtol=1e-12, atol=1e-12)
    step, direction = 1e-6, np.random.default_rng(2).normal(size=N)
    slope = (fn(v + step * direction) - fn(v - step * direction)) / (2 * step)
    np.testing.assert_allclose(grad @ direction, slope, rtol=1e-6)


def test_opaque_math_keeps_its_own_loop():
    x = sd.vector("x", N)
    a = sd.sin(x) * 2.0  # a C call: the loop would not vectorize
    b = a * a + x
    c = b * a
    f = sd.sum(c) + sd.sum(b * x)
    fn = sd.compile(f, args=[x], background=False)
    source = fn.lower("forward").source
    forward = source[source.index("def forward"):]
    assert forward.count(f"for _i0 in range({N}):") == 2  # sin's loop, then b and c
    v = np.linspace(-2.0, 2.0, N)
    np.testing.assert_allclose(fn(v), sd.evaluate(f, {"x": v}), rtol=1e-13)


def test_a_fused_root_read_by_a_recomputed_producer_is_stored():
    # 0.5 * sign(x - c) (maximum's derivative) is a root of a fused loop and read by two
    # cheap producers that are each computed in every loop reading them: one of those
    # loops is elsewhere, so the root is stored (the Numba lowering raised KeyError).
    def f(x, c):
        s = np.sum(np.maximum(x[:, None, :], c[None]) * c[None], axis=-1)
        return np.sum(s ** 2)
    args = [sd.matrix("x", 3, 12), sd.matrix("c", 13, 1)]
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 12)), rng.normal(size=(13, 1))
    tangents = rng.normal(size=(3, 12)), rng.normal(size=(13, 1))
    numba, native = (sd.compile(f, args=args, backend=b, background=False)
                     for b in ("numba", "native"))
    for a, b in zip(numba.hvp(*values, *tangents), native.hvp(*values, *tangents),
                    strict=True):
        assert np.array_equal(a, b)
