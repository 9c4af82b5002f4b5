"""Op-count ratios (gradient / function) and sd.compile times, for the README.

Run from the repository root: python -m benchmarks.compile_and_opcounts
Each compile time is measured in a fresh process with an empty disk cache (Numba's
first-use costs included), from expression to the first gradient value.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

PROBLEMS = {
    "lecture ((a+b)*c)**2": "sd.parse('((a+b)*c)**2')",
    "neuron: sigmoid, MSE (3 inputs)": (
        "(lambda w0, w1, w2, th, t: 0.5*(sd.sigmoid(th + 0.5*w0 - w1 + 2*w2) - t)**2)"
        "(*sd.symbols('w0 w1 w2 th t'))"),
    "rosenbrock n=100 (scalars)": "_p2_scalar(sd, [sd.symbol(f'x{i}') for i in range(100)])",
    "log-softmax cross-entropy (10 classes)": "log_softmax_loss(10)",
    "random DAG ~1,000 ops": "random_dag(sd, sd.symbols('v0:10'), 1000)",
    "random DAG ~10,000 ops": "random_dag(sd, sd.symbols('v0:10'), 10000)",
}

SETUP = """
import functools
import symdiff as sd
from benchmarks.problems import _p2_scalar
from benchmarks.scaling import random_dag

def log_softmax_loss(k):  # in scalars, so that op counts compare with the others
    z = [sd.symbol(f"z{i}") for i in range(k)]
    m = functools.reduce(sd.maximum, z)
    return m + sd.log(sum(sd.exp(zi - m) for zi in z)) - z[0]
"""

TIMED = SETUP + """
import json, time
t0 = time.perf_counter()
f = EXPR
fn = sd.compile(f, background=False)  # time the compiled code, not the first tier
t1 = time.perf_counter()
args = [0.1 * (i + 1) if not s.shape else [0.1] * s.shape[0] for i, s in enumerate(fn.args)]
g = fn.grad(*args)
t2 = time.perf_counter()
print(json.dumps({"symbolic_s": t1 - t0, "first_grad_s": t2 - t1}))
"""


def main() -> None:
    """Print a markdown table: ops, gradient ops, ratio, compile time to the first gradient."""
    namespace: dict = {}
    exec(SETUP, namespace)  # our own fixed benchmark code  # noqa: S102
    sd = namespace["sd"]
    print("| problem | ops f | ops grad | ratio | to first gradient s |")
    print("|---|---|---|---|---|")
    for name, expr in PROBLEMS.items():
        f = eval(expr, namespace)  # noqa: S307 - fixed benchmark expressions above
        ops_f, ops_g = sd.count_ops(f), sd.count_ops(sd.grad(f, sd.free_symbols(f)))
        env = {"SYMDIFF_CACHE_DIR": tempfile.mkdtemp(prefix="opcounts-")}
        out = subprocess.run([sys.executable, "-c", TIMED.replace("EXPR", expr)],
                             capture_output=True, text=True, check=True,
                             env={**__import__("os").environ, **env}).stdout
        t = json.loads(out)
        print(f"| {name} | {ops_f} | {ops_g} | {ops_g / ops_f:.2f} | "
              f"{t['symbolic_s'] + t['first_grad_s']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
