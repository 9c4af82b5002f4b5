"""Compiled derivative matrices: dense loops over directions, sparse ones by coloring,
their generated code of constant size, the memory guard, and SciPy using them as written."""

import importlib.util

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import least_squares, minimize
from test_sparsity import OP_CASES, X, Y, _rosenbrock, _stencil

import symdiff as sd
from codegen.directions import run_direction_loop
from symdiff.autodiff import coloring
from symdiff.runtime import derivation, matrices


def _central(fn, x, h=1e-6):
    """Central differences of a vector function of one array, columns by element."""
    flat = x.ravel()
    columns = []
    for k in range(flat.size):
        step = np.zeros_like(flat)
        step[k] = h
        up, down = fn((flat + step).reshape(x.shape)), fn((flat - step).reshape(x.shape))
        columns.append((np.ravel(up) - np.ravel(down)) / (2 * h))
    return np.array(columns).T


@pytest.fixture(scope="module")
def rosen():
    f, x = _rosenbrock(12)
    return f, x, sd.compile(f)


@pytest.fixture(scope="module")
def stencil():
    residual, u = _stencil(5)
    return residual, u, sd.compile(residual)


def test_rosenbrock_hessian_dense_sparse_and_finite_differences_agree(rosen):
    f, x, fn = rosen
    point = np.random.default_rng(1).uniform(-1.5, 1.5, size=12)
    dense = fn.hessian(point)
    np.testing.assert_allclose(dense, sd.evaluate(sd.hessian(f, x), x=point), rtol=1e-13)
    np.testing.assert_allclose(dense, _central(fn.grad, point), rtol=1e-6, atol=1e-5)
    sparse = fn.sparse_hessian(point)
    assert sparse.format == "csr" and sparse.nnz == 3 * 12 - 2
    np.testing.assert_allclose(sparse.toarray(), dense, rtol=1e-14, atol=1e-14)
    assert fn.hessian_coloring().count == 3
    assert (fn.hessian_sparsity().toarray() == (np.abs(dense) > 0)).all()
    np.testing.assert_allclose(fn.hvp(point, np.ones(12)), dense @ np.ones(12), rtol=1e-13)
    assert fn.grad(point).shape == (12,)  # one array argument: the array itself
    with pytest.raises(sd.SymdiffError, match="vector- or array-valued"):
        fn.sparse_jacobian(point)


