"""Sparsity patterns read from the graph, and the colorings that compress them.

Patterns must never miss a nonzero (checked against exact derivatives evaluated at random
points, over random array programs and every structural op) and must be exact for the
common structures; colorings must be valid and their recovery exact.
"""

import random

import numpy as np
import pytest
import scipy.sparse as sp
from test_array_random import LEAVES, _random_expression

import symdiff as sd
from codegen.directions import gathered
from symdiff.autodiff import coloring as coloring_module
from symdiff.autodiff.coloring import (
    ColoringTooLarge,
    canonical,
    color_hessian,
    color_jacobian,
    coloring_bytes,
    coloring_key,
    stored_coloring,
)
from symdiff.autodiff.sparsity import hessian_pattern, jacobian_pattern
from symdiff.ops.arrays import array_constant, broadcast_to, sum_to
from symdiff.runtime.matrices import _colored


def _point(symbols, rng):
    return {s.value: rng.normal(size=s.shape) if s.shape else 0.7 for s in symbols}


def _numeric_pattern(matrix) -> np.ndarray:
    return np.abs(np.asarray(matrix, dtype=float)) > 0


def _assert_covers(pattern, exact):
    missed = _numeric_pattern(exact) & ~pattern.toarray()
    assert not missed.any(), f"pattern misses {np.argwhere(missed)[:5].tolist()}"


X, Y = sd.matrix("X", 3, 4), sd.vector("y", 4)
CONSTANT = np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]])
# One row per structural op (and the elementwise rules): the op applied to the inputs.
OP_CASES = {
    "sum": lambda: sd.sum(X ** 2, axis=1),
    "sum all": lambda: sd.sum(np.sin(X)),
    "amax": lambda: sd.amax(X * Y, axis=0),
    "broadcast_to": lambda: broadcast_to(sd.reshape(Y, (1, 4)), (3, 4)) * X,
    "sum_to": lambda: sum_to(X * X, (1, 4)) * Y,
    "reshape": lambda: sd.reshape(X * X, (4, 3))[1:] ** 2,
    "transpose": lambda: X.T * Y.reshape((4, 1)),
    "matmul": lambda: np.tanh(X @ Y),
    "matmul constant": lambda: array_constant(CONSTANT) @ np.sin(X),
    "matmul matrices": lambda: X.T @ X,
    "index": lambda: X[1:, ::2] * X[0, 1] + X[2, 3],
    "embed": lambda: sd.grad(sd.sum(X[1:, ::2] ** 3), [X])[0],
    "concatenate": lambda: sd.concatenate([X[0] * Y, Y ** 2, X[:, 1]]),
    "take": lambda: X[[2, 0, 2]] ** 2,
    "scatter_add": lambda: sd.grad(sd.sum(X[[2, 0, 2]] ** 3), [X])[0],
    "where": lambda: sd.where(X > 0.0, X * Y, Y ** 2),
    "stop_gradient": lambda: sd.stop_gradient(X) * Y + sd.step(X),
}


@pytest.mark.parametrize("name", sorted(OP_CASES))
def test_op_patterns_cover_the_jacobian_and_the_hessian(name):
    expr = OP_CASES[name]()
    rng = np.random.default_rng(len(name))
    pattern = jacobian_pattern([expr], [X, Y])
    exact = sd.jacobian(expr, [X, Y])
    loss = sd.sum(expr * expr * expr)
    hpattern = hessian_pattern(loss, [X, Y])
    hexact = sd.hessian(loss, [X, Y])
    for _ in range(3):
        point = _point([X, Y], rng)
        _assert_covers(pattern, sd.evaluate(exact, point))
        _assert_covers(hpattern, sd.evaluate(hexact, point))


def test_zero_partials_and_constant_zeros_are_not_dependencies():
    # sign, step, comparisons and where's condition have derivative 0 everywhere.
    x = sd.vector("x", 3)
    f = sd.where(x > 0, 1.0, 2.0) + sd.sign(x) * 3.0 + sd.stop_gradient(x)
    assert jacobian_pattern([f], [x]).nnz == 0
    # A constant matrix's structural zeros propagate: row 1 depends on x[2] alone.
    pattern = jacobian_pattern([array_constant(CONSTANT) @ x], [x]).toarray()
    assert pattern.tolist() == [[True, False, True], [False, False, True]]


def _rosenbrock(n):
    x = sd.vector("x", n)
    return sd.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2), x


