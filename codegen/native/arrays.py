"""The native lowering of a function over arrays: its body as one LLVM function that owns
its loops (elementwise loops with their single-use producers fused in, reductions,
products), written by symdiff, so no Numba pipeline types or lowers it.

The body's signature: a double per scalar input and a data pointer per array input (C
ordered float64, checked by the entry), ``i64 %nb`` (the open length), then a pointer per
result part (an array's data, or the slot of a float).  It returns 0, or 1 when a
temporary could not be allocated.  Shapes enter only as loop bounds (numbers, or N + k),
so the text's size does not depend on array sizes.

The ops it lowers are the keys of ``STRUCTURAL`` and the elementwise ops of the LLVM
element table, and the loop ops (scan, while: codegen.native.loops, with their bodies
written into the loops); ``lowerable`` says whether a function has only those (others
stay with Numba).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from symdiff.ir.dims import is_open
from symdiff.ir.nodes import OPS, DataRows, Expr, flatten, topological_order
from symdiff.passes.data import rows_symbol

from ..bodies import body_roots, loop_bodies
from ..checkpoints import checkpointed
from ..llvm.elements import ELEMENTS
from ..naming import unrolled_power
from ..schedule import REDUCTIONS, consumers_of, fused_members, iteration_shape, schedule
from ..spec import result_parts
from .code import SCRATCH, Code
from .fused import FusedLoops
from .loop_math import LOOP, loop_definitions
from .loops import Loops
from .pieces import Pieces, ranges_nest
from .products import Products
from .reductions import Reductions
from .views import (
    ALIASES,
    View,
    broadcast,
    indexed,
    permuted,
    position,
    reshaped,
    transposed,
    whole,
)


@dataclass(frozen=True)
class Window:
    """Where a node's loop runs and writes: the rows [start, stop) of its first axis
    (i64 values), each element written through ``target`` at its position in the whole
    array (a driver's tile of rows, codegen.native.compressed; a column of a matrix,
    codegen.native.driver).  Taken by the loop that computes the node (ArrayBody.windows):
    the node then has no array of its own to read."""

    start: str
    stop: str
    target: View


def _elementwise(node: Expr) -> bool:
    return OPS[node.op].elementwise and node.op not in ALIASES


def lowerable(spec) -> bool:
    """Whether this lowering writes ``spec``: array inputs of static or open (None)
    dimensions, a result of Exprs and tuples, and only ops it knows."""
    if spec.batched or spec.arrays or result_parts(spec.result) is None:
        return False
    if any(d is not None and not isinstance(d, int) for s in spec.inputs for d in s.shape):
        return False
    scopes = [flatten(spec.result)] + [body_roots(b) for b in loop_bodies(flatten(spec.result))]
    for roots in scopes:
        order = schedule(roots)
        for node in order:
            if node.op not in STRUCTURAL and not (
                    OPS[node.op].elementwise and node.op in ELEMENTS):
                return False
            if node.op == "matmul" and any(a.ndim > 2 for a in node.args):
                return False
            if node.op == "scan" and not node.value[0].xs:
                return False
            if node.op == "while" and node.value[0].limit is not None:
                return False  # a loop that raises past its limit: the Numba lowering's
    return True


class ArrayBody(FusedLoops, Products, Reductions, Loops, Pieces):
    """Builds the body function of one array function (see the module)."""

    def __init__(self, spec, name: str):
        self.name = name
        self.parts = result_parts(spec.result)
        self.inputs = list(spec.inputs)
        self.code = Code(hoisted=True)
        self.globals: list[str] = []
        self.constants: dict = {}  # row positions' key -> their global
        self.views: dict[Expr, View] = {}
        self.scalars: dict[Expr, str] = {}
        self.fills: dict[Expr, Expr] = {}  # arrays whose every element is a scalar node
        self.blas = False
        self.declarations: set[str] = set()  # of intrinsics the code calls besides ops'
        self.loops_done: set[Expr] = set()  # loop outputs computed (with their group)
        self.computed_ahead: set[Expr] = set()  # inside an earlier node's loop
        self.intervals: dict[tuple, tuple] = {}  # checkpointed loops' interval carries
        self.inside: frozenset = frozenset()  # the embeds inside the loop piece being written
        self.cut_by: frozenset = frozenset()  # the embeds cutting that loop into pieces
        self.windows: dict[Expr, Window] = {}  # node -> where its loop writes, taken once
        self._analyse(self.parts)
        for k, part in enumerate(self.parts):
            if part.shape:
                self.place(part, f"%r{k}")
        # Every node this function computes, its loop bodies' included (helpers, extents).
        self.every = self.order + [n for body in loop_bodies(self.parts)
                                   for n in schedule(body_roots(body))]

    def _analyse(self, roots: list[Expr]) -> None:
        """The scope of the graph under ``roots`` (the function's, or a loop body's): its
        schedule, consumers, results, fused nodes and result destinations."""
        self.order = schedule(flatten(roots))
        self.position = {node: k for k, node in enumerate(self.order)}
        consumers = self.consumers = consumers_of(self.order)
        outputs = self.results = set(roots)
        self.inlined = {n for n in self.order if self._fusible(n, consumers.get(n, []), outputs)}
        self.sealed = {n for n in self.inlined if n.op == "embed"}  # their operands elsewhere
        self.recomputed: set[Expr] = set()  # inlined into several loops (share)
        self.settle_embeds()
        self.share()
        self.destinations: dict[Expr, str] = {}  # output node -> where it is computed
        # Loops whose stacked carries are checkpointed (codegen.native.segments): their
        # records once written.
        chosen = checkpointed(self.order, consumers, roots)
        self.plan = dict.fromkeys(chosen)
        self.intervals.update(chosen)  # key -> the carries deciding its interval

    @contextmanager
    def scope(self, roots: list[Expr]):
        """Inside: the scope of a loop body's graph (see _analyse); the function's after."""
        saved = (self.order, self.position, self.consumers, self.results, self.inlined,
                 self.sealed, self.recomputed, self.destinations, self.plan)
        self._analyse(roots)
        try:
            yield
        finally:
            (self.order, self.position, self.consumers, self.results, self.inlined,
             self.sealed, self.recomputed, self.destinations, self.plan) = saved

    def _fusible(self, node, users, outputs) -> bool:
        """Computed inside its one consumer's loop: an elementwise node (or a gather) of
        the consumer's iteration shape that is no result, or an embed (codegen.native.pieces)."""
        if not node.shape or node in outputs or len(users) != 1:
            return False
        if node.op == "embed":
            return self.fusible_embed(node, users[0])
        if not (_elementwise(node) or node.op == "take"):
            return False
        user = users[0]
        reads = _elementwise(user) or user.op in REDUCTIONS
        return reads and iteration_shape(user) == node.shape

    # Values.
    def scalar(self, node: Expr) -> str:
        if node.op == "const":
            return self.code.constant(node.value)
        return self.scalars[node]

    def element(self, node: Expr, loop_shape, indices, local) -> str:
        """The value ``node`` contributes at ``indices`` of a loop over ``loop_shape``."""
        if not node.shape:
            return self.scalar(node)
        if node in local:
            return local[node]
        if node in self.fills:
            return self.scalar(self.fills[node])
        view = self.views[node]
        return self.code.read(view.base, position(self.code, view, node.shape, loop_shape,
                                                  indices))

    def compute(self, node: Expr, operands: list[str]) -> str:
        """One elementwise op on operand values (the scalar lowering's instructions)."""
        code = self.code
        n = unrolled_power(node.args[1]) if node.op == "pow" else None
        if n is not None:
            return code.power(code.fresh(), operands[0], n, node)
        if node.shape and node.op in LOOP:  # an array's element: arithmetic only
            name = code.fresh()
            code.lines.append(f"{name} = {LOOP[node.op].format(*operands)}")
            return name
        return code.operation(code.fresh(), operands, node)

    def members(self, root: Expr) -> list[Expr]:
        """The fused producers computed in the loop of ``root``, in schedule order."""
        return fused_members(root, self.inlined, self.position, self.sealed)

    def loop_value(self, root: Expr, loop_shape, indices, local=None) -> str:
        """The element of ``root`` (computed from its operands, fused producers
        included) at ``indices`` of a loop over its iteration shape; ``local``: values
        computed in this loop already (by name), which it extends."""
        local = {} if local is None else local
        for node in [*self.members(root), root]:
            if node in local:
                continue
            if node.op == "embed" and node is not root:
                value = self.embedded(node, indices)
            elif node.op in REDUCTIONS:
                value = self.element(node.args[0], loop_shape, indices, local)
            elif node.op == "take":
                value = self.gathered(node, loop_shape, indices, local)
            else:
                value = self.compute(node, [self.element(a, loop_shape, indices, local)
                                            for a in node.args])
            local[node] = value
        return local[root]

    def gathered(self, node: Expr, loop_shape, indices, local) -> str:
        """The element of a take: the operand's element at the gathered row."""
        source, row = node.args[0], self.row_at(node.value, indices[0])
        return self.element(source, source.shape, [row, *indices[1:]], local)

    def row_at(self, rows, index: str) -> str:
        """The row position ``index`` of a take's or scatter_add's rows; the loop nest
        reading it stays scalar (see Code.scalar_loops)."""
        self.code.scalar_loops |= self.code.depth > 0
        return self.code.read_i64(self.rows(rows), index)

    def rows(self, rows) -> str:
        """The global constant of a take's or scatter_add's row positions (one per
        payload, however many loops read it), or for positions lifted as data the
        parameter that holds them."""
        if isinstance(rows, DataRows):
            return self.views[rows_symbol(rows)].base
        name = self.constants.get(rows.key)
        if name is None:
            name = self.constants[rows.key] = f"@rows{len(self.globals)}"
            values = ", ".join(f"i64 {int(v)}" for v in rows.array)
            self.globals.append(f"{name} = private unnamed_addr constant "
                                f"[{len(rows.array)} x i64] [{values}], align 8")
        return name

    # Storage.
    def buffer(self, node: Expr) -> str:
        """Where ``node``'s elements are written: its result's memory, or a temporary."""
        if node in self.destinations:
            return self.destinations[node]
        return self.code.allocate(self.code.size(node.shape))

    def place(self, node: Expr, pointer: str) -> None:
        """Compute ``node`` at ``pointer`` (where no other place was chosen), and so the
        elementwise node a reshape of it reads: its elements are the reshape's in C
        order (a residual raveled from a grid is computed in the result, not in a
        temporary copied there)."""
        self.destinations.setdefault(node, pointer)
        if node.op != "reshape" or self.destinations[node] != pointer:
            return
        source = node.args[0]
        if (source.args and source.shape and _elementwise(source)
                and source in self.position and source not in self.inlined):
            self.destinations.setdefault(source, pointer)

    def store_loop(self, node: Expr, value_of, pointer: str | None = None) -> None:
        """A loop writing ``value_of(indices)`` at every element of ``node``, into
        ``pointer`` or (by default) its buffer, which becomes its view; where ``windows``
        holds one for ``node`` (taken), over its rows only, written where it says."""
        window = self.windows.pop(node, None) if pointer is None else None
        if window is not None:
            rows = [(window.start, window.stop)] + [("0", self.code.dim(d))
                                                    for d in node.shape[1:]]
            with ranges_nest(self.code, rows) as indices:
                self.code.write(value_of(indices), window.target.base, position(
                    self.code, window.target, node.shape, node.shape, indices))
            return
        target = whole(self.code, pointer or self.buffer(node), node.shape)
        with self.code.nest(node.shape) as indices:
            at = position(self.code, target, node.shape, node.shape, indices)
            self.code.write(value_of(indices), target.base, at)
        if pointer is None:
            self.views[node] = target

    def loop_of_its_own(self, node: Expr) -> bool:
        """Whether the array ``node`` is computed by a loop of its own (elementwise,
        piecewise or a gather's: one that takes a window), not in its consumer's loop,
        by an emitter of its own, or as a view of its operand."""
        return (bool(node.shape) and node not in self.inlined and node.op not in EMITTERS
                and node.op not in ALIASES)

    def in_place(self, node: Expr, pointer: str) -> bool:
        """Whether ``node``'s elements were computed C-ordered at ``pointer`` already."""
        view = self.views.get(node)
        return view is not None and (view.base, view.offset, view.contiguous) == (
            pointer, "0", True)

    def copy(self, node: Expr, pointer: str | None = None) -> None:
        """Materialize ``node`` (a view, fill or input) C-ordered: into ``pointer``, or a
        buffer of its own that becomes its view."""
        fill, view = self.fills.get(node), self.views.get(node)

        def value_of(indices):
            if fill is not None:
                return self.scalar(fill)
            return self.code.read(view.base, position(self.code, view, node.shape,
                                                      node.shape, indices))
        if pointer is None:  # the buffer becomes its array (a copy elsewhere keeps both)
            self.fills.pop(node, None)
        self.store_loop(node, value_of, pointer)

    # Nodes.
    def emit_node(self, node: Expr) -> None:
        """The code of one node (not fused into a consumer's loop), by its entry of
        ``EMITTERS``, as a scalar, or as an elementwise loop."""
        op = node.op
        if op in ALIASES:
            self.alias(node, node.args[0])
        elif not node.shape and _elementwise(node):
            self.scalars[node] = self.compute(node, [self.scalar(a) for a in node.args])
        elif op in EMITTERS:
            EMITTERS[op](self, node)
        elif embeds := self.embed_members(node):
            self.piecewise_loop(node, embeds)
        else:  # an elementwise loop, or a take's gather
            self.store_loop(node, lambda indices: self.loop_value(node, node.shape, indices))

    def view(self, node: Expr) -> None:
        """An index, reshape, broadcast, transpose or permute: its operand's memory seen
        through index arithmetic (a scalar where it is one element, a fill of a fill)."""
        code, op, source = self.code, node.op, node.args[0]
        if not node.shape:  # one element
            if not source.shape:
                self.scalars[node] = self.scalar(source)
            elif source in self.fills:
                self.scalars[node] = self.scalar(self.fills[source])
            else:
                view = self.contiguous_view(source) if op == "reshape" else self.views[source]
                view = indexed(code, view, node.value if op == "index" else (), source.shape)
                self.scalars[node] = code.read(view.base, view.offset)
        elif not source.shape:  # reshape, broadcast_to: every element the scalar
            self.fills[node] = source
        elif source in self.fills:  # every element the same scalar still
            self.fills[node] = self.fills[source]
        elif op == "index":
            self.views[node] = indexed(code, self.views[source], node.value, source.shape)
        elif op == "broadcast_to":
            self.views[node] = broadcast(code, self.views[source], source.shape, node.shape)
        elif op == "transpose":
            self.views[node] = transposed(self.views[source])
        elif op == "permute":
            self.views[node] = permuted(self.views[source], node.value)
        else:
            self.views[node] = reshaped(code, self.contiguous_view(source), node.shape)

    def batch_size(self, node: Expr) -> None:
        value = self.code.fresh()
        extent = self.code.dim(node.args[0].shape[node.value])
        self.code.lines.append(f"{value} = sitofp i64 {extent} to double")
        self.scalars[node] = value

    def joined(self, node: Expr) -> None:
        """Each part copied into its place along the axis."""
        code, axis = self.code, node.value
        out = whole(code, self.buffer(node), node.shape)
        self.views[node] = out
        start = "0"
        for part in node.args:
            with code.nest(part.shape) as indices:
                shifted = list(indices)
                shifted[axis] = code.integer("add", indices[axis], start)
                code.write(self.element(part, part.shape, list(indices), {}), out.base,
                           position(code, out, node.shape, node.shape, shifted))
            start = code.integer("add", start, code.dim(part.shape[axis]))

    def running_sum(self, node: Expr) -> None:
        """Partial sums of a vector, in order (as np.cumsum)."""
        code = self.code
        out = self.buffer(node)
        self.views[node] = whole(code, out, node.shape)
        total = code.accumulator(code.constant(0.0))
        with code.nest(node.shape) as indices:
            code.add_to(total, "0", self.element(node.args[0], node.shape, indices, {}))
            code.write(code.read(total), out, indices[0])

    def alias(self, node: Expr, source: Expr) -> None:
        if not source.shape:
            self.scalars[node] = self.scalar(source)
        elif source in self.fills:
            self.fills[node] = self.fills[source]
        else:
            self.views[node] = self.views[source]

    def contiguous_view(self, node: Expr) -> View:
        """``node``'s view, copied first if its elements are not contiguous."""
        if node in self.fills or not self.views[node].contiguous:
            self.copy(node)
        return self.views[node]

    # The function.
    def prepare(self) -> None:
        """Every open extent (computed once, at the top) and array constant's view."""
        bodies = [body_roots(body) for body in loop_bodies(self.parts)]
        nodes = topological_order(flatten(self.parts) + [n for r in bodies for n in r])
        for node in nodes:
            for d in node.shape:
                if is_open(d):
                    self.code.dim(d)
            if node.op == "array":
                self.views[node] = whole(self.code, self.constant_array(node), node.shape)

    def module(self, function: str) -> str:
        """The module text around the finished ``function``: declarations, constants,
        helpers."""
        declarations, definitions = self.helpers()
        parts = [*declarations, *self.globals, *definitions, function,
                 "attributes #1 = { nounwind }"]
        return "\n\n".join(parts) + "\n"

    def text(self) -> tuple[str, str]:
        """(the LLVM text of the body and what it uses, the body's function name)."""
        code = self.code
        self.prepare()
        params = self.parameters()
        self.emit_all([n for n in self.order if n not in self.inlined])
        for k, part in enumerate(self.parts):
            result = f"%r{k}"
            if not part.shape:
                code.write(self.scalar(part), result)
            elif not self.in_place(part, result):
                # Not computed into its result: an input, constant, view, alias or fill,
                # or a result returned twice.  Copied, so results never share memory.
                self.copy(part, result)
        code.finish()
        results = [f"ptr noalias %r{k}" for k in range(len(self.parts))]
        signature = ", ".join(params + ["i64 %nb"] + results)
        return self.module(code.function(f"internal i32 @{self.name}({signature})", " #1")), \
            self.name

    def parameters(self, count: int | None = None) -> list[str]:
        """The body's input parameters (the first ``count`` inputs; all by default),
        each input's view or scalar named."""
        params = []
        for k, sym in enumerate(self.inputs[:count]):
            if sym.shape:
                params.append(f"ptr noalias %p{k}")
                self.views[sym] = whole(self.code, f"%p{k}", sym.shape)
            else:
                params.append(f"double %p{k}")
                self.scalars[sym] = f"%p{k}"
        return params

    def helpers(self) -> tuple[list[str], list[str]]:
        """(declarations, helper definitions) of what the body calls, each once."""
        in_loops = {n.op for n in self.every if n.shape and n.op in LOOP}
        ops = {n.op for n in self.every if not (n.shape and n.op in LOOP)}
        ops |= {"maximum"} if "amax" in ops else set()  # its running maximum
        texts = [ELEMENTS[op][1] for op in sorted(ops) if op in ELEMENTS and ELEMENTS[op][1]]
        texts += loop_definitions(in_loops)
        declared = {"declare noalias ptr @malloc(i64)", "declare void @free(ptr)"}
        declared |= {"declare i64 @llvm.smin.i64(i64, i64)",
                     "declare i64 @llvm.smax.i64(i64, i64)"}
        declared |= {_DGEMM} if self.blas else set()
        declared |= self.declarations
        declared |= {SCRATCH} if self.code.workspace_size != "0" else set()
        declared |= {line for text in texts for line in text.splitlines()
                     if line.startswith("declare ")}
        definitions = ["\n".join(line for line in text.splitlines()
                                 if not line.startswith("declare ")) for text in texts]
        return sorted(declared), [d for d in definitions if d]

    def constant_array(self, node: Expr) -> str:
        """A global constant holding an array constant's values."""
        values = node.value.array.ravel()
        name = f"@array{len(self.globals)}"
        items = ", ".join(f"double {self.code.constant(float(v))}" for v in values)
        self.globals.append(f"{name} = private unnamed_addr constant [{len(values)} x double] "
                            f"[{items}], align 8")
        return name


_DGEMM = ("declare void @_sd_dgemm(ptr, ptr, ptr, ptr, ptr, ptr, ptr, ptr, ptr, ptr, ptr, "
          "ptr, ptr)")


VIEWS = ("index", "reshape", "broadcast_to", "transpose", "permute")
# The native lowering's table of structural ops (elementwise ops: loops of their own, or
# fused into a consumer's): how each node's code is written.
EMITTERS = {
    **{op: ArrayBody.view for op in VIEWS},
    **{op: ArrayBody.reduction for op in REDUCTIONS},
    "matmul": ArrayBody.product,
    "batch_matmul": ArrayBody.gemm,
    "concatenate": ArrayBody.joined,
    "cumsum": ArrayBody.running_sum,
    "batch_size": ArrayBody.batch_size,
    "scan": ArrayBody.scan,
    "while": ArrayBody.while_loop,
}
# The structural ops this lowering writes (elementwise ops come from the element table):
# the table's, the aliases, gathers (fused into loops) and array constants.
STRUCTURAL = frozenset(EMITTERS) | {*ALIASES, "take", "array"}
