"""NumPy functions traced into compositions, erf/erfc, and parameters with defaults."""

import numpy as np
import pytest
import scipy.special
import sympy

import symdiff as sd

N = 4
POINT = np.array([0.5, -1.5, 2.0, 3.0])
POSITIVE = np.abs(POINT)

CASES = {  # name: (traced function, where to evaluate)
    "min": (lambda x: np.min(x) + np.amin(x * x), POINT),
    "square": (lambda x: np.sum(np.square(x)), POINT),
    "reciprocal": (lambda x: np.sum(np.reciprocal(x)), POINT),
    "log10": (lambda x: np.sum(np.log10(x)), POSITIVE),
    "log2": (lambda x: np.sum(np.log2(x)), POSITIVE),
    "exp2": (lambda x: np.sum(np.exp2(x)), POINT),
    "cbrt": (lambda x: np.sum(np.cbrt(x)), POINT),
    "hypot": (lambda x: np.sum(np.hypot(x, 1.0)), POINT),
    "norm": (lambda x: np.linalg.norm(x), POINT),
    "erf": (lambda x: np.sum(scipy.special.erf(x) * scipy.special.erfc(x / 2)), POINT),
    "cumsum": (lambda x: np.sum(np.cumsum(x) ** 2 * np.arange(1.0, N + 1.0)), POINT),
}


@pytest.fixture(scope="module")
def compiled():
    x = sd.vector("x", N)
    # One compile for all cases (Numba compiles cost seconds): one output per case.
    outputs = [f(x) for f, _ in CASES.values()]
    return sd.compile(outputs, wrt=[x], args=[x], background=False)


def _central(f, at, step=1e-5):
    return np.array([(f(at + step * e) - f(at - step * e)) / (2 * step) for e in np.eye(N)])


@pytest.mark.parametrize("name", list(CASES))
def test_traced_numpy_functions_against_numpy_to_second_order(name, compiled):
    f, at = CASES[name]
    k = list(CASES).index(name)
    np.testing.assert_allclose(compiled(at)[k], f(at), rtol=1e-14)
    jacobian = compiled.jacobian(at)  # row k: the gradient of case k
    np.testing.assert_allclose(jacobian[k], _central(f, at), rtol=1e-7, atol=1e-8)
    x = sd.vector("x", N)
    single = sd.compile(f(x), args=[x], background=False)
    hessian = single.hessian(at)
    np.testing.assert_allclose(hessian, _central(single.grad, at), rtol=1e-6, atol=1e-6)


def test_erf_and_erfc_derivatives_against_sympy():
    a = sympy.Symbol("a", real=True)
    for ours, theirs in ((sd.erf, sympy.erf), (sd.erfc, sympy.erfc)):
        for order in (1, 2, 3):
            got = sd.diff(ours(sd.symbol("a")), *["a"] * order)
            want = sympy.diff(theirs(a), a, order)
            for value in (-1.3, 0.0, 0.4, 2.5):
                assert sd.evaluate(got, a=value) == pytest.approx(
                    float(want.subs(a, value)), rel=1e-13, abs=1e-15)
    assert sd.parse("erf(a) + erfc(a)") is sd.erf(sd.symbol("a")) + sd.erfc(sd.symbol("a"))
    assert sd.from_sympy(sympy.erf(a)) is sd.erf(sd.symbol("a"))


def test_parameters_with_defaults_stay_constants():
    x = sd.vector("x", N)
    fn = sd.compile(lambda x, k=2.0: np.sum(x * k), args=[x], background=False)
    assert fn.args == [x] and fn(POINT) == pytest.approx(2.0 * POINT.sum())
    fn = sd.compile(lambda a, k=3.0: a**k, background=False)
    assert fn.grad(2.0) == pytest.approx(12.0)  # one argument: its derivative alone
    assert [s.value for s in fn.compiled_for(2.0).args] == ["a"]
    assert fn(2.0, k=2.0) == pytest.approx(4.0)  # passed: an argument (Python's binding)
    listed = sd.compile(lambda a, k=3.0: a**k, args=["a", "k"], background=False)
    assert listed(2.0, 2.0) == pytest.approx(4.0)  # listed in args: a symbol again
    with pytest.raises(sd.TraceError, match="takes 1 to 2 parameters"):
        sd.compile(lambda a, k=3.0: a**k, args=["a", "k", "z"])


def test_unsupported_norms_say_so():
    x = sd.matrix("m", 2, 2)
    with pytest.raises(sd.SymdiffError, match="ord=2"):
        np.linalg.norm(x, 2)
    with pytest.raises(sd.SymdiffError, match="ord=None, 2 or 'fro'"):
        np.linalg.norm(sd.vector("v", 3), 1)


def test_equality_with_numbers_is_symbolic_not_a_silent_branch():
    def guarded(x):
        if x == 0:  # would bake in one branch: it must raise instead
            return 1.0
        return np.sin(x) / x

    with pytest.raises(sd.TraceError, match="sd.where"):
        sd.compile(guarded)(1.0)  # traced at the call, on the arguments' shapes
    with pytest.raises(sd.TraceError, match="sd.where"):
        sd.compile(guarded, args=["x"])
    sinc = sd.compile(lambda x: np.where(x != 0, np.sin(x) / np.where(x != 0, x, 1.0), 1.0),
                      background=False)
    assert sinc(0.0) == 1.0 and sinc(1.0) == pytest.approx(np.sin(1.0), rel=1e-15)
    assert sinc.grad(1.0) == pytest.approx(np.cos(1.0) - np.sin(1.0), rel=1e-14)
    assert sinc.grad(0.0) == 0.0
    # Between expressions == stays identity (interned nodes), as dictionaries need.
    a, b = sd.symbols("a b")
    assert (a == a) is True and (a == b) is False and (a != b) is True
    assert {a: 1, b: 2}[a] == 1 and (a == 1.0) is sd.equal(a, 1.0)


