"""Reductions in the native lowering (mixin of codegen.native.arrays.ArrayBody): full
sums and maxima, sums and maxima over axes, and the nodes that add into a result of their
own shape (sum_to, scatter_add, embed).

Every result element keeps the order of additions the Numba lowering gives it (one
running value over the reduced indices in order, or the lanes of codegen.native.sums for
full reductions), so the two lowerings agree bit for bit.  Only the order in which the
loops visit the elements changes:

- a sum over a short last axis runs *across* its last kept axis: one pass over a row of
  results per reduced index, which LLVM vectorizes across the row (a sum over d of
  ``(p[i] - c[j]) ** 2`` for each centroid j, as XLA's vectorized reductions do).  An
  operand the row reads with a stride, the same for every row (the centroids), is first
  copied with that axis contiguous, where the sum is computed (once per call, or per
  step or direction inside those loops);
- a maximum over a long last axis runs in LANES running maxima per row, inside the loop
  of the sum it alone reads where it reads one (the row as it is made).  A maximum is
  exact in any order, but for which of -0.0 and 0.0 a tie between them returns (as for
  the full maximum of codegen.native.sums): only there may the two lowerings differ.
"""

from __future__ import annotations

import math

from symdiff.ir.dims import has_open, is_open
from symdiff.ir.nodes import Expr

from ..llvm.elements import ELEMENTS
from ..spec import LANES
from .loop_math import LOOP
from .sums import NEG_INF, Sums
from .views import View, indexed, permuted, position, whole

# A sum runs across its last kept axis when the reduced (last) axis has at most
# SHORT_AXIS elements and the kept one at least 2 * LANES (or an open length); an operand
# read with a stride across the row is copied only up to COPIED_ELEMENTS elements.
SHORT_AXIS = 32
COPIED_ELEMENTS = 1 << 16


