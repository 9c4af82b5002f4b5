"""Index arithmetic of the Numba lowering's array code: where a loop reads an element of
an array seen through broadcasting, an index key or a unit reshape, shapes as code, and
the module-level arrays loops index (constants, gathered row positions)."""

from __future__ import annotations

import hashlib

from symdiff.ir.nodes import DataRows, Expr, flatten, topological_order
from symdiff.passes.data import rows_of, rows_symbol

from ..naming import extent, parameter_names


def shape_text(shape) -> str:
    dims = ", ".join(extent(d) for d in shape)
    return f"({dims},)" if len(shape) == 1 else f"({dims})"


def key_index(key, shape: tuple, indices: list[str]) -> list[str]:
    """Index into an array of ``shape``, seen through an index key, from the loop
    ``indices`` over the indexed result (an int entry fixes its axis; a slice maps).
    Entries on an open dimension count negative bounds from its run-time length."""
    out, free = [], iter(indices)
    for k, dim in enumerate(shape):
        entry = key[k] if k < len(key) else ("s", None, None, None)
        if entry[0] == "i":
            out.append(_from_end(entry[1], dim))
            continue
        i = next(free)  # "0": the loop has no axis there (a static length of 1)
        if entry[0] == "o":
            step = entry[3]
            start = ("0" if step > 0 else _from_end(-1, dim)) if entry[1] is None else \
                _from_end(entry[1], dim)
        else:
            start, step = str(entry[1] or 0), entry[3] or 1
        term = i if abs(step) == 1 else f"{abs(step)} * {i}"
        if i == "0":
            out.append(start)
        elif start.isdigit() and i.isdigit():  # a static position
            out.append(str(int(start) + (1 if step > 0 else -1) * abs(step) * int(i)))
        elif start == "0":
            out.append(term if step > 0 else f"-{term}")
        else:
            out.append(f"{start} {'+' if step > 0 else '-'} {term}")
    return out


def loop_indices(shape) -> list[str]:
    """The index of each axis of a loop over ``shape``: ``_i<k>``, or ``0`` for an axis of
    static length 1 (no loop over it)."""
    return ["0" if d == 1 else f"_i{k}" for k, d in enumerate(shape)]


def _from_end(position: int, dim) -> str:
    """A position on an axis of length ``dim``; a negative one counts from the end."""
    return str(position) if position >= 0 else f"{extent(dim)} - {-position}"


def constant_name(node: Expr) -> str:
    """Module-level name of an array constant (by content, so identical ones are shared)."""
    return "_k" + hashlib.sha256(repr(node.value.key).encode()).hexdigest()[:12]


def constant_source(node: Expr) -> str:
    """Module-level definition of an array constant."""
    values = ", ".join(repr(float(v)) for v in node.value.array.ravel())
    return f"{constant_name(node)} = np.array([{values}]).reshape({node.shape})"


def rows_name(node: Expr) -> str:
    """The name of the row positions of a take/scatter_add node: a module-level constant,
    or for positions lifted as data the parameter that holds them."""
    rows = rows_of(node)
    if isinstance(rows, DataRows):
        return parameter_names([rows_symbol(rows).value])[0]
    return "_r" + rows.key[1][:12]


def rows_source(node: Expr) -> str:
    """Module-level definition of the row positions of a take/scatter_add node."""
    values = ", ".join(map(str, rows_of(node).array))
    return f"{rows_name(node)} = np.array([{values}], dtype=np.int64)"


def broadcast_index(shape: tuple, loop_shape: tuple, indices: list[str]) -> list[str]:
    """Index of an array of ``shape`` inside a loop over ``loop_shape`` (NumPy broadcasting:
    shapes align on the right and a size-1 dimension stays at 0)."""
    offset = len(loop_shape) - len(shape)
    return ["0" if d == 1 and loop_shape[offset + k] != 1 else indices[offset + k]
            for k, d in enumerate(shape)]


def unit_reshape(node: Expr) -> bool:
    """Whether ``node`` is a reshape that only inserts or removes size-1 axes."""
    return node.op == "reshape" and bool(node.shape) and bool(node.args[0].shape) and \
        [d for d in node.shape if d != 1] == [d for d in node.args[0].shape if d != 1]


def unit_reshape_index(shape: tuple, source: tuple, indices: list[str]) -> list[str]:
    """Index into a reshape's operand (of shape ``source``) from indices over ``shape``."""
    kept = iter(i for d, i in zip(shape, indices, strict=True) if d != 1)
    return ["0" if d == 1 else next(kept) for d in source]


def constants_used(specs) -> list[str]:
    """Module-level definitions of the array constants and row positions the specs use,
    sorted by name."""
    found = {}
    for spec in specs:
        for n in topological_order(flatten(spec.result)):
            if n.op == "array":
                found[constant_name(n)] = constant_source(n)
            elif n.op in ("take", "scatter_add") and not isinstance(rows_of(n), DataRows):
                found[rows_name(n)] = rows_source(n)
    return [found[name] for name in sorted(found)]
