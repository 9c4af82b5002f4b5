"""Sparse Hessians and Jacobians at growing sizes, side by side in one run.

    python -m benchmarks.hessians [--sizes 100 1000 ...] [--systems symdiff JAX ...]
                                  [--timeout S] [--json FILE]

Problems: the Hessian of the chained Rosenbrock function of n variables (tridiagonal),
and the Jacobian of the 2-D Bratu residual (Laplacian by the five-point stencil on an
m x m grid, zero boundary, plus 6 exp(u); n = m^2).  Systems: symdiff
(``sparse_hessian`` / ``sparse_jacobian``, csr_array), hand-written Numba kernels that
fill the known pattern directly (the limit), JAX (``jax.hessian`` / ``jax.jacfwd``:
dense, while n^2 doubles fit in 2 GB), CasADi SX (its sparse ``hessian`` / ``jacobian``
with its own coloring) and CasADi's generated C compiled with gcc -O3.  Every result is
returned as a SciPy sparse matrix (or a dense array for JAX) and checked against a NumPy
reference.

Each (problem, system, n) runs in a fresh process with an empty symdiff cache and Numba
caching off for the hand-written kernels: preparation = building, deriving, generating
and compiling until the first result; per call = median of timed loops; peak memory =
the growth of the process's maximum resident set over the whole measurement.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

from .worker import _per_call, save_rows

PROBLEMS = ("rosenbrock", "bratu")
SYSTEMS = ("symdiff", "numba (hand-written)", "JAX (dense)", "CasADi SX",
           "CasADi generated C")
LAMBDA = 6.0
DENSE_LIMIT_BYTES = 2e9


def grid_side(n: int) -> int:
    return max(3, round(math.sqrt(n)))


def problem_size(problem: str, n: int) -> int:
    return grid_side(n) ** 2 if problem == "bratu" else n


def point(problem: str, n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(-1.0, 1.0, n) if problem == "rosenbrock" else rng.uniform(0.0, 1.0, n)


# The functions, written once over a NumPy-like module (numpy for symdiff's tracing,
# jax.numpy for JAX).
def rosenbrock(x, lib=np):
    return lib.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _rosenbrock_numpy(x):
    return rosenbrock(x)


def bratu(m: int, lib=np):
    h2 = float((m + 1) ** 2)

    def residual(x):
        u = lib.reshape(x, (m, m))
        rows = lib.concatenate([np.zeros((1, m)), u, np.zeros((1, m))], axis=0)
        p = lib.concatenate([np.zeros((m + 2, 1)), rows, np.zeros((m + 2, 1))], axis=1)
        lap = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4.0 * u
        return lib.reshape(h2 * lap + LAMBDA * lib.exp(u), (m * m,))

    return residual


def reference(problem: str, x: np.ndarray):
    """The exact sparse matrix, from hand-derived formulas in NumPy."""
    import scipy.sparse as sp

    n = len(x)
    if problem == "rosenbrock":
        diagonal = np.zeros(n)
        diagonal[:-1] += 1200.0 * x[:-1] ** 2 - 400.0 * x[1:] + 2.0
        diagonal[1:] += 200.0
        off = -400.0 * x[:-1]
        return sp.csr_array(sp.diags_array([off, diagonal, off], offsets=[-1, 0, 1]))
    m = grid_side(n)
    h2 = float((m + 1) ** 2)
    side = np.ones(n - 1) * h2
    side[m - 1::m] = 0.0  # no neighbour across a row end
    return sp.csr_array(sp.diags_array([np.full(n - m, h2), side, -4.0 * h2 + LAMBDA * np.exp(x),
                                        side, np.full(n - m, h2)], offsets=[-m, -1, 0, 1, m]))


# Systems: prepare(problem, x) -> (call, colors); call(x) gives the matrix.
def _symdiff(problem, x):
    import symdiff as sd

    n = len(x)
    f = _rosenbrock_numpy if problem == "rosenbrock" else bratu(grid_side(n))
    fn = sd.compile(f, args=[sd.vector("x", n)], background=False)
    if problem == "rosenbrock":
        fn.sparse_hessian(x)
        return fn.sparse_hessian, fn.hessian_coloring().count
    fn.sparse_jacobian(x)
    return fn.sparse_jacobian, fn.jacobian_coloring().count


def _numba(problem, x):
    import scipy.sparse as sp

    from .handwritten import bratu_jacobian_values, rosenbrock_hessian_values

    pattern = reference(problem, x)
    indices, indptr, shape = pattern.indices, pattern.indptr, pattern.shape
    m = grid_side(len(x))
    if problem == "rosenbrock":
        def values(v):
            return rosenbrock_hessian_values(v)
    else:
        def values(v):
            return bratu_jacobian_values(v, m, LAMBDA)

    def call(v):
        return sp.csr_array((values(v), indices.copy(), indptr.copy()), shape=shape)

    call(x)
    return call, None


def _jax(problem, x):
    import jax
    import jax.numpy as jnp

    from .systems import Skip

    jax.config.update("jax_enable_x64", True)
    n = len(x)
    if 8.0 * n * n > DENSE_LIMIT_BYTES:
        raise Skip(f"dense {n} x {n} over {DENSE_LIMIT_BYTES / 1e9:.0f} GB")
    if problem == "rosenbrock":
        compiled = jax.jit(jax.hessian(lambda v: rosenbrock(v, jnp)))
    else:
        compiled = jax.jit(jax.jacfwd(bratu(grid_side(n), jnp)))

    def call(v):
        return np.asarray(compiled(v).block_until_ready())

    call(x)
    return call, None


def _casadi_function(problem, n):
    import casadi

    x = casadi.SX.sym("x", n)
    if problem == "rosenbrock":
        f = casadi.sum1(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
        matrix = casadi.hessian(f, x)[0]
        colors = matrix.sparsity().star_coloring().size2()
    else:
        m = grid_side(n)
        u = casadi.reshape(x, m, m).T  # row-major, as NumPy
        zr, zc = casadi.SX.zeros(1, m), casadi.SX.zeros(m + 2, 1)
        p = casadi.horzcat(zc, casadi.vertcat(zr, u, zr), zc)
        lap = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4.0 * u
        r = float((m + 1) ** 2) * lap + LAMBDA * casadi.exp(u)
        residual = casadi.reshape(r.T, n, 1)
        matrix = casadi.jacobian(residual, x)
        colors = matrix.sparsity().uni_coloring().size2()
    return casadi.Function("d", [x], [matrix]), colors


def _casadi_sx(problem, x):
    function, colors = _casadi_function(problem, len(x))

    def call(v):
        return function(v).sparse()

    call(x)
    return call, colors


def _casadi_c(problem, x):
    import casadi

    function, colors = _casadi_function(problem, len(x))
    folder = tempfile.mkdtemp(prefix="casadi-")
    source = os.path.join(folder, "d.c")
    library = os.path.join(folder, "d.so")
    here = os.getcwd()
    os.chdir(folder)  # generate writes into the working directory
    try:
        function.generate("d.c", {"with_header": False})
    finally:
        os.chdir(here)
    subprocess.run(["gcc", "-O3", "-fPIC", "-shared", source, "-o", library], check=True)
    external = casadi.external("d", library)

    def call(v):
        return external(v).sparse()

    call(x)
    return call, colors


PREPARE = {"symdiff": _symdiff, "numba (hand-written)": _numba, "JAX (dense)": _jax,
           "CasADi SX": _casadi_sx, "CasADi generated C": _casadi_c}
LIBRARIES = {"symdiff": ("symdiff", "scipy.sparse"), "numba (hand-written)": ("numba",),
             "JAX (dense)": ("jax",), "CasADi SX": ("casadi",),
             "CasADi generated C": ("casadi",)}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(problem: str, system: str, n: int) -> dict:
    """One measurement (in the calling process)."""
    import importlib

    from .systems import Skip

    for library in ("numpy", "scipy.sparse", *LIBRARIES[system]):
        importlib.import_module(library)
    x = point(problem, problem_size(problem, n))
    before = _peak_mb()
    try:
        start = time.perf_counter()
        call, colors = PREPARE[system](problem, x)
        prepare = time.perf_counter() - start
    except Skip as why:
        return {"skipped": str(why)}
    result = call(x)
    per_call = _per_call(call, (x,))
    peak = _peak_mb() - before
    want = reference(problem, x)
    scale = np.abs(want.data).max()
    if hasattr(result, "toarray"):  # sparse: compare the nonzeros
        error = float(np.abs((type(want)(result) - want).data).max(initial=0.0) / scale)
    else:
        error = float(np.abs(np.asarray(result) - want.toarray()).max() / scale)
    return {"n": len(x), "nnz": int(want.nnz), "prepare_s": prepare, "call_s": per_call,
            "colors": colors, "peak_mb": peak, "error_rel": error}


def run_one(problem: str, system: str, n: int, timeout: float) -> dict:
    """Measure in a fresh process."""
    env = {**os.environ, "SYMDIFF_CACHE_DIR": tempfile.mkdtemp(prefix="bench-cache-"),
           "SYMDIFF_BACKGROUND": "0"}
    # A session of its own, so that a timeout also ends what it started (gcc).
    worker = subprocess.Popen([sys.executable, "-m", "benchmarks.hessians", "--worker", problem,
                               system, str(n)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env, start_new_session=True)
    try:
        out, err = worker.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.communicate()
        return {"skipped": f"over {timeout:.0f} s"}
    if worker.returncode != 0:
        return {"error": (err.strip().splitlines() or ["failed"])[-1][:200]}
    return json.loads(out.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    """The Markdown table of a run, with per-call ratios to symdiff."""
    lines = ["| problem | n | system | prepare s | per call | vs symdiff | colors | peak MB |"
             " rel error |", "|---|---|---|---|---|---|---|---|---|"]
    base = {(r["problem"], r["size"]): r.get("call_s") for r in rows if r["system"] == "symdiff"}
    for r in rows:
        if "call_s" not in r:
            note = r.get("skipped") or r.get("error")
            lines.append(f"| {r['problem']} | {r['size']:,} | {r['system']} | - | - | - | - | - "
                         f"| {note} |")
            continue
        mine = base.get((r["problem"], r["size"]))
        ratio = f"{r['call_s'] / mine:.2f}x" if mine else "-"
        call = r["call_s"] * 1e6
        shown = f"{call:.1f} µs" if call < 1e4 else f"{call / 1e3:.1f} ms"
        lines.append(f"| {r['problem']} | {r['n']:,} | {r['system']} | {r['prepare_s']:.2f} | "
                     f"{shown} | {ratio} | {r['colors'] if r['colors'] else '-'} | "
                     f"{r['peak_mb']:.0f} | {r['error_rel']:.1e} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hessians",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[100, 1000, 10_000, 100_000])
    parser.add_argument("--jacobian-extra", nargs="*", type=int, default=[1_000_000],
                        help="more sizes for the Jacobian problem only")
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS))
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS),
                        help="system names (substrings match)")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--json", default="benchmarks/hessians.json")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        problem, system, n = args.worker
        print(json.dumps(measure(problem, system, int(n))))
        return 0
    rows = []
    for problem in args.problems:
        sizes = args.sizes + (args.jacobian_extra if problem == "bratu" else [])
        timed_out = set()
        for size in sizes:
            for system in SYSTEMS:
                if not any(s.lower() in system.lower() for s in args.systems):
                    continue
                if system in timed_out:  # larger sizes take longer still
                    result = {"skipped": f"over {args.timeout:.0f} s at a smaller size"}
                else:
                    result = run_one(problem, system, size, args.timeout)
                if result.get("skipped", "").startswith("over"):
                    timed_out.add(system)
                rows.append({"problem": problem, "size": size, "system": system, **result})
                print(f"{problem} {size} {system}: {json.dumps(result)}", file=sys.stderr,
                      flush=True)
    print(table(rows))
    save_rows(args.json, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
