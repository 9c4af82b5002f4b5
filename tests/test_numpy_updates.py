"""cumprod, cumsum along an axis, tril/triu, einsum and x.at[...] updates, traced from NumPy
code: compiled values against NumPy, gradients and Hessians against central differences."""

import numpy as np
import pytest

import symdiff as sd

N = 12
RNG = np.random.default_rng(3)
POINT = RNG.normal(size=N)
POINT[5] = 0.0  # cumprod through a zero: exp(cumsum(log x)) would give nan
B = RNG.normal(size=(4, 2))


def _m(x):
    return x.reshape(3, 4)


def _set_numpy(x):
    out = x.copy()
    out[1:4] = x[0]
    return out


def _add_numpy(x):
    out = x.copy()
    np.add.at(out, [0, 7, 7], x[1:4] ** 2)
    return out


def _triangle_numpy(x):
    out = np.zeros((4, 4))
    out[np.tril_indices(4)] = x[:10]
    out[np.diag_indices(4)] = np.exp(np.diag(out))
    return out


def _triangle_symbolic(x):
    out = sd.zeros((4, 4)).at[np.tril_indices(4)].set(x[:10])
    diagonal = np.diag_indices(4)
    return out.at[diagonal].set(np.exp(out[diagonal]))


# name: (the function on symbolic x, the same in NumPy); each gives a scalar.
CASES = {
    "cumprod": (lambda x: np.sum(np.cumprod(x[:6]) * np.arange(1.0, 7.0)), None),
    "cumprod_axis0": (lambda x: np.sum(np.cumprod(_m(x), axis=0) ** 2), None),
    "cumprod_axis1": (lambda x: np.sum(np.cumprod(_m(x), axis=1)), None),
    "cumsum_axis0": (lambda x: np.sum(np.cumsum(_m(x), axis=0) ** 3), None),
    "cumsum_axis1": (lambda x: np.sum(np.cumsum(_m(x), axis=-1) * _m(x)), None),
    "tril_triu": (lambda x: np.sum(np.tril(_m(x)[:, :3]) ** 2) + np.sum(np.triu(_m(x), 1)),
                  None),
    "einsum_matmul": (lambda x: np.sum(np.einsum("ij,jk->ik", _m(x), B) ** 2), None),
    "einsum_trace_like": (lambda x: np.einsum("ij,ij", _m(x), _m(x)), None),
    "einsum_outer": (lambda x: np.sum(np.einsum("i,j->ij", x[:3], x[3:7]) ** 2), None),
    "einsum_transpose": (lambda x: np.sum(np.einsum("ij->ji", _m(x)) @ _m(x)), None),
    "einsum_three_axes": (lambda x: np.sum(np.einsum("abc,cb->ab", x.reshape(2, 3, 2),
                                                     _m(x)[:2, 1:]) ** 2
                                           * np.sin(np.einsum("abc->cab", x.reshape(2, 3, 2)))
                                           .sum()), None),
    "at_set": (lambda x: np.sum(x.at[1:4].set(x[0]) ** 2),
               lambda x: np.sum(_set_numpy(x) ** 2)),
    "at_add": (lambda x: np.sum(x.at[[0, 7, 7]].add(x[1:4] ** 2) ** 3),
               lambda x: np.sum(_add_numpy(x) ** 3)),
    "at_multiply": (lambda x: np.sum(_m(x).at[1, 2:].multiply(x[0]) ** 2),
                    lambda x: np.sum(np.concatenate([x[:6], x[6:8] * x[0], x[8:]]) ** 2)),
    "triangular": (lambda x: np.sum((_triangle_symbolic(x) @ x[:4]) ** 2),
                   lambda x: np.sum((_triangle_numpy(x) @ x[:4]) ** 2)),
}


def _numpy(name):
    symbolic, numeric = CASES[name]
    return numeric or symbolic


@pytest.fixture(scope="module")
def compiled():
    x = sd.vector("x", N)
    outputs = [f(x) for f, _ in CASES.values()]  # one compile for every case
    return sd.compile(outputs, wrt=[x], args=[x], background=False)


