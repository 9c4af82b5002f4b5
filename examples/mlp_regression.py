"""Regression f: R^2 -> R^2 with the lecture's loss 1/2 sum (a - y)^2, trained by online SGD
(one example at a time) on a synthetic function.  Run: python examples/mlp_regression.py
"""

import time

import numpy as np

import symdiff as sd

HIDDEN = 16


def target(x):
    return np.array([np.sin(2 * x[0]) * np.cos(x[1]), 0.5 * x[0] * x[1]])


def main(steps=30_000, lr=0.05, seed=0):
    w1, b1 = sd.matrix("W1", HIDDEN, 2), sd.vector("b1", HIDDEN)
    w2, b2 = sd.matrix("W2", 2, HIDDEN), sd.vector("b2", 2)
    x, y = sd.vector("x", 2), sd.vector("y", 2)
    a = w2 @ np.tanh(w1 @ x + b1) + b2           # linear output layer
    loss = 0.5 * sd.sum((a - y) ** 2)
    weights = [w1, b1, w2, b2]
    fn = sd.compile(loss, wrt=weights, args=weights + [x, y])

    rng = np.random.default_rng(seed)
    params = [rng.normal(size=(HIDDEN, 2)) * 0.5, np.zeros(HIDDEN),
              rng.normal(size=(2, HIDDEN)) * 0.5, np.zeros(2)]
    start, running, history = time.perf_counter(), 0.0, []
    for step in range(1, steps + 1):
        xi = rng.uniform(-1.5, 1.5, size=2)
        value, grads = fn.value_and_grad(*params, xi, target(xi))
        for p, g in zip(params, grads, strict=True):
            p -= lr * g
        running += value
        if step % 5000 == 0:
            history.append(running / 5000)
            print(f"step {step:6d}: mean loss {history[-1]:.5f} "
                  f"({time.perf_counter() - start:.1f} s)")
            running = 0.0
    return history


if __name__ == "__main__":
    main()
