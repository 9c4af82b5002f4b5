"""A Python function is a function of what it is called with (jax.jit's rule): no
tracing on scalars behind the user's back, and the per-shape object behaves like a
compiled function (issue 21, items 1 and 3)."""

import functools
import pickle
import subprocess
import sys

import numpy as np
import pytest

import symdiff as sd

X = np.array([0.3, -1.2, 2.0])


def _central(f, x, step=1e-6):
    x = np.asarray(x, dtype=float)
    return np.array([(f(x + step * e) - f(x - step * e)) / (2 * step)
                     for e in np.eye(x.size)])


def energy(x):
    return np.sum(x ** 2) / np.sum(x)


def loss(w, data, scale=1.0):
    return scale * np.sum(np.tanh(data @ w) ** 2)


# (function, value at X, gradient at X): the reproductions of the issue.
REDUCTIONS = [
    (lambda x: np.sum(x) ** 2, np.sum(X) ** 2, np.full(3, 2 * np.sum(X))),
    (lambda x: np.max(x), 2.0, np.array([0.0, 0.0, 1.0])),
    (lambda x: np.linalg.norm(x), np.linalg.norm(X), X / np.linalg.norm(X)),
    (lambda x: x.mean(), X.mean(), np.full(3, 1 / 3)),
    (energy, energy(X), None),
    (lambda x: np.sum(x * np.linspace(0, 1, 3)), np.sum(X * np.linspace(0, 1, 3)),
     np.linspace(0, 1, 3)),
]


