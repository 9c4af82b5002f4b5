"""The native backend (symdiff.runtime.native): symdiff's LLVM text compiled in process by
llvmlite, entry points called by CPython directly; Numba for what it cannot lower."""

import fractions
import os
import pickle
import threading

import numpy as np
import pytest

import symdiff as sd
from symdiff.errors import ArgumentError, SymdiffError
from symdiff.runtime import native

TEXT = "tanh(x)*erf(y) + softplus(x + 3) + sigmoid(x*y) + log_ndtr(x) + atan2(x, y)**3/y"


@pytest.fixture(scope="module")
def pair():
    """The same function by the native backend and by Numba's LLVM lowering (same text)."""
    return (sd.compile(TEXT, backend="native", background=False),
            sd.compile(TEXT, lowering="llvm", background=False))


def test_this_interpreter_has_a_known_layout():
    assert native.layout() is not None


@pytest.mark.parametrize("method", ["forward", "grad", "value_and_grad", "hessian"])
def test_same_bits_as_the_llvm_lowering_under_numba(pair, method):
    fast, numba = pair
    for point in [(0.3, 0.7), (-1.5, 2.5), (4.0, -0.25)]:
        got, want = getattr(fast, method)(*point), getattr(numba, method)(*point)
        if method == "value_and_grad":
            assert got[0] == want[0]
            np.testing.assert_array_equal(got[1], want[1])
        else:
            np.testing.assert_array_equal(got, want)
            assert type(got) is type(want)
    assert fast.loader.tiers.get(method) == "native" and not fast.loader.threads


def test_the_input_contract_is_the_same(pair):
    fast, numba = pair
    for args in [(1, 2), (np.float32(0.5), True), (fractions.Fraction(1, 3), np.int64(2)),
                 (np.array(0.25), 2.0)]:
        assert fast(*args) == numba(*args)
    for bad in [("x", 1.0), (1.0,), (1.0, 2.0, 3.0), (1 + 2j, 1.0), (None, 1.0)]:
        with pytest.raises(ArgumentError):
            fast(*bad)
    points = np.linspace(0.1, 0.9, 5)  # arrays of points: the batched version
    np.testing.assert_array_equal(fast.grad(points, 2.0), numba.grad(points, 2.0))


def test_what_it_cannot_lower_goes_to_numba():
    fn = sd.compile("digamma(x) * y", backend="native", background=False)
    assert fn(2.0, 3.0) == pytest.approx(3 * 0.42278433509846713)
    assert "native" not in fn.loader.tiers.values()
    w = sd.vector("w", 3)
    a = sd.matrix("A", 3, 3)
    solved = sd.solve(a, w)  # linear solves: Numba's, so far
    arrays = sd.compile(sd.sum(solved), args=[a, w], backend="native", background=False)
    matrix = np.eye(3) * 2.0 + 0.5
    np.testing.assert_allclose(arrays(matrix, np.ones(3)),
                               np.sum(np.linalg.solve(matrix, np.ones(3))))
    assert "native" not in arrays.loader.tiers.values()
    scalars = sd.compile("x*y**2", backend="native", background=False)  # hvp: array input
    np.testing.assert_array_equal(scalars.hvp(1.0, 2.0, np.array([1.0, 0.0])), [0.0, 4.0])
    assert scalars.loader.tiers == {}


def test_options_travel_with_the_function():
    fn = sd.compile("x*y + sin(x)", backend="native")
    copy = pickle.loads(pickle.dumps(fn))
    assert copy.backend == "native" and copy.grad(1.0, 2.0)[1] == 1.0
    by_shape = sd.compile(lambda x, y: x * y + np.sin(x), backend="native")
    assert by_shape.grad(1.0, 2.0)[1] == 1.0
    assert by_shape.compiled_for(1.0, 2.0).loader.tiers["grad"] == "native"
    with pytest.raises(SymdiffError, match="backend"):
        sd.compile("x", backend="jax")


def test_large_functions_compile_in_pieces():
    # 3,000 operations: the body is split into never-inlined pieces (codegen.llvm).
    text = " + ".join(f"sin(x{i} * x{(i + 1) % 300})" for i in range(300))
    fast = sd.compile(text, backend="native", background=False)
    numba = sd.compile(text, lowering="llvm", background=False)
    point = np.linspace(-1, 1, 300)
    np.testing.assert_array_equal(fast.grad(*point), numba.grad(*point))


def test_the_entry_refuses_what_the_wrapper_would_not_pass():
    # The builtin checks argument types and count; the sizes of the output buffers are
    # its wrapper's to get right (it makes them), so the builtin is not for other callers.
    fn = sd.compile("x*y", backend="native", background=False)
    fn.grad(1.0, 1.0)  # compiled: fn.grad is now the wrapper of the native code
    entry = fn.grad.dispatcher.__globals__["_entry"]  # the builtin behind the wrapper
    out = np.empty(2)
    entry(3.0, 2.0, out)  # the gradient goes into out (the value returned is 0.0)
    assert list(out) == [2.0, 3.0]
    for bad in [(3.0, 2.0, "not an array"), (3, 2.0, out), (3.0, 2.0), (3.0, 2.0, out, out)]:
        with pytest.raises(TypeError):
            entry(*bad)


