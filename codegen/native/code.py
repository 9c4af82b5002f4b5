"""An LLVM function with loops under construction: the scalar lowering's instructions
(codegen.llvm.emit.Instructions) plus blocks, counted loops, stack slots and integer index
arithmetic, folded where the operands are numbers.

Counters and accumulators live in stack slots (``alloca`` in the entry block): LLVM's
mem2reg turns them into registers, so the text needs no phi nodes.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass

from symdiff.ir.dims import has_open, is_open, offset

from ..llvm.emit import Instructions

NB = "%nb"  # the open length of this call, an i64 parameter of every array body
# Temporaries up to this many bytes per call live in one process-wide scratch buffer
# kept between calls (fresh pages cost a fault each: 3,680 faults, 7 of 11 ms, per
# gradient of an RK4 sweep over 10^5 states); larger ones are this call's own.
SCRATCH_BYTES = 1 << 26
SCRATCH = "@_sd_scratch = external global { ptr, i64, i8 }"
_SIZE = "getelementptr inbounds ({ ptr, i64, i8 }, ptr @_sd_scratch, i32 0, i32 1)"
_BUSY = "getelementptr inbounds ({ ptr, i64, i8 }, ptr @_sd_scratch, i32 0, i32 2)"
# Loops of a static trip count up to this are unrolled fully (by LLVM, asked by metadata):
# a loop over 3 coordinates is three statements, as Numba's pipeline makes it.
UNROLLED = 8
VECTOR_TRIPS = 8  # innermost loops of a nest from this many trips are left to the vectorizer


def number(text: str) -> int | None:
    """The integer an i64 operand's text holds, or None for a value's name."""
    return int(text) if text.lstrip("-").isdigit() else None


@dataclass(frozen=True)
class Total:
    """A length that is the sum of the sizes of ``shapes`` (all the directions, or all
    the results, of a direction loop)."""

    shapes: tuple


class Code(Instructions):
    """Instructions, stack slots and labels of one function."""

    def __init__(self, hoisted: bool = False):
        super().__init__()
        # With ``hoisted``, extents and temporaries are computed in a prologue (they
        # depend on N alone): a buffer made inside a loop is made once, not per trip.
        self.hoisted = hoisted
        self.prologue: list[str] = []
        self._in_prologue = False
        self.slots: list[str] = []  # alloca instructions, placed first in the entry block
        self.labels = 0
        self.dims: dict[int, str] = {}  # open offset k -> the i64 value of N + k
        self.metadata: list[str] = []  # loop metadata nodes, after the unroll request
        self.workspace_size = "0"  # bytes of all temporaries (an i64 of the prologue)
        self.pointers: list[str] = []  # the temporaries' addresses in the workspace
        self.scoped: dict[str, int] = {}  # each temporary's address -> its alias scope
        self.depth = 0  # of loops around the current line
        # While loops around the current line: LLVM cannot unroll a loop inside one fully
        # (it says so on stderr), so none is asked to.
        self.in_while = 0
        # Whether the loop nest being written reads rows through a gather: vectorized,
        # such a loop loads with vector gathers, slower than scalar loads of a few
        # elements on this machine (Zen 4), so it stays scalar.
        self.scalar_loops = False

    def label(self, stem: str) -> str:
        self.labels += 1
        return f"{stem}{self.labels}"

    def slot(self, kind: str = "double") -> str:
        """A new stack slot of one ``kind`` value."""
        name = self.fresh()
        self.slots.append(f"{name} = alloca {kind}, align 8")
        return name

    def integer(self, op: str, a: str, b: str) -> str:
        """``a op b`` on i64 operands (add, sub, mul, shl; sdiv, srem of non-negative
        ones), folded when both are numbers."""
        x, y = number(a), number(b)
        if x is not None and y is not None and (y > 0 or op not in ("sdiv", "srem")):
            folded = {"add": int.__add__, "sub": int.__sub__, "mul": int.__mul__,
                      "shl": int.__lshift__, "sdiv": int.__floordiv__, "srem": int.__mod__}[op]
            return str(folded(x, y))
        if op in ("sdiv", "srem") and b == "1":
            return a if op == "sdiv" else "0"
        if op == "mul" and ("1" in (a, b)):
            return b if a == "1" else a
        if op == "mul" and "0" in (a, b):
            return "0"
        if op in ("add", "sub") and b == "0":
            return a
        if op == "add" and a == "0":
            return b
        name = self.fresh()
        self.lines.append(f"{name} = {op} i64 {a}, {b}")
        return name

    @contextmanager
    def at_start(self):
        """Write into the prologue (for a hoisting function) while inside."""
        if not self.hoisted or self._in_prologue:
            yield
            return
        saved, self.lines, self._in_prologue = self.lines, self.prologue, True
        try:
            yield
        finally:
            self.prologue, self.lines, self._in_prologue = self.lines, saved, False

    def dim(self, d) -> str:
        """The i64 extent of a dimension: a number, N + k for an open one, a Total, or
        (a str) an i64 value read at run time."""
        with self.at_start():
            return self._dim(d)

    def _dim(self, d) -> str:
        if isinstance(d, str):
            return d
        if isinstance(d, Total):
            total = "0"
            for shape in d.shapes:
                total = self.integer("add", total, self.size(shape))
            return total
        if not is_open(d):
            return str(d)
        k = offset(d)
        if k not in self.dims:
            self.dims[k] = NB if k == 0 else self.integer("add", NB, str(k))
        return self.dims[k]

    def size(self, shape) -> str:
        """The element count of ``shape`` (i64)."""
        total = "1"
        with self.at_start():
            for d in shape:
                total = self.integer("mul", total, self.dim(d))
        return total

    def at(self, pointer: str, index: str) -> str:
        """The address of double ``index`` (i64) of ``pointer``."""
        if index == "0":
            return pointer
        address = self.fresh()
        self.lines.append(f"{address} = getelementptr inbounds double, ptr {pointer}, "
                          f"i64 {index}")
        return address

    def read_i64(self, pointer: str, index: str) -> str:
        """Element ``index`` of an i64 array (row positions)."""
        address, value = self.fresh(), self.fresh()
        self.lines += [f"{address} = getelementptr inbounds i64, ptr {pointer}, i64 {index}",
                       f"{value} = load i64, ptr {address}, align 8"]
        return value

    def read_u32(self, pointer: str, index: str) -> str:
        """Element ``index`` of a uint32 array (gather positions), as an i64."""
        address, narrow, value = self.fresh(), self.fresh(), self.fresh()
        self.lines += [f"{address} = getelementptr inbounds i32, ptr {pointer}, i64 {index}",
                       f"{narrow} = load i32, ptr {address}, align 4",
                       f"{value} = zext i32 {narrow} to i64"]
        return value

    def load_i64(self, slot: str) -> str:
        """The i64 in a stack ``slot`` now (a counter of ``slot("i64")``)."""
        value = self.fresh()
        self.lines.append(f"{value} = load i64, ptr {slot}")
        return value

    def increment(self, slot: str) -> None:
        """Add one to the i64 in a stack ``slot``."""
        self.lines.append(f"store i64 {self.integer('add', self.load_i64(slot), '1')}, "
                          f"ptr {slot}")

    def read(self, pointer: str, index: str = "0") -> str:
        value = self.fresh()
        self.lines.append(f"{value} = load double, ptr {self.at(pointer, index)}, align 8"
                          + self.scope_of(pointer))
        return value

    def write(self, value: str, pointer: str, index: str = "0") -> None:
        self.lines.append(f"store double {value}, ptr {self.at(pointer, index)}, align 8"
                          + self.scope_of(pointer))

    def scope_of(self, pointer: str) -> str:
        """The alias-scope tags of an access through ``pointer`` by its name: for a
        temporary, that it touches no other temporary (they never overlap: each has
        its own slice of the workspace), which lets LLVM vectorize and hoist across
        them without run-time checks; nothing for other pointers (inputs and results
        are noalias parameters already)."""
        k = self.scoped.get(pointer)
        return "" if k is None else f", !alias.scope !<as{k}>, !noalias !<na{k}>"

    def add_to(self, pointer: str, index: str, value: str, op: str = "fadd") -> None:
        """``pointer[index] = pointer[index] op value`` (``op``: an instruction, or a
        helper call template with {0} and {1})."""
        address = self.at(pointer, index)
        old, new, tags = self.fresh(), self.fresh(), self.scope_of(pointer)
        self.lines.append(f"{old} = load double, ptr {address}, align 8{tags}")
        text = (op.format(old, value) if "{" in op else f"{op} double {old}, {value}")
        self.lines.append(f"{new} = {text}")
        self.lines.append(f"store double {new}, ptr {address}, align 8{tags}")

    def unless(self, condition: str, otherwise: str) -> None:
        """Go on in a new block if ``condition`` (an i1) holds, else to ``otherwise``."""
        carry_on = self.label("then")
        self.lines.append(f"br i1 {condition}, label %{carry_on}, label %{otherwise}")
        self.begin(carry_on)

    def select(self, condition: str, a: str, b: str) -> str:
        """``a`` where the i1 ``condition`` holds, else ``b`` (i64)."""
        name = self.fresh()
        self.lines.append(f"{name} = select i1 {condition}, i64 {a}, i64 {b}")
        return name

    def negation(self, condition: str) -> str:
        """The i1 that is true where ``condition`` is not."""
        name = self.fresh()
        self.lines.append(f"{name} = xor i1 {condition}, true")
        return name

    def extreme(self, which: str, a: str, b: str) -> str:
        """``which`` ("smin" or "smax") of two i64 values (``llvm.smin.i64``, ...)."""
        value = self.fresh()
        self.lines.append(f"{value} = call i64 @llvm.{which}.i64(i64 {a}, i64 {b})")
        return value

    @contextmanager
    def when(self, condition: str):
        """The lines written inside run only if ``condition`` (an i1) holds."""
        inside, after = self.label("when"), self.label("end")
        self.lines.append(f"br i1 {condition}, label %{inside}, label %{after}")
        self.begin(inside)
        yield
        self.branch(after)
        self.begin(after)

    def compare(self, predicate: str, a: str, b: str) -> str:
        """``icmp predicate i64 a, b`` (an i1)."""
        name = self.fresh()
        self.lines.append(f"{name} = icmp {predicate} i64 {a}, {b}")
        return name

    def branch(self, label: str) -> None:
        self.lines.append(f"br label %{label}")

    def begin(self, label: str) -> None:
        self.lines.append(f"{label}:")

    @contextmanager
    def loop(self, count: str, start: str = "0", step: int = 1, unroll: bool = True):
        """A counted loop ``for i in range(start, count, step)`` (step > 0); yields i.
        With ``unroll`` (and no while loop around it), a static trip count up to
        UNROLLED asks LLVM to unroll it fully: loops over a few coordinates, not loops
        over steps, whose body would be copied that many times."""
        counter = self.slot("i64")
        head, body, done = self.label("head"), self.label("body"), self.label("done")
        self.lines.append(f"store i64 {start}, ptr {counter}")
        self.branch(head)
        self.begin(head)
        index, going = self.fresh(), self.fresh()
        self.lines += [f"{index} = load i64, ptr {counter}",
                       f"{going} = icmp slt i64 {index}, {count}",
                       f"br i1 {going}, label %{body}, label %{done}"]
        self.begin(body)
        self.depth += 1
        yield index
        following = self.fresh()
        self.lines += [f"{following} = add i64 {index}, {step}",
                       f"store i64 {following}, ptr {counter}"]
        trips = number(count)
        if unroll and not self.in_while and trips is not None and \
                number(start) is not None and (trips - int(start)) // step <= UNROLLED:
            self.lines.append(f"br label %{head}, !llvm.loop {self.loop_metadata(0)}")
        elif self.scalar_loops:
            self.lines.append(f"br label %{head}, !llvm.loop {self.loop_metadata(1)}")
        else:
            self.branch(head)
        self.begin(done)
        self.depth -= 1
        if not self.depth:
            self.scalar_loops = False

    def backwards(self, i: str, start: str, end: str) -> str:
        """The index a loop over range(start, end) visits at counter ``i`` when it runs
        from the end: start + end - 1 - i."""
        return self.integer("sub", self.integer("sub", self.integer("add", start, end), "1"), i)

    def loop_metadata(self, request: int) -> str:
        """A loop's metadata node: 0 asks LLVM to unroll it fully (its general unrolling
        is off), 1 not to vectorize it."""
        name = f"!{len(self.metadata) + 2}"
        self.metadata.append(f"{name} = distinct !{{{name}, !{request}}}")
        return name

    @contextmanager
    def nest(self, shape):
        """Loops over the axes of ``shape`` (none over a static axis of length 1); yields
        the index of each axis ("0" where no loop runs)."""
        with _nest(self, list(shape), []) as indices:
            yield indices

    def allocate(self, count: str) -> str:
        """A temporary buffer of ``count`` doubles: a slice of the function's workspace
        (see ``workspace``) at an offset that is a multiple of 64 bytes."""
        pointer = self.fresh()
        with self.at_start():
            # 64 bytes more, rounded down to 64: offsets of 64 bytes, never a size of 0.
            size = self.integer("add", self.integer("mul", count, "8"), "64")
            if number(size) is not None:
                padded = str(int(size) & -64)
            else:
                padded = self.fresh()
                self.lines.append(f"{padded} = and i64 {size}, -64")
            offset, self.workspace_size = self.workspace_size, self.integer(
                "add", self.workspace_size, padded)
        self.pointers.append(f"{pointer} = getelementptr inbounds i8, ptr %ws.base, i64 {offset}")
        self.scoped[pointer] = len(self.scoped)
        return pointer

    def workspace(self) -> list[str]:
        """The lines acquiring the workspace of ``workspace_size`` bytes (after the
        prologue, which computes it): the process's scratch buffer (``@_sd_scratch``:
        data, size, busy flag; kept between calls, so large temporaries cost no fresh
        pages per call), grown as needed, unless another call holds it or it would pass
        SCRATCH_BYTES: then memory of this call's own (``malloc``, freed by ``finish``).
        A failed allocation goes to ``nomem``."""
        if self.workspace_size == "0":
            return []
        total = "%ws.bytes"  # (64 more: the temporaries start at a multiple of 64 bytes)
        return [
            f"%ws.bytes = add i64 {self.workspace_size}, 64",
            f"%ws.busy = atomicrmw xchg ptr {_BUSY}, i8 1 acquire",
            "%ws.free = icmp eq i8 %ws.busy, 0",
            f"%ws.small = icmp ule i64 {total}, {SCRATCH_BYTES}",
            "%ws.shared = and i1 %ws.free, %ws.small",
            "br i1 %ws.shared, label %ws.reuse, label %ws.own",
            "ws.reuse:",
            f"%ws.have = load i64, ptr {_SIZE}",
            f"%ws.enough = icmp uge i64 %ws.have, {total}",
            "br i1 %ws.enough, label %ws.held, label %ws.grow",
            "ws.grow:",
            "%ws.old = load ptr, ptr @_sd_scratch",
            "call void @free(ptr %ws.old)",
            f"%ws.new = call ptr @malloc(i64 {total})",
            "store ptr %ws.new, ptr @_sd_scratch",
            "%ws.made = icmp ne ptr %ws.new, null",
            f"%ws.kept = select i1 %ws.made, i64 {total}, i64 0",
            f"store i64 %ws.kept, ptr {_SIZE}",
            "br i1 %ws.made, label %ws.held, label %nomem",
            "ws.held:",
            "%ws.shared.data = load ptr, ptr @_sd_scratch",
            "store ptr %ws.shared.data, ptr %ws.slot",
            "br label %ws.ready",
            "ws.own:",  # held elsewhere, or too large: give back what the xchg took
            "br i1 %ws.free, label %ws.give, label %ws.alloc",
            "ws.give:",
            f"store atomic i8 0, ptr {_BUSY} release, align 1",
            "br label %ws.alloc",
            "ws.alloc:",
            f"%ws.mine = call ptr @malloc(i64 {total})",
            "store ptr %ws.mine, ptr %ws.slot",
            "store i1 true, ptr %ws.owned",
            "%ws.ok = icmp ne ptr %ws.mine, null",
            "br i1 %ws.ok, label %ws.ready, label %nomem",
            "ws.ready:",
            "%ws = load ptr, ptr %ws.slot",
            # Vector loads and stores of 64 bytes split no cache line (malloc gives 16).
            "%ws.at = ptrtoint ptr %ws to i64",
            "%ws.neg = sub i64 0, %ws.at",
            "%ws.pad = and i64 %ws.neg, 63",
            "%ws.base = getelementptr inbounds i8, ptr %ws, i64 %ws.pad",
        ]

    def finish(self) -> None:
        """The function's end: release the workspace and return 0, or (at ``nomem``,
        where an allocation failed) release what was acquired and return 1."""
        self.finish_with(0)
        self.lines.append("nomem:")
        self.finish_with(1)

    def finish_with(self, status: int) -> None:
        """Release the workspace (free memory of this call's own, or give the scratch
        buffer back) and return ``status``."""
        if self.workspace_size != "0":
            owned, mine, done = self.fresh(), self.fresh(), self.label("released")
            free, give = self.label("free"), self.label("give")
            self.lines += [f"{owned} = load i1, ptr %ws.owned",
                           f"br i1 {owned}, label %{free}, label %{give}",
                           f"{free}:",
                           f"{mine} = load ptr, ptr %ws.slot",
                           f"call void @free(ptr {mine})",
                           f"br label %{done}",
                           f"{give}:",
                           f"store atomic i8 0, ptr {_BUSY} release, align 1",
                           f"br label %{done}",
                           f"{done}:"]
        self.lines.append(f"ret i32 {status}")

    def accumulator(self, start: str) -> str:
        """A stack slot holding ``start`` (a double), for a running value."""
        slot = self.slot()
        self.lines.append(f"store double {start}, ptr {slot}")
        return slot

    def function(self, signature: str, attributes: str = "") -> str:
        """The finished function text: ``define <signature> {`` slots, lines ``}``, and
        the metadata its loops refer to."""
        slots = self.slots + (["%ws.slot = alloca ptr, align 8", "%ws.owned = alloca i1",
                               "store i1 false, ptr %ws.owned",
                               "store ptr null, ptr %ws.slot"]
                              if self.workspace_size != "0" else [])
        body = slots + self.prologue + self.workspace() + self.pointers + self.lines
        metadata = ['!0 = !{!"llvm.loop.unroll.full"}',
                    '!1 = !{!"llvm.loop.vectorize.enable", i1 false}', *self.metadata]
        names, scopes = _alias_scopes(len(self.scoped), len(metadata))
        metadata += scopes
        text = "".join(f"  {line}\n" if not line.endswith(":") else f"{line}\n"
                       for line in body)
        if names:
            text = re.sub(r"!<(\w+)>", lambda m: names[m.group(1)], text)
        else:  # at most one temporary: nothing to tell apart
            text = re.sub(r", !alias\.scope !<\w+>, !noalias !<\w+>", "", text)
        return "\n".join([f"define {signature}{attributes} {{\n{text}}}", *metadata])


def _alias_scopes(count: int, first: int) -> tuple[dict[str, str], list[str]]:
    """Alias scopes for ``count`` disjoint buffers, as metadata nodes numbered from
    ``first``: (each buffer's list names, as{k} and na{k}, -> their nodes; the nodes).
    One domain per bit of a buffer's number, with a scope for each value of the bit: a
    buffer lies in the scopes of its bits and is noalias with those of the other
    values, so two buffers are disjoint by the bit where their numbers differ (lists of
    log2(count) entries, where one scope per buffer would list every other buffer)."""
    if count < 2:
        return {}, []
    bits, nodes = (count - 1).bit_length(), []

    def node(text: str) -> str:
        name = f"!{first + len(nodes)}"
        nodes.append(f"{name} = {text.replace('SELF', name)}")
        return name
    scope = {}
    for bit in range(bits):
        domain = node(f'distinct !{{SELF, !"symdiff buffers, bit {bit}"}}')
        for value in (0, 1):
            scope[bit, value] = node(f"distinct !{{SELF, {domain}}}")
    names = {}
    for k in range(count):
        values = [(k >> bit) & 1 for bit in range(bits)]
        names[f"as{k}"] = node("!{" + ", ".join(scope[b, v] for b, v in enumerate(values))
                               + "}")
        names[f"na{k}"] = node("!{" + ", ".join(scope[b, 1 - v] for b, v in
                                                enumerate(values)) + "}")
    return names, nodes


@contextmanager
def _nest(code: Code, shape: list, indices: list):
    if not shape:
        yield indices
        return
    d, rest = shape[0], shape[1:]
    if d == 1:
        with _nest(code, rest, indices + ["0"]) as inner:
            yield inner
        return
    # A few coordinates around a loop over the open length are not unrolled: each copy
    # would be a vectorized loop of its own (a vmap's 4-D nests took LLVM 40 s).  Nor is
    # an innermost loop of a vector's width (8 trips; longer ones never are): unrolled,
    # its copies stay scalar (LLVM's loop vectorizer sees no loop; its SLP vectorizer is
    # off), where as a loop it is one vector instruction per operation (a k-means
    # gradient's sum over points of (8,)-rows: 3x faster).
    unroll = not has_open(rest) and bool(rest or is_open(d) or d < VECTOR_TRIPS)
    with code.loop(code.dim(d), unroll=unroll) as i, \
            _nest(code, rest, indices + [i]) as inner:
        yield inner
