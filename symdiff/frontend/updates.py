"""Functional updates in JAX's style: ``x.at[key].set(v)``, ``.add(v)``, ``.multiply(v)``.

Expressions are immutable, so ``x[key] = v`` cannot work; ``x.at[key].set(v)`` is a new
expression equal to x with the elements at ``key`` replaced.  Keys are what indexing
takes (ints, slices, one integer array or mask on the first axis) and, as in NumPy's
fancy indexing, a tuple of integer arrays, one per axis: ``sd.zeros((n, n)).at[
np.tril_indices(n)].set(v)`` builds a lower-triangular matrix from a vector.  Each update
is built from existing ops (index/embed, take/scatter_add), so derivatives of every order
come with it: d/dv of ``set`` is the placement, d/dx zero at the replaced elements.
Repeated positions add up under ``add``; under ``set`` the last value at a repeated
position wins, as in NumPy's assignment; ``multiply`` refuses repeated positions (JAX
multiplies by each, NumPy by one: no meaning to guess).
"""

from __future__ import annotations

import numpy as np

from symdiff.errors import ShapeError
from symdiff.ir.nodes import Expr, Rows, apply, array_constant, as_expr
from symdiff.ops.arrays import flat_positions, index, reshape, where
from symdiff.ops.structural import broadcast_to


def _repeats(part: Expr, x: Expr):
    """For a selection by integer positions that repeat (a gather ``take``, perhaps
    reshaped): (1.0 at each position's last occurrence and 0.0 at the others, shaped as
    the selection; True at the positions written, shaped to broadcast against x); None
    where no position repeats."""
    taken = part.args[0] if part.op == "reshape" else part
    if taken.op != "take" or not isinstance(taken.value, Rows):
        return None
    rows = taken.value.array
    unique, from_end = np.unique(rows[::-1], return_index=True)  # (last occurrences)
    if len(unique) == len(rows):
        return None
    if not isinstance(taken.args[0].shape[0], int):
        raise ShapeError("an update at repeated positions of an open (None) axis: which "
                         "value wins needs the axis's length; use unique positions")
    last = np.zeros(len(rows))
    last[len(rows) - 1 - from_end] = 1.0
    written = np.zeros(taken.args[0].shape[0], dtype=bool)
    written[rows] = True
    if taken.args[0] is x:  # rows of x: trailing axes whole
        ones = (1,) * (x.ndim - 1)
        return (array_constant(last.reshape((len(rows),) + ones)),
                array_constant(written.reshape(written.shape + ones)))
    return (array_constant(last.reshape(part.shape)),  # positions of all of x, flat
            array_constant(written.reshape(x.shape)))


class At:
    """``x.at``: indexing it with a key gives the updates of ``x`` at that key."""

    def __init__(self, x: Expr):
        self.x = x

    def __getitem__(self, key) -> Update:
        return Update(self.x, key)


class Update:
    """The updates of ``x`` at one key (see the module docstring)."""

    def __init__(self, x: Expr, key):
        self.x, self.key = x, key

    def get(self) -> Expr:
        """``x[key]``."""
        part, _ = self._placement()
        return part

    def set(self, values) -> Expr:
        """x with ``values`` (broadcast to the selection) at ``key``; where a position
        repeats, its last value."""
        part, place = self._placement()
        values = self._fit(values, part)
        repeats = _repeats(part, self.x)
        if repeats is None:
            return apply("add", apply("sub", self.x, place(part)), place(values))
        last, touched = repeats  # (constant masks: each position's last value, and
        # the positions written, selected with where so an inf replaced stays exact)
        return where(touched, place(apply("mul", values, last)), self.x)

    def add(self, values) -> Expr:
        """x with ``values`` added at ``key``."""
        part, place = self._placement()
        return apply("add", self.x, place(self._fit(values, part)))

    def multiply(self, values) -> Expr:
        """x with the elements at ``key`` multiplied by ``values`` (positions may not
        repeat)."""
        part, place = self._placement()
        if _repeats(part, self.x) is not None:
            raise ShapeError(f"x.at[{self.key!r}].multiply: a position repeats, and JAX "
                             "would multiply by each value where NumPy uses one; multiply "
                             "by the product of the values at unique positions instead")
        scaled = apply("mul", part, self._fit(values, part))
        return apply("add", apply("sub", self.x, place(part)), place(scaled))

    @staticmethod
    def _fit(values, part: Expr) -> Expr:

        values = as_expr(values)
        try:
            return broadcast_to(values, part.shape) if part.shape else values
        except ShapeError:
            raise ShapeError(f"update values of shape {values.shape} do not fit the "
                             f"selection of shape {part.shape}") from None

    def _placement(self):
        """The selected part and a function placing an array of its shape back into
        zeros of x's shape."""

        x, key = self.x, self.key
        part = index(x, key)
        if flat_positions(key, x.shape) is not None:  # one integer array per axis
            rows = part.value
            return part, lambda y: reshape(apply("scatter_add", y, payload=(rows, x.size)),
                                           x.shape)
        gathered = part.args[0] if part.op == "reshape" else part
        if gathered.op == "take" and gathered.args[0] is not x:  # positions of all of x
            rows = gathered.value
            return part, lambda y: reshape(apply(
                "scatter_add", reshape(y, (len(rows),)), payload=(rows, x.size)), x.shape)
        if part.op == "take":
            rows = part.value
            return part, lambda y: apply("scatter_add", y, payload=(rows, x.shape[0]))
        if part.op == "index" and part.args[0] is x:
            return part, lambda y: apply("embed", y, payload=(part.value, x.shape))
        if part is x:
            return part, lambda y: y
        raise ShapeError(f"an update at {key!r}: rows by an array and then slices; update "
                         "the rows (x.at[rows]) with a full new row instead")
