"""Functional updates in JAX's style: ``x.at[key].set(v)``, ``.add(v)``, ``.multiply(v)``.

Expressions are immutable, so ``x[key] = v`` cannot work; ``x.at[key].set(v)`` is a new
expression equal to x with the elements at ``key`` replaced.  Keys are what indexing
takes (ints, slices, one integer array or mask on the first axis) and, as in NumPy's
fancy indexing, a tuple of integer arrays, one per axis: ``sd.zeros((n, n)).at[
np.tril_indices(n)].set(v)`` builds a lower-triangular matrix from a vector.  Each update
is built from existing ops (index/embed, take/scatter_add), so derivatives of every order
come with it: d/dv of ``set`` is the placement, d/dx zero at the replaced elements.
Repeated positions add up under ``add``; under ``set`` the values at repeats add as well.
"""

from __future__ import annotations

from symdiff.errors import ShapeError
from symdiff.ir.nodes import Expr, apply, as_expr
from symdiff.ops.arrays import flat_positions, index, reshape
from symdiff.ops.structural import broadcast_to


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
        """x with ``values`` (broadcast to the selection) at ``key``."""
        part, place = self._placement()
        return apply("add", apply("sub", self.x, place(part)), place(self._fit(values, part)))

    def add(self, values) -> Expr:
        """x with ``values`` added at ``key``."""
        part, place = self._placement()
        return apply("add", self.x, place(self._fit(values, part)))

    def multiply(self, values) -> Expr:
        """x with the elements at ``key`` multiplied by ``values``."""
        part, place = self._placement()
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