@pytest.mark.parametrize("k", range(len(REDUCTIONS)))
def test_a_function_of_an_array_is_that_function_of_the_array(k):
    f, value, gradient = REDUCTIONS[k]
    fn = sd.compile(f, background=False)
    assert fn(np.ones(3)) == pytest.approx(f(np.ones(3)), rel=1e-14)
    assert fn(X) == pytest.approx(value, rel=1e-14)
    expected = _central(f, X) if gradient is None else gradient
    np.testing.assert_allclose(fn.grad(X), expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(fn.grad(X), _central(f, X), rtol=1e-6, atol=1e-8)
    # Declared as an array, the same answers; declared as a scalar, points on purpose.
    declared = sd.compile(f, args={"x": (3,)}, background=False)
    np.testing.assert_allclose(declared.grad(X), fn.grad(X), rtol=1e-14)


def test_scalar_args_ask_for_points_explicitly():
    per_point = sd.compile(lambda x: np.sum(x) ** 2, args=["x"], background=False)
    np.testing.assert_allclose(per_point(X), X ** 2)  # np.sum of a scalar is the scalar
    np.testing.assert_allclose(per_point.grad(X), (2 * X)[:, None])
    # ... and an expression of scalars evaluates at many points, as documented.
    x = sd.symbol("x")
    np.testing.assert_allclose(sd.compile(x ** 2, background=False).grad(X), (2 * X)[:, None])


def test_several_array_arguments_and_a_mix_with_scalars():
    rng = np.random.default_rng(0)
    w, data = rng.normal(size=3), rng.normal(size=(4, 3))
    fn = sd.compile(loss, background=False)
    assert fn(w, data) == pytest.approx(loss(w, data), rel=1e-13)
    gw, gdata = fn.grad(w, data)
    np.testing.assert_allclose(gw, _central(lambda v: loss(v, data), w), rtol=1e-6)
    np.testing.assert_allclose(gdata.ravel(), _central(
        lambda d: loss(w, d.reshape(4, 3)), data.ravel()), rtol=1e-6, atol=1e-9)
    by_w = sd.compile(loss, wrt=0, background=False)
    np.testing.assert_allclose(by_w.grad(w, data), gw, rtol=1e-14)
    # A parameter with a default, passed: an argument, not a variable (jax.grad's argnums),
    # unless wrt names it.
    value, (g_w, g_data) = fn.value_and_grad(w, data, 2.0)
    assert value == pytest.approx(loss(w, data, 2.0), rel=1e-13)
    np.testing.assert_allclose(g_w, 2.0 * gw, rtol=1e-13)
    assert sd.compile(loss, wrt="scale", background=False).grad(w, data, 2.0) == (
        pytest.approx(loss(w, data), rel=1e-13))
    one = sd.grad(lambda x, p=2.0: p * np.sum(x ** 2))
    np.testing.assert_allclose(one(X), 4 * X)  # an array, with the default or passed
    np.testing.assert_allclose(one(X, 3.0), 6 * X)


def test_keyword_arguments_bind_as_in_python():
    rng = np.random.default_rng(1)
    w, data = rng.normal(size=3), rng.normal(size=(4, 3))
    fn = sd.compile(loss, wrt=0, background=False)
    expected = fn.grad(w, data)
    np.testing.assert_allclose(fn.grad(w=w, data=data), expected, rtol=1e-14)
    np.testing.assert_allclose(fn.grad(data=data, w=w), expected, rtol=1e-14)
    np.testing.assert_allclose(fn.grad(w, data, scale=3.0), 3 * expected, rtol=1e-13)
    assert fn(w, data=data, scale=0.5) == pytest.approx(0.5 * loss(w, data), rel=1e-13)
    # hvp: the direction follows the arguments; a default is passed by keyword.
    direction = np.array([1.0, 0.0, -1.0])
    hvp = fn.hvp(w, data, direction)
    np.testing.assert_allclose(fn.hvp(w, direction, data=data), hvp, rtol=1e-14)
    np.testing.assert_allclose(fn.hvp(w, data, direction, scale=2.0), 2 * hvp, rtol=1e-13)
    np.testing.assert_allclose(hvp, _central(lambda v: fn.grad(v, data), w) @ direction,
                               rtol=1e-6)
    with pytest.raises(sd.ArgumentError, match="multiple values for argument 'w'"):
        fn.grad(w, w=w)
    with pytest.raises(sd.ArgumentError, match="unexpected keyword argument 'v'"):
        fn.grad(w, data, v=w)
    with pytest.raises(sd.ArgumentError, match="unexpected keyword argument 'dta'"):
        fn.grad(w, dta=data)  # (named before the argument it leaves missing)
    with pytest.raises(sd.ArgumentError, match=r"loss\(w, data, scale=\.\.\.\): missing"):
        fn.grad(w)
    with pytest.raises(sd.ArgumentError, match="pass scale by keyword"):
        fn.hvp(w, data, 2.0, direction)  # a default given by position to a direction method


def test_partials_and_callable_objects_compile():
    rng = np.random.default_rng(2)
    w, data = rng.normal(size=3), rng.normal(size=(5, 3))
    partial = sd.compile(functools.partial(loss, data=data), background=False)
    np.testing.assert_allclose(partial.grad(w), _central(lambda v: loss(v, data), w),
                               rtol=1e-6)
    assert "loss" in repr(partial)

    class Quadratic:
        def __init__(self, a):
            self.a = a

        def __call__(self, x):
            return np.sum(self.a * x ** 2)

    fn = sd.compile(Quadratic(np.array([1.0, 2.0, 3.0])), background=False)
    np.testing.assert_allclose(fn.grad(X), 2 * np.array([1.0, 2.0, 3.0]) * X, rtol=1e-14)
    assert "Quadratic" in repr(fn)


def test_errors_that_need_no_call_are_raised_at_compile():
    with pytest.raises(sd.TraceError, match="parameter 'rest'"):
        sd.compile(lambda x, *rest: x)
    with pytest.raises(sd.SymdiffError, match="wrt position 3 is out of range"):
        sd.compile(loss, wrt=3)
    with pytest.raises(sd.SymdiffError, match="wrt names 'v'"):
        sd.compile(loss, wrt="v")
    with pytest.raises(sd.SymdiffError, match="lowering must be one of"):
        sd.compile(loss, lowering="fortran")
    with pytest.raises(sd.SymdiffError, match="grad needs a scalar function .*fn.vmap"):
        sd.compile(lambda x: x ** 2, background=False).grad(X)


@pytest.fixture(scope="module")
def matrix_sum():
    fn = sd.compile(lambda w: np.sum(np.ones((2, 3)) @ w), background=False)
    fn(np.ones(3))
    return fn


def test_save_source_and_wait_of_the_per_shape_object(matrix_sum, tmp_path):
    fn = matrix_sum
    assert fn.wait() is fn
    assert fn.signatures == [{"w": (3,)}]
    assert "def gradient(w)" in fn.source
    path = fn.save(tmp_path / "m.py")
    script = (f"import sys; sys.modules['symdiff'] = None; sys.path.insert(0, {str(tmp_path)!r})"
              "\nimport numpy as np, m\nprint(m.gradient(np.ones(3)).tolist())")
    shown = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           check=True).stdout
    assert shown.strip() == "[2.0, 2.0, 2.0]" and str(path).endswith("m.py")
    # Shapes given: another signature, saved without a call.
    with pytest.raises(sd.ShapeError):
        fn.save(tmp_path / "m4.py", shapes=[(4,)])  # (2, 3) @ a 4-vector: a shape error
    square = sd.compile(lambda x: np.sum(x ** 2))
    square.save(tmp_path / "s.py", shapes={"x": (None,)})
    assert "x array(batch,)" in (tmp_path / "s.py").read_text()
    square(np.ones(2))
    square(np.ones(5))
    with pytest.raises(sd.SymdiffError, match="needs one shape signature"):
        _ = square.source


def test_the_per_shape_object_pickles_and_vmaps(matrix_sum):
    fn = matrix_sum
    restored = pickle.loads(pickle.dumps(sd.compile(energy)))
    assert restored(X) == pytest.approx(energy(X), rel=1e-14)
    batch = np.arange(12.0).reshape(4, 3)
    np.testing.assert_allclose(fn.vmap(0)(batch), [2 * row.sum() for row in batch],
                               rtol=1e-14)
    np.testing.assert_allclose(fn.vmap(0).grad(batch), np.full((4, 3), 2.0))
