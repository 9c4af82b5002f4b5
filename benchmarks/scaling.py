"""Scaling of each stage with graph size: random unstructured DAGs of 10^3 .. 10^6 operations.

    python -m benchmarks.scaling [--sizes 1000 10000 100000 1000000] [--limit 300]

For symdiff: build (trace), reverse-mode gradient, passes, emission of the gradient
module, and compile to the first gradient value (LLVM lowering), with the peak resident
memory of the process.  For SymPy (diff + cse) and SymEngine (diff + cse) the same DAG is
built through their own operators.  Each (system, size) runs in a fresh process; a stage
over ``--limit`` seconds is reported as such and the larger sizes of that system skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

NVARS = 10


def random_dag(ns, variables, ops, seed=0, unary=("sin", "cos", "tanh", "exp")):
    """An unstructured DAG of roughly ``ops`` reachable operations over ``variables``.

    Each step combines a recent node with any earlier one, so the graph is deep and
    shared, like the expression DAGs of real models.  ``unary`` names the functions of
    ``ns`` used; with none, the DAG holds products and halved sums and differences, which
    keep values of [-1, 1] there (the default mix overflows beyond 10^3 operations).
    """
    rng = random.Random(seed)
    pool = list(variables)
    made = set()  # distinct operations built so far
    unary = [getattr(ns, name) for name in unary]
    while len(made) < 2 * ops:  # about half of them end up reachable from the result
        x, y = rng.choice(pool[-20:]), rng.choice(pool)
        k = rng.randrange(4 if unary else 3)
        if not unary and k != 1:
            inner = x + y if k == 0 else x - y
            made.add(inner)
            e = 0.5 * inner
        elif k == 0:
            e = x + y
        elif k == 1:
            e = x * y
        elif k == 2:
            inner = 0.5 * y
            made.add(inner)
            e = x - inner
        else:
            inner = 0.1 * x
            made.add(inner)
            e = rng.choice(unary)(inner)
        made.add(e)
        pool.append(e)
    total = pool[-1]
    for e in pool[-10:-1]:
        total = total + e
    return total


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_symdiff(ops: int) -> dict:
    import symdiff as sd
    from codegen import emit_module
    from symdiff.autodiff.modes import reverse_mode
    from symdiff.ops.elementwise import ONE

    out = {}
    t = time.perf_counter()
    xs = [sd.symbol(f"v{i}") for i in range(NVARS)]
    f = random_dag(sd, xs, ops)
    out["build_s"] = time.perf_counter() - t
    out["ops"] = sd.count_ops(f)
    t = time.perf_counter()
    raw = reverse_mode([(f, ONE)], xs)
    out["diff_s"] = time.perf_counter() - t
    t = time.perf_counter()
    grad = sd.optimize(raw)
    out["passes_s"] = time.perf_counter() - t
    out["grad_ops"] = sd.count_ops(grad)
    fn = sd.compile(f, wrt=xs, background=False)  # compile_s: the compiled code
    t = time.perf_counter()
    spec = fn.lower("grad").spec
    source = emit_module([spec], "scaling")
    out["emit_s"] = time.perf_counter() - t
    out["source_lines"] = source.count("\n")
    if ops <= 10_000:  # one straight-line function; larger graphs want loops or chunks
        t = time.perf_counter()
        fn.grad(*[0.1] * NVARS)
        out["compile_s"] = time.perf_counter() - t
    out["peak_mb"] = _peak_mb()
    return out


def measure_peer(name: str, ops: int) -> dict:
    module = __import__("sympy" if name == "sympy" else "symengine")
    sys.setrecursionlimit(100_000)  # SymPy recurses over the depth of the graph
    out = {}
    t = time.perf_counter()
    xs = module.symbols(f"v0:{NVARS}")
    f = random_dag(module, xs, ops)
    out["build_s"] = time.perf_counter() - t
    t = time.perf_counter()
    grads = [f.diff(x) for x in xs]
    out["diff_s"] = time.perf_counter() - t
    t = time.perf_counter()
    module.cse(grads)
    out["passes_s"] = time.perf_counter() - t
    out["peak_mb"] = _peak_mb()
    return out


def run(system: str, ops: int, limit: float) -> dict:
    env = {**os.environ, "SYMDIFF_CACHE_DIR": tempfile.mkdtemp(prefix="scaling-")}
    try:
        done = subprocess.run([sys.executable, "-m", "benchmarks.scaling", "--one", system,
                               str(ops)], capture_output=True, text=True, timeout=limit, env=env)
    except subprocess.TimeoutExpired:
        return {"over_s": limit}
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:160]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+",
                        default=[1_000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--systems", nargs="+", default=["symdiff", "sympy", "symengine"])
    parser.add_argument("--limit", type=float, default=300.0)
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--json", default="benchmarks/scaling.json")
    args = parser.parse_args(argv)
    if args.one:
        system, ops = args.one[0], int(args.one[1])
        result = measure_symdiff(ops) if system == "symdiff" else measure_peer(system, ops)
        print(json.dumps(result))
        return 0
    rows = []
    print("| system | ops | build s | diff s | passes (cse) s | emit s | compile s | "
          "peak MB |\n|---|---|---|---|---|---|---|---|")
    for system in args.systems:
        for ops in args.sizes:
            r = run(system, ops, args.limit)
            rows.append({"system": system, "size": ops, **r})
            cells = [f"{r[k]:.2f}" if isinstance(r.get(k), float) else "-" for k in (
                "build_s", "diff_s", "passes_s", "emit_s", "compile_s")]
            note = (f"over {args.limit:.0f} s" if "over_s" in r else r.get("error", ""))
            print(f"| {system} | {r.get('ops', ops)} | {' | '.join(cells)} | "
                  f"{r.get('peak_mb', 0):.0f} {note} |", flush=True)
            with open(args.json, "w") as out:  # after every row: a long run may be cut
                json.dump(rows, out, indent=1)
            if "over_s" in r or "error" in r:
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
