"""sd.* functions on plain numbers and arrays compute numbers, as jnp.* does (symdiff.ir.eager):
every public math function against NumPy/SciPy, scalars and arrays; expressions stay
symbolic; and a loss written with sd.* functions, evaluated on arrays, against the compiled
gradient by central finite differences."""

import inspect
import re

import numpy as np
import pytest
import scipy.special as sp
import sympy

import symdiff as sd
from symdiff.ir.nodes import OPS
from tests.test_ops import POINTS

V = np.array([-1.3, -0.2, 0.0, 0.4, 2.1])
POSITIVE = np.array([0.05, 0.4, 1.0, 2.5, 9.0])
UNIT = np.array([-0.9, -0.3, 0.0, 0.5, 0.95])
W = np.array([0.7, -0.4, 0.0, 1.5, -2.2])
M = np.array([[0.3, -1.2, 2.0], [1.1, 0.0, -0.5]])
SQUARE = np.array([[4.0, 1.0, -0.5], [0.3, 3.0, 0.2], [-1.0, 0.4, 5.0]])
CUBE = np.arange(24.0).reshape(2, 3, 4) * 0.1 - 1.0

# name: (NumPy/SciPy reference, domain)
UNARY = {
    "sin": (np.sin, V), "cos": (np.cos, V), "tan": (np.tan, V), "exp": (np.exp, V),
    "log": (np.log, POSITIVE), "sqrt": (np.sqrt, POSITIVE), "tanh": (np.tanh, V),
    "sinh": (np.sinh, V), "cosh": (np.cosh, V), "asin": (np.arcsin, UNIT),
    "acos": (np.arccos, UNIT), "atan": (np.arctan, V), "log1p": (np.log1p, POSITIVE),
    "expm1": (np.expm1, V), "erf": (sp.erf, V), "erfc": (sp.erfc, V), "abs": (np.abs, V),
    "sign": (np.sign, V), "step": (lambda x: np.heaviside(x, 0.0), V),
    "sigmoid": (sp.expit, V), "relu": (lambda x: np.maximum(x, 0.0), V),
    "softplus": (lambda x: np.logaddexp(0.0, x), V), "stop_gradient": (lambda x: x, V),
    "gammaln": (sp.gammaln, POSITIVE), "digamma": (sp.psi, POSITIVE),
    "log_ndtr": (sp.log_ndtr, np.array([-40.0, -3.0, 0.0, 2.0, 7.0])),
}
# Elementwise ops without a row above (a new op): NumPy's own ufunc of the op, at the
# points of its row in test_ops.py, so adding an op needs no row here.
UNARY.update({name: (getattr(np, op.numpy_ufuncs[0]), np.array([p[0] for p in POINTS[name]]))
              for name, op in OPS.items() if name in sd.ops.PUBLIC and name not in UNARY
              and op.arity == 1 and op.numpy_ufuncs and hasattr(np, op.numpy_ufuncs[0])})
