"""Emit njit functions over arrays: fused elementwise loops, reductions, NumPy/BLAS calls.

Fusion rule: an elementwise array node is computed inside the loop of its consumer (as a
local scalar) when it has exactly one consumer, that consumer iterates over the same
shape, and it is not an output; every other array node is materialized.  A loop runs at
the topological position of the node it materializes, so fusion never reorders
dependencies.  Loop bounds are the static dimensions or ``_nb``, the open batch size read
from the arguments, so code size does not depend on array sizes.
"""

from __future__ import annotations

from symdiff.ir.index_keys import least_open_length_of
from symdiff.ir.nodes import OPS, Expr, flatten, topological_order

from ..bodies import loop_bodies, step_specs
from ..naming import BATCH, extent, literal, temporary
from ..schedule import (
    REDUCTIONS,
    consumers_of,
    expanded_lengths,
    iteration_shape,
    schedule,
)
from .fused import FusedLoops
from .indexing import (
    broadcast_index,
    constant_name,
    key_index,
    loop_indices,
    rows_name,
    shape_text,
    unit_reshape,
    unit_reshape_index,
)
from .loops import LOOP_EMITTERS
from .products import Products, is_matvec
from .scalar import formula, placeholders, statement
from .sums import FullSums

# Ops whose element is an operand's element at another position: fused like elementwise.
ELEMENT_ACCESS = ("broadcast_to", "take", "index")
# Arithmetic cheap enough to compute again in every loop that reads it.
CHEAP = ("add", "sub", "mul", "neg")  # not div: several cycles each
# The longest formula written as a comment beside a statement.
COMMENT_CHARS = 60
# Ops whose emitted result may share memory with an operand (views, identities).
ALIASING = ("transpose", "permute", "reshape", "stop_gradient", "root")


def _is_view(node: Expr) -> bool:
    """Whether ``node`` reads one operand element per element at a position given by index
    arithmetic alone (so a loop can read the operand in its place)."""
    if node.op == "index":
        return bool(node.shape)
    return node.op == "broadcast_to" or unit_reshape(node)


def _alias_base(node: Expr) -> Expr:
    """The array a chain of aliasing ops (views, identities) reads."""
    while node.op in ALIASING:
        node = node.args[0]
    return node


def reads_elements(user: Expr) -> bool:
    """Whether ``user`` is computed in a loop that reads its operands element by element,
    each at the loop's own position (through ``ArrayEmitter.element``)."""
    return OPS[user.op].elementwise or user.op in REDUCTIONS or user.op == "broadcast_to"


def reads_in_place(user: Expr) -> bool:
    """reads_elements, except stop_gradient: it passes on its operand's array by name."""
    return reads_elements(user) and user.op != "stop_gradient"


