"""The first call's tier (issue 21): machine code in the cache is loaded, never
interpreted; otherwise the evaluator answers only where it is expected to be faster than
the compile, counting loop trip counts, array sizes and direction loops."""

import math
import os
import subprocess
import sys

import pytest

import symdiff as sd
from codegen import cache
from symdiff.runtime.interpret import first_call_seconds

WARM_SCRIPT = """
import numpy as np, symdiff as sd

def f(p):
    def step(y, _):
        return y + 0.01 * np.sin(y * p[0]) + p[1], None
    y, _ = sd.scan(step, p[2], sd.zeros((50,)))
    return y ** 2

fn = sd.compile(f, args=[sd.vector("p", 3)], background=True, backend="numba")
point = np.array([1.5, 0.1, 0.3])
print(repr(fn(point)), repr(list(fn.grad(point))))
print(sorted(fn.loader.tiers.items()), sorted(fn.loader.interpreted))
fn.wait()  # the compiles finish (into the cache) before the process ends
"""


def test_a_warm_cache_answers_the_first_calls_without_the_evaluator(tmp_path):
    env = dict(os.environ, SYMDIFF_CACHE_DIR=str(tmp_path), SYMDIFF_BACKGROUND="1")
    runs = [subprocess.run([sys.executable, "-c", WARM_SCRIPT], env=env, text=True,
                           capture_output=True, timeout=300) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr
    (cold_values, cold_tiers), (warm_values, warm_tiers) = (
        r.stdout.strip().splitlines() for r in runs)
    assert cold_values == warm_values
    assert cold_tiers == ("[('forward', 'evaluator'), ('grad', 'evaluator')] "
                          "['forward', 'grad']")
    # Loaded from the cache at once: the evaluator was not even built.
    assert warm_tiers == "[('forward', 'cache'), ('grad', 'cache')] []"


def test_a_small_function_is_still_answered_by_the_evaluator(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMDIFF_CACHE_DIR", str(tmp_path))
    fn = sd.compile(f"sin(a * b) + {os.getpid()}.25 * b", background=True, backend="numba")
    assert list(fn.grad(1.0, 2.0)) == [2 * math.cos(2.0), math.cos(2.0) + os.getpid() + 0.25]
    assert fn.loader.tiers == {"grad": "evaluator"}
    fn.wait()


def test_a_loop_of_ten_million_steps_goes_to_the_compiled_code(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMDIFF_CACHE_DIR", str(tmp_path))
    fn = sd.compile(lambda x: sd.fori_loop(0, 10 ** 7, lambda i, c: c * 0.5 + x, x),
                    args=["x"], background=True)
    assert fn(1.0) == pytest.approx(2.0)
    assert fn.loader.tiers == {"forward": "native"} and fn.loader.interpreted == {}


def _spec_and_source(fn, method):
    lowered = fn.lower(method)
    return lowered.spec, lowered.source


def test_the_estimate_counts_trip_counts_nesting_and_sizes():
    x = sd.symbol("x")

    def looped(steps, inner=None):
        def body(i, c):
            if inner:
                c = sd.fori_loop(0, inner, lambda j, d: d * 0.5 + x, c)
            return sd.sin(c) + x
        return sd.compile(sd.fori_loop(0, steps, body, x), args=[x])

    def evaluator(fn, method="forward", batch=None, directions=0):
        return first_call_seconds(*_spec_and_source(fn, method), batch, directions)[0]

    short, long = evaluator(looped(10)), evaluator(looped(10_000))
    assert 500 < long / short < 2000  # a thousand times the steps
    nested = evaluator(looped(100, inner=100))
    assert nested > 50 * evaluator(looped(100))  # the inner loop runs 100 x 100 times
    assert evaluator(looped(10 ** 7)) > 10.0  # far more than any compile
    # A while loop's length is not known before it runs.
    unbounded = sd.compile(sd.while_loop(lambda c: c < 10.0, lambda c: c * 2.0 + x, x),
                           args=[x])
    assert evaluator(unbounded) == math.inf
    # Arrays count their elements, an open dimension the length of this call.
    v = sd.vector("v", None)
    fn = sd.compile(sd.sum(sd.tanh(v) * v), args=[v])
    assert evaluator(fn, "grad", batch=10 ** 6) > 100 * evaluator(fn, "grad", batch=1000)
    # A dense Hessian of arrays is one product per direction.
    w = sd.vector("w", 200)
    fn = sd.compile(sd.sum(sd.tanh(w) ** 2), args=[w])
    assert evaluator(fn, "hessian", directions=200) == pytest.approx(
        200 * evaluator(fn, "hessian", directions=1), rel=0.05)


def test_the_compile_estimate_depends_on_the_code_not_on_trip_counts():
    x = sd.symbol("x")
    fns = [sd.compile(sd.fori_loop(0, n, lambda i, c: sd.sin(c) + x, x), args=[x])
           for n in (10, 10 ** 6)]
    compiles = [first_call_seconds(*_spec_and_source(fn, "grad"), None)[1] for fn in fns]
    assert compiles[0] == compiles[1] and 0.2 < compiles[0] < 10


def test_the_cache_check_reads_only(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMDIFF_CACHE_DIR", str(tmp_path / "cache"))
    fn = sd.compile(f"a * b - {os.getpid()}.5", background=False, backend="numba")
    fn.grad(1.0, 2.0)
    module = fn.loader.modules[0].__name__
    folder = cache.directory()
    assert folder == str(tmp_path / "cache") and cache.is_compiled(folder, module)
    files = cache.numba_files(folder, module)
    with open(os.path.join(folder, files[-1]), "ab") as damaged:
        damaged.write(b"\0")
    assert not cache.is_compiled(folder, module)
    assert cache.numba_files(folder, module) == files  # left for load to repair
