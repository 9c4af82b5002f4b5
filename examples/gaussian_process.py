"""A Gaussian process fitted by SciPy with symdiff's gradient: the negative log marginal
likelihood of noisy samples of a smooth function, in its three log hyperparameters
(length scale, signal variance, noise variance), written as NumPy code with
``np.linalg.cholesky`` and ``np.linalg.slogdet``, as one would write it for JAX.

    python examples/gaussian_process.py [--points 40]

Prints the fitted hyperparameters, the likelihood before and after, and checks the
compiled gradient against central differences at the start.
"""

import argparse

import numpy as np
from scipy.optimize import minimize

import symdiff as sd


def negative_log_likelihood(x, y):
    """The GP's negative log marginal likelihood at log hyperparameters ``theta``."""
    squared = (x[:, None] - x[None, :]) ** 2
    n = len(y)

    def nll(theta):
        length, signal, noise = np.exp(theta[0]), np.exp(theta[1]), np.exp(theta[2])
        kernel = signal * np.exp(-0.5 * squared / length ** 2) + (noise + 1e-8) * np.eye(n)
        factor = np.linalg.cholesky(kernel)
        alpha = np.linalg.solve(factor, y)  # L^-1 y: y^T K^-1 y = |alpha|^2
        _, logdet = np.linalg.slogdet(kernel)
        return 0.5 * np.sum(alpha ** 2) + 0.5 * logdet + 0.5 * n * np.log(2 * np.pi)

    return nll


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=40)
    n = parser.parse_args().points
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(0.0, 6.0, n))
    y = np.sin(x) + 0.1 * rng.normal(size=n)
    nll = negative_log_likelihood(x, y)
    fn = sd.compile(nll, args=[sd.vector("theta", 3)])
    start = np.zeros(3)
    h = 1e-6
    central = np.array([(nll(start + h * e) - nll(start - h * e)) / (2 * h) for e in np.eye(3)])
    error = np.max(np.abs(fn.grad(start) - central)) / np.max(np.abs(central))
    print(f"gradient against central differences at the start: relative error {error:.1e}")
    result = minimize(fn, start, jac=fn.grad, method="L-BFGS-B")
    length, signal, noise = np.exp(result.x)
    print(f"negative log likelihood {fn(start):.4f} -> {result.fun:.4f} in {result.nit} "
          f"iterations ({result.message})")
    print(f"length scale {length:.3f}, signal variance {signal:.3f}, noise variance "
          f"{noise:.5f} (the data's noise variance is 0.01)")


if __name__ == "__main__":
    main()