class ArrayEmitter(FusedLoops, FullSums, Products):
    """Builds the body of one function whose graph has array nodes."""

    def __init__(self, inputs, params, names, result, body_name, checked=True):
        self.body_name = body_name  # the name of a loop body's step function (codegen.lower)
        self.checked = checked
        self.params = params
        self.names: dict[Expr, str] = dict(names)  # inputs (and array items) named already
        self.inputs = list(inputs)
        self.shown = placeholders(inputs, params)
        self.outputs = flatten(result)
        self.order = schedule(self.outputs)
        self.lengths = expanded_lengths(self.order, COMMENT_CHARS + 1)
        self.position = {node: k for k, node in enumerate(self.order)}
        self.lines: list[str] = []
        self.handed_out: set[str] = set()  # arrays already returned as they are
        self.renamed: dict[Expr, str] = {}  # arrays read through other names for a while
        self.counter = 0
        self.has_batch = False  # whether the open length _nb is read (check_arguments)
        consumers = self.consumers = consumers_of(self.order)
        out = set(self.outputs)
        self.inlined: set[Expr] = set()
        for n in self.order:
            users = consumers.get(n, [])
            if self._fusible(n, users, out) or self._recomputed(n, users, out):
                self.inlined.add(n)
        # Unit reshapes, constant slices and broadcasts read by loops only are index
        # arithmetic on their operand, not arrays (however many loops read them).
        self.views = {n for n in self.order if n not in out and _is_view(n) and all(
            map(reads_in_place, consumers.get(n, [])))}
        # Constant vectors that loops scan only to count their steps (fori_loop's zeros):
        # no array; each step gets the constant (codegen.numba.loops).
        self.filled = {n for n in self.order if n.op == "broadcast_to" and n.ndim == 1
                       and n.args[0].op == "const" and n not in out and consumers.get(n)
                       and all(_scanned_only(n, u) for u in consumers[n])}
        # Transposes that only products with a vector read: those read the transpose's
        # operand in place (codegen.numba.products), so the transpose has no statement.
        self.transposed = {n for n in self.order if n.op == "transpose" and n.ndim == 2
                           and n not in out and consumers.get(n)
                           and all(map(is_matvec, consumers[n]))}
        # One-element arrays (a max or sum kept as shape (1,)) read by loops only live in a
        # local float: no allocation.
        self.unit = {n for n in self.order if n.shape and all(d == 1 for d in n.shape)
                     and n not in out and n not in self.inlined and n not in self.views
                     and n.op != "stop_gradient"  # usually an alias of its operand's array
                     and (OPS[n.op].elementwise or n.op in REDUCTIONS + ELEMENT_ACCESS)
                     and all(self._reads_elements(u) for u in consumers.get(n, []))}

    def _reads_elements(self, user: Expr) -> bool:
        """reads_elements, for a unit operand: a stop_gradient alias would pass on its
        name, and a view reads it through ``element`` too."""
        return reads_in_place(user) or user in self.views

    @staticmethod
    def _fusible(node, users, outputs) -> bool:
        op = OPS[node.op]
        if not node.shape or node in outputs or len(users) != 1:
            return False
        if not (op.elementwise or node.op in ELEMENT_ACCESS):
            return False
        user = users[0]
        # take and index read their operand at other positions: it stays materialized.
        return reads_elements(user) and iteration_shape(user) == node.shape

    def _recomputed(self, node, users, outputs) -> bool:
        """Whether a cheap arithmetic node of one array operand, read by several loops over
        its shape, is computed in each of them: that reads the operand once per loop
        instead of writing an intermediate array and reading it back in every loop."""
        if node.op not in CHEAP or not node.shape or node in outputs or len(users) < 2:
            return False
        arrays = [a for a in node.args if a.shape]
        if len(arrays) != 1 or arrays[0] in self.inlined:  # one level, no chains
            return False
        return all(reads_in_place(u) and iteration_shape(u) == node.shape for u in users)

    def comment(self, node: Expr) -> str:
        """``  # <formula>`` naming the array a statement makes, where it is short: the
        scalar lowering's house style (names alone do not say what _t7 holds)."""
        if self.lengths[node] > COMMENT_CHARS or node.op == "broadcast_to":
            return ""  # surely too long (not even printed), or the fill loop says it
        text = formula(node, self.shown)  # placeholders as the code names them
        return f"  # {text}" if len(text) <= COMMENT_CHARS and "$" not in text else ""

    def length(self, node: Expr) -> str | None:
        """The length of ``node``'s first axis as code (a number, or from _nb), if it
        needs no statement."""
        d = node.shape[0]
        return extent(d) if isinstance(d, int) or self.has_batch else None

    def new_name(self) -> str:
        name = temporary(self.counter)
        self.counter += 1
        return name

    # Operands.
    def operand(self, node: Expr) -> str:
        """Name of a scalar or array operand."""
        return self.array(node) if node.shape else self.scalar(node)

    def scalar(self, node: Expr) -> str:
        if node.op == "const":
            return literal(node.value)
        return self.names[node]

    def array(self, node: Expr) -> str:
        if node in self.renamed:  # a block's slice (blocked_sum)
            return self.renamed[node]
        return constant_name(node) if node.op == "array" else self.names[node]

    def element(self, node: Expr, loop_shape: tuple, indices: list[str], local) -> str:
        """The element of ``node`` at the loop position, with NumPy broadcasting."""
        if node in local:
            return local[node]
        if not node.shape:
            return self.scalar(node)
        index = broadcast_index(node.shape, loop_shape, indices)
        while node in self.views:
            source = node.args[0]
            if node.op == "index":
                index = key_index(node.value, source.shape, index)
            elif node.op == "broadcast_to":
                index = broadcast_index(source.shape, node.shape, index)
            else:
                index = unit_reshape_index(node.shape, source.shape, index)
            node = source
        if node in local:
            return local[node]
        if not node.shape:
            return self.scalar(node)
        if node in self.unit:
            return self.names[node]
        return f"{self.array(node)}[{', '.join(index)}]"

    # Statements.
    def emit(self) -> list[str]:
        """All statements of the function body, before the return."""
        self.check_arguments()
        skipped = self.inlined | self.views | self.filled | self.transposed
        order = [n for n in self.order if n not in skipped]
        k = 0
        while k < len(order):
            node = order[k]
            k += 1
            if self.groupable(node):  # with the roots after it that share its loop
                group = [node]
                members = {node, *self.members_of(node)}
                while k < len(order) and self.joins(order[k], group, members):
                    group.append(order[k])
                    members.update([order[k], *self.members_of(order[k])])
                    k += 1
                if len(group) > 1:
                    self.fused_loop(group)
                    continue
            self.emit_node(node)
        return self.lines

    def emit_node(self, node: Expr) -> None:
        """The statements of one node (not inlined, not a view)."""
        if node.op in ("stop_gradient", "root") and node.args[0] not in self.inlined:
            self.names[node] = self.operand(node.args[0])  # identities once derived
        elif not node.shape and OPS[node.op].elementwise and not any(a.shape for a in
                                                                     node.args):
            name = self.new_name()
            self.lines.append(f"{name} = {statement(node, self.scalar)}")
            self.names[node] = name
        elif node.op == "index" and not node.shape:  # one element
            name = self.new_name()
            where = key_index(node.value, node.args[0].shape, [])
            self.lines.append(f"{name} = {self.array(node.args[0])}[{', '.join(where)}]")
            self.names[node] = name
        elif OPS[node.op].elementwise or node.op in REDUCTIONS + ELEMENT_ACCESS:
            self.loop(node)
        else:
            self.call(node)

    def check_arguments(self) -> None:
        batch_from = None
        for sym, name in zip(self.inputs, self.params, strict=True):
            if not sym.shape:
                continue
            for k, d in enumerate(sym.shape):
                if d is None and batch_from is None:
                    batch_from, batch_arg = f"{name}.shape[{k}]", name
                    self.lines.append(f"{BATCH} = {batch_from}")
                    self.has_batch = True
            if not self.checked:
                continue
            # The dimension the open length was read from is that length: no check.
            wanted = " or ".join(f"{name}.shape[{k}] != {extent(d)}" for k, d in
                                 enumerate(sym.shape) if f"{name}.shape[{k}]" != batch_from)
            if not wanted:
                continue
            shown = str(sym.shape).replace("None", "batch")
            self.lines.append(f"if {wanted}:")
            self.lines.append(f'    raise ValueError("argument {name} must have shape {shown}")')
        if not self.checked or batch_from is None:
            return
        # Slices such as x[2:] read as written only from their least length on: shorter
        # data would make NumPy clamp them, and the loops read out of bounds.  Loop bodies
        # slice open invariants too, and are not checked on their own.
        nodes = self.order + [n for body in loop_bodies(self.outputs)
                              for spec in step_specs(body, "_")
                              for n in topological_order(flatten(spec.result))]
        least = least_open_length_of(nodes)
        if least > 0:
            self.lines.append(f"if {BATCH} < {least}:")
            self.lines.append(f'    raise ValueError("argument {batch_arg} is too short: its '
                              f'open (None) dimension must have length at least {least}")')

    def loop(self, root: Expr) -> None:
        shape = iteration_shape(root)
        name = self.new_name()
        single = root in self.unit and root.op not in REDUCTIONS
        indices = ["0"] * len(shape) if single else loop_indices(shape)
        body: list[str] = []
        local: dict[Expr, str] = {}
        members = self.members_of(root)  # the inlined producers of this loop, in order
        if (root.op == "sum" and len(shape) == 1 and (not root.shape or root in self.unit)
                and shape[0] != 1):
            self.lanes_sum(root, name, shape, members)
            return
        for node in members:
            local[node] = self.loop_value(node, shape, indices, local, body)
        value = self.loop_value(root, shape, indices, local, body, final=True)
        if root.op in REDUCTIONS:
            self.reduction(root, name, shape, indices, value, body)
        elif single:  # one element: no loop, no array
            self.lines += body + [f"{name} = {value}"]
        else:
            self.lines.append(f"{name} = np.empty({shape_text(shape)}){self.comment(root)}")
            body.append(f"{name}[{', '.join(indices)}] = {value}")
            self.nest(shape, indices, body)
        self.names[root] = name

    def loop_value(self, node, shape, indices, local, body, final=False) -> str:
        if node.op == "take":  # the operand's element at the gathered row
            rows = [f"{rows_name(node)}[{indices[0]}]"] + indices[1:]
            return f"{self.array(node.args[0])}[{', '.join(rows)}]"
        if node.op == "index":  # the operand's element at the mapped position
            source = node.args[0]
            if not source.shape:
                return self.scalar(source)
            where = key_index(node.value, source.shape, indices)
            return f"{self.array(source)}[{', '.join(where)}]"
        if node.op in REDUCTIONS or node.op == "broadcast_to":  # the operand's element
            return self.element(node.args[0], shape, indices, local)
        text = statement(node, lambda a: self.element(a, shape, indices, local), loop=True)
        if final:
            return text
        var = f"_v{len(body)}"
        body.append(f"{var} = {text}")
        return var

    def nest(self, shape, indices, body) -> None:
        """``body`` in loops over the axes of ``shape`` (none over an axis indexed 0)."""
        loops = [(d, i) for d, i in zip(shape, indices, strict=True) if i != "0"]
        for depth, (d, i) in enumerate(loops):
            self.lines.append("    " * depth + f"for {i} in range({extent(d)}):")
        pad = "    " * len(loops)
        self.lines.extend(pad + line for line in body)

    def reduction(self, root, name, shape, indices, value, body) -> None:
        out = root.shape
        if root.op == "sum_to":
            target = broadcast_index(out, shape, indices)
        elif root.op == "scatter_add":
            target = [f"{rows_name(root)}[{indices[0]}]"] + indices[1:]
        elif root.op == "embed":  # each operand element to its one place, the rest zeros
            target = key_index(root.value[0], out, indices)
        else:
            axes, keepdims = root.value
            axes = range(len(shape)) if axes is None else axes
            target = [("0" if k in axes else i) for k, i in enumerate(indices)
                      if keepdims or k not in axes]
        scalar = not out or root in self.unit
        slot = name if scalar else f"{name}[{', '.join(target)}]"
        start = "-math.inf" if root.op == "amax" else "0.0"
        if not scalar:
            fill = "np.full" if root.op == "amax" else "np.zeros"
            extra = ", -math.inf" if root.op == "amax" else ""
            self.lines.append(f"{name} = {fill}({shape_text(out)}{extra}){self.comment(root)}")
        else:
            self.lines.append(f"{name} = {start}{self.comment(root)}")
        if root.op == "amax":
            body.append(f"{slot} = _sd_maximum({slot}, {value})")
        elif root.op == "embed":
            body.append(f"{slot} = {value}")
        else:
            body.append(f"{slot} += {value}")
        self.nest(shape, indices, body)

    def call(self, node: Expr) -> None:
        """A structural op that is no loop of its own: its entry of CALLS, or its loop op's
        emitter (LOOP_EMITTERS)."""
        if node.op in LOOP_EMITTERS:
            if node not in self.names:  # else computed by the loop of an earlier output
                LOOP_EMITTERS[node.op](self, node)
            return
        name = self.new_name()
        args = [None if a in self.transposed else self.operand(a) for a in node.args]
        text = CALLS[node.op](self, node, args, name)
        if text is not None:
            self.lines.append(f"{name} = {text}{self.comment(node)}")
        self.names[node] = name

    def returned(self, node: Expr) -> str:
        """The expression that returns ``node`` (a fresh array, never a view of an input)."""
        if not node.shape:
            return self.scalar(node)
        name = self.array(node)
        # Leaves are the caller's arrays or module constants; these ops alias their operand;
        # a result returned twice (two equal gradients) would be one buffer seen twice.
        fresh = node.args and node.op not in ALIASING or self._owned_view(node)
        if fresh and name not in self.handed_out:
            self.handed_out.add(name)
            return name
        return f"{name}.copy()"

    def _owned_view(self, node: Expr) -> bool:
        """Whether ``node`` reshapes (or stops the gradient of) an array this function
        computed for it alone: returning the view shares memory with nothing else."""
        base = node
        while base.op in ("reshape", "stop_gradient"):
            base = base.args[0]
        if base is node or not base.args or base in self.outputs or base.op in ALIASING:
            return False
        return sum(1 for out in self.outputs if _alias_base(out) is base) == 1


