"""Golden files of generated source: one array function and one scan, byte for byte, so
that every change to the code symdiff writes shows up in review.  After an intended
change, regenerate them with ``SYMDIFF_UPDATE_GOLDEN=1 python -m pytest
tests/test_golden.py`` and read the diff."""

import ast
import os
import pathlib
import re

import numpy as np
import pytest

import symdiff as sd

GOLDEN = pathlib.Path(__file__).parent / "golden"


def _array_gradient():
    X, w = sd.matrix("X", None, 3), sd.vector("w", 3)
    loss = sd.mean(np.tanh(X @ w) ** 2) + 0.1 * sd.sum(w * w)
    return sd.compile(loss, args=[X, w], wrt=[w])


def _scan_gradient():
    x = sd.vector("x", 3)
    final = sd.fori_loop(0, 50, lambda i, c: c + 0.1 * np.sin(c), x)
    return sd.compile(sd.sum(final), args=[x])


CASES = {"array_gradient": _array_gradient, "scan_gradient": _scan_gradient}


@pytest.mark.parametrize("name", sorted(CASES))
def test_generated_source_is_the_golden_file(name):
    compiled = CASES[name]()
    source = compiled.lower("grad").source
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("SYMDIFF_UPDATE_GOLDEN") == "1":
        path.write_text(source)
    assert source == path.read_text(), f"generated source changed: see {path}"


def _function_sources(source: str) -> dict[str, str]:
    """The generated functions of a module by name (the docstring left out: it prints
    the graph, placeholders included)."""
    tree = ast.parse(source)
    return {f.name: ast.get_source_segment(source, f) for f in tree.body
            if isinstance(f, ast.FunctionDef)}


def _loop_functions():
    r = sd.symbol("r")
    final = sd.while_loop(lambda c: c[0] < 10.0, lambda c: (c[0] * r, c[1] + 1.0),
                          (sd.const(1.0), sd.const(0.0)))
    yield sd.compile(final[0] + final[1], args=[r]).source  # forward mode only
    yield _scan_gradient().source
    x, xs = sd.vector("x", 3), sd.matrix("xs", None, 3)
    c, ys = sd.scan(lambda c, x: (np.tanh(c * 0.5 + x), sd.sum(c * x)), x, xs,
                    checkpoint="sqrt")
    yield sd.compile(sd.sum(c) + sd.sum(ys), args=[x, xs]).source


def test_loop_bodies_name_their_parameters_by_role():
    # carry_c0, step_x0, carry_ct0 (a cotangent): not the placeholders' _scan100_ct0.
    for source in _loop_functions():
        functions = _function_sources(source)
        bodies = [text for name, text in functions.items() if name.startswith("_sd_scan_")
                  or name.startswith("_sd_while_")]
        assert bodies and all("(carry_c" in text for text in bodies)
        for name, text in functions.items():
            assert not re.search(r"_(scan|while)\d+_|\$", text), name


def _array_functions():
    yield _array_gradient().source
    M, w = sd.matrix("M", 4, 3), sd.vector("w", 3)
    yield sd.compile(sd.sum((M @ w) ** 2) + sd.sum(M.T @ M), args=[M, w]).source
    yield from _loop_functions()


def test_generated_code_has_no_dead_statements():
    # Every value the array and loop code computes is read: no `_t0 = X.T` that only a
    # product reading X in place uses, no `_nb = ...` for a loop that counts xs.shape[0].
    for source in _array_functions():
        for name, text in _function_sources(source).items():
            tree = ast.parse(text)
            stored = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
                      and isinstance(n.ctx, ast.Store) and re.fullmatch(r"_t\d+|_nb", n.id)}
            loaded = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
                      and isinstance(n.ctx, ast.Load)}
            assert stored <= loaded, f"{name}: {sorted(stored - loaded)} never read"


def test_no_loops_that_run_once():
    # Axes of static length 1 (keepdims buffers, a (1, 4) matrix) are indexed 0, not
    # looped over; sums and products of a few static elements have no loop that runs once
    # (one step of four partial sums) or never.
    X, R, v = sd.matrix("X", 3, 4), sd.matrix("R", 1, 4), sd.vector("v", 4)
    centered = X - np.mean(X, axis=1, keepdims=True)
    e = np.exp(X - np.max(X, axis=1, keepdims=True))
    functions = [sd.compile(sd.sum(centered ** 2) + sd.sum(e / np.sum(e, axis=1, keepdims=True))),
                 sd.compile(sd.sum(np.tanh(R @ v)) + sd.sum(R * R) + sd.sum(np.exp(v)),
                            args=[R, v])]
    for fn in functions:
        for name, text in _function_sources(fn.source).items():
            assert not re.search(r"range\(1\)|range\(0, [04], 4\)", text), name
