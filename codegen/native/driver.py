"""The native lowering of a direction loop (codegen.directions.DirectionLoop): one
driver function holding the kernel's graph (codegen.native.arrays), what does not depend
on the direction computed once and the rest per unit direction e_j (dense: product j
into column j of the matrix, row j for a vjp's rows) or per seed row (compressed: the
products, then the nonzeros gathered).  The number of directions is a loop bound, so
the text has one size for every array size."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from math import prod

from symdiff.ir.nodes import Expr

from ..schedule import depending
from . import compressed
from .arrays import Window
from .arrays import lowerable as array_lowerable
from .code import Code, Total
from .compressed import TiledProducts, gather_by_seed, tiling
from .views import View, c_strides, position, whole


def _slot_shape(slot, loop) -> tuple:
    where = slot.source
    if slot.kind == "scalar":
        return ()
    if where[0] == "arg":
        return loop.inputs[where[1]].shape
    if where[0] == "output":
        return loop.forward.result.shape
    return tuple(where[1])


def lowerable(loop) -> bool:
    """Whether the driver and its kernel are native: a loop of an array kernel."""
    forward_ok = not loop.needs_forward() or isinstance(loop.forward.result, Expr)
    return not loop.arrays and forward_ok and array_lowerable(loop.kernel)


def _seed_views(loop, body, directions) -> tuple[set, list | None]:
    """(the nodes of ``body`` that depend on the ``directions``, with the invariants
    fused into them hoisted, and for a compressed loop whose driver can work in tiles
    the views of the seed row it writes for each seed, else None)."""
    variant = depending(body.order, directions)  # computed once per direction
    body.hoist(variant)
    return variant, tiling(loop, body, variant, directions[0]) if loop.compressed else None


def driver(loop, body) -> tuple[str, tuple, int | None]:
    """(the LLVM module text of ``@driver``, the shape of what it fills, the number of
    products from which it keeps them in tiles, None where it never does), the kernel's
    graph (``body``, an ArrayBody of ``loop.block`` where the loop has one, else of
    ``loop.kernel``) written into the driver itself: the nodes that do not depend on the
    directions once, before the loop over them, the others in it, for one direction at a
    time or for a block of ``loop.block_size`` (the last one's surplus directions zero,
    their products dropped); a compressed loop whose kernel is one loop over its result
    also holds that loop over tiles of rows, taken from TILED_PRODUCTS products on
    (codegen.native.compressed).  The driver takes the loop's inputs (doubles, data
    pointers), for a compressed loop the seeds (data, rows, width) and gather positions
    (data, count), ``i64 %nb``, then the result's data; it returns 0, 1 (no memory), 2
    (seeds of another width) or 3 (gather positions out of range or order)."""
    code = body.code
    body.destinations.clear()  # the products go into the matrix, direction by direction
    body.prepare()
    params = body.parameters(len(loop.inputs))
    directions = list(body.inputs[len(loop.inputs):])
    d_shapes = [_slot_shape(s, loop) for s in loop.directions]
    r_shapes = [_slot_shape(s, loop) for s in loop.results]
    d_sizes = [code.size(s) for s in d_shapes]
    r_sizes = [code.size(s) for s in r_shapes]
    (d_offsets, n), (r_offsets, m) = _offsets(code, d_sizes), _offsets(code, r_sizes)
    count, target, width = n, "%out", loop.block_size
    if loop.compressed:
        params += ["ptr noalias %seeds", "i64 %count", "i64 %width", "ptr noalias %gather",
                   "i64 %gathered"]
        code.unless(code.compare("eq", "%width", n), "wrong")
        count = "%count"
        with code.at_start():  # where the buffers are made
            products = code.integer("mul", count, m)
    variant, views = _seed_views(loop, body, directions)
    if views is not None:  # from TILED_PRODUCTS on, a tile of rows at a time
        tiled = TiledProducts(body, directions[0], views)
        with code.at_start():  # (no products by seed then)
            products = code.select(tiled.tiles, "0", products)
    if loop.compressed:  # products by seed, gathered below (first in the workspace)
        target = code.allocate(products)
    if views is not None:
        tiled.allocate()
    single = loop.compressed and len(d_shapes) == 1 and loop.directions[0].kind != "scalar"
    buffers = []
    for sym, slot, size in zip(directions, loop.directions, d_sizes, strict=True):
        if (slot.kind == "scalar" and width == 1) or single:  # a value, or the seed row
            buffers.append(None)
            continue
        columns = code.integer("mul", size, str(width))
        buffer = code.allocate(columns)
        with code.loop(columns) as i:
            code.write(code.constant(0.0), buffer, i)
        body.views[sym] = whole(code, buffer, sym.shape)
        buffers.append(buffer)
    deferred = _deferred(code, body, loop, variant, n, r_offsets)
    body.emit_all([x for x in body.order if x not in body.inlined and x not in variant])
    if views is not None:
        with code.when(tiled.tiles):
            tiled.emit()
    with code.when(code.negation(tiled.tiles)) if views is not None else nullcontext():
        _each_direction(code, body, loop, variant, target, count, (n, m),
                        (buffers, d_offsets, d_sizes), r_offsets, deferred)
        if loop.compressed:
            gather_by_seed(code, target, products)
    for plan in deferred.values():
        plan.rows_of_every_direction(code, body, target, n)
    code.finish()
    if loop.compressed:  # (the workspace is released on every path out)
        code.lines.append("wrong:")
        code.finish_with(2)
        code.lines.append("outside:")
        code.finish_with(3)
    signature = ", ".join(params + ["i64 %nb", "ptr noalias %out"])
    text = body.module(code.function(f"internal i32 @driver({signature})", " #1"))
    if loop.compressed:  # (the rule its text holds, which the runtime's positions follow)
        return text, ("%gather.d0",), None if views is None else compressed.TILED_PRODUCTS
    d_total, r_total = Total(tuple(d_shapes)), Total(tuple(r_shapes))
    return text, (d_total, r_total) if loop.transpose else (r_total, d_total), None


def _each_direction(code: Code, body, loop, variant: set, target: str, count: str, sizes,
                    slots, r_offsets, deferred: dict) -> None:
    """The loop over the directions (a block of them at a time, or the seed rows): the
    nodes that depend on them computed for each, and its products written into
    ``target`` (the matrix by columns, a vjp's rows, or the products by seed), but for
    the ``deferred`` parts (Deferred: their sources kept instead); ``sizes``: (all
    directions, all results), ``slots``: the direction buffers, their offsets and
    sizes."""
    (n, m), width = sizes, loop.block_size
    buffers, d_offsets, d_sizes = slots
    directions = list(body.inputs[len(loop.inputs):])
    by_rows = loop.compressed or loop.transpose  # (products, or a vjp's rows)
    blocks = count if width == 1 else code.integer(
        "sdiv", code.integer("add", count, str(width - 1)), str(width))
    with code.loop(blocks) as block:
        first = code.integer("mul", block, str(width))
        # The block's directions before ``count`` (a surplus one stays zero, its products
        # are dropped).
        valid = "1" if width == 1 else code.extreme(
            "smin", str(width), code.integer("sub", count, first))
        with _columns(code, valid) as b:
            _set_directions(code, body, loop, code.integer("add", first, b), b, directions,
                            buffers, d_offsets, d_sizes, "1.0")
        # One direction's rows (products, a vjp's rows): each part computed in its place.
        # (By position: a node that is two parts, the gradients by x and y of a function
        # of x + y, is computed in the first one's place and copied into the second's.)
        # A dense matrix's column: a part computed by a loop of its own writes it there.
        rows, in_columns = {}, set()
        if by_rows and width == 1:
            for k, (part, offset) in enumerate(zip(body.parts, r_offsets, strict=True)):
                if part.shape and part in variant and part not in body.destinations:
                    start = code.integer("add", code.integer("mul", first, m), offset)
                    rows[k] = code.at(target, start)
                    body.place(part, rows[k])
        elif width == 1:
            for part, offset in zip(body.parts, r_offsets, strict=True):
                if _own_loop(body, part, variant) and part not in deferred:
                    body.windows[part] = _column(code, part, target, offset, n, first)
                    in_columns.add(part)
        # A deferred part's sources, computed in their place among the kept ones where
        # their loop writes a buffer of their own, else copied there.
        kept = [(source, plan.source_at(code, first, source)) for plan in deferred.values()
                for source in plan.sources]
        for source, pointer in kept:
            body.place(source, pointer)
        body.emit_all([x for x in body.order if x not in body.inlined and x in variant
                       and x not in deferred])
        for source, pointer in kept:
            if not body.in_place(source, pointer):
                body.copy(source, pointer)
        # (A part computed in a loop with other roots did not take its window.)
        in_columns -= body.windows.keys()
        body.windows.clear()
        for k, (part, offset) in enumerate(zip(body.parts, r_offsets, strict=True)):
            if k in rows and body.in_place(part, rows[k]):
                continue
            if part in in_columns or part in deferred:
                continue  # written in its column by its loop, or after the directions
            shape = part.shape if width == 1 else part.shape[:-1]
            with code.nest(shape) as outer, _columns(code, valid) as b:
                indices = outer if width == 1 else outer + [b]
                j = code.integer("add", first, b)
                flat = position(code, View("", "0", c_strides(code, shape), True),
                                shape, shape, outer)
                row = code.integer("add", offset, flat)
                at = (code.integer("add", code.integer("mul", j, m), row) if by_rows
                      else code.integer("add", code.integer("mul", row, n), j))
                code.write(body.element(part, part.shape, indices, {}), target, at)
        if not loop.compressed:
            with _columns(code, valid) as b:
                _set_directions(code, body, loop, code.integer("add", first, b), b,
                                directions, buffers, d_offsets, d_sizes, "0.0")


def _own_loop(body, part: Expr, variant: set) -> bool:
    """Whether the result ``part`` is computed by a loop of its own for each direction
    (ArrayBody.loop_of_its_own), once, and no other node reads it (so it may write
    straight into the matrix)."""
    return (part in variant and body.loop_of_its_own(part)
            and part not in body.destinations and body.parts.count(part) == 1
            and not body.consumers.get(part))


# A part is deferred (Deferred) where its varying sources hold at most 1/DEFERRED_SHARE
# of its own numbers (keeping them costs little next to it), and at most
# DEFERRED_NUMBERS numbers over all directions (32 MB).
DEFERRED_SHARE = 4
DEFERRED_NUMBERS = 1 << 22


@dataclass(frozen=True)
class Deferred:
    """A result ``part`` computed after the loop over the directions, row by row with
    every direction's products of a row together (contiguous in the row-major matrix,
    from its row ``offset`` on), from its ``sources`` (the varying arrays it reads)
    kept for every direction: a direction's ``size`` numbers of ``buffer``, each source
    at its ``starts`` entry.  A tall cheap result (the points gathered from a small
    model) would otherwise be written one strided column at a time, a cache line per
    row each time."""

    part: Expr
    offset: str
    sources: tuple
    starts: tuple
    size: int
    buffer: str

    def source_at(self, code: Code, j: str, source: Expr) -> str:
        """Where ``source`` is kept for direction ``j``."""
        start = self.starts[self.sources.index(source)]
        return code.at(self.buffer, code.integer("add", code.integer(
            "mul", j, str(self.size)), str(start)))

    def rows_of_every_direction(self, code: Code, body, matrix: str, n: str) -> None:
        """The part's loop: each element's value for every direction, from that
        direction's sources, into its row of the ``matrix`` of ``n`` columns."""
        part = self.part
        strides = c_strides(code, part.shape)
        with code.nest(part.shape) as indices:
            flat = position(code, View("", "0", strides, True), part.shape, part.shape,
                            indices)
            row = code.integer("mul", code.integer("add", self.offset, flat), n)
            with code.loop(n) as j:
                for source in self.sources:
                    body.fills.pop(source, None)  # (kept as numbers, not as a scalar)
                    body.views[source] = View(self.source_at(code, j, source), "0",
                                              c_strides(code, source.shape), True)
                code.write(body.loop_value(part, part.shape, indices), matrix,
                           code.integer("add", row, j))


