"""Symbolic stages on the scalar forms of P3 (lj38) and P4 (mlp 64-32-10, one sample):
symdiff (build + reverse-mode gradient + passes) against SymPy and SymEngine (build +
diff + cse), each in a fresh process with a time limit.

    python -m benchmarks.symbolic [--limit 600]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from .problems import PROBLEMS, flat_size


def measure(system: str, key: str) -> dict:
    problem = PROBLEMS[key]
    n = flat_size(problem.args(__import__("numpy").random.default_rng(0)))
    start = time.perf_counter()
    if system == "symdiff":
        import symdiff as sd

        xs = [sd.symbol(f"v{i}") for i in range(n)]
        f = problem.scalar_fn(sd, xs)
        built = time.perf_counter()
        grads = sd.grad(f, xs)
        return {"build_s": built - start, "derive_s": time.perf_counter() - built,
                "ops_f": sd.count_ops(f), "ops_grad": sd.count_ops([f] + grads)}
    module = __import__(system)
    sys.setrecursionlimit(100_000)
    xs = module.symbols(f"v0:{n}")
    f = problem.scalar_fn(module, list(xs))
    built = time.perf_counter()
    grads = [f.diff(x) for x in xs]
    module.cse([f] + grads)
    return {"build_s": built - start, "derive_s": time.perf_counter() - built}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.symbolic", description=__doc__)
    parser.add_argument("--limit", type=float, default=600.0)
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(*args.one)))
        return 0
    print("| problem | system | build s | diff + simplify/cse s | total s |\n|---|---|---|---|---|")
    for key in ("P3", "P4"):
        for system in ("symdiff", "symengine", "sympy"):
            try:
                done = subprocess.run([sys.executable, "-m", "benchmarks.symbolic", "--one",
                                       system, key], capture_output=True, text=True,
                                      timeout=args.limit, check=True)
                r = json.loads(done.stdout.strip().splitlines()[-1])
                print(f"| {key} | {system} | {r['build_s']:.2f} | {r['derive_s']:.2f} | "
                      f"{r['build_s'] + r['derive_s']:.2f} |", flush=True)
            except subprocess.TimeoutExpired:
                print(f"| {key} | {system} | - | - | over {args.limit:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