BINARY = {
    "atan2": np.arctan2, "maximum": np.maximum, "minimum": np.minimum,
    "less": np.less, "less_equal": np.less_equal, "greater": np.greater,
    "greater_equal": np.greater_equal, "equal": np.equal, "not_equal": np.not_equal,
}
# name: [(arguments, reference value)]
ARRAYS = {
    "sum": [((M,), np.sum(M)), ((M, 0), np.sum(M, 0)), ((M, 1, True), np.sum(M, 1, keepdims=True)),
            ((2.5,), 2.5)],
    "mean": [((M,), np.mean(M)), ((M, 1), np.mean(M, 1))],
    "amax": [((M,), np.max(M)), ((M, 0, True), np.max(M, 0, keepdims=True))],
    "matmul": [((M, SQUARE), M @ SQUARE), ((M, V[:3]), M @ V[:3]), ((V[:2], M), V[:2] @ M)],
    "dot": [((V, W), np.dot(V, W)), ((M, V[:3]), np.dot(M, V[:3])), ((2.0, M), 2.0 * M)],
    "transpose": [((M,), M.T), ((V,), V), ((CUBE,), CUBE.T), ((CUBE, (1, 2, 0)),
                                                            np.transpose(CUBE, (1, 2, 0)))],
    "moveaxis": [((CUBE, 0, -1), np.moveaxis(CUBE, 0, -1)), ((M, 1, 0), M.T)],
    "swapaxes": [((CUBE, 0, 2), np.swapaxes(CUBE, 0, 2))],
    "reshape": [((M, (3, 2)), M.reshape(3, 2)), ((M, -1), M.reshape(-1))],
    "index": [((M, (1, slice(0, 2))), M[1, 0:2]), ((V, [4, 0, 0]), V[[4, 0, 0]]),
              ((M, 1), M[1])],
    "take": [((M, [1, 0, 1]), np.take(M, [1, 0, 1], axis=0))],
    "concatenate": [(([M, SQUARE],), np.concatenate([M, SQUARE])),
                    (([M, M[:, :1]], 1), np.concatenate([M, M[:, :1]], 1))],
    "stack": [(([V, W],), np.stack([V, W])), (([V, W], 1), np.stack([V, W], 1))],
    "where": [((V > 0, V, W), np.where(V > 0, V, W)), ((1.0, 2.0, 3.0), 2.0)],
    "logsumexp": [((M,), sp.logsumexp(M)), ((M, 1), sp.logsumexp(M, 1)),
                  ((np.array([1e3, 0.0]),), 1e3)],
    "log_softmax": [((M,), sp.log_softmax(M, -1)), ((M, 0), sp.log_softmax(M, 0)),
                    ((np.array([1e3, 0.0]),), np.array([0.0, -1e3]))],
    "softmax": [((M,), sp.softmax(M, -1)), ((M, 0), sp.softmax(M, 0))],
    "outer": [((V, W[:3]), np.outer(V, W[:3]))],
    "solve": [((SQUARE, V[:3]), np.linalg.solve(SQUARE, V[:3]))],
    "cumsum": [((V,), np.cumsum(V)), ((M,), np.cumsum(M)), ((M, 1), np.cumsum(M, 1))],
    "cumprod": [((V,), np.cumprod(V)), ((M, 0), np.cumprod(M, 0))],
    "einsum": [(("ij,jk->ik", M, SQUARE), np.einsum("ij,jk->ik", M, SQUARE)),
               (("i,i", V, W), np.einsum("i,i", V, W)), (("ij->j", M), np.einsum("ij->j", M)),
               (("abc,cb->ba", CUBE, CUBE[0].T[:4]), np.einsum("abc,cb->ba", CUBE,
                                                              CUBE[0].T[:4])),
               (("abc->cab", CUBE), np.einsum("abc->cab", CUBE)),
               (("ii->", SQUARE), np.einsum("ii->", SQUARE)),
               (("ii->i", SQUARE), np.einsum("ii->i", SQUARE)),
               (("...ij,jk->...ik", CUBE, CUBE[0].T), np.einsum("...ij,jk->...ik", CUBE,
                                                                 CUBE[0].T)),
               (("...j,j", CUBE, CUBE[0, 0]), np.einsum("...j,j", CUBE, CUBE[0, 0]))],
    "tril": [((SQUARE,), np.tril(SQUARE)), ((SQUARE, -1), np.tril(SQUARE, -1))],
    "triu": [((SQUARE,), np.triu(SQUARE)), ((SQUARE, 1), np.triu(SQUARE, 1))],
    "polygamma": [((1, POSITIVE), sp.polygamma(1, POSITIVE)), ((0, 2.5), sp.psi(2.5)),
                  ((3, 0.7), sp.polygamma(3, 0.7))],
}


def _python_scan(xs):
    carry, ys = 0.5, []
    for x in xs:
        carry, y = np.sin(carry) + x, carry * x
        ys.append(y)
    return carry, np.array(ys)


def _newton(f, x0):
    return sd.while_loop(lambda x: sd.abs(f(x)) > 1e-13, lambda x: x - f(x) / (2.0 * x), x0)


LOOPS = {
    "scan": (lambda: sd.scan(lambda c, x: (sd.sin(c) + x, c * x), 0.5, V), _python_scan(V)),
    "fori_loop": (lambda: sd.fori_loop(0, 5, lambda i, c: c * 0.5 + i, W),
                  W / 32 + 0.5 ** np.arange(4, -1, -1) @ np.arange(5.0)),
    "while_loop": (lambda: sd.while_loop(lambda c: c < 100.0, lambda c: c * 3.0, 1.5), 121.5),
    "custom_root": (lambda: sd.custom_root(lambda x: x * x - 2.0, 1.0, _newton), np.sqrt(2.0)),
}