def _stencil(m):
    """A 2-D five-point-stencil residual on an m x m grid with fixed boundary values."""
    u = sd.matrix("u", m, m)
    inner = (u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:] - 4.0 * u[1:-1, 1:-1]
             + 0.1 * u[1:-1, 1:-1] ** 3)
    boundary = sd.concatenate([sd.reshape(u[0], (m,)), sd.reshape(u[-1], (m,)),
                               u[1:-1, 0], u[1:-1, -1]])
    return sd.concatenate([sd.reshape(inner, ((m - 2) ** 2,)), boundary]), u


def test_patterns_are_exact_for_common_structures():
    rng = np.random.default_rng(0)
    # Banded: the Rosenbrock Hessian is tridiagonal.
    f, x = _rosenbrock(12)
    pattern = hessian_pattern(f, [x]).toarray()
    i, j = np.indices(pattern.shape)
    assert (pattern == (abs(i - j) <= 1)).all()
    # Diagonal and block diagonal.
    v = sd.vector("v", 12)
    assert (hessian_pattern(sd.sum(np.exp(v)), [v]).toarray() == np.eye(12, dtype=bool)).all()
    blocks = sd.sum(sd.sum(sd.reshape(v, (4, 3)), axis=1) ** 2)
    expected = np.kron(np.eye(4), np.ones((3, 3))).astype(bool)
    assert (hessian_pattern(blocks, [v]).toarray() == expected).all()
    # Stencil: exactly the five-point pattern, equal to the numerically detected one.
    residual, u = _stencil(5)
    pattern = jacobian_pattern([residual], [u]).toarray()
    exact = sd.evaluate(sd.jacobian(residual, [u]), u=rng.normal(size=(5, 5)))
    assert (pattern == _numeric_pattern(exact)).all()
    assert pattern.sum(axis=1).max() == 5


def test_patterns_of_random_array_programs_never_miss_a_nonzero():
    rng, values = random.Random(11), np.random.default_rng(5)
    for _ in range(25):
        e = _random_expression(rng, rng.randrange(2, 5))
        loss = sd.sum(e * e) if e.shape else e * e
        jp, hp = jacobian_pattern([e], LEAVES), hessian_pattern(loss, LEAVES)
        jexact, hexact = sd.jacobian(e, LEAVES), sd.hessian(loss, LEAVES)
        for _ in range(2):
            point = _point(LEAVES, values)
            _assert_covers(jp, sd.evaluate(jexact, point))
            _assert_covers(hp, sd.evaluate(hexact, point))


def test_open_dimensions_take_their_size_from_the_call():
    y = sd.vector("y", None)
    f = y * np.tanh(y)
    assert (jacobian_pattern([f], [y], batch=4).toarray() == np.eye(4, dtype=bool)).all()
    with pytest.raises(sd.SymdiffError, match="open"):
        jacobian_pattern([f], [y])


def test_a_dense_pattern_too_large_to_hold_raises(monkeypatch):
    from symdiff.autodiff import sparsity

    monkeypatch.setattr(sparsity, "MAX_PATTERN_ENTRIES", 1000)
    v = sd.vector("v", 100)
    with pytest.raises(sd.SymdiffError, match="effectively dense"):
        hessian_pattern(sd.sum(v) ** 2, [v])


# Colorings.
def _random_symmetric(n, density, rng):
    upper = sp.random(n, n, density=density, random_state=rng, format="csr") != 0
    return sp.csr_array(upper + upper.T + sp.eye(n, dtype=bool))


def _two_colored_paths(graph, colors):
    """Paths on four vertices with two colors (brute force, small graphs)."""
    adjacency = [set(graph.indices[graph.indptr[v]:graph.indptr[v + 1]]) - {v}
                 for v in range(graph.shape[0])]
    for a in range(len(adjacency)):
        for b in adjacency[a]:
            for c in adjacency[b] - {a}:
                for d in adjacency[c] - {a, b}:
                    if colors[a] == colors[c] and colors[b] == colors[d]:
                        return a, b, c, d
    return None


@pytest.mark.parametrize("seed", range(6))
def test_star_colorings_are_valid_and_recover_symmetric_matrices_exactly(seed):
    rng = np.random.default_rng(seed)
    pattern = _random_symmetric(40, 0.04 + 0.02 * seed, rng)
    coloring = color_hessian(pattern)
    colors = coloring.colors
    rows, cols = pattern.nonzero()
    off = rows != cols
    assert (colors[rows[off]] != colors[cols[off]]).all()  # distance-1
    assert _two_colored_paths(pattern, colors) is None  # star: no two-colored P4
    values = sp.random(40, 40, density=1.0, random_state=rng).toarray()
    hessian = pattern.toarray() * (values + values.T)
    products = coloring.seeds @ hessian.T  # row c: H @ seed c
    recovered = gathered(products, coloring.gather)
    np.testing.assert_array_equal(recovered, hessian[coloring.pattern.nonzero()])


