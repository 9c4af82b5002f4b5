"""What the native driver (codegen.native.driver) does for a compressed (sparse) direction
loop only: gather the nonzeros from the products of the seed rows, and, where the kernel
allows it, compute those products a tile of rows at a time.

A gather position (symdiff.autodiff.coloring) is the place of a product among the
(seeds x rows) products, as a driver that computes each seed's products over all rows
keeps them (the general case), or past them a nonzero to copy.

A tiled driver keeps one tile of 2^TILE_BITS rows (every seed's rows of it) at a time,
in cache, from TILED_PRODUCTS products on: the kernel's loop runs over the tile's rows
for one seed after another (each a vectorized loop, as over all rows), and the tile's
nonzeros are gathered, at the position less the tile's first, before the next tile;
the runtime passes it the positions in its tiles (``coloring.tiled_gather``).  No array
of all the products is written and read back: at 10^6 columns, the Rosenbrock Hessian's
driver takes 3.0 ms instead of 4.1 (benchmarks/README.md).  Below TILED_PRODUCTS the
products by seed stay in cache, and tiles are slower.  It applies where the kernel is
one loop over its result: one direction (the seed row itself), one result part, a
vector, computed by an elementwise loop of its own, and everything else that depends on
the direction fused into that loop or a view of the seed row that needs no copy
(``tiling``).  Its checks keep every read inside its memory: a position in the tiles of
a seed or row that does not exist reads an unset product there, where the other
lowerings refuse it (the runtime's positions never do).
"""

from __future__ import annotations

from symdiff.autodiff.coloring import TILE_BITS
from symdiff.ir.nodes import Expr

from .arrays import VIEWS, ArrayBody, Window
from .code import Code
from .views import ALIASES, View, c_strides

# From this many products on (8 MB), a driver that can keeps them in tiles of rows:
# below, they stay in cache by seed (Rosenbrock's Hessian at 10^5 columns: 0.23 ms by
# seed, 0.29 ms in tiles; at 10^6, 3.0 ms in tiles against 4.1-4.2 ms).
TILED_PRODUCTS = 1 << 20


def tiling(loop, body: ArrayBody, variant: set[Expr], direction: Expr) -> list | None:
    """The views of the seed row a tiled driver writes for each seed, or None where the
    compressed ``loop`` (its kernel's graph in ``body``, ``variant`` the nodes that
    depend on the ``direction``) cannot run a tile of rows at a time (see the module)."""
    if loop.block_size != 1 or len(loop.directions) != 1 or len(body.parts) != 1:
        return None
    part = body.parts[0]
    if (loop.directions[0].kind == "scalar" or len(part.shape) != 1 or part not in variant
            or not body.loop_of_its_own(part)):
        return None
    others = [n for n in body.order if n in variant and n is not direction and n is not part]
    views = [n for n in others if n not in body.inlined]
    if not all(n.op in VIEWS or n.op in ALIASES for n in views):
        return None
    return views if _copy_free(loop, direction, views) else None


def _copy_free(loop, direction: Expr, views: list[Expr]) -> bool:
    """Whether the ``views`` of the direction are index arithmetic on the seed row, with
    no copy (a reshape of a strided slice is one): emitted once in a body of their own."""
    probe = ArrayBody(loop.kernel, "probe")
    probe.views[direction] = View("%seeds", "0", c_strides(probe.code, direction.shape), True)
    for node in views:
        probe.emit_node(node)
    return probe.code.workspace_size == "0"


