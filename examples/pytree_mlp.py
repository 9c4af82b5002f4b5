"""A multilayer perceptron whose parameters are a pytree (a dict of layers, each a dict
of arrays), trained by an Adam loop written as for JAX: ``sd.value_and_grad`` gives the
gradient with the parameters' own structure, and ``optree.tree_map`` updates them.

    python examples/pytree_mlp.py [--steps 400]

Regression of y = sin(3 x0) + x1^2 from 256 noisy samples; prints the loss as it falls.
"""

import argparse

import numpy as np
import optree

import symdiff as sd


def init(rng, sizes):
    """One dict per layer: weights scaled by 1/sqrt(fan-in), zero biases."""
    return {f"layer{k}": {"w": rng.normal(size=(m, n)) / np.sqrt(n), "b": np.zeros(m)}
            for k, (n, m) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))}


def predict(params, x):
    h = x
    for k in range(len(params)):
        layer = params[f"layer{k}"]
        h = h @ layer["w"].T + layer["b"]
        if k < len(params) - 1:
            h = np.tanh(h)
    return h[:, 0]


def loss(params, x, y):
    return np.mean((predict(params, x) - y) ** 2)


def adam(params, grads, state, step, rate=0.01, beta1=0.9, beta2=0.999):
    """One Adam update of a pytree of parameters: (new parameters, new moments)."""
    m, v = state
    m = optree.tree_map(lambda m, g: beta1 * m + (1 - beta1) * g, m, grads)
    v = optree.tree_map(lambda v, g: beta2 * v + (1 - beta2) * g * g, v, grads)
    unbias1, unbias2 = 1 - beta1 ** step, 1 - beta2 ** step
    params = optree.tree_map(
        lambda p, m, v: p - rate * (m / unbias1) / (np.sqrt(v / unbias2) + 1e-8),
        params, m, v)
    return params, (m, v)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    steps = parser.parse_args().steps
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 1.0, size=(256, 2))
    y = np.sin(3 * x[:, 0]) + x[:, 1] ** 2 + 0.05 * rng.normal(size=256)
    params = init(rng, [2, 32, 32, 1])
    value_and_grad = sd.value_and_grad(loss, argnums=0)
    first = None
    state = (optree.tree_map(np.zeros_like, params), optree.tree_map(np.zeros_like, params))
    for step in range(1, steps + 1):
        value, grads = value_and_grad(params, x, y)
        first = value if first is None else first
        params, state = adam(params, grads, state, step)
        if step % 100 == 0 or step == 1:
            print(f"step {step:4d}: loss {value:.5f}")
    print(f"loss {first:.4f} -> {loss(params, x, y):.4f} (noise variance 0.0025)")


if __name__ == "__main__":
    main()
