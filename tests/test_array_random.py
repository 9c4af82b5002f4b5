"""Random array expressions (seeded): the compiled loops (fusion, broadcasting, reductions,
matmuls) agree with the reference evaluator, forward and backward, in one compile."""

import random

import numpy as np
import pytest

import symdiff as sd

A, B = sd.matrix("A", 3, 4), sd.matrix("B", 3, 4)
V, U, M = sd.vector("v", 4), sd.vector("u", 3), sd.matrix("M", 4, 2)
S = sd.symbol("s")
LEAVES = [A, B, V, U, M, S]
UNARY = [np.sin, np.tanh, sd.sigmoid, sd.softplus, lambda x: np.exp(0.1 * x),
         lambda x: x * x, sd.relu, lambda x: sd.where(x > 0.2, x, 0.5 * x)]


def _random_expression(rng: random.Random, depth: int):
    if depth == 0:
        return rng.choice(LEAVES)
    x = _random_expression(rng, depth - 1)
    choice = rng.randrange(8)
    if choice == 0:
        return rng.choice(UNARY)(x)
    if choice == 1:  # a second operand that broadcasts against x
        y = _random_expression(rng, depth - 1)
        try:
            return rng.choice([x + y, x * y, x - 0.5 * y, x / (2.0 + y * y)])
        except sd.ShapeError:
            return x * S
    if choice == 2 and x.ndim:
        return sd.sum(x, axis=rng.choice([None] + list(range(x.ndim))),
                      keepdims=rng.random() < 0.5)
    if choice == 3 and x.shape == (3, 4):
        return x @ M
    if choice == 4 and x.ndim == 2:
        return x.T
    if choice == 5 and x.ndim and x.shape[0] >= 2:
        pick = rng.random()
        return x[1:] if pick < 0.35 else x[0] if pick < 0.7 else x[[1, 0, 1, -1]]
    if choice == 6 and x.ndim:
        return sd.amax(x, axis=-1) + sd.logsumexp(x, axis=-1)
    if choice == 7 and x.shape == (3, 4):
        return x * V + sd.reshape(U, (3, 1))
    return rng.choice(UNARY)(x)


CASES = 20


@pytest.fixture(scope="module")
def compiled():
    rng = random.Random(7)
    losses = []
    for _ in range(CASES):
        e = _random_expression(rng, rng.randrange(2, 6))
        losses.append(sd.sum(e * e) if e.shape else e * e)
    return losses, sd.compile(losses, wrt=LEAVES, args=LEAVES)


@pytest.mark.slow
def test_random_array_programs_forward_and_backward(compiled):
    losses, fn = compiled
    values = np.random.default_rng(3)
    point = {s.value: values.normal(size=s.shape) if s.shape else 0.7 for s in LEAVES}
    args = [point[s.value] for s in LEAVES]
    expected = sd.evaluate(losses, point)
    np.testing.assert_allclose(fn(*args), expected, rtol=1e-12, atol=1e-13)
    cotangent = values.normal(size=CASES)
    total = sum(float(c) * loss for c, loss in zip(cotangent, losses, strict=True))
    want = sd.evaluate(sd.grad(total, LEAVES), point)
    for got, ref in zip(fn.vjp(*args, cotangent), want, strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-12)