def _deferred(code: Code, body, loop, variant: set, n: str, r_offsets) -> dict:
    """The parts deferred (Deferred) of a dense matrix's loop one direction at a time
    with static sizes: each one computed by a loop of its own without pieces
    (_own_loop), from varying arrays only, small ones (DEFERRED_SHARE,
    DEFERRED_NUMBERS)."""
    if loop.compressed or loop.transpose or loop.block_size != 1 or not n.isdigit():
        return {}
    deferred = {}
    for part, offset in zip(body.parts, r_offsets, strict=True):
        if not _own_loop(body, part, variant) or body.embed_members(part):
            continue
        members = [*body.members(part), part]  # (a list: the text follows the graph)
        inside = set(members)
        sources = tuple(dict.fromkeys(a for m in members for a in m.args
                                      if a not in inside and a in variant))
        shapes = [part.shape] + [a.shape for a in sources]
        if not all(isinstance(d, int) for shape in shapes for d in shape):
            continue
        sizes = [prod(a.shape) for a in sources]
        total = sum(sizes)
        if (not all(a.shape and a not in body.inlined for a in sources)
                or DEFERRED_SHARE * total > prod(part.shape)
                or total * int(n) > DEFERRED_NUMBERS):
            continue
        starts = tuple(sum(sizes[:k]) for k in range(len(sizes)))
        deferred[part] = Deferred(part, offset, sources, starts, total,
                                  code.allocate(str(total * int(n))))
    return deferred


