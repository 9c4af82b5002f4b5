"""The digits MLP trained with its data as a Dask array: every loss and gradient is a sum of
per-chunk results computed in Dask's workers (a LocalCluster of worker processes).

The loss is the mean cross-entropy over an open batch dimension plus an L2 penalty; L-BFGS
(SciPy) asks for the full-batch value and gradient at every step.  symdiff splits the loss
at its sums over the rows: each chunk task computes those sums and their Jacobian, Dask adds
them up, and the mean and the penalty are applied once to the totals.

Run: python examples/dask_digits.py [--workers 2] [--chunk 256] [--steps 150]
"""

import argparse
import time

import dask.array as da
import numpy as np
from distributed import Client, LocalCluster
from scipy.optimize import minimize
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import symdiff as sd

sd.show_progress()


def build(n_in=64, hidden=32, n_out=10, penalty=1e-4):
    """The compiled loss (value and gradient over chunks) and the predictor."""
    w1, b1 = sd.matrix("W1", hidden, n_in), sd.vector("b1", hidden)
    w2, b2 = sd.matrix("W2", n_out, hidden), sd.vector("b2", n_out)
    x, y = sd.matrix("X", None, n_in), sd.matrix("Y", None, n_out)  # open: any chunk size
    logits = sd.tanh(x @ w1.T + b1) @ w2.T + b2
    weights = [w1, b1, w2, b2]
    loss = (-sd.mean(sd.sum(y * sd.log_softmax(logits, axis=1), axis=1))
            + penalty * (sd.sum(w1 ** 2) + sd.sum(w2 ** 2)))
    return (sd.compile(loss, wrt=weights, args=weights + [x, y], background=False),
            sd.compile(logits, args=weights + [x], background=False))


def main(workers=2, chunk=256, steps=150, seed=0):
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data / 16.0, digits.target, test_size=0.25, random_state=seed,
        stratify=digits.target)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        rows = da.from_array(x_train, chunks=(chunk, 64)).persist()  # held by the workers
        labels = da.from_array(np.eye(10)[y_train], chunks=(chunk, 10)).persist()
        print(f"{len(x_train)} training rows in {rows.numblocks[0]} chunks on "
              f"{len(client.scheduler_info()['workers'])} worker processes", flush=True)
        loss, predict = build()
        rng = np.random.default_rng(seed)
        shapes = [(32, 64), (32,), (10, 32), (10,)]
        sizes = [int(np.prod(s)) for s in shapes]

        def unpack(flat):
            return [part.reshape(s) for part, s in zip(np.split(flat, np.cumsum(sizes)[:-1]),
                                                       shapes, strict=True)]

        def value_and_grad(flat):
            value, grads = loss.value_and_grad(*unpack(flat), rows, labels)
            return value, np.concatenate([g.ravel() for g in grads])

        start = np.concatenate([rng.normal(size=sizes[0]) / 8, np.zeros(32),
                                rng.normal(size=sizes[2]) / np.sqrt(32), np.zeros(10)])
        began = time.perf_counter()
        result = minimize(value_and_grad, start, jac=True, method="L-BFGS-B",
                          options={"maxiter": steps})
        seconds = time.perf_counter() - began
    accuracy = np.mean(predict(*unpack(result.x), x_test).argmax(axis=1) == y_test)
    print(f"L-BFGS: {result.nit} steps, {result.nfev} chunked evaluations in {seconds:.1f} s; "
          f"loss {result.fun:.4f}, test accuracy {accuracy:.1%}")
    return accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=256, help="rows per chunk")
    parser.add_argument("--steps", type=int, default=150, help="L-BFGS iterations at most")
    args = parser.parse_args()
    main(args.workers, args.chunk, args.steps)
