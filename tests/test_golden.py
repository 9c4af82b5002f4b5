"""Golden files of generated source: one array function and one scan, byte for byte, so
that every change to the code symdiff writes shows up in review.  After an intended
change, regenerate them with ``SYMDIFF_UPDATE_GOLDEN=1 python -m pytest
tests/test_golden.py`` and read the diff."""

import os
import pathlib

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
