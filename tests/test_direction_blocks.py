"""Blocks of directions: graphs over a trailing batch axis (symdiff.autodiff.batch_axis),
checked rule by rule against one evaluation per column, and the dense Hessians and
Jacobians the native driver computes block by block (codegen.native.driver), checked
against Numba's loop over one direction at a time."""

import numpy as np
import pytest

import symdiff as sd
from symdiff.autodiff.batch_axis import with_batch_axis
from symdiff.ir.evaluate import evaluate
from symdiff.ir.nodes import apply, internal_symbol, topological_order
from symdiff.ops.structural import Rows
from symdiff.runtime import derivation

RNG = np.random.default_rng(11)
SIZE = 3


def _graphs():
    """name -> (graph of the batched symbol v): every op with a batching rule (but
    batch_size, which needs an open dimension of the function's own)."""
    a, b = sd.matrix("a", 4, 3), sd.vector("b", 3)
    m = sd.matrix("m", 3, 2)
    v3, v4, m32 = internal_symbol("v", (3,)), internal_symbol("v", (4,)), internal_symbol(
        "v", (3, 2))
    s = internal_symbol("v")
    return {
        "elementwise": (sd.tanh(a * v3 + b) / (1 + sd.exp(v3)), v3),
        "where": (sd.where(b > 0, v3 * v3, b - v3), v3),
        "scalar direction": (a * s + sd.sin(s) * b, s),
        "sum": (sd.sum(a * v3, axis=0) + sd.sum(a * v3), v3),
        "sum keepdims": (sd.sum(a * v3, axis=1, keepdims=True), v3),
        "amax": (sd.amax(a * v3, axis=1) + sd.amax(v3), v3),
        "broadcast_to and sum_to": (apply("sum_to", apply("broadcast_to", v3, payload=(4, 3)),
                                          payload=(1, 3)), v3),
        "reshape": (sd.reshape(m32, (6,)) * sd.reshape(m, (6,)), m32),
        "transpose of a vector": (sd.transpose(v3) * b, v3),
        "transpose of a matrix": (sd.transpose(m32) @ b + sd.transpose(m32 * m)[:, 1], m32),
        "permute": (np.moveaxis(sd.reshape(v4, (1, 2, 2)) * m[:2, :2], 0, -1)
                    + np.transpose(sd.reshape(v4, (2, 1, 2)), (1, 2, 0)), v4),
        "matrix @ batched vector": (a @ v3, v3),
        "vector @ batched vector": (b @ v3, v3),
        "matrix @ batched matrix": (a @ m32, m32),
        "vector @ batched matrix": (b @ m32, m32),
        "batched vector @ matrix": (v3 @ m, v3),
        "batched vector @ vector": (v3 @ b, v3),
        "batched matrix @ matrix": (sd.transpose(m) @ sd.tanh(m32), m32),
        "batched matrix @ vector": (m32 @ sd.vector("c", 2), m32),
        "batched @ batched": (sd.tanh(m32) @ m32[0], m32),
        "batched vector @ batched vector": (v3 @ sd.sin(v3), v3),
        "index and embed": (apply("embed", v4[1:3], payload=(((("s", 1, 3, 1)),), (4,)))
                            + v4[::-1], v4),
        "concatenate": (sd.concatenate([v3, b, v3[:1]]), v3),
        "take and scatter_add": (apply("scatter_add", apply("take", v4, payload=Rows([0, 2, 2])),
                                       payload=(Rows([1, 1, 3]), 4)), v4),
    }


@pytest.mark.parametrize("size", [SIZE, None])  # a static batch, or the open length N
@pytest.mark.parametrize("name", list(_graphs()))
def test_each_rule_matches_one_evaluation_per_column(name, size):
    graph, v = _graphs()[name]
    stand_in = internal_symbol("v_block", v.shape + (size,))
    (batched,) = with_batch_axis([graph], {v: stand_in}, size)
    assert batched.shape == graph.shape + (size,)
    values = {"a": RNG.normal(size=(4, 3)), "b": RNG.normal(size=3),
              "m": RNG.normal(size=(3, 2)), "c": RNG.normal(size=2)}
    columns = RNG.normal(size=v.shape + (SIZE,))
    got = evaluate(batched, {**values, "$v_block": columns})
    for k in range(SIZE):
        want = evaluate(graph, {**values, "$v": columns[..., k]})
        np.testing.assert_allclose(np.asarray(got)[..., k], want, rtol=1e-14, atol=1e-14)