def test_means_over_the_open_dimension_divide_by_its_length_at_run_time():
    y, w = sd.symbol("y", (None,)), sd.symbol("w")
    loss = sd.mean((y * w - 1.0) ** 2)  # a mean-squared error over any number of samples
    fn = sd.compile(loss, wrt=[w], args=[y, w], background=False)
    for n in (1, 3, 8):
        data = np.arange(1.0, n + 1.0)
        assert fn(data, 0.5) == pytest.approx(np.mean((0.5 * data - 1.0) ** 2), rel=1e-14)
        assert fn.grad(data, 0.5)[0] == pytest.approx(np.mean(2 * (0.5 * data - 1) * data))
        assert fn.hessian(data, 0.5)[0, 0] == pytest.approx(2 * np.mean(data * data))
        assert sd.evaluate(loss, y=data, w=0.5) == pytest.approx(fn(data, 0.5), rel=1e-15)
    X = sd.symbol("X", (None, 3))
    columns = sd.compile(lambda X: np.sum(np.mean(X, axis=0) ** 2), args=[X],
                         background=False)
    data = np.arange(12.0).reshape(4, 3)
    assert columns(data) == pytest.approx(np.sum(data.mean(axis=0) ** 2), rel=1e-14)
    np.testing.assert_allclose(columns.grad(data), np.broadcast_to(
        2 * data.mean(axis=0) / 4, data.shape), rtol=1e-14)


RNG = np.random.default_rng(12)
_A, _B = RNG.normal(size=(3, 4, 5)), RNG.normal(size=(4, 5, 2))
_M, _N, _V = RNG.normal(size=(3, 5)), RNG.normal(size=(6, 5)), RNG.normal(size=5)


@pytest.mark.parametrize("f, args", [
    (lambda a, b: np.tensordot(a, b), (_A, _B)),
    (lambda a, b: np.tensordot(a, b, axes=([1, 2], [0, 1])), (_A, _B)),
    (lambda a, b: np.tensordot(a, b, axes=([2, 1], [1, 0])), (_A, _B)),
    (lambda a, b: np.tensordot(a, b, axes=1), (_M, _N.T)),
    (lambda a, b: np.tensordot(a, b, axes=0), (_V, _V)),
    (lambda a, b: np.tensordot(a, b, axes=([-1], [1])), (_M, _N)),
    (lambda a, b: np.inner(a, b), (_M, _N)),
    (lambda a, b: np.inner(a, b), (_V, _V)),
    (lambda a, b: np.inner(a[0], b), (_V, _N)),
])
def test_tensordot_and_inner_as_numpy(f, args):
    np.testing.assert_allclose(sd.jit(f)(*args), f(*args), rtol=1e-13, atol=1e-13)


def test_tensordot_gradient_against_differences_and_its_errors():
    def loss(m, n):
        return np.sum(np.tensordot(m, n, axes=([1], [1])) ** 2)

    gradient = sd.grad(loss, argnums=0)(_M, _N)
    step = np.zeros_like(_M)
    step[1, 2] = 1e-6
    difference = (loss(_M + step, _N) - loss(_M - step, _N)) / 2e-6
    assert abs(gradient[1, 2] - difference) <= 1e-8 * abs(difference)
    with pytest.raises(sd.ShapeError, match="repeated axis of a"):
        sd.jit(lambda a, b: np.tensordot(a, b, axes=([0, 0], [0, 1])))(_A, _B)
    with pytest.raises(sd.ShapeError, match="2 axes of a against 1 of b"):
        sd.jit(lambda a, b: np.tensordot(a, b, axes=([0, 1], [0])))(_A, _B)
    with pytest.raises(sd.ShapeError, match="axis 0 of a has length 3, axis 0 of b 4"):
        sd.jit(lambda a, b: np.tensordot(a, b, axes=([0], [0])))(_A, _B)


def test_astype_float_is_the_array_and_other_types_raise():
    np.testing.assert_array_equal(sd.jit(lambda x: x.astype(np.float64) * 2)(_V), _V * 2)
    with pytest.raises(sd.TraceError, match=r"astype\(int64\)"):
        sd.jit(lambda x: x.astype(int))(_V)


def test_an_unsupported_ufunc_is_named_unless_another_operand_takes_it():
    with pytest.raises(sd.TraceError, match="np.floor is not supported"):
        sd.jit(lambda x: np.floor(x) * x)(np.array([1.5, 2.5]))
    with pytest.raises(TypeError, match="the ufunc erfcx is not supported"):
        sd.jit(lambda x: scipy.special.erfcx(x))(np.array([1.5, 2.5]))

    class Foreign:  # another type's __array_ufunc__ gets its turn, as NumPy gives it
        def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
            return "handled"

    assert np.floor_divide(sd.vector("x", 2), Foreign()) == "handled"