def _central(f, at, step=1e-6):
    return np.array([(f(at + step * e) - f(at - step * e)) / (2 * step) for e in np.eye(N)])


@pytest.mark.parametrize("name", list(CASES))
def test_values_and_gradients_against_numpy(name, compiled):
    k = list(CASES).index(name)
    f = _numpy(name)
    np.testing.assert_allclose(compiled(POINT)[k], f(POINT), rtol=1e-13)
    np.testing.assert_allclose(compiled.jacobian(POINT)[k], _central(f, POINT), rtol=1e-6,
                               atol=1e-7)


# Each running product or sum along a matrix axis is a scan; their Hessians are checked
# one at a time (a single function of five scans compiles for 24 s).
SCANS = ("cumprod_axis0", "cumprod_axis1", "cumsum_axis0", "cumsum_axis1")


@pytest.mark.parametrize("names", [tuple(n for n in CASES if n not in SCANS), ("cumprod_axis0",),
                                   ("cumsum_axis1",)])
def test_hessians_against_central_differences_of_the_gradient(names):
    x = sd.vector("x", N)
    fn = sd.compile(sum(CASES[name][0](x) for name in names), args=[x], background=False)
    np.testing.assert_allclose(fn.hessian(POINT), _central(fn.grad, POINT), rtol=1e-5,
                               atol=1e-5)


def test_cumprod_over_an_open_length_is_one_compile():
    x = sd.vector("x", None)
    fn = sd.compile(sd.sum(np.cumprod(x)), args=[x], background=False)
    for n in (1, 3, 7):
        values = RNG.normal(size=n)
        assert fn(values) == pytest.approx(np.sum(np.cumprod(values)), rel=1e-14)
        np.testing.assert_allclose(fn.grad(values), _grad_of_sum_cumprod(values), rtol=1e-12)


def _grad_of_sum_cumprod(v):
    return np.array([sum(np.prod(np.delete(v[:j + 1], i)) for j in range(i, len(v)))
                     for i in range(len(v))])


def test_update_and_einsum_errors_are_clear():
    x, m = sd.vector("x", 4), sd.matrix("m", 2, 2)
    with pytest.raises(sd.ShapeError, match="do not fit"):
        x.at[1:3].set(sd.vector("v", 3))
    with pytest.raises(sd.ShapeError, match="one array for each"):
        m[np.array([0, 1]), np.array([1, 0]), np.array([0, 0])]
    with pytest.raises(sd.ShapeError, match="must be distinct"):
        np.einsum("ij->ii", m)
    with pytest.raises(sd.ShapeError, match="repeated letter"):
        np.einsum("ii->", sd.matrix("r", 2, 3))
    with pytest.raises(sd.ShapeError, match="sizes"):
        np.einsum("ij,ij->", m, sd.matrix("n", 2, 3))


def test_set_at_repeated_positions_keeps_the_last_value_as_numpy():
    rng = np.random.default_rng(8)
    x, data = sd.symbol("x", (4, 3)), rng.normal(size=(4, 3))
    cases = [  # (key, values' shape)
        (np.array([2, 0, 2]), (3, 3)),
        ((np.array([0, 1, 0, 3]), np.array([1, 1, 1, 2])), (4,)),
        ((slice(None), np.array([1, 1])), (4, 2)),
    ]
    for key, shape in cases:
        v = sd.symbol("v", shape)
        values = rng.normal(size=shape)
        expected = data.copy()
        expected[key] = values
        updated = x.at[key].set(v)
        np.testing.assert_array_equal(sd.evaluate(updated, {"x": data, "v": values}),
                                      expected)
        fn = sd.compile(np.sum(np.sin(updated) * updated), args=[x, v], background=False)

        def reference(d, w, key=key):
            out = d.copy()
            out[key] = w
            return np.sum(np.sin(out) * out)
        h, (by_x, by_v) = 1e-6, fn.grad(data, values)
        for index in np.ndindex(shape):  # an overwritten value has no effect
            step = np.zeros(shape)
            step[index] = h
            central = (reference(data, values + step) - reference(data, values - step)) / (2 * h)
            assert by_v[index] == pytest.approx(central, rel=1e-6, abs=1e-9)
        step = np.zeros((4, 3))
        step[np.unravel_index(np.arange(12), (4, 3))[0][5], 2] = h
        central = (reference(data + step, values) - reference(data - step, values)) / (2 * h)
        assert np.sum(by_x * step) / h == pytest.approx(central, rel=1e-6, abs=1e-9)
    with pytest.raises(sd.ShapeError, match="repeats"):
        sd.vector("y", 3).at[np.array([1, 1])].multiply(sd.vector("w", 2))