def _column(code: Code, part: Expr, matrix: str, offset: str, n: str, j: str) -> Window:
    """Where ``part``'s loop writes direction ``j``'s products: column ``j`` of the
    row-major matrix of ``n`` columns, from row ``offset`` on, in C order."""
    start = code.integer("add", code.integer("mul", offset, n), j)
    strides = tuple(code.integer("mul", s, n) for s in c_strides(code, part.shape))
    return Window("0", code.dim(part.shape[0]), View(matrix, start, strides, False))


@contextmanager
def _columns(code: Code, valid: str):
    """A loop over the first ``valid`` columns of a block (none for one direction)."""
    if valid == "1":
        yield "0"
        return
    with code.loop(valid) as b:
        yield b


def _set_directions(code: Code, body, loop, j: str, b: str, directions, buffers, offsets,
                    sizes, value: str) -> None:
    """Direction (or seed row) ``j`` into column ``b`` of the kernel's direction symbols
    (their only column, one direction at a time): e_j dense, where ``value`` is 1.0 to
    set it and 0.0 to clear it again, the seed row compressed (the row in place where it
    is the only direction and runs alone)."""
    width = loop.block_size
    for k, (sym, buffer) in enumerate(zip(directions, buffers, strict=True)):
        scalar = loop.directions[k].kind == "scalar"
        if not loop.compressed:
            if buffer is None:  # a scalar direction, one at a time: a value, not stored
                if value != "1.0":
                    continue
                hit = code.fresh()
                code.lines.append(f"{hit} = icmp eq i64 {j}, {offsets[k]}")
                body.scalars[sym] = code.fresh()
                code.lines.append(f"{body.scalars[sym]} = select i1 {hit}, double 1.0, "
                                  "double 0.0")
            else:
                place = code.integer("sub", j, offsets[k])
                with code.when(code.compare("ult", place, sizes[k])):
                    code.write(value, buffer, code.integer(
                        "add", code.integer("mul", place, str(width)), b))
            continue
        row = code.integer("add", code.integer("mul", j, "%width"), offsets[k])
        if scalar and buffer is None:
            body.scalars[sym] = code.read("%seeds", row)
        elif buffer is None:  # the seed row itself
            body.views[sym] = View("%seeds", row, c_strides(code, sym.shape), True)
        else:
            with code.loop(sizes[k]) as i:
                code.write(code.read("%seeds", code.integer("add", row, i)), buffer,
                           code.integer("add", code.integer("mul", i, str(width)), b))


def _offsets(code: Code, sizes: list[str]) -> tuple[list[str], str]:
    """(where each slot starts, the total size) of consecutive slots of ``sizes``."""
    offsets, total = [], "0"
    with code.at_start():
        for size in sizes:
            offsets.append(total)
            total = code.integer("add", total, size)
    return offsets, total
