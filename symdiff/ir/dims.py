"""Dimensions of shapes: static ints, the open length ``None`` and lengths offset from it.

A function has one open length N per call (``sd.vector("x", None)``); a shape holds it as
``None``.  Slicing an open dimension gives a length N + k (``x[1:]`` is N - 1), held as
``Open(k)`` so that shape checks stay exact at trace time: ``x[1:] * x[:-1]`` is fine,
``x[1:] * x`` is a ShapeError.  ``None`` is ``Open(0)``'s only spelling, so code that
knows only ``None`` keeps working for unsliced open dimensions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from symdiff.errors import ShapeError


@dataclass(frozen=True, slots=True)
class Open:
    """An open dimension of length N + offset (offset != 0)."""

    offset: int

    def __repr__(self):
        return f"None{self.offset:+d}"


def open_dim(offset: int):
    """The open dimension N + offset (``None`` for N itself)."""
    return None if offset == 0 else Open(int(offset))


def is_open(d) -> bool:
    """Whether ``d`` depends on the open length."""
    return d is None or type(d) is Open


def offset(d) -> int:
    """k of an open dimension N + k."""
    return 0 if d is None else d.offset


def has_open(shape) -> bool:
    """Whether any dimension of ``shape`` is open."""
    return any(is_open(d) for d in shape)


def resolve(d, batch: int) -> int:
    """The length of ``d`` when the open length is ``batch``."""
    return batch + offset(d) if is_open(d) else d


def resolve_shape(shape, batch) -> tuple:
    """``shape`` with its open dimensions at the open length ``batch``."""
    return tuple(resolve(d, batch) for d in shape)


def elements(exprs, batch: int | None) -> int:
    """Total number of elements of ``exprs`` with the open dimension of size ``batch``."""
    return sum(math.prod(resolve(d, batch) for d in e.shape) for e in exprs)


def static_prod(shape) -> int:
    """The product of the static dimensions of ``shape``."""
    total = 1
    for d in shape:
        if not is_open(d):
            total *= d
    return total


def dim_text(d, batch_name: str) -> str:
    """Python source of ``d``'s length, the open length read from ``batch_name``."""
    if d is None:
        return batch_name
    if type(d) is Open:
        sign = "+" if d.offset > 0 else "-"
        return f"({batch_name} {sign} {abs(d.offset)})"
    return str(d)


def slice_text(start, stop, step) -> str:
    """NumPy's notation of a slice from its bounds (``1:``, ``::-1``, ``2:5``)."""
    return (f"{'' if start is None else start}:{'' if stop is None else stop}"
            + ("" if step in (None, 1) else f":{step}"))


# Slices of an open dimension.  A bound is affine in N: (c, v) stands for c * N + v.  The
# result's length is one too when its N coefficient is 0 or 1; NumPy clamps bounds that
# fall outside the axis, so each slice also needs N large enough for no clamping to occur
# (its "least length", checked at run time).
def open_slice(d, start, stop, step: int) -> tuple:
    """(length, least N) of ``[start:stop:step]`` on the open dimension ``d`` (N + k),
    for step 1 or -1 and int-or-None bounds as written."""
    k = offset(d)

    def bound(value, default, inside, before):
        # (c, v), and the least N at which NumPy reads the bound as written: a positive
        # one inside the axis (past its end with step 1), a negative one not before its
        # start (one before it for a stop with step -1)
        if value is None:
            return default, 0
        if value < 0:
            return (1, k + value), -(k + value) - before
        return (0, value), value + inside - k

    if step == 1:
        (first, n1), (end, n2) = bound(start, (0, 0), 0, 0), bound(stop, (1, k), 0, 0)
        length = (end[0] - first[0], end[1] - first[1])
    else:  # a start or stop past the end is clamped to the last element
        (first, n1), (end, n2) = bound(start, (1, k - 1), 1, 0), bound(stop, (0, -1), 1, 1)
        length = (first[0] - end[0], first[1] - end[1])
    needs = [n1, n2]
    text = f"[{slice_text(start, stop, step)}]"
    if length[0] < 0:
        raise ShapeError(f"slice {text} of an open (None) dimension: its length would shrink "
                         "as the dimension grows")
    if length[0] == 0:
        if length[1] < 1:
            raise ShapeError(f"empty slice {text} of an open (None) dimension")
        return length[1], max(needs + [0])
    needs.append(-length[1])  # a length N + m >= 0
    return open_dim(length[1]), max(needs + [0])


def open_position(d, position: int) -> int:
    """The least N at which the integer index ``position`` exists on ``d`` (N + k)."""
    k = offset(d)
    return position + 1 - k if position >= 0 else -position - k
