"""Small arrays as scalars (symdiff.passes.scalarize, issue #24 section 4): a Python loop
over a 2-vector state traces into many tiny array ops, which become scalar code."""

import numpy as np
import pytest

import symdiff as sd
from symdiff.passes.scalarize import MIN_ARRAY_NODES, scalarize


def _rk4(steps):
    def simulate(y, k):
        def field(state):
            return sd.stack([state[1], -k * np.sin(state[0])])
        h = 0.01
        for _ in range(steps):
            k1 = field(y)
            k2 = field(y + h / 2 * k1)
            k3 = field(y + h / 2 * k2)
            k4 = field(y + h * k3)
            y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return y * y[0]  # an array output: stacked again
    return simulate


def _array_nodes(exprs):
    return [n for n in sd.ir.topological_order(exprs) if n.shape and n.op != "symbol"]


def test_a_loop_over_a_small_state_becomes_scalar_code():
    y, k = sd.vector("y", 2), sd.symbol("k")
    (traced,) = [_rk4(10)(y, k)]
    assert len(_array_nodes([traced])) >= MIN_ARRAY_NODES
    (scalar,) = scalarize([traced])
    # Only the output is an array again: its two elements stacked.
    assert [n.op for n in _array_nodes([scalar])] == ["reshape", "reshape", "concatenate"]
    point = {"y": np.array([1.0, 0.3]), "k": 2.0}
    np.testing.assert_allclose(sd.evaluate(scalar, point), sd.evaluate(traced, point),
                               rtol=1e-15)


def test_compiled_values_and_derivatives_agree_with_the_evaluator():
    fn = sd.compile(_rk4(10), args=[sd.vector("y", 2), sd.symbol("k")], background=False)
    y0 = np.array([1.0, 0.3])
    want = sd.evaluate(_rk4(10)(sd.vector("y", 2), sd.symbol("k")), {"y": y0, "k": 2.0})
    np.testing.assert_allclose(fn(y0, 2.0), want, rtol=1e-14)
    jac = fn.jacobian(y0, 2.0)
    h = 1e-6
    for j, e in enumerate([np.array([1.0, 0.0]), np.array([0.0, 1.0])]):
        column = (fn(y0 + h * e, 2.0) - fn(y0 - h * e, 2.0)) / (2 * h)
        np.testing.assert_allclose(jac[:, j], column, rtol=1e-7, atol=1e-10)


def test_small_graphs_and_large_arrays_keep_their_arrays():
    x = sd.vector("x", 3)
    few = np.sin(x) * 2.0
    assert scalarize([few]) == [few]  # too few array ops to matter
    big = sd.vector("b", 100)
    many = big
    for _ in range(MIN_ARRAY_NODES):
        many = many * 1.5 + 1.0
    assert scalarize([many]) == [many]  # arrays too large to take apart


def test_a_long_python_loop_compiles_its_hessian():
    steps = 25
    def energy(y, k):
        out = _rk4(steps)(y, k)
        return np.sum(out ** 2)
    fn = sd.compile(energy, args=[sd.vector("y", 2), sd.symbol("k")], background=False)
    y0 = np.array([1.0, 0.0])
    hess = fn.hessian(y0, 2.0)
    h, e = 1e-5, np.array([1.0, 0.0])

    def flat_grad(y):
        by_y, by_k = fn.grad(y, 2.0)
        return np.append(by_y, by_k)
    column = (flat_grad(y0 + h * e) - flat_grad(y0 - h * e)) / (2 * h)
    np.testing.assert_allclose(hess[:, 0], column, rtol=1e-6, atol=1e-9)


def test_a_trace_past_the_threshold_points_to_scan(caplog, monkeypatch):
    import symdiff.frontend.trace as tracing
    monkeypatch.setattr(tracing, "LARGE_TRACE_OPS", 500)
    with caplog.at_level("WARNING", logger="symdiff"):
        sd.jit(_rk4(20)).for_shapes([(2,), ()])
    (record,) = [r for r in caplog.records if "Python loop" in r.getMessage()]
    assert "tracing simulate gave" in record.getMessage()
    assert "sd.scan or sd.fori_loop" in record.getMessage()
    caplog.clear()
    with caplog.at_level("WARNING", logger="symdiff"):
        sd.jit(_rk4(2)).for_shapes([(2,), ()])
    assert not caplog.records


def test_updates_and_nested_gradients_in_a_long_loop():
    # .at[...] updates and the reverse mode of indexing make embeds: taken apart too.
    def relax(y):
        for _ in range(60):
            y = y.at[0].set(y[0] + 0.01 * np.sin(y[1]))
            y = y * 0.99
        return np.sum(y ** 2)

    def energy(x):
        return np.sum(x ** 4) + x[0] * x[1]

    def descend(x):
        for _ in range(40):
            x = x - 0.1 * sd.grad(energy)(x)
        return np.sum(x ** 2)
    for f in (relax, descend):
        fn = sd.jit(f)
        x0 = np.array([0.5, -0.3])
        want = sd.evaluate(f(sd.vector("x", 2)), {"x": x0})
        assert fn(x0) == pytest.approx(want, rel=1e-14)
        h = 1e-6
        fd = [(fn(x0 + h * e) - fn(x0 - h * e)) / (2 * h) for e in np.eye(2)]
        np.testing.assert_allclose(fn.grad(x0), fd, rtol=1e-6, atol=1e-10)


def test_what_cannot_be_taken_apart_stays_and_the_rest_is_scalar():
    # np.max has no rule here, and sd.scan and np.prod are loops: they stay nodes
    # over their operands stacked again, and everything else in the loop is scalar.
    def damped(y, k):
        def step(c, x):
            return c * 0.9 + x, None
        for _ in range(12):
            y = y + 0.01 * sd.stack([y[1], -k * np.sin(y[0])]) / (1.0 + np.max(y ** 2))
            y = y * (1.0 - 0.001 * np.prod(np.cos(y)))
        settled, _ = sd.scan(step, y, np.full(3, 0.01))
        return settled * y[1]

    y, k = sd.vector("y", 2), sd.symbol("k")
    traced = damped(y, k)
    (scalar,) = scalarize([traced])
    before, after = _array_nodes([traced]), _array_nodes([scalar])
    assert len(before) >= MIN_ARRAY_NODES
    # What stays an array: the kept ops and the stacks they read (no arithmetic).
    assert {n.op for n in after} == {"scan", "reshape", "concatenate"}
    assert "amax" in {n.op for n in sd.ir.topological_order([scalar])}
    point = {"y": np.array([1.0, 0.3]), "k": 2.0}
    np.testing.assert_allclose(sd.evaluate(scalar, point), sd.evaluate(traced, point),
                               rtol=1e-14)
    fn = sd.compile(damped, args=[y, k], background=False)
    np.testing.assert_allclose(fn(point["y"], 2.0), sd.evaluate(traced, point), rtol=1e-13)
    h, jac = 1e-6, fn.jacobian(point["y"], 2.0)
    for j, e in enumerate(np.eye(2)):
        column = (fn(point["y"] + h * e, 2.0) - fn(point["y"] - h * e, 2.0)) / (2 * h)
        np.testing.assert_allclose(jac[:, j], column, rtol=1e-6, atol=1e-10)
