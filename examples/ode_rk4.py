"""The gradient of an ODE integrated by RK4 over 1,000 steps with respect to its
parameters, from one compiled scan.

Lotka-Volterra predator-prey dynamics, y = (prey, predators):

    prey' = alpha prey - beta prey predators,   predators' = delta prey predators - gamma predators

integrated by classical Runge-Kutta with step dt; the loss is the sum over the steps of
the squared distance to observed states.  The integration is ``sd.scan`` over the
observations (an open length: one compile serves every number of steps), so the
generated code is one loop whatever the step count, and the gradient is a reverse scan
over the stored states.  The gradient is checked against central finite differences and
vanishes at the parameters that produced the observations.

    python examples/ode_rk4.py [--steps 1000]
"""

import argparse
import time

import numpy as np

import symdiff as sd

sd.show_progress()  # slow compiles say what they are doing (stderr)

DT = 0.01
TRUE = np.array([1.1, 0.4, 0.4, 0.1])  # alpha, beta, gamma, delta
Y0 = np.array([10.0, 5.0])


def rates(y, theta):
    """The Lotka-Volterra right-hand side (works on symbols and on NumPy arrays)."""
    prey, predators = y[0], y[1]
    alpha, beta, gamma, delta = theta[0], theta[1], theta[2], theta[3]
    return [alpha * prey - beta * prey * predators, delta * prey * predators - gamma * predators]


def rk4(y, theta, stack):
    k1 = stack(rates(y, theta))
    k2 = stack(rates(y + 0.5 * DT * k1, theta))
    k3 = stack(rates(y + 0.5 * DT * k2, theta))
    k4 = stack(rates(y + DT * k3, theta))
    return y + DT / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def loss(theta, observed):
    """Sum over the steps of |state - observation|^2, the states integrated by RK4."""
    def step(y, seen):
        y = rk4(y, theta, sd.stack)
        return y, sd.sum((y - seen) ** 2)

    _, misfits = sd.scan(step, Y0, observed)
    return sd.sum(misfits)


def observations(steps: int) -> np.ndarray:
    y, out = Y0.copy(), []
    for _ in range(steps):
        y = rk4(y, TRUE, np.array)
        out.append(y)
    return np.array(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="RK4 steps (dt = 0.01)")
    steps = parser.parse_args().steps
    observed = observations(steps)
    theta, data = sd.vector("theta", 4), sd.symbol("observed", (None, 2))

    begin = time.perf_counter()
    fn = sd.compile(loss, wrt=theta, args=[theta, data], background=False)
    start = TRUE * np.array([1.05, 0.95, 0.97, 1.04])
    value, gradient = fn.value_and_grad(start, observed)
    print(f"{steps} RK4 steps: value and gradient compiled in "
          f"{time.perf_counter() - begin:.2f} s; the generated module (every method) has "
          f"{len(fn.source.splitlines())} lines at every step count")

    eps, worst = 1e-6, 0.0
    for k in range(4):
        e = np.eye(4)[k] * eps * abs(start[k])
        numeric = (fn(start + e, observed) - fn(start - e, observed)) / (2 * e[k])
        worst = max(worst, abs(numeric - gradient[k]) / max(1.0, abs(gradient[k])))
    print(f"gradient against central finite differences: relative error at most {worst:.1e}")

    calls = 50
    begin = time.perf_counter()
    for _ in range(calls):
        fn.value_and_grad(start, observed)
    print(f"value and gradient: {(time.perf_counter() - begin) / calls * 1e3:.2f} ms per call")

    value, gradient = fn.value_and_grad(TRUE, observed)
    print(f"at the true parameters: loss {value:.1e}, largest gradient entry "
          f"{np.abs(gradient).max():.1e}")


if __name__ == "__main__":
    main()