def test_stencil_jacobian_dense_sparse_and_finite_differences_agree(stencil):
    residual, u, fn = stencil
    point = np.random.default_rng(2).normal(size=(5, 5))
    dense = fn.jacobian(point)
    np.testing.assert_allclose(dense, sd.evaluate(sd.jacobian(residual, [u]), u=point),
                               rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(dense, _central(fn, point), rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(fn.sparse_jacobian(point).toarray(), dense, rtol=1e-14)
    assert fn.jacobian_coloring().count == 5  # DSATUR; the static orders give 7
    with pytest.raises(sd.SymdiffError, match="scalar function"):
        fn.hessian_sparsity()


@pytest.fixture(scope="module")
def op_table():
    # stop_gradient last: finite differences of the value see through it.
    names = sorted(set(OP_CASES) - {"stop_gradient"}) + ["stop_gradient"]
    parts = [sd.reshape(OP_CASES[name](), (-1,)) for name in names]
    vector = sd.concatenate(parts)
    loss = sd.sum(vector * vector * vector) / 10.0
    return vector, loss, sd.compile(vector, args=[X, Y]), sd.compile(loss, args=[X, Y])


@pytest.mark.slow
def test_every_op_dense_vs_sparse_vs_finite_differences(op_table):
    vector, loss, vfn, sfn = op_table
    rng = np.random.default_rng(3)
    xv, yv = rng.normal(size=(3, 4)), rng.normal(size=4)
    exact = sd.evaluate(sd.jacobian(vector, [X, Y]), X=xv, y=yv)
    dense = vfn.jacobian(xv, yv)
    np.testing.assert_allclose(dense, exact, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(vfn.sparse_jacobian(xv, yv).toarray(), dense, rtol=1e-13,
                               atol=1e-13)
    both = np.concatenate([xv.ravel(), yv])

    def value(flat):
        return vfn(flat[:12].reshape(3, 4), flat[12:])

    stopped = OP_CASES["stop_gradient"]().size
    np.testing.assert_allclose(dense[:-stopped], _central(value, both)[:-stopped], rtol=1e-5,
                               atol=1e-6)
    hessian = sfn.hessian(xv, yv)
    np.testing.assert_allclose(hessian, sd.evaluate(sd.hessian(loss, [X, Y]), X=xv, y=yv),
                               rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(sfn.sparse_hessian(xv, yv).toarray(), hessian, rtol=1e-12,
                               atol=1e-12)


def _lines(fn, method):
    return len(fn.lower(method).source.splitlines())


def test_generated_code_has_the_same_size_for_every_array_size():
    small, large = (sd.compile(_rosenbrock(n)[0]) for n in (10, 10_000))
    for method in ("hessian", "sparse_hessian_data"):
        assert _lines(small, method) == _lines(large, method)
    assert len(small.source.splitlines()) == len(large.source.splitlines())
    small, large = (sd.compile(_stencil(m)[0]) for m in (4, 300))
    for method in ("jacobian", "sparse_jacobian_data"):
        assert _lines(small, method) == _lines(large, method)


def test_a_dense_result_that_cannot_fit_raises_before_allocating(rosen, monkeypatch):
    _, _, fn = rosen
    monkeypatch.setattr(matrices, "available_memory", lambda: 1000.0)
    assert fn.hessian(np.zeros(12)).shape == (12, 12)  # small results: not checked
    monkeypatch.setattr(matrices, "UNCHECKED_BYTES", 0)
    with pytest.raises(sd.SymdiffError, match=r"12 x 12 .*sparse_hessian.*hvp"):
        fn.hessian(np.zeros(12))
    assert fn.sparse_hessian(np.zeros(12)).nnz == 34  # the sparse form still works


def test_many_scalar_variables_take_the_loop_and_agree_with_the_unrolled_hessian():
    n = derivation.UNROLL_MAX_VARIABLES + 6
    xs = sd.symbols(" ".join(f"x{i:02d}" for i in range(n)))
    f = sum(xs[i] * xs[i + 1] ** 2 + sd.sin(xs[i]) for i in range(n - 1))
    fn = sd.compile(f)
    assert "_e0[_j] = 1.0" in fn.lower("hessian").source
    point = np.random.default_rng(4).normal(size=n)
    exact = np.array(sd.evaluate(sd.hessian(f, xs), dict(zip((f"x{i:02d}" for i in range(n)),
                                                             point, strict=True))))
    np.testing.assert_allclose(fn.hessian(*point), exact, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(fn.sparse_hessian(*point).toarray(), exact, rtol=1e-13,
                               atol=1e-13)
    np.testing.assert_allclose(fn.hvp(*point, np.ones(n)), exact @ np.ones(n), rtol=1e-12)


def test_many_scalar_outputs_take_the_loop_for_dense_and_sparse_jacobians():
    n = derivation.UNROLL_MAX_VARIABLES + 6
    xs = sd.symbols(" ".join(f"s{i:02d}" for i in range(n)))
    outputs = [xs[i] * sd.sin(xs[(i + 1) % n]) for i in range(n)]
    fn = sd.compile(outputs)
    point = np.random.default_rng(6).normal(size=n)
    exact = np.array(sd.evaluate(sd.jacobian(outputs, xs),
                                 dict(zip((f"s{i:02d}" for i in range(n)), point, strict=True))))
    np.testing.assert_allclose(fn.jacobian(*point), exact, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(fn.sparse_jacobian(*point).toarray(), exact, rtol=1e-13,
                               atol=1e-13)
    assert fn.jacobian_coloring().count == 2  # two nonzeros per row, on a cycle


def test_jacobian_with_an_open_dimension():
    k, y = sd.symbol("k"), sd.vector("y", None)
    fn = sd.compile(k * y * np.tanh(y) + sd.sum(y) ** 2, wrt="y", args=[k, y])
    for n in (5, 2):
        point = np.random.default_rng(n).normal(size=n)
        ys = sd.vector("y", n)
        exact = sd.evaluate(sd.jacobian(k * ys * np.tanh(ys) + sd.sum(ys) ** 2, [ys]),
                            k=1.5, y=point)
        np.testing.assert_allclose(fn.jacobian(1.5, point), exact, rtol=1e-13)
        np.testing.assert_allclose(fn.sparse_jacobian(1.5, point).toarray(), exact,
                                   rtol=1e-13)


def test_first_interpreted_call_of_a_direction_loop_matches_the_compiled_code(monkeypatch):
    f, x = _rosenbrock(6)
    point = np.linspace(-1.0, 1.0, 6)
    monkeypatch.setattr("symdiff.runtime.loading.FIRST_CALL", "evaluator")  # even if cached
    tiered = sd.compile(f, background=True, backend="numba")  # Numba's tiers
    first = tiered.hessian(point)  # the loop in Python over the evaluator's hvp
    assert tiered.loader.tiers["hessian"] == "evaluator"
    np.testing.assert_array_equal(first, sd.compile(f).hessian(point))
    np.testing.assert_array_equal(tiered.wait().hessian(point), first)
    monkeypatch.setattr("symdiff.runtime.loading.FIRST_CALL", "auto")
    monkeypatch.setattr("symdiff.runtime.loading.EVALUATOR_SHARE", 0.0)
    waiting = sd.compile(f, background=True, backend="numba")  # never the evaluator: waits
    np.testing.assert_array_equal(waiting.sparse_hessian(point).toarray(), first)


def test_third_derivatives_of_a_small_array_function_match_differences_of_the_hessian():
    x = sd.vector("x", 3)
    f = sd.sum(np.sin(x) * x[0] ** 2) + sd.sum(x) ** 3
    hessian = sd.hessian(f, x)
    third = sd.jacobian(sd.reshape(hessian, (9,)), [x])
    point = np.array([0.3, -0.7, 1.1])

    def flat_hessian(p):
        return sd.evaluate(hessian, x=p).ravel()

    np.testing.assert_allclose(sd.evaluate(third, x=point), _central(flat_hessian, point),
                               rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_scipy_solvers_take_the_methods_as_written(rosen):
    _, _, fn = rosen
    start = np.full(12, -0.5)
    result = minimize(fn, start, method="trust-constr", jac=fn.grad, hess=fn.sparse_hessian)
    np.testing.assert_allclose(result.x, np.ones(12), atol=1e-6)
    result = minimize(fn, start, method="Newton-CG", jac=fn.grad, hessp=fn.hvp,
                      options={"xtol": 1e-10})
    np.testing.assert_allclose(result.x, np.ones(12), atol=1e-5)

    def residuals(x):
        return np.concatenate([10.0 * (x[1:] - x[:-1] ** 2), 1.0 - x[:-1]])

    res = sd.compile(residuals, args=[sd.vector("x", 12)])
    result = least_squares(res, start, jac=res.sparse_jacobian)
    np.testing.assert_allclose(result.x, np.ones(12), atol=1e-8)

    def rhs(t, y):
        return -20.0 * (y - np.cos(t)) + 0.1 * np.concatenate([y[1:] - y[:-1], y[:1] * 0.0])

    ode = sd.compile(rhs, args=[sd.symbol("t"), sd.vector("y", 12)], wrt="y")
    solution = solve_ivp(ode, (0.0, 1.0), np.zeros(12), method="BDF", jac=ode.sparse_jacobian,
                         rtol=1e-8, atol=1e-10)
    reference = solve_ivp(ode, (0.0, 1.0), np.zeros(12), method="BDF", rtol=1e-8, atol=1e-10)
    assert solution.success and solution.njev >= 1
    np.testing.assert_allclose(solution.y[:, -1], reference.y[:, -1], rtol=1e-6)


def test_dense_loop_over_three_or_more_array_slots():
    # Regression: the unit direction of the third slot and later was written at
    # _j - n0 + n1 (not _j - (n0 + n1)): out of bounds, and wrong columns.
    a, b, c = sd.vector("a", 2), sd.vector("b", 3), sd.matrix("c", 2, 2)
    f = sd.sum(sd.tanh(a) * sd.sum(b ** 2)) + sd.sum(c @ a) * sd.sum(sd.sin(b))
    fn = sd.compile(f, args=[a, b, c])
    rng = np.random.default_rng(7)
    point = {"a": rng.normal(size=2), "b": rng.normal(size=3), "c": rng.normal(size=(2, 2))}
    args = [point[k] for k in "abc"]
    symbolic = np.array(sd.evaluate(sd.hessian(f, [a, b, c]), point), dtype=float)
    np.testing.assert_allclose(fn.hessian(*args), symbolic, rtol=1e-12, atol=1e-12)


def test_a_node_that_is_two_parts_of_a_direction_loop_fills_both():
    # The gradients by x and y of a function of x + y are one node: the drivers compute
    # it in the first part's place and copy it into the second's (the native driver left
    # the second unwritten: the gather read stale scratch memory, the Jacobian np.empty).
    x, y = np.linspace(-1.0, 1.0, 6), np.cos(np.arange(6.0))
    args = [sd.vector("x", 6), sd.vector("y", 6)]

    def energy(x, y):
        return np.sum(np.exp(x + y))

    def field(x, y):
        return np.exp(x + y) * sd.cumsum(x + y)[-1]  # (cumsum: vjp rows, no block)

    stale = sd.compile(lambda z: np.sum(np.sin(z) * np.exp(z)), args=[sd.vector("z", 24)],
                       background=False)
    stale.sparse_hessian(np.full(24, 7.0))  # leaves large values in the scratch buffer
    for backend in ("native", "numba"):
        e = sd.compile(energy, args=args, backend=backend, background=False)
        diagonal = np.exp(x + y)
        exact = np.block([[np.diag(diagonal)] * 2] * 2)
        np.testing.assert_allclose(e.sparse_hessian(x, y).toarray(), exact, rtol=1e-14)
        F = sd.compile(field, args=args, backend=backend, background=False)
        np.testing.assert_allclose(F.jacobian(x, y), np.hstack([_field_jacobian(x, y)] * 2),
                                   rtol=1e-13)


def _field_jacobian(x, y):
    s, e = np.sum(x + y), np.exp(x + y)
    return np.diag(e * s) + e[:, None]


def test_gather_positions_outside_the_products_raise_in_every_lowering(tmp_path):
    fn = sd.compile(lambda x: np.sum(np.exp(x[1:] * x[:-1])), args=[sd.vector("x", 6)],
                    backend="numba", background=False)
    module = _imported(fn.save(str(tmp_path / "saved.py"), sparse=True))
    seeds = module.SPARSE_HESSIAN["seeds"]
    for wrong in ([0, 4000], [2 ** 32 - 1]):
        with pytest.raises(ValueError, match="_gather positions"):
            module.sparse_hessian(np.ones(6), seeds, np.array(wrong, dtype=np.uint32))
    with pytest.raises(ValueError, match="_gather positions"):  # (its njit takes any ints)
        module.sparse_hessian(np.ones(6), seeds, np.array([-1], dtype=np.int64))
    loop = fn.derivation.spec("sparse_hessian_data")
    with pytest.raises(ValueError, match="_gather positions"):
        run_direction_loop(loop, fn.hvp, fn.forward, (np.ones(6),),
                           (seeds, np.array([4000], dtype=np.uint32)))


def test_products_past_uint32_positions_raise_before_any_evaluation(monkeypatch):
    fn = sd.compile(lambda x: np.sum(np.exp(x[1:] * x[:-1])) + np.sum(x ** 3),
                    args=[sd.vector("x", 40)], background=False)
    monkeypatch.setattr(coloring, "MAX_PRODUCTS", 100)  # 3 colors x 40 rows: 120
    with pytest.raises(coloring.ColoringTooLarge, match="hvp, jvp, vjp"):
        fn.sparse_hessian(np.ones(40))


def _imported(path):
    spec = importlib.util.spec_from_file_location("saved_sparse", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_coloring_given_out_is_a_copy():
    fn = sd.jit(lambda x: np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))
    x = np.linspace(-1.0, 1.0, 50)
    given = fn.hessian_coloring(x)
    given.seeds[...] *= 2.0
    given.gather[...] = 0
    given.pattern.data[...] = False
    np.testing.assert_array_equal(fn.sparse_hessian(x).toarray(), fn.hessian(x))
    assert fn.hessian_coloring(x).pattern.nnz == 148
