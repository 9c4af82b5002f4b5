"""Every array op and array function, from one table: the gradient of a weighted sum of its
output against central finite differences, through the evaluator and the compiled code.

All cases use disjoint inputs, so one compiled function (the sum of all case losses) gives
every case's gradient with a single Numba compile.
"""

import numpy as np
import pytest

import symdiff as sd
from codegen.bodies import LOOP_OPS
from codegen.numba.arrays import lowered_structural_ops
from codegen.numba.loops import LOOP_EMITTERS
from symdiff.ir.nodes import topological_order
from symdiff.ops.structural import STRUCTURAL, broadcast_to

# name -> (input shapes, builder taking the input symbols)
CASES = {
    "matmul 2-D @ 2-D": ([(3, 4), (4, 2)], lambda a, b: a @ b),
    "matmul 2-D @ 1-D": ([(3, 4), (4,)], lambda a, v: a @ v),
    "matmul 1-D @ 2-D": ([(3,), (3, 4)], lambda v, a: v @ a),
    "matmul 1-D @ 1-D": ([(4,), (4,)], lambda u, v: sd.dot(u, v)),
    "matmul transposed @ 1-D": ([(5, 3), (5,)], lambda a, v: a.T @ v),
    "matmul 1-D @ transposed": ([(6,), (3, 6)], lambda v, a: v @ a.T),
    "transpose": ([(3, 4), (4, 3)], lambda a, c: a.T * c),
    "permute axes": ([(2, 3, 4), (4, 2, 3)], lambda a, c: np.transpose(a, (2, 0, 1)) * c
                     + np.moveaxis(np.sin(a), -1, 0) + np.swapaxes(a.transpose(1, 0, 2), 0, 1)
                     .transpose(2, 0, 1)),
    "sum all": ([(3, 4)], lambda a: sd.sum(a * a)),
    "sum axis 0": ([(3, 4)], lambda a: sd.sum(np.sin(a), axis=0)),
    "sum axis 1 keepdims": ([(3, 4)], lambda a: sd.sum(a, axis=1, keepdims=True) * a),
    "mean": ([(3, 4)], lambda a: sd.mean(a * a, axis=1)),
    "amax": ([(3, 4)], lambda a: sd.amax(a, axis=1)),
    "cumsum": ([(5,)], lambda v: np.cumsum(v * v)),
    "broadcasting": ([(3, 4), (4,), (3, 1)], lambda a, v, c: a * v + c),
    # Elementwise consumers absorb broadcasts (a rule): a matmul keeps it.
    "broadcast_to": ([(4,), (4, 2)], lambda v, m: broadcast_to(v, (3, 4)) @ m),
    "reshape": ([(3, 4), (2, 6)], lambda a, c: sd.reshape(a, (2, 6)) * c),
    "index int and slice": ([(3, 4)], lambda a: a[1, 1:4] * a[2, 0:3]),
    "index step": ([(5, 4)], lambda a: a[::2, 0] * a[1::2, 1][0]),
    "index column": ([(3, 4)], lambda a: np.exp(a[:, 2])),
    "index negative steps": ([(5, 4)], lambda a: a[::-1, 1] * a[4:0:-2, 3][0] + a[-1, -2]),
    "np.logaddexp": ([(5,), (5,)], lambda u, v: np.logaddexp(u, v) + np.logaddexp2(u, 2 * v)),
    "np.clip, var, std": ([(3, 4)], lambda a: np.clip(a, -0.5, 0.5) * np.var(a, axis=0)
                          + np.std(a, axis=1, keepdims=True)),
    "np.prod": ([(4,), (3, 3)], lambda v, a: np.prod(v) + np.prod(a, axis=0)),
    "np.pad, roll, flip": ([(3, 4)], lambda a: np.pad(a, ((1, 0), (0, 2)))[:3, 2:] * 2
                           + np.roll(np.flip(a, 1), 1, axis=0)),
    "np.tile, repeat, kron": ([(2, 3), (2,)], lambda a, v: np.tile(a, (2, 1))
                              * np.repeat(a, 2, axis=0) + np.sum(np.kron(v, a) ** 2)),
    "np.diag, trace": ([(3, 3), (3,)], lambda a, v: np.diag(v) @ a
                       + np.trace(a) * np.diag(a)[:, None]),
    "np.vstack, hstack": ([(3,), (3,)], lambda u, v: np.vstack([u, v]) * np.hstack([u, v])
                          .reshape(2, 3) + np.column_stack([u, v]).T),
    "array methods": ([(3, 4)], lambda a: a.ravel()[:4] * a.max(axis=0) + a.min()
                      + a.var(axis=0) + a.prod(axis=0) + a.clip(-1, 1)[0] + a.T.dot(a)[0]),
    "einsum diagonals and ...": ([(3, 3), (2, 3, 3)], lambda a, b: np.einsum("ii->i", a)
                                 * np.einsum("...ii->...", b)[:, None]
                                 + np.einsum("...ij,jk->...ik", b, a)[1, 0]),
    "einsum as stacked products": ([(2, 3, 8), (4, 2, 8), (8, 5)], lambda a, x, b: np.einsum(
        "ijk,mik->mij", a, x) + np.einsum("mik,kj->mij", x, b)[:, :, :3]),
    "index None and ...": ([(3, 4), (2, 4)], lambda a, c: (a[:, None] - c[None]) ** 2
                           + a[..., None, :] * c[:, 0][None, :, None]),
    "take rows (repeats, negative)": ([(4, 3)],
                                      lambda a: a[[0, 2, 2, -1]] * a[np.array([1, 1, 3, 0])]),
    "take rows then slice": ([(4, 3)], lambda a: np.sin(a[[3, 0], 1:])),
    "boolean mask": ([(4,)], lambda v: np.exp(v[np.array([True, False, True, True])])),
    "np.take": ([(2, 3)], lambda a: np.take(a, [5, 0, 5]) ** 2),
    "concatenate axis 0": ([(2, 3), (1, 3)], lambda a, b: sd.concatenate([a, b]) ** 2),
    "concatenate axis 1": ([(2, 3), (2, 1)], lambda a, b: np.tanh(sd.concatenate([a, b], 1))),
    "stack": ([(4,), (4,)], lambda u, v: sd.stack([u * v, u - v], axis=1)),
    "where": ([(3, 4), (3, 4)], lambda a, b: sd.where(a > b, a * a, b)),
    "logsumexp": ([(3, 4)], lambda a: sd.logsumexp(a, axis=1)),
    "softmax": ([(3, 4)], lambda a: sd.softmax(a, axis=0)),
    "log_softmax": ([(5,)], lambda v: sd.log_softmax(v)),
    "elementwise functions": ([(3, 4), (4,)],
                              lambda a, v: sd.sigmoid(a) * np.tanh(v) + sd.softplus(a)),
    "outer": ([(3,), (4,)], lambda u, v: sd.outer(u, v)),
    "scalar times array": ([(), (3,)], lambda s, v: s * v + sd.maximum(v, s)),
}