@pytest.mark.parametrize("seed", range(4))
def test_column_colorings_are_valid_and_recover_exactly(seed):
    rng = np.random.default_rng(seed)
    pattern = sp.csr_array(sp.random(30, 50, density=0.05, random_state=rng) != 0)
    coloring = color_jacobian(pattern)
    dense = pattern.toarray()
    for c in range(coloring.count):
        assert dense[:, coloring.colors == c].sum(axis=1).max(initial=0) <= 1
    jac = dense * rng.normal(size=dense.shape)
    recovered = gathered(coloring.seeds @ jac.T, coloring.gather)
    np.testing.assert_array_equal(recovered, jac[coloring.pattern.nonzero()])


def test_color_counts_of_known_structures():
    n = 1000
    tridiagonal = sp.csr_array(sp.diags_array([1.0, 1.0, 1.0], offsets=[-1, 0, 1],
                                              shape=(n, n)) != 0)
    assert color_hessian(tridiagonal).count == 3
    assert color_jacobian(tridiagonal).count == 3
    shuffled = np.random.default_rng(0).permutation(n)
    assert color_hessian(tridiagonal[shuffled][:, shuffled]).count == 3
    # An arrowhead: symmetry needs 2 products where a column coloring needs n.
    arrow = np.eye(50, dtype=bool)
    arrow[0, :] = arrow[:, 0] = True
    assert color_hessian(sp.csr_array(arrow)).count == 2
    assert color_jacobian(sp.csr_array(arrow)).count == 50
    # The five-point stencil's columns: 5 colors, the optimum ((i + 2j) mod 5).
    # Also at 10^5 columns, whose sharing graph has 1.2 million edges (an edge bound
    # once sent it to the greedy orders' 7).
    for m in (20, 320):
        path = sp.diags_array([1.0, 1.0, 1.0], offsets=[-1, 0, 1], shape=(m, m))
        side = sp.diags_array([1.0, 1.0], offsets=[-1, 1], shape=(m, m))
        stencil = sp.csr_array((sp.kron(sp.eye(m), path) + sp.kron(side, sp.eye(m))) != 0)
        assert color_jacobian(stencil).count == 5, m


def test_dense_patterns_are_not_colored(monkeypatch):
    # A dense pattern would be colored for minutes to find one color per column: it gets
    # one at once, and the sparse Hessian is still exact.
    import symdiff.autodiff.coloring as coloring
    calls = []
    monkeypatch.setattr(coloring, "_star_coloring", lambda *a: calls.append(a))
    monkeypatch.setattr(coloring, "_column_coloring", lambda *a: calls.append(a))
    monkeypatch.setattr("symdiff.runtime.matrices.cache.read_checked", lambda key: None)
    fn = sd.jit(lambda x: np.sum(x) ** 2 + np.sum(np.sin(x)))
    x = np.linspace(0.1, 1.0, 300)
    found = fn.hessian_coloring(x)
    assert found.count == 300 and not calls
    np.testing.assert_allclose(fn.sparse_hessian(x).toarray(), fn.hessian(x), rtol=1e-14)
    dense = sp.csr_array(np.ones((40, 60), dtype=bool))
    assert color_jacobian(dense).count == 60 and not calls


def test_bounded_rows_are_colored_past_the_work_bound(monkeypatch):
    # A stencil's coloring work grows as its nonzeros: colored at any size (here with
    # the bound lowered below its work), where a hub's (an arrowhead) is not.
    import symdiff.autodiff.coloring as coloring
    monkeypatch.setattr(coloring, "COLORING_WORK", 100)
    band = sp.csr_array(sp.diags_array([1.0, 1.0, 1.0], offsets=[-1, 0, 1],
                                       shape=(500, 500)) != 0)
    assert color_jacobian(band).count == 3 and color_hessian(band).count == 3
    arrow = np.eye(500, dtype=bool)
    arrow[0, :] = arrow[:, 0] = True
    assert color_jacobian(sp.csr_array(arrow)).count == 500


