"""What the lowerings are given: one generated function described independently of how
it is written (its inputs, result graph, lowering choice), how it returns its result
(``result_layout``), and the argument checks every lowering's entry point starts with."""

from __future__ import annotations

from dataclasses import dataclass, field

from symdiff.ir.nodes import Expr

LOWERINGS = ("auto", "python", "llvm")
# The order of additions every lowering keeps, so that they agree bit for bit: a full sum
# over one axis in LANES partial sums (added pairwise at the end), a full sum of a
# transcendental map in blocks of SUM_BLOCK elements, each block in LANES partial sums.
LANES = 4
SUM_BLOCK = 256
# From this many operations on, straight-line functions go through LLVM IR (codegen.llvm.emit):
# Numba's statement-by-statement pipeline grows faster than linearly with length.
LLVM_MIN_OPS = 100


@dataclass(frozen=True)
class ArrayParam:
    """A 1-D float64 array parameter whose items stand for the given symbols."""

    name: str
    symbols: tuple[Expr, ...]


@dataclass(frozen=True)
class FunctionSpec:
    """One generated function: positional scalar inputs, optional array inputs, a result.

    ``result`` is an expression (returns a float), a list (1-D array), a list of lists
    (2-D array) or a tuple of those (returns a tuple).
    """

    name: str
    inputs: tuple[Expr, ...]
    result: object
    doc: str
    arrays: tuple[ArrayParam, ...] = field(default=())
    batched: bool = False  # scalar inputs become 1-D arrays of points, run in parallel
    lowering: str = "auto"  # "python" statements, "llvm" IR, or "auto" by size
    checked: bool = True  # shapes of array arguments checked (not in loop bodies we call)
    params: tuple[str, ...] = ()  # inputs' parameter names, if not from their symbols
    releases_gil: bool = False  # its native entry lets other threads run meanwhile


def result_parts(result) -> list[Expr] | None:
    """The Expr leaves of a result of Exprs and tuples, in order (None: another form, such
    as a list: a 1-D array of scalars)."""
    parts, stack = [], [result]
    while stack:
        part = stack.pop()
        if isinstance(part, tuple):
            stack.extend(reversed(part))
        elif isinstance(part, Expr):
            parts.append(part)
        else:
            return None
    return parts


def array_checks(spec: FunctionSpec) -> list[str]:
    """Lines that reject an array parameter with another number of items than its symbols
    (the body reads them by position: a short array would be read out of bounds)."""
    lines = []
    for array in spec.arrays:
        n = len(array.symbols)
        lines += [f"if {array.name}.size != {n}:",
                  f'    raise ValueError("argument {array.name} must have {n} items")']
    return lines


# In a result layout: a result leaf that is a float (a leaf with n >= 1 dimensions is n).
SCALAR_RESULT = 0


def result_layout(spec):
    """How a generated function returns its result: SCALAR_RESULT or a rank for one
    result, a tuple of layouts for a tuple (see FunctionSpec.result; direction loops give
    a matrix)."""
    if not hasattr(spec, "result"):
        return 2
    return _layout(spec.result)


def _layout(result):
    if isinstance(result, tuple):
        return tuple(_layout(part) for part in result)
    if isinstance(result, Expr):
        return len(result.shape) if result.shape else SCALAR_RESULT
    rows = list(result)
    return 2 if rows and isinstance(rows[0], list) else 1