def test_nodes_that_do_not_vary_are_kept_and_roots_repeated():
    a, v = sd.matrix("a", 4, 3), internal_symbol("v", (3,))
    heavy = sd.exp(a)
    stand_in = internal_symbol("v_block", (3, SIZE))
    out, constant = with_batch_axis([heavy @ v, sd.sum(heavy)], {v: stand_in}, SIZE)
    assert heavy in topological_order([out])  # computed once, for the whole block
    assert constant.shape == (SIZE,)


def test_ops_without_a_rule_give_none():
    x = internal_symbol("x", (4,))
    assert with_batch_axis([sd.cumsum(x)], {x: internal_symbol("xb", (4, SIZE))},
                           SIZE) is None


def _logistic():
    data = RNG.normal(size=(57, 9))
    labels = np.sign(RNG.normal(size=57))
    w = sd.vector("w", 9)
    z = data @ w
    return sd.sum(sd.log1p(sd.exp(-labels * z))) + 0.1 * sd.sum(w * w), [w]


def _two_parts():
    w, s, b = sd.vector("w", 4), sd.symbol("s"), sd.vector("b", 3)
    a = np.linspace(-1.0, 1.0, 12).reshape(3, 4)
    return sd.sum(sd.tanh(a @ w + b) ** 2) * s + s ** 3 * sd.sum(b), [w, s, b]


def _columns():
    x = sd.vector("x", 7)
    return sd.sin(x) * sd.sum(x ** 2) + x[::-1], [x]


def _rows():
    w, v = sd.matrix("W", 2, 5), sd.vector("v", 5)
    return sd.tanh(w @ v) * sd.sum(v), [w, v]


CASES = {"logistic hessian": (_logistic, "hessian"),
         "hessian of a vector, a scalar and a vector": (_two_parts, "hessian"),
         "jacobian by columns": (_columns, "jacobian"),
         "jacobian by rows": (_rows, "jacobian")}


@pytest.mark.parametrize("name", list(CASES))
def test_native_blocks_match_numba_one_direction_at_a_time(name):
    build, method = CASES[name]
    expression, args = build()
    fast = sd.compile(expression, args=args, backend="native", background=False)
    numba = sd.compile(expression, args=args, backend="numba", background=False)
    loop = fast.derivation.spec(method)
    assert loop.block is not None and loop.block_size >= 2
    values = [RNG.normal(size=a.shape) if a.shape else 0.7 for a in args]
    got, want = getattr(fast, method)(*values), getattr(numba, method)(*values)
    assert fast.loader.tiers[method] == "native"
    for g, w in zip(got if isinstance(got, tuple) else [got],
                    want if isinstance(want, tuple) else [want], strict=True):
        assert np.shape(g) == np.shape(w)
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("build, cap, size", [(_logistic, 4, 3), (_two_parts, 3, 3)])
def test_blocks_cover_every_direction_the_last_one_partly(monkeypatch, build, cap, size):
    # 9 directions at most 4 per block: 3 blocks of 3; 8 at most 3: 3, 3 and 2 of 3.
    monkeypatch.setattr(derivation, "BLOCK_DIRECTIONS", cap)
    expression, args = build()
    fast = sd.compile(expression, args=args, backend="native", background=False)
    assert fast.derivation.spec("hessian").block_size == size
    numba = sd.compile(expression, args=args, backend="numba", background=False)
    values = [RNG.normal(size=a.shape) if a.shape else 0.7 for a in args]
    for g, w in zip(fast.hessian(*values), numba.hessian(*values), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


def test_many_directions_go_in_blocks_only_through_matrix_products():
    x = sd.vector("x", 40)
    elementwise = sd.compile(sd.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2),
                             args=[x], backend="native", background=False)
    assert elementwise.derivation.spec("hessian").block is None
    few = sd.vector("y", 32)
    assert sd.compile(sd.sum(sd.sin(few) ** 2), args=[few], backend="native",
                      background=False).derivation.spec("hessian").block_size == 32
    products = sd.compile(sd.sum(sd.tanh(np.ones((5, 40)) @ x) ** 2), args=[x],
                          backend="native", background=False)
    assert products.derivation.spec("hessian").block_size == 20  # two blocks of 20
    w = sd.matrix("W", 5, 8)  # varying matrices: fused loops and copies, not BLAS
    varying = sd.compile(sd.sum(sd.tanh(w @ np.ones(8)) ** 2), args=[w], backend="native",
                         background=False)
    assert varying.derivation.spec("hessian").block is None
