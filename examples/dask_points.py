"""Gradients of a function of scalars at 10^8 points, chunk by chunk in Dask's workers.

The points are lazy Dask arrays (generated in the workers, never all in memory at once);
``fn.grad(x, y)`` on them is a lazy (points, 2) Dask array with one task per chunk running
symdiff's compiled, parallel batched gradient.  Dask reduces it: the mean gradient and the
share of points where the gradient is small.

Run: python examples/dask_points.py [--points 100000000] [--chunk 10000000] [--workers 2]
"""

import argparse
import time

import dask
import dask.array as da
from distributed import Client, LocalCluster

import symdiff as sd

sd.show_progress()


def main(points=10**8, chunk=10**7, workers=2):
    rosenbrock = sd.compile("(1 - x)**2 + 100*(y - x**2)**2", background=False)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster):
        x = da.random.default_rng(0).uniform(-2.0, 2.0, size=points, chunks=chunk)
        y = da.random.default_rng(1).uniform(-1.0, 3.0, size=points, chunks=chunk)
        gradient = rosenbrock.grad(x, y)  # lazy: (points, 2)
        began = time.perf_counter()
        mean, small = dask.compute(gradient.mean(axis=0),
                                   ((gradient ** 2).sum(axis=1) < 1.0).mean())
        seconds = time.perf_counter() - began
    print(f"{points:,} gradients in {x.numblocks[0]} chunks on {workers} worker processes: "
          f"{seconds:.1f} s; mean gradient ({mean[0]:.4f}, {mean[1]:.4f}); |gradient| < 1 at "
          f"{small:.4%} of the points")
    return mean, small


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=10**8)
    parser.add_argument("--chunk", type=int, default=10**7)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    main(args.points, args.chunk, args.workers)
