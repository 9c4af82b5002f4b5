"""Run a generated function's graph on the reference evaluator, with the calling
convention of the compiled function: the first tier while Numba compiles in the
background (see CompiledFunction).

Same arguments, same argument checks (shape errors name the same parameters), same result
structure: floats for scalars, fresh float64 arrays for arrays and lists, tuples kept.
"""

from __future__ import annotations

import numpy as np

from .evaluate import evaluate
from .ir import Expr, flatten


def _check_shape(name: str, wanted: tuple, value: np.ndarray, batch: list) -> None:
    if value.ndim != len(wanted):  # as Numba: no compiled version for that array type
        raise TypeError(f"argument {name} must be a {len(wanted)}-D array, got {value.ndim}-D")
    ok = True
    for want, got in zip(wanted, value.shape, strict=True):
        if want is None:
            batch.append(got)
            ok = ok and batch[0] == got
        else:
            ok = ok and want == got
    if not ok:
        shown = str(tuple(wanted)).replace("None", "batch")
        raise ValueError(f"argument {name} must have shape {shown}")


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


def interpreter(spec, params: list[str]):
    """A Python callable computing ``spec`` (a codegen FunctionSpec, not batched) with the
    evaluator; ``params`` are the generated parameter names, used in error messages."""
    inputs, arrays = spec.inputs, spec.arrays
    count = len(inputs) + len(arrays)
    leaves = flatten(spec.result)

    def call(*x):
        if len(x) != count:
            raise TypeError(f"{spec.name}() takes {count} positional arguments, "
                            f"{len(x)} given")
        values, batch = {}, []
        for sym, name, given in zip(inputs, params, x, strict=False):
            if not sym.shape:
                if np.ndim(given):  # as Numba: an array where a float is expected
                    raise TypeError(f"argument {name} must be a float")
                values[sym.value] = float(given)
                continue
            array = np.asarray(given, dtype=np.float64)
            _check_shape(name, sym.shape, array, batch)
            values[sym.value] = array
        for param, given in zip(arrays, x[len(inputs):], strict=True):
            items = np.asarray(given, dtype=np.float64).ravel()
            if len(items) != len(param.symbols):
                raise ValueError(f"argument {param.name} must have {len(param.symbols)} items")
            values.update((s.value, float(v)) for s, v in zip(param.symbols, items,
                                                             strict=True))
        with np.errstate(all="ignore"):
            computed = evaluate(leaves, values)
        return _structured(spec.result, iter(computed))

    return call