def test_auto_is_native_where_it_applies(monkeypatch):
    monkeypatch.delenv("SYMDIFF_BACKEND", raising=False)
    fn = sd.compile("x*y + sin(x)", background=True)
    assert fn.backend == "auto" and fn.grad(1.0, 2.0)[1] == 1.0
    assert fn.loader.tiers == {"grad": "native"} and not fn.loader.threads
    python = sd.compile("x*y + sin(x)", lowering="python", background=False)
    python.grad(1.0, 2.0)  # a lowering of the Numba module asked for: Numba
    assert python.loader.tiers == {} and python.loader.modules
    monkeypatch.setenv("SYMDIFF_BACKEND", "numba")
    assert sd.compile("x*y").backend == "numba"


def test_scalar_results_are_floats_and_machine_code_is_shared():
    x = sd.symbol("x")
    fast = sd.compile("sin(x)*x", wrt=x, backend="native", background=False)
    numba = sd.compile("sin(x)*x", wrt=x, backend="numba", background=False)
    got, want = fast.value_and_grad(0.5), numba.value_and_grad(0.5)
    assert got == want and [type(v) for v in got] == [type(v) for v in want] == [float, float]
    again = sd.compile("sin(x)*x", wrt=x, backend="native", background=False)
    again(0.5), fast(0.5)
    assert again.forward.dispatcher is fast.forward.dispatcher  # one builtin per code


@pytest.mark.parametrize("points", [1, 7, 40_001])  # chunks on threads from 16,384
def test_batches_of_points_are_native_and_agree_with_numba(points, monkeypatch):
    """``fn(points)`` of a function of scalars: the one-point body in a native loop,
    chunked over threads that run with the GIL released, bit for bit as Numba's prange."""
    monkeypatch.setattr(native, "point_threads", lambda: 3)  # an uneven split, whatever the CPU
    fast = sd.compile("sin(a*b) + exp(c)*a - log(1 + b**2)", background=False)
    numba = sd.compile("sin(a*b) + exp(c)*a - log(1 + b**2)", background=False,
                       backend="numba")
    rng = np.random.default_rng(points)
    a, b, c = (rng.normal(size=points) for _ in range(3))
    for method in ("forward", "grad", "value_and_grad", "hessian"):
        got = getattr(fast, method)(a, b, c) if method != "forward" else fast(a, b, c)
        want = getattr(numba, method)(a, b, c) if method != "forward" else numba(a, b, c)
        for g, w in zip(got if isinstance(got, tuple) else (got,),
                        want if isinstance(want, tuple) else (want,), strict=True):
            assert type(g) is type(w) and g.shape == w.shape
            np.testing.assert_array_equal(g, w)
        assert not hasattr(fast.loader.loaded[method, True], "py_func")  # not a dispatcher
    shaped = fast(a.reshape(-1, 1), 2.0, 0.5)  # points broadcast, the result shaped
    assert shaped.shape == (points, 1)
    np.testing.assert_array_equal(shaped, numba(a.reshape(-1, 1), 2.0, 0.5))


def test_threads_calling_batches_and_array_functions_at_once_get_their_own_answers():
    """Batched entries release the GIL and share one pool; array functions share the
    scratch buffer: four threads calling both at once get the serial answers."""
    points = sd.compile("sin(a*b) + exp(c)*a", background=False)
    x = sd.vector("x", None)
    arrays = sd.compile(sd.sum(sd.tanh(x) * sd.cumsum(x)), args=[x], background=False)
    rng = np.random.default_rng(0)
    values = [rng.normal(size=40_000) for _ in range(3)]
    want, want_arrays = points.value_and_grad(*values), arrays.value_and_grad(values[0])
    wrong = []

    def work():
        for _ in range(10):
            got = points.value_and_grad(*values)
            wrong.extend(k for k in range(2) if not np.array_equal(got[k], want[k]))
            value, grad = arrays.value_and_grad(values[0])
            wrong.extend([2] if value != want_arrays[0] or not np.array_equal(
                grad, want_arrays[1]) else [])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == [] and native._SCRATCH.busy == 0


def test_batches_take_numbas_thread_limit(monkeypatch):
    monkeypatch.setenv("NUMBA_NUM_THREADS", "1")
    assert native.point_threads() == 1
    monkeypatch.setenv("NUMBA_NUM_THREADS", "10000")
    assert 1 <= native.point_threads() <= (os.cpu_count() or 1)
