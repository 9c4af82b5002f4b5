"""An MLP on scikit-learn's bundled digits (8x8 images, 10 classes; no download), trained by
minibatch SGD on the log-softmax cross-entropy with symdiff's compiled value_and_grad.

Run: python examples/mlp_digits.py [--activation sigmoid|tanh|relu] [--epochs N]
"""

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import symdiff as sd

sd.show_progress()  # slow compiles say what they are doing (stderr)

ACTIVATIONS = {"sigmoid": sd.sigmoid, "tanh": sd.tanh, "relu": sd.relu}


def build(n_in, n_hidden, n_out, activation):
    """Compiled loss gradient and predictor; the batch dimension is left open (None)."""
    w1, b1 = sd.matrix("W1", n_hidden, n_in), sd.vector("b1", n_hidden)
    w2, b2 = sd.matrix("W2", n_out, n_hidden), sd.vector("b2", n_out)
    x, y = sd.matrix("X", None, n_in), sd.matrix("Y", None, n_out)   # Y: one-hot labels
    logits = ACTIVATIONS[activation](x @ w1.T + b1) @ w2.T + b2
    loss = -sd.sum(y * sd.log_softmax(logits, axis=1))   # summed over the minibatch
    weights = [w1, b1, w2, b2]
    train = sd.compile(loss, wrt=weights, args=weights + [x, y])
    predict = sd.compile(logits, args=weights + [x])
    return train, predict


def main(activation="tanh", epochs=30, hidden=64, batch=32, lr=0.3, seed=0):
    digits = load_digits()
    x_all = digits.data / 16.0
    x_train, x_test, y_train, y_test = train_test_split(
        x_all, digits.target, test_size=0.25, random_state=seed, stratify=digits.target)
    onehot = np.eye(10)[y_train]

    start = time.perf_counter()
    train, predict = build(64, hidden, 10, activation)
    rng = np.random.default_rng(seed)
    params = [rng.normal(size=(hidden, 64)) * np.sqrt(1 / 64), np.zeros(hidden),
              rng.normal(size=(10, hidden)) * np.sqrt(1 / hidden), np.zeros(10)]
    accuracy = 0.0
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(x_train))
        total = 0.0
        for lo in range(0, len(order), batch):     # the last minibatch is smaller
            idx = order[lo:lo + batch]
            value, grads = train.value_and_grad(*params, x_train[idx], onehot[idx])
            for p, g in zip(params, grads, strict=True):
                p -= (lr / len(idx)) * g
            total += value
        accuracy = np.mean(predict(*params, x_test).argmax(axis=1) == y_test)
        print(f"epoch {epoch:2d}  loss {total / len(x_train):.4f}  test accuracy "
              f"{accuracy:.1%}  time {time.perf_counter() - start:.1f} s", flush=True)
    return accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--activation", choices=sorted(ACTIVATIONS), default="tanh")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.3, help="learning rate per example")
    args = parser.parse_args()
    main(args.activation, args.epochs, args.hidden, lr=args.lr)