# Public functions that are not math on values: constructors, transforms, tools.
NOT_MATH = {
    "symbols", "symbol", "const", "vector", "matrix", "zeros", "parse", "evaluate", "diff",
    "grad", "hessian", "jacobian", "hvp", "optimize", "count_ops", "free_symbols",
    "to_let_form", "to_dot", "to_sympy", "from_sympy", "to_latex", "show_progress", "vjp",
    "compile", "jit", "value_and_grad", "vmap", "clear_cache", "jvp", "ravel_pytree",
}


def _same(got, want, rtol=1e-12):
    """Equal values, and NumPy's kind of result: a float for a scalar, else an array."""
    want = np.asarray(want, dtype=np.float64)
    if want.ndim == 0:
        assert type(got) is float, type(got)
    else:
        assert isinstance(got, np.ndarray) and got.dtype == np.float64, type(got)
        assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-14)


def test_every_public_function_is_classified():
    public = {n for n in sd.__all__ if not inspect.isclass(getattr(sd, n))}
    covered = set(UNARY) | set(BINARY) | set(ARRAYS) | set(LOOPS)
    assert covered <= public
    assert public - NOT_MATH == covered, (
        "a public function is neither tested here as math (decorate it with "
        "symdiff.eager.eager) nor listed in NOT_MATH")


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_on_arrays_and_scalars(name):
    reference, domain = UNARY[name]
    fn = getattr(sd, name)
    _same(fn(domain), reference(domain))
    _same(fn(domain.reshape(1, -1)), reference(domain.reshape(1, -1)))
    for x in domain:
        _same(fn(float(x)), reference(x))
    _same(fn(np.float64(domain[1])), reference(domain[1]))


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_broadcast_like_numpy(name):
    fn, reference = getattr(sd, name), BINARY[name]
    column = V.reshape(-1, 1)
    _same(fn(V, W), reference(V, W).astype(float))
    _same(fn(column, W), reference(column, W).astype(float))  # (5, 1) with (5,): (5, 5)
    _same(fn(V, 0.0), reference(V, 0.0).astype(float))
    _same(fn(0.4, 0.4), float(reference(0.4, 0.4)))
    _same(fn(2, -1), float(reference(2.0, -1.0)))


@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_array_functions_match_numpy(name):
    for args, want in ARRAYS[name]:
        _same(getattr(sd, name)(*args), want)


@pytest.mark.parametrize("name", sorted(LOOPS))
def test_loops_on_numbers(name):
    run, want = LOOPS[name]
    got = run()
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            _same(g, w)
    else:
        _same(got, want)


def test_conventions_are_the_compiled_codes():
    # The op records' own math: stable at large arguments, step(0) = relu(0) = sign(0) = 0.
    _same(sd.softplus(np.array([1e3, -1e3])), np.array([1e3, 0.0]))
    _same(sd.sigmoid(-1e3), 0.0)
    assert sd.step(0.0) == sd.relu(0.0) == sd.sign(0.0) == 0.0
    assert np.isnan(sd.log(-1.0)) and sd.log(0.0) == -np.inf


def test_expressions_stay_symbolic():
    x, v = sd.symbol("x"), sd.vector("v", 3)
    assert isinstance(sd.softplus(x), sd.Expr)
    assert isinstance(sd.softplus(sd.const(V)), sd.Expr)  # sd.const: a symbolic constant
    assert isinstance(sd.maximum(1.0, x), sd.Expr)
    assert isinstance(sd.concatenate([V[:3], v]), sd.Expr)  # an expression inside a list
    assert isinstance(sd.stack([V[:3], v * 2.0]), sd.Expr)
    assert isinstance(sd.einsum("i,i", V[:3], v), sd.Expr)
    assert isinstance(sd.solve(SQUARE, v), sd.Expr)
    assert isinstance(sd.zeros((3,)), sd.Expr)  # a constructor: .at[...] updates build on it
    # A loop whose arguments are numbers but whose body reads a symbol stays symbolic.
    carry, _ = sd.scan(lambda c, s: (c + x * s, None), 0.0, V)
    assert isinstance(carry, sd.Expr)
    assert sd.evaluate(carry, x=2.0) == pytest.approx(2.0 * V.sum())