def _scanned_only(node: Expr, user: Expr) -> bool:
    """Whether ``user`` is a scan reading ``node`` as scanned arrays only."""
    if user.op != "scan":
        return False
    body = user.value[0]
    c, x = len(body.carries), len(body.xs)
    return all(c <= k < c + x for k, a in enumerate(user.args) if a is node)


def _matmul(emitter: ArrayEmitter, node: Expr, args: list[str], name: str) -> str | None:
    if is_matvec(node):
        emitter.matvec(node, name)  # a loop: writes its own lines
        return None
    return f"np.dot({args[0]}, {args[1]})"


def _batch_matmul(emitter: ArrayEmitter, node: Expr, args: list[str], name: str) -> None:
    # One np.dot per matrix of the stack (Numba's np.dot takes two axes), on C-ordered
    # copies where a matrix is a strided view.
    stack = node.shape[0]
    emitter.lines += [
        f"{name} = np.empty({shape_text(node.shape)}){emitter.comment(node)}",
        f"for _s in range({stack}):",
        f"    {name}[_s] = np.dot(np.ascontiguousarray({args[0]}[_s]), "
        f"np.ascontiguousarray({args[1]}[_s]))"]
    return None


def _reshape(emitter: ArrayEmitter, node: Expr, args: list[str], name: str) -> str:
    if not node.args[0].shape:
        return f"np.full({shape_text(node.shape)}, {args[0]})"
    if not node.shape:
        return f"np.ascontiguousarray({args[0]}).reshape(-1)[0]"
    return f"np.ascontiguousarray({args[0]}).reshape({shape_text(node.shape)})"