def test_slices_mixed_with_integer_arrays_read_and_update_as_numpy():
    # A Gaussian mixture's triangular factors, written as for JAX.
    k, d = 3, 4
    rows, cols = np.tril_indices(d)
    factors = sd.matrix("L", k, len(rows))
    values = np.random.default_rng(5).normal(size=(k, len(rows)))
    expected = np.zeros((k, d, d))
    expected[:, rows, cols] = values
    built = sd.zeros((k, d, d)).at[:, rows, cols].set(factors)
    np.testing.assert_array_equal(sd.evaluate(built, {"L": values}), expected)
    a = sd.symbol("A", (3, 4, 5))
    data = np.arange(60.0).reshape(3, 4, 5)
    for key in [(slice(None), [0, 2]), (slice(None), [0, 2], slice(1, 3)),
                (1, [0, 1], [2, 3]), (slice(0, 2), np.array([[0, 1], [2, 3]])),
                (np.array([0, 2]), ...), ([0, 1], [1, 2], ...), ([0, 1], ..., [1, 2]),
                (np.array([True, False, True]), ...), ([0, 1], None), (None, [0, 2])]:
        np.testing.assert_array_equal(sd.evaluate(a[key], {"A": data}), data[key])
    fn = sd.compile(lambda L: np.sum(np.sin(sd.zeros((k, d, d)).at[:, rows, cols].set(L)) ** 2),
                    args=[factors])
    h = 1e-6
    steps = np.eye(values.size).reshape(-1, *values.shape)
    fd = np.array([(fn(values + h * e) - fn(values - h * e)) / (2 * h) for e in steps])
    np.testing.assert_allclose(fn.grad(values), fd.reshape(values.shape), rtol=1e-6, atol=1e-9)
    with pytest.raises(sd.ShapeError, match="static shape"):
        sd.matrix("B", None, 4)[:, [0, 1]]


def test_scipy_functions_that_cannot_trace_name_the_spelling_that_does():
    import scipy.special
    import scipy.stats
    with pytest.raises(sd.TraceError, match=r"scipy.special.logsumexp does not trace .*"
                                            r"write sd.logsumexp\(x, axis=None"):
        sd.jit(lambda x: scipy.special.logsumexp(x))(np.ones(3))
    with pytest.raises(sd.TraceError, match=r"scipy.special.softmax .* sd.softmax\(x, axis"):
        sd.compile(lambda x: np.sum(scipy.special.softmax(x)), args=[sd.vector("x", 3)])
    with pytest.raises(sd.TraceError, match="scipy.stats.rv_continuous.logpdf does not "
                                            "trace .* NumPy"):
        sd.jit(lambda x: np.sum(scipy.stats.norm.logpdf(x)))(np.ones(3))
    data = np.ones((2, 3))  # a SciPy error about plain arrays stays SciPy's
    with pytest.raises(np.exceptions.AxisError):
        sd.jit(lambda x: np.sum(x) + scipy.special.logsumexp(data, axis=2))(np.ones(3))
    # SciPy's ufuncs trace as they are.
    assert sd.jit(lambda x: np.sum(scipy.special.expit(x)))(np.zeros(2)) == 1.0
