"""Full sums in partial sums and blocks (codegen.numba.sums lanes_sum / blocked_sum):
the same values as NumPy at every length around the lane and block sizes, reversed and
strided reads included."""

import numpy as np
import pytest

import symdiff as sd

X = sd.vector("x", None)
CASES = {
    "sum(exp)": (sd.sum(sd.exp(X)), lambda a: np.sum(np.exp(a))),
    "sum(tanh * x)": (sd.sum(sd.tanh(X) * X), lambda a: np.sum(np.tanh(a) * a)),
    "sum(x * x)": (sd.sum(X * X), lambda a: np.sum(a * a)),
    "logsumexp": (sd.logsumexp(X), lambda a: np.log(np.sum(np.exp(a - a.max()))) + a.max()),
}


@pytest.fixture(scope="module")
def compiled():
    return {name: sd.compile(f, args=[X], background=False) for name, (f, _) in CASES.items()}


@pytest.mark.parametrize("n", [1, 3, 4, 5, 255, 256, 257, 1000])
def test_sums_match_numpy_at_every_length(compiled, n):
    a = np.random.default_rng(n).normal(size=n)
    for name, (_, reference) in CASES.items():
        np.testing.assert_allclose(compiled[name](a), reference(a), rtol=1e-13, err_msg=name)
        np.testing.assert_allclose(compiled[name].grad(a),
                                   sd.evaluate(sd.grad(CASES[name][0], [X]), x=a)[0],
                                   rtol=1e-13, err_msg=name)


def test_sum_of_a_reversed_read():
    m = sd.matrix("m", 5, 4)
    f = sd.sum(m[::-1, 1] * 2.0 + 1.0)  # index arithmetic in every lane: 4 - (_i0 + 1)
    values = np.arange(20.0).reshape(5, 4)
    assert sd.compile(f, args=[m], background=False)(values) == np.sum(values[::-1, 1] * 2 + 1)
