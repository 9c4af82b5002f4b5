"""BLAS on one thread while compiled matrix products run (symdiff.runtime.blas_threads): the
same numbers, the caller's thread setting back afterwards, no wrapper where OpenBLAS
would not thread anyway."""

import numpy as np
from threadpoolctl import threadpool_info

import symdiff as sd
from symdiff.runtime import blas_threads


def _threads():
    return {lib["filepath"]: lib["num_threads"] for lib in threadpool_info()
            if lib["user_api"] == "blas"}


def test_products_run_limited_and_the_setting_comes_back(monkeypatch):
    X, W = sd.matrix("X", None, 64), sd.matrix("W", 64, 32)
    f = sd.sum(sd.tanh(X @ W))
    fn = sd.compile(f, args=[X, W], background=False)
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(256, 64)), rng.normal(size=(64, 32)) * 0.1
    fn.value_and_grad(x, w)  # every BLAS library loaded
    before = _threads()
    value, grads = fn.value_and_grad(x, w)
    assert _threads() == before and before
    assert blas_threads.threaded_products(fn.lower("value_and_grad").spec)
    np.testing.assert_allclose(value, np.sum(np.tanh(x @ w)), rtol=1e-12)
    np.testing.assert_allclose(grads[1], x.T @ (1 - np.tanh(x @ w) ** 2), rtol=1e-10)
    monkeypatch.setenv("SYMDIFF_BLAS_THREADS", "0")  # left alone: the same numbers
    unlimited = sd.compile(f, args=[X, W], background=False)
    assert unlimited.value_and_grad(x, w)[0] == value


def test_small_products_are_not_wrapped():
    A, B = sd.matrix("A", 3, 3), sd.matrix("B", 3, 3)
    fn = sd.compile(sd.sum(A @ B), args=[A, B], background=False)
    assert not blas_threads.threaded_products(fn.lower("forward").spec)
    assert blas_threads.threads() == 1
