"""The background tier: a method's first call answers from the evaluator while Numba
compiles in a thread; the answers, argument checks and result structure match the
compiled function's, and calls switch to the compiled code once it is ready."""

import threading

import numba
import numpy as np
import pytest

import symdiff as sd
from symdiff.runtime import loading

SCALAR = "((a+b)*c)**2 + sin(a*b)*exp(-c*c)"
SCALAR_CALLS = {
    "forward": (1.0, 2.0, 0.5), "grad": (1.0, 2.0, 0.5), "value_and_grad": (1.0, 2.0, 0.5),
    "hessian": (1.0, 2.0, 0.5), "hvp": (1.0, 2.0, 0.5, np.array([0.1, -0.2, 0.3])),
    "vjp": (1.0, 2.0, 0.5, 2.0), "jvp": (1.0, 2.0, 0.5, np.array([0.1, -0.2, 0.3])),
}


@pytest.fixture(autouse=True)
def numba_backend(monkeypatch):
    """These tests are about Numba's background tier: the native backend (the default for
    straight-line functions of scalars) compiles in milliseconds and needs none."""
    monkeypatch.setenv("SYMDIFF_BACKEND", "numba")


def _array_function():
    w, x = sd.matrix("W", 3, 4), sd.matrix("x", None, 4)
    return sd.sum(np.tanh(x @ w.T) ** 2), [w, x]


def _assert_same(got, want):
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            _assert_same(g, w)
    elif isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray) and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14)
    else:
        assert isinstance(got, float)
        assert got == pytest.approx(want, rel=1e-13, abs=1e-14)


@pytest.mark.parametrize("method", list(SCALAR_CALLS))
def test_first_answers_match_the_compiled_code(lecture, method):
    tiered = sd.compile(SCALAR, background=True)
    compiled = sd.compile(SCALAR, background=False)
    args = SCALAR_CALLS[method]
    first = getattr(tiered, method)(*args)
    interpreted = tiered.loader.evaluator(method)(*args)
    want = getattr(compiled, method)(*args)
    _assert_same(first, want)
    _assert_same(interpreted, want)
    tiered.wait()
    # From now on the attribute is the compiled call.
    assert isinstance(getattr(tiered, method).dispatcher, numba.core.dispatcher.Dispatcher)
    _assert_same(getattr(tiered, method)(*args), want)


def test_array_function_first_answers_and_argument_checks():
    expr, symbols = _array_function()
    tiered = sd.compile(expr, args=symbols, background=True)
    compiled = sd.compile(expr, args=symbols, background=False)
    rng = np.random.default_rng(0)
    w, x = rng.normal(size=(3, 4)), rng.normal(size=(5, 4))
    tiered.value_and_grad(w, x)
    interpreted = tiered.loader.evaluator("value_and_grad")
    _assert_same(interpreted(w, x), compiled.value_and_grad(w, x))
    _assert_same(interpreted(w, np.asfortranarray(x[:2])), compiled.value_and_grad(w, x[:2]))
    with pytest.raises(ValueError, match="argument W must have shape") as interp_error:
        interpreted(rng.normal(size=(4, 3)), x)
    with pytest.raises(ValueError, match="argument W must have shape") as comp_error:
        compiled.value_and_grad(rng.normal(size=(4, 3)), x)
    assert str(interp_error.value) == str(comp_error.value)
    for call in (interpreted, compiled.value_and_grad):
        with pytest.raises(TypeError):
            call(rng.normal(size=(3, 4, 1)), x)
        with pytest.raises(TypeError):
            call(w)
    tiered.wait()


def test_points_go_to_the_batched_function_while_compiling():
    tiered = sd.compile(SCALAR, background=True)
    a = np.array([1.0, 2.0, -0.5])
    value, grad = tiered.value_and_grad(a, 2.0, 0.5)
    compiled = sd.compile(SCALAR, background=False)
    for k, point in enumerate(a):
        _assert_same((value[k], grad[k]), compiled.value_and_grad(point, 2.0, 0.5))
    tiered.wait()


def test_compile_failure_is_reported(monkeypatch):
    first_call_done = threading.Event()

    def broken(source, name):
        first_call_done.wait(10)
        raise RuntimeError("no compiler today")

    monkeypatch.setattr(loading, "load_module_for", broken)
    tiered = sd.compile("x * y + 1", background=True)
    assert tiered.grad(2.0, 3.0)[0] == 3.0  # the first answer still comes
    first_call_done.set()
    with pytest.raises(sd.SymdiffError, match="compiling grad failed: no compiler today"):
        tiered.wait()
    with pytest.raises(sd.SymdiffError, match="no compiler today"):
        tiered.grad(2.0, 3.0)


def test_default_follows_the_environment(monkeypatch):
    monkeypatch.setenv("SYMDIFF_BACKGROUND", "0")
    assert not sd.compile("x + 1").background
    monkeypatch.setenv("SYMDIFF_BACKGROUND", "1")
    assert sd.compile("x + 1").background


def test_vector_valued_function_first_answers():
    outputs = ["a*b", "sin(a) + c", "exp(-b*c)"]
    tiered = sd.compile(outputs, background=True)
    compiled = sd.compile(outputs, background=False)
    calls = {"forward": (0.5, 1.5, -0.3), "jacobian": (0.5, 1.5, -0.3),
             "vjp": (0.5, 1.5, -0.3, np.array([1.0, -2.0, 0.5])),
             "jvp": (0.5, 1.5, -0.3, np.array([0.2, 0.1, -1.0]))}
    for method, args in calls.items():
        getattr(tiered, method)(*args)
        _assert_same(tiered.loader.evaluator(method)(*args), getattr(compiled, method)(*args))
    tiered.wait()