def _case_inputs(k, shapes):
    return [sd.symbol(f"c{k}_{j}", shape) for j, shape in enumerate(shapes)]


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    symbols, losses, values = [], [], {}
    for k, (shapes, build) in enumerate(CASES.values()):
        inputs = _case_inputs(k, shapes)
        out = build(*inputs)
        weights = rng.normal(size=out.shape)
        losses.append(sd.sum(out * weights) if out.shape else out * float(weights))
        symbols += inputs
        for s in inputs:
            values[s.value] = rng.normal(size=s.shape) if s.shape else float(rng.normal())
    total = losses[0]
    for loss in losses[1:]:
        total = total + loss
    return total, losses, symbols, values, sd.compile(total, args=symbols)


def _central_difference(loss, values, name, h=1e-6):
    base = np.array(values[name], dtype=float)
    out = np.zeros(base.shape)
    for index in np.ndindex(base.shape):
        up, down = base.copy(), base.copy()
        up[index] += h
        down[index] -= h
        out[index] = (sd.evaluate(loss, {**values, name: up})
                      - sd.evaluate(loss, {**values, name: down})) / (2 * h)
    return out


@pytest.mark.parametrize("k,name", list(enumerate(CASES)))
def test_gradient_matches_finite_differences(table, k, name):
    total, losses, symbols, values, fn = table
    inputs = [s for s in symbols if s.value.startswith(f"c{k}_")]
    symbolic = sd.evaluate(sd.grad(losses[k], inputs), values)
    compiled = fn.grad(*[values[s.value] for s in symbols])
    for s, got in zip(inputs, symbolic, strict=True):
        fd = _central_difference(losses[k], values, s.value)
        np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-7, err_msg=s.value)
        np.testing.assert_allclose(compiled[symbols.index(s)], got, rtol=1e-12, atol=1e-13)


def test_compiled_value_matches_evaluator(table):
    total, _, symbols, values, fn = table
    assert np.isclose(fn(*[values[s.value] for s in symbols]), sd.evaluate(total, values),
                      rtol=1e-13)


