"""The lecture's backward pass written out with the delta formulas, checked against symdiff.

    z_l = W_l a_{l-1} + b_l,  a_l = sigma(z_l),  E = 1/2 sum (a_L - y)^2
    delta_L = sigma'(z_L) * (a_L - y),  delta_l = sigma'(z_l) * (W_{l+1}^T delta_{l+1})
    dE/dW_l = delta_l a_{l-1}^T,  dE/db_l = delta_l

Run: python examples/backprop_by_hand.py
"""

import numpy as np

import symdiff as sd

SIZES = (3, 4, 2)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def backprop(params, x, y):
    """The delta recursion of the lecture, in NumPy."""
    (w1, b1), (w2, b2) = params
    z1 = w1 @ x + b1
    a1 = sigmoid(z1)
    z2 = w2 @ a1 + b2
    a2 = sigmoid(z2)
    delta2 = a2 * (1 - a2) * (a2 - y)          # sigma'(z) = sigma(z) (1 - sigma(z))
    delta1 = a1 * (1 - a1) * (w2.T @ delta2)
    return [np.outer(delta1, x), delta1, np.outer(delta2, a1), delta2]


def symbolic_loss():
    """The same network and loss as symdiff expressions."""
    n0, n1, n2 = SIZES
    w1, b1 = sd.matrix("W1", n1, n0), sd.vector("b1", n1)
    w2, b2 = sd.matrix("W2", n2, n1), sd.vector("b2", n2)
    x, y = sd.vector("x", n0), sd.vector("y", n2)
    a1 = sd.sigmoid(w1 @ x + b1)
    a2 = sd.sigmoid(w2 @ a1 + b2)
    return 0.5 * sd.sum((a2 - y) ** 2), [w1, b1, w2, b2], [x, y]


def main():
    rng = np.random.default_rng(0)
    n0, n1, n2 = SIZES
    params = [(rng.normal(size=(n1, n0)), rng.normal(size=n1)),
              (rng.normal(size=(n2, n1)), rng.normal(size=n2))]
    x, y = rng.normal(size=n0), np.array([0.0, 1.0])

    loss, weights, data = symbolic_loss()
    fn = sd.compile(loss, wrt=weights, args=weights + data)
    flat = [p for layer in params for p in layer]
    by_hand = backprop(params, x, y)
    by_symdiff = fn.grad(*flat, x, y)
    for name, hand, ours in zip(["dE/dW1", "dE/db1", "dE/dW2", "dE/db2"], by_hand, by_symdiff,
                                strict=True):
        print(f"{name}: max |delta formula - symdiff| = {np.abs(hand - ours).max():.2e}")
    worst = max(np.abs(h - o).max() for h, o in zip(by_hand, by_symdiff, strict=True))
    print("agreement:", "yes" if worst < 1e-12 else "NO", f"(worst {worst:.1e})")


if __name__ == "__main__":
    main()
