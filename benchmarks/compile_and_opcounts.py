"""Op-count ratios (gradient / function) and sd.compile times, for the README.

Run: python benchmarks/compile_and_opcounts.py
Each compile time is measured in a fresh process (Numba's first-use costs included),
from text/expression to the first gradient value.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys

import symdiff as sd

PROBLEMS = {
    "lecture ((a+b)*c)**2": "sd.parse('((a+b)*c)**2')",
    "neuron: sigmoid, MSE (3 inputs)": (
        "(lambda w0, w1, w2, th, t: 0.5*(sd.sigmoid(th + 0.5*w0 - w1 + 2*w2) - t)**2)"
        "(*sd.symbols('w0 w1 w2 th t'))"),
    "rosenbrock n=100": "rosen(100)",
    "log-softmax cross-entropy (10 classes)": "log_softmax_loss(10)",
    "random DAG ~1000 ops": "random_dag(1000)",
}

SETUP = '''
import random, symdiff as sd
def rosen(n):
    x = [sd.symbol(f"x{i}") for i in range(n)]
    return sum(100*(x[i+1] - x[i]**2)**2 + (1 - x[i])**2 for i in range(n - 1))
def log_softmax_loss(k):
    z = [sd.symbol(f"z{i}") for i in range(k)]
    m = z[0]
    for zi in z[1:]:
        m = sd.maximum(m, zi)
    return m + sd.log(sum(sd.exp(zi - m) for zi in z)) - z[0]
def random_dag(ops, nvars=10, seed=0):
    rng = random.Random(seed)
    pool = [sd.symbol(f"v{i}") for i in range(nvars)]
    unary = [sd.sin, sd.cos, sd.tanh, sd.sigmoid, sd.exp]
    while sd.count_ops(pool[-1]) < ops:
        x, y = rng.choice(pool[-20:]), rng.choice(pool)
        k = rng.randrange(4)
        e = (x + y, x * y, x - 0.5 * y, rng.choice(unary)(0.1 * x))[k]
        pool.append(e)
    return sum(pool[-10:])
'''

TIMED = SETUP + '''
import time, json
t0 = time.perf_counter()
f = EXPR
fn = sd.compile(f)
t1 = time.perf_counter()
g = fn.grad(*[0.1 * (i + 1) for i in range(len(fn.wrt))])
t2 = time.perf_counter()
print(json.dumps({"symbolic_s": t1 - t0, "first_grad_s": t2 - t1, "n": len(fn.wrt)}))
'''


def main() -> None:
    """Print a markdown table: ops, gradient ops, ratio, compile time to the first gradient."""
    namespace: dict = {}
    exec(SETUP, namespace)  # our own benchmark helpers, not user text  # noqa: S102
    print("| problem | n | ops f | ops grad | ratio | sd.compile s | to first gradient s |")
    print("|---|---|---|---|---|---|---|")
    for name, expr in PROBLEMS.items():
        f = eval(expr, namespace)  # noqa: S307 - fixed benchmark expressions above
        wrt = sd.free_symbols(f)
        ops_f, ops_g = sd.count_ops(f), sd.count_ops(sd.grad(f, wrt))
        out = subprocess.run([sys.executable, "-c", TIMED.replace("EXPR", expr)],
                             capture_output=True, text=True, check=True).stdout
        t = json.loads(out)
        print(f"| {name} | {len(wrt)} | {ops_f} | {ops_g} | {ops_g / ops_f:.2f} | "
              f"{t['symbolic_s']:.3f} | {t['symbolic_s'] + t['first_grad_s']:.2f} |")


if __name__ == "__main__":
    random.seed(0)
    main()