@pytest.mark.parametrize("kind", ["hessian", "jacobian"])
def test_colorings_are_read_back_from_the_disk_cache(kind, tmp_path, monkeypatch):
    # A second process finds the coloring on disk: it neither colors again nor loads the
    # coloring loops' machine code.  Data that do not fit the pattern are colored again.
    monkeypatch.setenv("SYMDIFF_CACHE_DIR", str(tmp_path / "cache"))
    pattern = _random_symmetric(40, 0.08, np.random.default_rng(1))
    first = _colored(kind, pattern)
    (entry,) = (tmp_path / "cache").glob("coloring_*.native")

    def no_coloring(*_):
        raise AssertionError("colored again")

    monkeypatch.setattr("symdiff.runtime.matrices.color", no_coloring)
    again = _colored(kind, pattern)
    assert again.kind == first.kind and again.count == first.count
    np.testing.assert_array_equal(again.colors, first.colors)
    np.testing.assert_array_equal(again.gather, first.gather)
    np.testing.assert_array_equal(again.seeds, first.seeds)
    csr = canonical(pattern)
    data = coloring_bytes(first)
    assert stored_coloring(kind, csr, data[:-8]) is None  # too short
    values = np.frombuffer(data, np.int64).copy()
    values[3] = first.count  # a color out of range
    assert stored_coloring(kind, csr, values.tobytes()) is None
    end = first.count * 40  # (copies of other nonzeros from here on)
    for wrong in (end + first.pattern.nnz,  # past every position
                  0,  # row 0 of seed 0: another row than its own
                  end + first.pattern.nnz - 1,  # a copy of a copy, or of itself
                  end):  # a copy of the first nonzero, not of its mirror
        values = np.frombuffer(data, np.int64).copy()
        values[-1] = wrong
        assert stored_coloring(kind, csr, values.tobytes()) is None
    assert coloring_key(kind, csr) != coloring_key(
        "jacobian" if kind == "hessian" else "hessian", csr)
    assert entry.exists()


def test_vmapped_hessians_are_guarded_like_one(monkeypatch):
    import symdiff.runtime.matrices as matrices
    fn = sd.jit(lambda x: np.sum(x ** 3)).vmap(0)
    assert fn.hessian(np.ones((2, 3))).shape == (2, 3, 3)
    monkeypatch.setattr(matrices, "UNCHECKED_BYTES", 0)
    monkeypatch.setattr(matrices, "available_memory", lambda: 8.0 * 9 * 4)  # 4 points fit
    assert fn.hessian(np.ones((4, 3))).shape == (4, 3, 3)
    with pytest.raises(sd.SymdiffError, match="5 dense Hessians .* fewer points"):
        fn.hessian(np.ones((5, 3)))
    with pytest.raises(sd.ArgumentError, match="in_axes must be"):
        fn.function.vmap(0.0)


def test_a_saved_module_carries_its_sparse_methods(tmp_path):
    import subprocess
    import sys
    import textwrap
    fn = sd.compile(lambda x: np.sum(x[1:] * x[:-1]) + np.sum(x ** 4),
                    args=[sd.vector("x", 8)], background=False)
    x = np.linspace(0.0, 1.0, 8)
    want = fn.sparse_hessian(x)  # colored in this process: saved by default
    fn.save(tmp_path / "banded.py")
    script = textwrap.dedent("""
        import sys
        sys.modules["symdiff"] = None  # the module stands alone
        import numpy as np, scipy.sparse as sp, banded as m
        x = np.linspace(0.0, 1.0, 8)
        s = m.SPARSE_HESSIAN
        data = m.sparse_hessian(x, s["seeds"], s["gather"])
        matrix = sp.csr_array((data, s["indices"], s["indptr"]), shape=s["shape"])
        np.save("hessian.npy", matrix.toarray())
    """)
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "hessian.npy"), want.toarray())
    bare = sd.compile("a*b", background=False)
    bare.save(tmp_path / "bare.py")
    assert not (tmp_path / "bare.npz").exists()
    with pytest.raises(sd.SymdiffError, match="static shapes"):
        sd.compile(sd.sum(sd.symbol("u", (None,)) ** 3), background=False).save(
            tmp_path / "open.py", sparse=True)


def test_gather_positions_are_uint32_and_their_limit_is_an_error():
    coloring = color_hessian(sp.diags_array(
        [np.ones(39), np.ones(40), np.ones(39)], offsets=[-1, 0, 1], format="csr"))
    assert coloring.gather.dtype == np.uint32 and coloring.count == 3
    with pytest.raises(ColoringTooLarge, match="products"):
        coloring_module._positions(np.zeros(1, dtype=np.int64), 2 ** 20, 2 ** 12)
