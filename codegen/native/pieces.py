"""Embeds fused into the loop of their consumer (mixin of codegen.native.arrays.ArrayBody).

Reverse mode turns every sliced read (``x[1:]``, a stencil's shifted blocks) into an
``embed``: the adjoint written into zeros at the slice's place, then added to the others.
Computed as arrays, each embed costs a zero fill and a copy, and their sum a pass of its
own.  Fused instead, the consumer's loop runs over *pieces*: the loop's box is cut at every
edge of every embed, so that in each piece an embed is either inside (its operand's element
at the shifted position) or outside (0.0), with no branch per element.  The arithmetic is
the array version's, 0.0 included, so the result is the same bit for bit.

Only elementwise roots over static shapes take embeds in, of step-1 slices and positions,
and only while the pieces stay few (``MAX_PIECES``): the code holds the loop once per piece.
"""

from __future__ import annotations

import itertools
from contextlib import ExitStack, contextmanager

from symdiff.ir.index_keys import step_one_ranges
from symdiff.ir.nodes import OPS, Expr

from .code import number
from .views import ALIASES, position, whole

# The most pieces one loop is cut into (a 2-D five-point stencil's adjoint needs 25).
MAX_PIECES = 32


def embedded_box(node: Expr) -> list[tuple[int, int]] | None:
    """The [start, stop) an embed's operand fills on each axis of its result (static
    axes, step-1 slices and positions), or None where it is not such an embed."""
    key, shape = node.value
    return step_one_ranges(key, shape, positions=True)


def pieces(shape, boxes: dict) -> list[tuple[list[tuple[int, int]], frozenset]]:
    """The pieces of a loop over ``shape``: (its box, the embeds of ``boxes`` inside it)
    for every non-empty box between consecutive edges, in C order."""
    axes = []
    for axis, dim in enumerate(shape):
        edges = {0, dim}
        for box in boxes.values():
            edges.update(min(max(e, 0), dim) for e in box[axis])
        edges = sorted(edges)
        axes.append([(a, b) for a, b in itertools.pairwise(edges) if a < b])
    found = []
    for box in itertools.product(*axes):
        inside = frozenset(e for e, fill in boxes.items()
                           if all(f[0] <= lo and hi <= f[1] for (lo, hi), f in zip(box, fill,
                                                                                     strict=True)))
        found.append((list(box), inside))
    return found


class Pieces:
    """Mixin: embeds inlined into elementwise roots, and the loops over their pieces."""

    def fusible_embed(self, node: Expr, user: Expr) -> bool:
        """Whether the embed ``node`` can be computed in the loop of its one consumer."""
        return (OPS[user.op].elementwise and user.op not in ALIASES
                and user.shape == node.shape and embedded_box(node) is not None)

    def settle_embeds(self) -> None:
        """Keep inlined only the embeds that are direct members of an elementwise root cut
        into at most MAX_PIECES pieces; the others (in a reduction's loop, in too many
        pieces, or under another embed, whose operand runs at shifted positions) are
        arrays of their own again.  Repeated until nothing changes: an embed made an
        array again is a root whose own embeds are checked in turn."""
        changed = True
        while changed:
            changed, direct = False, set()
            for root in self.order:
                if root in self.inlined:
                    continue
                embeds = self.embed_members(root)
                if not embeds:
                    continue
                elementwise = OPS[root.op].elementwise and root.op not in ALIASES
                boxes = {e: embedded_box(e) for e in embeds}
                if elementwise and len(pieces(root.shape, boxes)) <= MAX_PIECES:
                    direct.update(embeds)
                else:
                    self.inlined.difference_update(embeds)
                    changed = True
            nested = {n for n in self.inlined if n.op == "embed"} - direct
            if nested:
                self.inlined -= nested
                changed = True

    def embed_members(self, root: Expr) -> list[Expr]:
        return [m for m in self.members(root) if m.op == "embed"]

    def piecewise_loop(self, node: Expr, embeds: list[Expr]) -> None:
        """The elementwise root ``node`` into its buffer, piece by piece (where ``windows``
        holds one for it, taken: each piece's rows within its rows, written where it
        says)."""
        code, window = self.code, self.windows.pop(node, None)
        windowed = window is not None
        target = window.target if windowed else whole(code, self.buffer(node), node.shape)
        for box, inside in pieces(node.shape, {e: embedded_box(e) for e in embeds}):
            self.inside, self.cut_by = inside, frozenset(embeds)
            ranges = [(str(lo), str(hi)) for lo, hi in box]
            if windowed:  # (the piece's rows within the window's)
                ranges[0] = (code.extreme("smax", ranges[0][0], window.start),
                             code.extreme("smin", ranges[0][1], window.stop))
            with ranges_nest(code, ranges) as indices:
                value = self.loop_value(node, node.shape, indices)
                code.write(value, target.base, position(code, target, node.shape,
                                                        node.shape, indices))
        self.inside, self.cut_by = frozenset(), frozenset()
        if not windowed:
            self.views[node] = target

    def embedded(self, node: Expr, indices) -> str:
        """An inlined embed's element at ``indices`` of its consumer's loop: its
        operand's at the shifted position inside the current piece, else 0.0."""
        if node not in self.cut_by:  # in another kind of loop, or under another embed
            raise AssertionError(f"an inlined embed outside the pieces of its loop: {node}")
        if node not in self.inside:
            return self.code.constant(0.0)
        source = node.args[0]
        shifted = [self.code.integer("sub", i, str(lo))
                   for i, (lo, _), entry in zip(indices, embedded_box(node),
                                                _entries(node), strict=True)
                   if entry[0] != "i"]
        if source in self.inlined:
            return self.loop_value(source, source.shape, shifted)
        return self.element(source, source.shape, shifted, {})


def _entries(node: Expr) -> list:
    key, shape = node.value
    return [key[axis] if axis < len(key) else ("s", None, None, None)
            for axis in range(len(shape))]


@contextmanager
def ranges_nest(code, ranges):
    """Loops over ``ranges``, one (start, stop) per axis (i64 values; no loop where
    the range is one number's)."""
    with ExitStack() as stack:
        indices = []
        for lo, hi in ranges:
            one = number(lo) is not None and number(hi) == number(lo) + 1
            indices.append(lo if one else stack.enter_context(code.loop(hi, start=lo)))
        yield indices
