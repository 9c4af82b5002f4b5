"""The reference interpreter: Python floats, NumPy's float64 semantics for inf and nan."""

from __future__ import annotations

import numpy as np

from symdiff.errors import ShapeError, SymdiffError
from symdiff.ir.dims import resolve_shape
from symdiff.ir.index_keys import least_open_length
from symdiff.ir.nodes import OPS, Expr, flatten, restructure, topological_order


def _bindings(values, kwargs) -> dict[str, object]:
    bound: dict[str, object] = {}
    for key, value in {**(values or {}), **kwargs}.items():
        name = key.value if isinstance(key, Expr) and key.op == "symbol" else key
        if not isinstance(name, str):
            raise SymdiffError(f"values must be keyed by symbols or names, got {key!r}")
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise SymdiffError(f"value of {name!r} is not a number: {value!r}") from None
        bound[name] = float(array) if array.ndim == 0 else array
    return bound


def _bind(node: Expr, bound: dict, batch: list):
    try:
        value = bound[node.value]
    except KeyError:
        raise SymdiffError(f"no value given for symbol {node.value!r}") from None
    shape = np.shape(value)
    if len(shape) != len(node.shape) or any(
            d is not None and d != s for d, s in zip(node.shape, shape, strict=True)):
        raise ShapeError(f"value of {node.value!r} has shape {shape}, expected {node.shape}")
    for d, s in zip(node.shape, shape, strict=True):
        if d is None:
            if batch and batch[0] != s:
                raise ShapeError(f"open (None) dimensions disagree: {batch[0]} and {s}")
            batch[:] = [s]
    return value


def _check_open_length(node: Expr, batch: list) -> None:
    least = least_open_length(node)
    if batch and batch[0] < least:
        raise ShapeError(f"the open (None) dimension has length {batch[0]} here; the index "
                         f"{_short(node)} needs at least {least}")


def _short(node: Expr, width: int = 80) -> str:
    text = str(node)
    return text if len(text) <= width else text[:width - 3] + "..."


def _elementwise(op, args):
    if all(isinstance(a, float) for a in args):
        return op.evaluate(*args)
    # The scalar rule element by element keeps the semantics identical to scalars.
    return np.vectorize(op.evaluate, otypes=[np.float64])(*args)


def evaluate(exprs, values=None, **kwargs):
    """Evaluate an expression (or a list of them) at ``values`` / keyword arguments.

    Returns a float (or a NumPy array, for an array expression) for one expression and
    nested lists of those for a (nested) list.  Array symbols take arrays of their shape;
    an open (None) dimension takes its size from the values.  Each node is computed once.
    """
    single = isinstance(exprs, Expr)
    roots = [exprs] if single else flatten(exprs)
    bound = _bindings(values, kwargs)
    batch: list[int] = []
    result: dict[Expr, object] = {}
    order = topological_order(roots)
    for node in order:  # bind symbols first: they fix the size of open dimensions
        if node.op == "symbol":
            result[node] = _bind(node, bound, batch)
    for node in order:  # then slices of them: an error before any arithmetic on short data
        if node.op in ("index", "embed"):
            _check_open_length(node, batch)
    for node in order:
        if node.op == "const":
            result[node] = node.value
        elif node.op == "array":
            result[node] = node.value.array
        elif node.args:
            op = OPS[node.op]
            args = [result[a] for a in node.args]
            if op.elementwise:
                result[node] = _elementwise(op, args)
            else:
                shape = resolve_shape(node.shape, batch[0]) if batch else node.shape
                value = op.evaluate(shape, node.value, *args)
                # A scalar as a float, not a 0-d array: the operations that read it then
                # take the scalar path of _elementwise (ten times faster).
                result[node] = value if shape or type(value) is float else float(value)
    if single:
        return result[roots[0]]
    return restructure(exprs, iter([result[r] for r in roots]))