def test_results_are_fresh_writable_arrays():
    a = np.array([1.0, 2.0])
    for out in (sd.transpose(a), sd.stop_gradient(a), sd.reshape(a, (2,))):
        assert out is not a and out.flags.writeable
        out[0] = 7.0
    assert a[0] == 1.0


# The case: a loss written with sd.* functions, on plain arrays.
A = SQUARE + np.eye(3)
X = np.array([[0.5, -1.0, 2.0], [1.5, 0.3, -0.7], [-0.2, 0.8, 0.1], [1.0, 1.0, 1.0]])
Y = np.eye(2)[[0, 1, 1, 0]]


def loss(w):
    v = sd.solve(A, w)                            # (3,)
    logits = sd.outer(X @ v, np.array([1.0, -0.5])) + sd.reshape(v[:2], (1, 2))
    return (-sd.sum(Y * sd.log_softmax(logits, axis=1)) + sd.mean(sd.softplus(v))
            + sd.logsumexp(v) + sd.sum(sd.cumsum(v) ** 2))


def test_loss_on_arrays_matches_its_compiled_gradient_by_finite_differences():
    w0 = np.array([0.3, -0.8, 1.1])
    value = loss(w0)
    assert type(value) is float and np.isfinite(value)
    h = 1e-6
    fd = np.array([(loss(w0 + h * e) - loss(w0 - h * e)) / (2 * h) for e in np.eye(3)])
    fn = sd.compile(loss, args={"w": (3,)}, background=False)
    assert fn(w0) == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(fn.grad(w0), fd, rtol=1e-6, atol=1e-8)


def test_logaddexp_at_ties_and_infinities():
    # At x == y the derivative splits evenly (the difference is taken as 0 there, so
    # (+-inf, +-inf) gives +-inf, not inf - inf = nan), as NumPy's value does.
    x, y = sd.symbols("x y")
    fn = sd.compile(np.logaddexp(x, y), args=[x, y])
    assert fn.grad(0.3, 0.3) == pytest.approx((0.5, 0.5), rel=1e-15)
    assert fn.grad(1.0, -1.0) == pytest.approx((1 / (1 + np.exp(-2)), 1 / (1 + np.exp(2))))
    for a, b in [(0.3, 0.3), (-np.inf, -np.inf), (np.inf, np.inf), (-np.inf, 2.0),
                 (700.0, 710.0), (-3.0, 1e-300)]:
        assert fn(a, b) == np.logaddexp(a, b)
    assert sd.evaluate(np.logaddexp(x, y), {"x": -np.inf, "y": -np.inf}) == -np.inf


