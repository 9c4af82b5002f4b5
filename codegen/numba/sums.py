"""Full sums over one axis: partial sums in several lanes, and blocked sums of maps.

Mixin of codegen.numba.arrays.ArrayEmitter (its ``loop`` sends a full 1-D sum here).
"""

from __future__ import annotations

from symdiff.ir import OPS, Expr

from ..naming import extent
from .elements import LOOP

LANES = 4  # partial sums of a full reduction (FullSums.lanes_sum)
BLOCK = 256  # elements of a transcendental map computed before they are summed


def _lanes_total() -> str:
    """The partial sums _u0 ... added pairwise."""
    terms = [f"_u{lane}" for lane in range(LANES)]
    while len(terms) > 1:
        terms = [f"({a} + {b})" for a, b in zip(terms[::2], terms[1::2], strict=True)]
    return terms[0][1:-1]


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
        body: list[str] = []
        for lane in range(LANES):
            local: dict[Expr, str] = {}
            index = [f"(_i0 + {lane})" if lane else "_i0"]  # () for index arithmetic
            for node in members:
                local[node] = self.loop_value(node, shape, index, local, body)
            body.append(f"_u{lane} += {self.loop_value(root, shape, index, local, body, True)}")
        rest: list[str] = []
        local = {}
        for node in members:
            local[node] = self.loop_value(node, shape, ["_i0"], local, rest)
        rest.append(f"{name} += {self.loop_value(root, shape, ['_i0'], local, rest, True)}")
        main = self.new_name()
        self.lines += [f"{main} = {n} - {n} % {LANES}", f"{name} = 0.0"]
        self.lines += [f"_u{lane} = 0.0" for lane in range(LANES)]
        self.lines.append(f"for _i0 in range(0, {main}, {LANES}):")
        self.lines += ["    " + line for line in body]
        self.lines.append(f"for _i0 in range({main}, {n}):")
        self.lines += ["    " + line for line in rest]
        self.lines.append(f"{name} += {_lanes_total()}")
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
        self.lines += [f"{buffer} = np.empty({BLOCK})", f"{name} = 0.0",
                       f"for _b in range(0, {n}, {BLOCK}):",
                       f"    _m = min({BLOCK}, {n} - _b)"]
        self.lines += [f"    {view} = {self.array(a)}[_b:_b + _m]" for a, view in slices.items()]
        self.lines.append("    for _i0 in range(_m):")
        self.lines += ["        " + line for line in body]
        self.lines += [f"    {main} = _m - _m % {LANES}"]
        self.lines += [f"    _u{lane} = 0.0" for lane in range(LANES)]
        self.lines.append(f"    for _i0 in range(0, {main}, {LANES}):")
        self.lines += [f"        _u{lane} += {buffer}[_i0 + {lane}]" if lane else
                       f"        _u0 += {buffer}[_i0]" for lane in range(LANES)]
        self.lines += [f"    for _i0 in range({main}, _m):", f"        {name} += {buffer}[_i0]",
                       f"    {name} += {_lanes_total()}"]
        self.names[root] = name
