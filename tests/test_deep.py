"""Graphs 100,000 nodes deep: every walk is iterative, nothing hits the recursion limit."""

import math
import sys

import pytest

import symdiff as sd

DEPTH = 100_000


@pytest.fixture(scope="module")
def deep():
    x, y = sd.symbols("x y")
    e = x
    for _ in range(DEPTH):
        e = sd.sin(e) * 0.5 + y
    return e, x, y


def _reference(x, y, depth=DEPTH):
    value, dx, dy = x, 1.0, 0.0
    for _ in range(depth):
        value, dx, dy = (math.sin(value) * 0.5 + y, math.cos(value) * 0.5 * dx,
                         math.cos(value) * 0.5 * dy + 1.0)
    return value, dx, dy


def test_build_count_evaluate_print(deep):
    e, x, y = deep
    assert sys.getrecursionlimit() < DEPTH
    assert sd.count_ops(e) == 3 * DEPTH
    value, _, _ = _reference(0.3, 0.2)
    assert math.isclose(sd.evaluate(e, x=0.3, y=0.2), value, rel_tol=1e-12)
    text = str(e)
    assert text.startswith("sin(sin(") and text.endswith(")*0.5 + y")
    assert len(text) > 10 * DEPTH


@pytest.mark.slow
def test_differentiate_forward_and_reverse(deep):
    e, x, y = deep
    _, dx, dy = _reference(0.3, 0.2)
    forward = sd.diff(e, y)
    reverse = sd.grad(e, [x, y])
    assert math.isclose(sd.evaluate(forward, x=0.3, y=0.2), dy, rel_tol=1e-12)
    got_dx, got_dy = sd.evaluate(reverse, x=0.3, y=0.2)
    assert math.isclose(got_dy, dy, rel_tol=1e-12)
    assert math.isclose(got_dx, dx, rel_tol=1e-9, abs_tol=1e-300)
    assert sd.count_ops(reverse) < 4 * sd.count_ops(e)
    assert len(str(reverse[1])) > len(str(e))  # prints (let-form if the tree is too large)


def test_deep_graph_can_be_freed_and_rebuilt():
    # Dropping the last reference deallocates 100,000 nested nodes without a crash.
    x = sd.symbols("x")
    e = x
    for _ in range(DEPTH):
        e = sd.exp(-e)
    del e
    e = x
    for _ in range(DEPTH):
        e = e * 1.0 + 1.0
    assert sd.count_ops(sd.optimize(e)) == DEPTH
