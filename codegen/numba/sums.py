"""Full sums over one axis: partial sums in several lanes, and blocked sums of maps.

Mixin of codegen.numba.arrays.ArrayEmitter (its ``loop`` sends a full 1-D sum here).
A static length shorter than two steps of the lanes resolves when generating: no loop
that runs once or never.  Longer ones have the same loops whatever their length, so the
code's size does not depend on array sizes.
"""

from __future__ import annotations

from symdiff.ir.nodes import OPS, Expr

from ..naming import extent
from ..spec import LANES, SUM_BLOCK
from .elements import LOOP

# Partial sums of a full reduction (FullSums.lanes_sum), and elements of a transcendental
# map computed before they are summed (FullSums.blocked_sum): every lowering's order.
BLOCK = SUM_BLOCK


def _lanes_total() -> str:
    """The partial sums _u0 ... added pairwise."""
    terms = [f"_u{lane}" for lane in range(LANES)]
    while len(terms) > 1:
        terms = [f"({a} + {b})" for a, b in zip(terms[::2], terms[1::2], strict=True)]
    return terms[0][1:-1]


def lanes(count, n: str, main: str, total: str, term, wrap: bool) -> list[str]:
    """Lines adding ``term`` at every index of ``range(n)`` to ``total`` (which starts at
    0.0 before them): the first ``main`` (``n - n % LANES``) in LANES partial sums, the
    rest one by one, then the partial sums.  ``count``: n when static and short (under
    two steps of the lanes: loops that would run once or never are resolved), else None.
    ``term(index, target, lines)`` appends the lines adding one element to ``target``;
    ``wrap``: lane indices in parentheses (for index arithmetic)."""
    static = count is not None
    lines: list[str] = []
    partial = not static or count >= LANES
    body: list[str] = []
    unrolled = static and main == str(LANES)  # one step of the lanes: no loop
    if partial:
        lines += [f"_u{lane} = 0.0" for lane in range(LANES)]
        for lane in range(LANES):
            index = (str(lane) if unrolled else "_i0" if not lane
                     else f"(_i0 + {lane})" if wrap else f"_i0 + {lane}")
            term(index, f"_u{lane}", body)
        if not unrolled:
            lines.append(f"for _i0 in range(0, {main}, {LANES}):")
        lines += [("" if unrolled else "    ") + line for line in body]
    if static and count % LANES == 1:  # one element left: no loop
        rest = body if unrolled else []  # straight-line code: one numbering
        size = len(rest)
        term(main, total, rest)
        lines += rest[size:]
    elif not static or count % LANES:
        rest = []
        term("_i0", total, rest)
        lines.append(f"for _i0 in range({main}, {n}):" if main != "0" else
                     f"for _i0 in range({n}):")
        lines += ["    " + line for line in rest]
    if partial:
        lines.append(f"{total} += {_lanes_total()}")
    return lines


class FullSums:
    """Mixin: the loops of a full sum."""

    def lanes_sum(self, root: Expr, name: str, shape: tuple, members: list) -> None:
        """A full sum over one axis in LANES independent partial sums, each element's
        fused map computed per lane: the adds no longer wait on one another (sum(x * x)
        of 10^5 elements: 59 us with one accumulator, 21 with four).  Transcendental maps
        go to blocked_sum."""
        n = extent(shape[0])
        if any(m.op in LOOP for m in members):
            self.blocked_sum(root, name, n, members)
            return
        static = isinstance(shape[0], int)
        count = shape[0] if static and shape[0] < 2 * LANES else None

        def term(index: str, total: str, lines: list[str]) -> None:
            local: dict[Expr, str] = {}
            for node in members:
                local[node] = self.loop_value(node, shape, [index], local, lines)
            value = self.loop_value(root, shape, [index], local, lines, True)
            lines.append(f"{total} += {value}")

        main = str(shape[0] - shape[0] % LANES) if static else self.new_name()
        self.lines += [] if static else [f"{main} = {n} - {n} % {LANES}"]
        self.lines.append(f"{name} = 0.0")
        self.lines += lanes(count, n, main, name, term, wrap=True)
        self.names[root] = name

    def blocked_sum(self, root: Expr, name: str, n: str, members: list) -> None:
        """A full sum of a transcendental map (exp, tanh, ...) by blocks: the map of a
        block into a small buffer (a loop LLVM vectorizes: the map alone ran 4x faster than
        fused into the sum), then the buffer's sum in LANES partial sums."""
        buffer, main = self.new_name(), self.new_name()
        shape = root.args[0].shape
        inside = set(members)
        # In the members' order (a set of nodes iterates by identity: another order, and
        # so another source, in every process).
        reads = list(dict.fromkeys(a for m in members + [root] for a in m.args
                                   if a.shape and a not in inside and a not in self.unit))
        # Arrays read element by element at the loop position are sliced to the block, so
        # the index is the loop's own (an index b + i costs Numba's negative-index check,
        # which kept the loop from vectorizing: 280 against 200 us for 10^5 exps).
        sliced = all(OPS[m.op].elementwise for m in members) and all(
            (a.shape == shape or all(d == 1 for d in a.shape)) and a not in self.views
            for a in reads)  # one-element arrays are read at 0 whatever the index
        slices = {a: self.new_name() for a in reads if a.shape == shape} if sliced else {}
        self.renamed = slices
        body: list[str] = []
        local: dict[Expr, str] = {}
        index = ["_i0"] if sliced else ["(_b + _i0)"]
        for node in members:
            local[node] = self.loop_value(node, (n,), index, local, body)
        body.append(f"{buffer}[_i0] = {self.loop_value(root, (n,), index, local, body, True)}")
        self.renamed = {}

        def term(index: str, total: str, lines: list[str]) -> None:
            lines.append(f"{total} += {buffer}[{index}]")

        self.lines += [f"{buffer} = np.empty({BLOCK})", f"{name} = 0.0",
                       f"for _b in range(0, {n}, {BLOCK}):",
                       f"    _m = min({BLOCK}, {n} - _b)"]
        self.lines += [f"    {view} = {self.array(a)}[_b:_b + _m]" for a, view in slices.items()]
        self.lines.append("    for _i0 in range(_m):")
        self.lines += ["        " + line for line in body]
        self.lines.append(f"    {main} = _m - _m % {LANES}")
        self.lines += ["    " + line for line in lanes(None, "_m", main, name, term, False)]
        self.names[root] = name