class TiledProducts:
    """The kernel's one result part for every seed, a tile of 2^TILE_BITS rows at a
    time, each tile gathered into ``%out`` as soon as it is computed (see the module).
    The driver runs it where ``tiles`` holds (from TILED_PRODUCTS products on: the
    runtime then passes positions in tiles, coloring.tiled_gather), else the loop over
    the seeds.  The tile keeps the products as those positions name them (each seed's
    rows together, room for 2^bits seeds), so a position less the tile's first is its
    place in the tile, and each seed's loop writes its rows contiguously, vectorized.
    Made first, ``allocate``-d among the driver's temporaries (after the products by
    seed: see benchmarks/README.md), then ``emit``-ted where the loop over the seeds
    goes."""

    def __init__(self, body: ArrayBody, direction: Expr, views: list[Expr]):
        self.body, self.direction, self.views = body, direction, views
        code, part = body.code, body.parts[0]
        body.declarations.add("declare i64 @llvm.ctlz.i64(i64, i1)")
        self.rows, self.tile_rows = code.dim(part.shape[0]), str(1 << TILE_BITS)
        with code.at_start():
            self.tiles = code.compare("sge", code.integer("mul", "%count", self.rows),
                                      str(TILED_PRODUCTS))
            # bits: the width of count - 1 (64 - its leading zeros), 0 for one seed.
            zeros = code.fresh()
            code.lines.append(f"{zeros} = call i64 @llvm.ctlz.i64(i64 "
                              f"{code.integer('sub', '%count', '1')}, i1 false)")
            bits = code.extreme("smin", code.integer("sub", "64", zeros), "56")
            self.span = code.integer("shl", "1", code.integer("add", bits, str(TILE_BITS)))
            count = code.integer("sdiv", code.integer(
                "add", self.rows, str((1 << TILE_BITS) - 1)), self.tile_rows)
            self.count, self.end = count, code.integer("mul", count, self.span)
        self.tile = ""

    def allocate(self) -> None:
        """The tile: a temporary of the workspace (none below TILED_PRODUCTS)."""
        code = self.body.code
        with code.at_start():
            self.tile = code.allocate(code.select(self.tiles, self.span, "0"))

    def emit(self) -> None:
        """The loop over the tiles, and the nonzeros gathered."""
        body, direction, rows, tile_rows = self.body, self.direction, self.rows, self.tile_rows
        code, part = body.code, body.parts[0]
        gather = _Gather(code, self.end)
        with code.loop(self.count) as k:
            start = code.integer("mul", k, tile_rows)
            stop = code.extreme("smin", code.integer("add", start, tile_rows), rows)
            with code.loop("%count") as c:
                body.views[direction] = View("%seeds", code.integer("mul", c, "%width"),
                                             c_strides(code, direction.shape), True)
                for node in self.views:  # (index arithmetic on this seed's row)
                    body.emit_node(node)
                at = code.integer("sub", code.integer("mul", c, tile_rows), start)
                body.windows[part] = Window(start, stop, View(self.tile, at, ("1",), False))
                body.emit_node(part)
                assert part not in body.windows, "the part's loop did not take its window"
            gather.run(self.tile, code.integer("mul", k, self.span), self.span)
        gather.finish()


def gather_by_seed(code: Code, products: str, size: str) -> None:
    """The nonzeros from the products kept by seed (``size`` numbers at ``products``):
    a position is the place of its product there."""
    gather = _Gather(code, size)
    gather.run(products, "0", size)
    gather.finish()


class _Gather:
    """The nonzeros gathered into ``%out``, in order, from gather positions
    (symdiff.autodiff.coloring): a product's place, or past them all, from ``end``, a
    nonzero to copy (counted, and copied last)."""

    def __init__(self, code: Code, end: str):
        self.code, self.end = code, end
        self.q, self.copies = code.slot("i64"), code.slot("i64")
        code.lines += [f"store i64 0, ptr {self.q}", f"store i64 0, ptr {self.copies}"]

    def run(self, tile: str, base: str, span: str) -> None:
        """The nonzeros from the next one on whose positions lie in [base, base +
        span), read at ``tile[position - base]``, up to the first past them; a
        position before ``base`` (a row behind) is refused, copies are counted."""
        code = self.code
        head, check, inside, slow, skip, past, done = (code.label(s) for s in (
            "head", "check", "inside", "slow", "skip", "past", "run"))
        code.branch(head)
        code.begin(head)
        at = code.load_i64(self.q)
        code.lines.append(f"br i1 {code.compare('slt', at, '%gathered')}, label %{check}, "
                          f"label %{done}")
        code.begin(check)
        place = code.read_u32("%gather", at)
        local = code.integer("sub", place, base)
        code.lines.append(f"br i1 {code.compare('ult', local, span)}, label %{inside}, "
                          f"label %{slow}")
        code.begin(inside)
        code.write(code.read(tile, local), "%out", at)
        code.increment(self.q)
        code.branch(head)
        code.begin(slow)  # a copy of another nonzero (made last), the next tile's, or behind
        code.lines.append(f"br i1 {code.compare('uge', place, self.end)}, label %{skip}, "
                          f"label %{past}")
        code.begin(skip)
        code.increment(self.copies)
        code.increment(self.q)
        code.branch(head)
        code.begin(past)
        code.unless(code.compare("uge", place, code.integer("add", base, span)), "outside")
        code.branch(done)
        code.begin(done)

    def finish(self) -> None:
        """After the last run: the nonzeros left must be copies, then made (each names
        a nonzero read from the products)."""
        code, end = self.code, self.end
        with code.loop("%gathered", start=code.load_i64(self.q)) as at:
            code.unless(code.compare("uge", code.read_u32("%gather", at), end), "outside")
            code.increment(self.copies)
        with code.when(code.compare("ne", code.load_i64(self.copies), "0")):
            with code.loop("%gathered") as q:
                place = code.read_u32("%gather", q)
                with code.when(code.compare("uge", place, end)):
                    other = code.integer("sub", place, end)
                    code.unless(code.compare("ult", other, "%gathered"), "outside")
                    code.unless(code.compare("ult", code.read_u32("%gather", other), end),
                                "outside")
                    code.write(code.read("%out", other), "%out", q)