class Reductions(Sums):
    """Mixin: the emitter of the reduction ops (``reduction``)."""

    def reduction(self, node: Expr) -> None:
        """A sum, maximum, sum_to, scatter_add or embed: into a scalar, or into a
        buffer of its own that starts at zeros (-inf for a maximum)."""
        code, shape, op = self.code, node.args[0].shape, node.op
        if node in self.computed_ahead:  # by the loop of the sum it reads
            return
        if op in ("sum", "amax") and len(shape) == 1 and all(d == 1 for d in node.shape):
            self._full(node)
            return
        if op == "amax" and self._by_rows(node):
            self._row_maxima(node)
            return
        copies = self._across(node) if op == "sum" else None
        if copies is not None:
            self._sum_across(node, copies)
            return
        start = NEG_INF if op == "amax" else code.constant(0.0)
        combine = ELEMENTS["maximum"][0] if op == "amax" else "fadd"
        if not node.shape:  # into one running value
            slot = code.accumulator(start)
            with code.nest(shape) as indices:
                code.add_to(slot, "0", self.loop_value(node, shape, indices), combine)
            self.scalars[node] = code.read(slot)
            return
        out = whole(code, self.buffer(node), node.shape)
        self.views[node] = out
        with code.nest(node.shape) as indices:  # the starting values
            code.write(start, out.base, position(code, out, node.shape, node.shape, indices))
        with code.nest(shape) as indices:
            value = self.loop_value(node, shape, indices)
            if op in ("sum", "amax"):
                axes, keepdims = node.value
                axes = range(len(shape)) if axes is None else axes
                kept = [("0" if k in axes else i) for k, i in enumerate(indices)
                        if keepdims or k not in axes]
                at = position(code, out, node.shape, node.shape, kept)
            elif op == "sum_to":
                at = position(code, out, node.shape, shape, indices)
            elif op == "scatter_add":
                row = self.row_at(node.value[0], indices[0])
                at = position(code, out, node.shape, node.shape, [row, *indices[1:]])
            else:  # embed: each element to its one place
                place = indexed(code, out, node.value[0], node.shape)
                code.write(value, out.base, position(code, place, shape, shape, indices))
                at = None
            if at is not None:
                code.add_to(out.base, at, value, combine)

    def _full(self, node: Expr) -> None:
        """A sum or maximum of a vector into one value (kept as a scalar, or written as
        the one element of a result of shape (1,))."""
        code, n = self.code, node.args[0].shape[0]

        def term(i):
            return self.loop_value(node, (n,), [i])
        if node.op == "sum":
            blocked = any(m.op in LOOP for m in self.members(node))  # transcendental
            total = self.full_sum(term, n, blocked)
        else:
            total = self.full_max(term, n)
        if node.shape:
            pointer = self.buffer(node)
            code.write(total, pointer)
            self.views[node] = whole(code, pointer, node.shape)
        else:
            self.scalars[node] = total

    def _by_rows(self, node: Expr) -> bool:
        """Whether a maximum reduces the last axis alone, of 2 * LANES elements or more
        (or an open length), for other axes kept."""
        shape = node.args[0].shape
        return (len(shape) >= 2 and node.value[0] == (len(shape) - 1,)
                and (is_open(shape[-1]) or shape[-1] >= 2 * LANES))

    def _row_maxima(self, node: Expr) -> None:
        """A maximum over the last axis, row by row."""
        out = whole(self.code, self.buffer(node), node.shape)
        self.views[node] = out
        with self.code.nest(node.args[0].shape[:-1]) as outer:
            self._row_maximum(node, outer, out)

    def _row_maximum(self, node: Expr, outer: list[str], out: View) -> None:
        """The maximum of the row of ``node``'s operand at ``outer`` (LANES running
        maxima), written into ``out``."""
        code, shape = self.code, node.args[0].shape
        total = self.full_max(lambda i: self.loop_value(node, shape, [*outer, i]), shape[-1])
        kept = [*outer, "0"] if node.value[1] else outer
        code.write(total, out.base, position(code, out, node.shape, node.shape, kept))

    def _across(self, node: Expr) -> list[Expr] | None:
        """The operands to copy first if a sum runs across its last kept axis (see the
        module), else None: a sum over the last axis alone, short, with a long kept axis
        before it, whose loop reads every operand either the same across that axis, or
        contiguously along it, or the same for every row (the operands to copy)."""
        shape = node.args[0].shape
        axes, keepdims = node.value
        if keepdims or len(shape) < 2 or axes != (len(shape) - 1,):
            return None
        short, row = shape[-1], shape[-2]
        if is_open(short) or not 2 <= short <= SHORT_AXIS or (
                not is_open(row) and row < 2 * LANES):
            return None
        group = [node, *self.members(node)]
        if any(m.op in ("embed", "take") for m in group):
            return None
        inside, copies = set(group), []
        operands = dict.fromkeys(a for m in group for a in m.args
                                 if a.shape and a not in inside and a not in self.fills)
        for operand in operands:
            strides = self._loop_strides(operand, shape)
            if strides[-2] in ("0", "1"):
                continue
            if any(s != "0" for s in strides[:-2]) or has_open(operand.shape) or \
                    math.prod(operand.shape) > COPIED_ELEMENTS:
                return None
            copies.append(operand)
        return copies

    def _loop_strides(self, operand: Expr, loop_shape) -> list[str]:
        """The stride of ``operand``'s element per axis of a loop over ``loop_shape``
        (broadcasting as codegen.native.views.position: "0" where it does not move)."""
        strides = ["0"] * len(loop_shape)
        first = len(loop_shape) - len(operand.shape)
        for k, d in enumerate(operand.shape):
            if d != 1:
                strides[first + k] = self.views[operand].strides[k]
        return strides

    def _row_consumer(self, node: Expr) -> Expr | None:
        """The maximum over rows (``_by_rows``) that alone reads a sum running across,
        through fused elementwise producers, if it can run row by row inside the sum's
        loop: its other operands are computed before the sum."""
        if node in self.results:
            return None
        reader = node
        while True:
            users = self.consumers.get(reader, [])
            if len(users) != 1:
                return None
            reader = users[0]
            if reader not in self.inlined:
                break
        if reader.op != "amax" or reader.args[0].shape != node.shape or \
                not self._by_rows(reader):
            return None
        group = [reader, *self.members(reader)]
        inside = set(group)
        if any(m.op in ("embed", "take") or m in self.recomputed for m in group):
            return None
        # Its other operands computed already (not merely earlier in the schedule: a
        # loop body's invariant part is written before the loop, the rest inside it).
        if not all(a is node or self._computed(a)
                   for m in group for a in m.args if a not in inside):
            return None
        return reader

    def _computed(self, node: Expr) -> bool:
        """Whether ``node``'s value is at hand (a constant, or written already)."""
        return (node.op == "const" or node in self.scalars or node in self.views
                or node in self.fills)

    def _sum_across(self, node: Expr, copies: list[Expr]) -> None:
        """A sum over the last axis with the last kept axis innermost: per row, zeros,
        then one pass over the row per reduced index (the additions of each element in
        the order of the reduced indices, as in the other order).  A maximum over rows
        that alone reads it runs on each row as it is made (no array of sums)."""
        code, shape = self.code, node.args[0].shape
        reader = self._row_consumer(node)
        if reader is None:
            out = whole(code, self.buffer(node), node.shape)
        else:  # one row, read by the maximum as the row of every outer index
            row = code.allocate(code.dim(shape[-2]))
            out = View(row, "0", ("0",) * (len(node.shape) - 1) + ("1",), False)
            maxima = whole(code, self.buffer(reader), reader.shape)
            self.views[reader] = maxima
            self.computed_ahead.add(reader)
        self.views[node] = out
        saved = {operand: self.views[operand] for operand in copies}
        for operand in copies:  # its axis along the row contiguous
            axis = len(operand.shape) - 2
            self.views[operand] = self._contiguous_along(operand, axis)
        try:
            with code.nest(shape[:-2]) as outer:
                # (Rows of 8 stay loops too: unrolled, they would be scalar code.)
                with code.loop(code.dim(shape[-2]), unroll=False) as j:
                    code.write(code.constant(0.0), out.base,
                               position(code, out, node.shape, node.shape, [*outer, j]))
                with code.loop(code.dim(shape[-1]), unroll=False) as t, \
                        code.loop(code.dim(shape[-2]), unroll=False) as j:
                    value = self.loop_value(node, shape, [*outer, j, t])
                    code.add_to(out.base, position(code, out, node.shape, node.shape,
                                                   [*outer, j]), value)
                if reader is not None:
                    self._row_maximum(reader, outer, maxima)
        finally:
            self.views.update(saved)

    def _contiguous_along(self, operand: Expr, axis: int) -> View:
        """A copy of ``operand`` laid out with ``axis`` innermost (the others in C order
        around it), seen as the same array."""
        code, shape = self.code, operand.shape
        order = [k for k in range(len(shape)) if k != axis] + [axis]
        laid = whole(code, code.allocate(code.size(shape)), [shape[k] for k in order])
        target = permuted(laid, [order.index(k) for k in range(len(shape))])
        with code.nest(shape) as indices:
            value = self.element(operand, shape, indices, {})
            code.write(value, target.base, position(code, target, shape, shape, indices))
        return target

