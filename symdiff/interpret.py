"""Run a generated function's graph on the reference evaluator, with the calling
convention of the compiled function: the first tier while Numba compiles in the
background (see CompiledFunction).

Same arguments, already checked and converted by the input contract (symdiff.inputs),
same result structure: floats for scalars, fresh float64 arrays for arrays and lists,
tuples kept.
"""

from __future__ import annotations

import numpy as np

from .evaluate import evaluate
from .ir import Expr, flatten


def _structured(result, values):
    """The evaluated leaves of ``result`` (an iterator, in flatten order), shaped as the
    compiled function returns them."""
    if isinstance(result, Expr):
        value = next(values)
        return float(value) if not result.shape else np.array(value, dtype=np.float64)
    if isinstance(result, tuple):
        return tuple(_structured(part, values) for part in result)
    rows = list(result)
    if rows and isinstance(rows[0], list):
        return np.array([[float(next(values)) for _ in row] for row in rows], dtype=np.float64)
    return np.array([float(next(values)) for _ in rows], dtype=np.float64)


def interpreter(spec):
    """A Python callable computing ``spec`` (a codegen FunctionSpec, not batched) with the
    evaluator, from arguments the input contract has converted."""
    inputs, arrays = spec.inputs, spec.arrays
    leaves = flatten(spec.result)

    def call(*x):
        values = {sym.value: given for sym, given in zip(inputs, x, strict=False)}
        for param, given in zip(arrays, x[len(inputs):], strict=True):
            values.update((s.value, float(v)) for s, v in zip(param.symbols, given,
                                                             strict=True))
        with np.errstate(all="ignore"):
            computed = evaluate(leaves, values)
        return _structured(spec.result, iter(computed))

    return call