def test_every_array_op_has_every_piece():
    structural = {name: op for name, op in sd.ir.OPS.items() if not op.elementwise}
    # Loops, roots and solves: tests/test_loops.py; inverses, determinants,
    # eigendecompositions and sorts: tests/test_linalg.py; stacks of products:
    # tests/test_stacked_products.py.
    assert set(structural) == set(STRUCTURAL) | {
        "scan", "while", "root", "solve", "inv", "logabsdet", "detsign", "cholesky",
        "eigvalsh", "eigvecsh", "sort_by", "unsort_by", "batch_matmul"}
    for op in structural.values():
        assert callable(op.shape_rule) and callable(op.evaluate), op.name
        assert callable(op.vjp) and callable(op.jvp), op.name
        assert callable(op.sparsity), op.name


def test_the_array_emitter_lowers_every_structural_op():
    structural = {name for name, op in sd.ir.OPS.items() if not op.elementwise}
    assert structural == lowered_structural_ops()
    assert set(LOOP_EMITTERS) == set(LOOP_OPS)  # each loop op's body is a function


def test_every_array_op_is_covered(table):
    total, _, symbols, _, _ = table
    graph = topological_order([total] + sd.grad(total, symbols))
    # batch_size exists over open dimensions only: tests/test_numpy_extras.py (means).
    assert set(STRUCTURAL) - {"batch_size"} <= {n.op for n in graph}


def test_products_with_vectors_along_an_open_dimension():
    # The reduced dimension is the batch: partial sums over 0-3 leftover elements.
    m, u = sd.matrix("M", 3, None), sd.vector("u", None)
    x = sd.matrix("X", None, 2)
    f = sd.sum((m @ u) ** 2) + sd.sum(np.sin(u @ x)) + sd.dot(u, u) * sd.sum(x.T @ u)
    fn = sd.compile(f, args=[m, u, x])
    rng = np.random.default_rng(4)
    for batch in (1, 4, 7):
        values = {"M": rng.normal(size=(3, batch)), "u": rng.normal(size=batch),
                  "X": rng.normal(size=(batch, 2))}
        args = [values[k] for k in ("M", "u", "X")]
        value, grads = fn.value_and_grad(*args)
        assert value == pytest.approx(sd.evaluate(f, values), rel=1e-12)
        for got, want in zip(grads, sd.evaluate(sd.grad(f, [m, u, x]), values), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("build,message", [
    (lambda: sd.matrix("A", 3, 4) @ sd.matrix("B", 3, 4), "not aligned"),
    (lambda: sd.vector("u", 3) + sd.vector("v", 4), "do not broadcast"),
    (lambda: sd.matrix("A", 3, 4)[5], "out of range"),
    (lambda: sd.reshape(sd.matrix("A", 3, 4), (5, 2)), "cannot reshape"),
    (lambda: sd.matrix("A", None, 4)[::2], "step"),
    (lambda: sd.vector("u", 3) + sd.vector("w", None), "do not broadcast"),
    (lambda: sd.matrix("A", 3, 4)[[0, 3]], "out of range for axis 0"),
    (lambda: sd.matrix("A", None, 4)[:, [0, 1]], "static shape"),
    (lambda: sd.matrix("A", None, 4)[[0]], "open"),
    (lambda: sd.vector("u", 3)[np.array([[0]])], "1-D array"),
    (lambda: sd.vector("u", 3)[np.array([True, False])], "boolean index"),
    (lambda: sd.take(sd.vector("u", 3), 1.5), "list or array of integers"),
    (lambda: sd.matrix("A", 3, 4)[..., 0, ...], "single ellipsis"),
    (lambda: sd.matrix("A", None, 4)[[0, 1], None], "static shape"),
    (lambda: sd.matrix("A", 3, 4)[0, None, 1, 2], "too many indices"),
    (lambda: np.pad(sd.vector("u", 3), 1, mode="edge"), "mode='constant'"),
    (lambda: np.repeat(sd.vector("u", 3), [1, 2, 1]), "one non-negative int"),
    (lambda: np.squeeze(sd.matrix("A", 3, 4), axis=0), "not of length 1"),
    (lambda: np.roll(sd.matrix("A", 3, 4), [1, 2]), "one int shift"),
    (lambda: np.var(sd.vector("u", None)), "static shape"),
    (lambda: np.expand_dims(sd.vector("u", 3), 3), "out of range"),
])
def test_shape_errors_are_clear(build, message):
    with pytest.raises(sd.ShapeError, match=message):
        build()
