"""Captured arrays as data: large constants become hidden arguments, not source literals.

A traced function that reads a NumPy array from its closure (a training set, a design
matrix) puts that array in the graph as a constant.  Emitted as a literal, 20,000 x 10
numbers made 4.5 MB of source, and Numba refuses to cache a function whose global array
exceeds 1 MB.  So constants of DATA_MIN_ELEMENTS elements or more are replaced by symbols
named by position (``$data0``, ``$data1``, ...): the compiled function takes them as
trailing arguments that its Python wrapper supplies.  The generated source then depends
on the data's shapes only (new data of the same shapes reuses the cached machine code),
and the code size stays independent of array sizes.  Scan bodies lift their large
constants to invariants of the loop the same way (symdiff.control.scan), so they reach here.

Row positions of gathers and scatters (``x[idx]``, ``.at[idx].add``) of as many elements
become data the same way (``lift_rows``): their payload turns into a DataRows of slot k,
which the backends read from a hidden int64 argument ``$rows<k>`` instead of a constant
in the source.  The positions stay in the payload, for the evaluator and the analyses
(sparsity, shapes).  Positions inside loop bodies stay constants.
"""

from __future__ import annotations

import io

import numpy as np

from symdiff.ir.nodes import (
    DataRows,
    Expr,
    Rows,
    apply,
    internal_symbol,
    topological_order,
)
from symdiff.passes.pipeline import rewrite, substitute

# Below this many elements a constant stays a literal (a 3 x 3 coefficient matrix is
# cheaper inlined, and the folding passes see its values).
DATA_MIN_ELEMENTS = 1024


def is_data(node: Expr) -> bool:
    """Whether ``node`` is a constant array large enough to be passed as data."""
    return node.op == "array" and node.value.array.size >= DATA_MIN_ELEMENTS


def lift_data(exprs: list, prefix: str = "data") -> tuple[list, list, list]:
    """``exprs`` with each large constant replaced by a symbol ``$<prefix><k>`` (k in
    order of first use), the symbols, and the constant nodes they stand for."""
    found = [n for n in topological_order(exprs) if is_data(n)]
    if not found:
        return list(exprs), [], []
    symbols = [internal_symbol(f"{prefix}{k}", n.shape) for k, n in enumerate(found)]
    return substitute(list(exprs), dict(zip(found, symbols, strict=True))), symbols, found


def rows_symbol(rows: DataRows) -> Expr:
    """The hidden argument that holds ``rows``' positions (an int64 vector)."""
    return internal_symbol(f"rows{rows.slot}", (len(rows),))


def is_rows_symbol(symbol: Expr) -> bool:
    """Whether an input symbol is lifted row positions (passed as int64, not float64)."""
    return symbol.op == "symbol" and symbol.value.startswith("$rows")


def rows_of(node: Expr):
    """The row positions of a take or scatter_add node (None for other ops)."""
    return node.value if node.op == "take" else node.value[0] \
        if node.op == "scatter_add" else None


def lift_rows(exprs: list) -> tuple[list, list, list]:
    """``exprs`` with the row positions of every take / scatter_add of DATA_MIN_ELEMENTS
    or more turned into DataRows (slot k in order of first use), the symbols
    ``$rows<k>`` that hold them, and the positions (int64 arrays) to pass for those."""
    slots: dict = {}

    def lifted(node: Expr, args: tuple):
        rows = rows_of(node)
        if rows is None or type(rows) is not Rows or len(rows) < DATA_MIN_ELEMENTS:
            return None
        found = slots.get(rows.key)
        if found is None:
            found = slots[rows.key] = DataRows(rows.array, len(slots))
        return apply(node.op, *args,
                     payload=found if node.op == "take" else (found, *node.value[1:]))

    rewritten = rewrite(exprs, lifted)
    if not slots:
        return list(exprs), [], []
    found = list(slots.values())
    return rewritten, [rows_symbol(r) for r in found], [np.array(r.array) for r in found]


def data_values(constants: list) -> tuple[np.ndarray, ...]:
    """The arrays to pass for the data symbols: C-ordered float64 copies, writable since
    the compiled signatures take plain arrays (generated code never writes its inputs)."""
    return tuple(np.array(c.value.array, order="C") for c in constants)


def npz_bytes(values, extra: dict | None = None) -> bytes:
    """The data arrays as the bytes of an .npz file (data0, data1, ..., then ``extra``'s
    named arrays)."""
    buffer = io.BytesIO()
    np.savez(buffer, **{DATA_KEY.format(k): v for k, v in enumerate(values)}, **(extra or {}))
    return buffer.getvalue()


DATA_KEY = "data{}"  # the name of captured array k in a saved module's .npz
# The arrays a saved sparse method needs besides the arguments: a coloring's seeds and
# gather positions, and the pattern's CSR index arrays and shape.
SPARSE_PARTS = ("seeds", "gather", "indices", "indptr", "shape")


def saved_data_loader(filename: str, count: int, sparse_kinds=()) -> str:
    """Module source that loads DATA (``count`` captured arrays) and, per kind of
    ``sparse_kinds`` ("hessian", "jacobian"), SPARSE_<KIND> from ``filename`` beside
    the module."""
    lines = ["", "", "# Saved beside the module: the captured arrays, to pass after the "
             "arguments (gradient(..., *DATA)),",
             "# and what the sparse methods take: sparse_hessian(x..., *DATA, "
             "SPARSE_HESSIAN['seeds'],",
             "# SPARSE_HESSIAN['gather']) gives the nonzeros of the CSR matrix "
             "(SPARSE_HESSIAN's indices,",
             "# indptr and shape), as scipy.sparse.csr_array((data, indices, indptr), "
             "shape) takes them.",
             "import os as _os  # noqa: E402", "",
             "with np.load(_os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "
             f"{filename!r})) as _saved:",
             f"    DATA = ({''.join(f'_saved[{DATA_KEY.format(k)!r}], ' for k in range(count))})"]
    for kind in sparse_kinds:
        parts = ", ".join(f'"{part}": _saved["{kind}_{part}"]' for part in SPARSE_PARTS)
        lines.append(f"    SPARSE_{kind.upper()} = {{{parts}}}")
        lines.append(f"    SPARSE_{kind.upper()}['shape'] = tuple(int(d) for d in "
                     f"SPARSE_{kind.upper()}['shape'])")
    return "\n".join(lines) + "\n"