@pytest.mark.parametrize(("name", "points"), [
    ("gamma", [(0.3, 0.0), (4.5, 0.0), (-0.5, 0.0), (-2.3, 0.0)]),
    ("betaln", [(0.3, 2.0), (5.0, 7.5)]),
    ("beta", [(0.3, 2.0), (5.0, 7.5), (-0.5, 2.2)]),
    ("xlog1py", [(2.0, 0.5), (-1.5, 3.0)]),
])
def test_scipy_special_compositions_match_scipy(name, points):
    function = getattr(sp, name)

    def f(a, b):
        return function(a) if name == "gamma" else function(a, b)
    x, y = sd.symbols("x y")
    fn = sd.compile(f(x, y), args=[x, y])
    for a, b in points:
        assert fn(a, b) == pytest.approx(f(a, b), rel=1e-13)
        h = 1e-6
        fd = ((f(a + h, b) - f(a - h, b)) / (2 * h), (f(a, b + h) - f(a, b - h)) / (2 * h))
        np.testing.assert_allclose(fn.grad(a, b), fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("element", ["a", None, True])
def test_an_object_array_with_an_element_of_another_kind_names_its_position(element):
    def f(x):
        return np.sum(np.array([[x[0], 1.0], [element, x[1]]]) @ x)

    with pytest.raises(sd.TraceError, match=re.escape(f"element at (1, 0) is {element!r}")):
        sd.jit(f)(np.ones(2))


def test_lists_of_expressions_join_as_numpy_reads_them():
    # np.concatenate([[x[0] - 1], x[1:]]) is how a residual's first entry is often
    # written: a list holding an expression, read as NumPy reads it (it raised
    # "setting an array element with a sequence").
    x = np.array([0.5, 1.0, 2.0])
    joined = {
        "concatenate": (lambda v: np.concatenate([[v[0] - 1], v[1:]]), [-0.5, 1.0, 2.0]),
        "hstack": (lambda v: np.hstack([[v[0] - 1], v[1:]]), [-0.5, 1.0, 2.0]),
        "object array": (lambda v: np.concatenate([np.array([v[0] - 1]), v[1:]]),
                         [-0.5, 1.0, 2.0]),
        "vstack": (lambda v: np.vstack([[v[0], 2.0, v[1]], v]),
                   [[0.5, 2.0, 1.0], [0.5, 1.0, 2.0]]),
        "stack": (lambda v: np.stack([[v[0], 1.0], [v[1], v[2]]]), [[0.5, 1.0], [1.0, 2.0]]),
    }
    for name, (f, want) in joined.items():
        np.testing.assert_array_equal(sd.jit(f)(x), want, err_msg=name)
    gradient = sd.grad(lambda v: np.sum(np.concatenate([[v[0] ** 2], v[1:] * 3]) ** 2))
    np.testing.assert_allclose(gradient(x), [4 * 0.5 ** 3, 18.0, 36.0], rtol=1e-15)
    # A list holding an array is the stack of its items (not one node per element).
    np.testing.assert_array_equal(sd.jit(lambda v: np.concatenate([[v], v[None] * 2]))(x),
                                  [x, 2 * x])
    for ragged in (lambda v: np.concatenate([[v[:1], v[1]], v]),
                   lambda v: np.stack([v[:1], v[1]])):  # (NumPy refuses them too)
        with pytest.raises(sd.ShapeError, match="parts of one shape"):
            sd.jit(ragged)(x)


@pytest.mark.parametrize("element", [None, True])
def test_a_returned_object_array_with_an_element_of_another_kind_names_it(element):
    with pytest.raises(sd.TraceError, match=re.escape(f"element at (1,) is {element!r}")):
        sd.jit(lambda t, v: np.array([t * v[0], element]))(0.7, np.ones(2))
    with pytest.raises(sd.TraceError, match=r"array expression of shape \(2,\)"):
        sd.jit(lambda t, v: np.array([t * v[0], v], dtype=object))(0.7, np.ones(2))


def test_a_returned_object_array_is_read_element_by_element_as_a_list_is():
    # (Text and SymPy are expressions to symdiff: a returned array of them and
    # expressions is read as the list of them would be; only operands must be numbers and
    # expressions.)
    def f(x):
        return np.array([x[0] * x[1], "2.0"], dtype=object)

    np.testing.assert_array_equal(sd.jit(f)(np.array([2.0, 3.0])), [6.0, 2.0])
    x = sd.symbol("x")
    mixed = np.array([x * 2, sympy.Symbol("x") ** 2], dtype=object)
    np.testing.assert_array_equal(sd.compile(mixed, wrt=[x], background=False)(2.0),
                                  [4.0, 4.0])


def test_object_arrays_of_expressions_are_the_arrays_of_their_elements():
    # np.array([[c, -s], [s, c]]) of expressions is a NumPy object array (JAX code writes
    # jnp.array): as an operand, or as the result, it is the array of its elements.
    def rotate(t):
        c, s = np.cos(t[0]), np.sin(t[0])
        rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return np.sum((rotation @ t) * rotation[0]) + np.sum(rotation * t)

    def pair(t):
        return np.array([t[0] * t[1], np.sin(t[2])])
    t = np.array([0.3, 1.0, 2.0])
    assert np.isclose(sd.jit(rotate)(t), rotate(t), rtol=1e-14)  # (NumPy on numbers)
    step = 1e-6
    differences = [(rotate(t + e) - rotate(t - e)) / (2 * step) for e in np.eye(3) * step]
    assert np.allclose(sd.grad(rotate)(t), differences, rtol=1e-7, atol=1e-8)
    assert np.allclose(sd.jacobian(pair)(t), [[1.0, 0.3, 0.0], [0.0, 0.0, np.cos(2.0)]])
    # Returned, it keeps its shape (it came back raveled).
    square = sd.jit(lambda t: np.array([[t[0], 2.0 * t[1]], [np.sin(t[2]), 1.0]]))(t)
    assert np.allclose(square, [[0.3, 2.0], [np.sin(2.0), 1.0]])
    with pytest.raises(TypeError):  # an object array of anything else is no operand
        sd.jit(lambda x: x + np.array(["a", "b"], dtype=object))(np.ones(2))

