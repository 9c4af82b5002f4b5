"""Python loops over a small state (issue #24, section 4): time to the value, gradient and
Hessian of an RK4 pendulum written with a Python ``for`` loop, the state a 2-vector or two
scalars, against the same step in ``sd.scan``.

    python -m benchmarks.python_loops [--steps 10 25 50] [--json FILE]

Each case runs in a fresh process (an empty symdiff cache, ``SYMDIFF_BACKGROUND=0``) and
times ``sd.jit`` of the function until its value, gradient and Hessian have returned once;
all three forms are checked to give the same Hessian.  The 2-vector form is what
symdiff.passes.scalarize takes apart into scalars.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CASE = r"""
import sys, time, json
import numpy as np
import symdiff as sd
form, steps = sys.argv[1], int(sys.argv[2])
h = 0.01

def field(y, k):
    return sd.stack([y[1], -k * np.sin(y[0])])

def rk4(y, k):
    k1 = field(y, k); k2 = field(y + h / 2 * k1, k); k3 = field(y + h / 2 * k2, k)
    k4 = field(y + h * k3, k)
    return y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)

def vector(y, k):
    for _ in range(steps):
        y = rk4(y, k)
    return np.sum(y ** 2)

def scalars(a, b, k):
    for _ in range(steps):
        y = rk4(sd.stack([a, b]), k)
        a, b = y[0], y[1]
    return a ** 2 + b ** 2

def scanned(y, k):
    final, _ = sd.scan(lambda c, _: (rk4(c, k), None), y, np.zeros(steps))
    return np.sum(final ** 2)

start = time.perf_counter()
fn = sd.jit({"scalars": scalars, "vector": vector, "scan": scanned}[form])
args = (1.0, 0.0, 2.0) if form == "scalars" else (np.array([1.0, 0.0]), 2.0)
fn(*args)
fn.grad(*args)
hess = fn.hessian(*args)  # (a, b, k) or (y, k): 3 x 3 either way
print(json.dumps({"seconds": time.perf_counter() - start,
                  "hessian": np.asarray(hess).tolist()}))
"""


def run(form: str, steps: int) -> dict:
    """One case in a fresh process with an empty cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, SYMDIFF_CACHE_DIR=cache, SYMDIFF_BACKGROUND="0")
        done = subprocess.run([sys.executable, "-c", CASE, form, str(steps)], env=env,
                              capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    """Print (and optionally write) the table of seconds per form and step count."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 25, 50])
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    rows = []
    print(f"{'steps':>6} {'2-vector loop':>14} {'scalars loop':>13} {'sd.scan':>9}")
    for steps in args.steps:
        found = {form: run(form, steps) for form in ("vector", "scalars", "scan")}
        reference = found["scalars"]["hessian"]
        for form in ("vector", "scan"):
            flat = sum(found[form]["hessian"], [])
            want = sum(reference, [])
            assert max(abs(p - q) for p, q in zip(flat, want, strict=True)) < 1e-9, form
        rows.append({"steps": steps, **{f: found[f]["seconds"] for f in found}})
        print(f"{steps:>6} {found['vector']['seconds']:>13.2f}s "
              f"{found['scalars']['seconds']:>12.2f}s {found['scan']['seconds']:>8.2f}s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(rows, out, indent=1)


if __name__ == "__main__":
    main()