# The Numba lowering's table for the structural ops computed by one NumPy call each
# (the others are loops: REDUCTIONS and ELEMENT_ACCESS fused, LOOP_EMITTERS): the
# expression assigned to the op's name, from its operands' names, or None when the entry
# wrote its lines itself.  tests/test_array_ops.py checks that every op is lowered.
CALLS = {
    "matmul": _matmul,
    "batch_matmul": _batch_matmul,
    "transpose": lambda emitter, node, args, name: f"{args[0]}.T",
    "permute": lambda emitter, node, args, name: f"np.transpose({args[0]}, {node.value})",
    "reshape": _reshape,
    "solve": lambda emitter, node, args, name: f"np.linalg.solve({args[0]}, {args[1]})",
    "inv": lambda emitter, node, args, name: f"np.linalg.inv({args[0]})",
    "cholesky": lambda emitter, node, args, name: f"np.linalg.cholesky({args[0]})",
    "logabsdet": lambda emitter, node, args, name: f"np.linalg.slogdet({args[0]})[1]",
    "detsign": lambda emitter, node, args, name: f"np.linalg.slogdet({args[0]})[0]",
    "eigvalsh": lambda emitter, node, args, name: f"np.linalg.eigh({args[0]})[0]",
    "eigvecsh": lambda emitter, node, args, name: f"np.linalg.eigh({args[0]})[1]",
    # Stable sorts (mergesort), so ties take the evaluator's order.
    "sort_by": lambda emitter, node, args, name: (
        f"{args[1]}[np.argsort({args[0]}, kind='mergesort')]"),
    "unsort_by": lambda emitter, node, args, name: (
        f"{args[1]}[np.argsort(np.argsort({args[0]}, kind='mergesort'), kind='mergesort')]"),
    "concatenate": lambda emitter, node, args, name: (
        f"np.concatenate(({', '.join(args)},), axis={node.value})"),
    "cumsum": lambda emitter, node, args, name: f"np.cumsum({args[0]})",
    "batch_size": lambda emitter, node, args, name: f"float({args[0]}.shape[{node.value}])",
}


def lowered_structural_ops() -> set[str]:
    """The structural ops the array emitter lowers: fused into loops, by its CALLS, by a
    loop emitter, or as an identity (root: its solution, once derived)."""
    return set(REDUCTIONS) | set(ELEMENT_ACCESS) | set(CALLS) | set(LOOP_EMITTERS) | {"root"}
