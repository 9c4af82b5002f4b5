"""The native lowering of loops (``sd.scan``, ``sd.while_loop``, ``sd.fori_loop``): mixin
of codegen.native.arrays.ArrayBody.  The body's graph is written into the loop itself,
no function call per step:

- a scalar carry part lives in a stack slot (a register once LLVM's mem2reg has run);
- an array carry part has two buffers made once, before the loop: the step reads one and
  writes the next carry into the other, then the two swap (no allocation per step, and
  no hazard when a new carry reads another part of the old one);
- the body's nodes that read no carry and no scanned slice (loop invariants) are
  computed once, before the loop;
- stacked outputs (per-step outputs, the carries a reverse sweep reads) are written row
  by row into arrays of the loop's length, made once.

Loops whose reverse sweeps recompute checkpointed carries (codegen.checkpoints) keep
every k-th carry, and their sweeps run segment by segment (codegen.native.segments).
"""

from __future__ import annotations

from contextlib import contextmanager

from symdiff.ir.nodes import Expr, topological_order

from ..bodies import body_roots
from ..checkpoints import STACKED_CARRIES, loop_key, loop_parts, sources
from ..schedule import depending
from .segments import Segments
from .views import View, c_strides, whole


class Loops(Segments):
    """Mixin: ``scan`` and ``while_loop``, the emitters of the loop ops."""

    def scan(self, node: Expr) -> None:
        """The loop computing ``node`` and every other output of the same loop (a group:
        final carries, per-step outputs, stacked carries) this graph reads."""
        if node in self.loops_done:
            return
        code, body, plan = self.code, node.value[0], self.plan
        key = loop_key(node)
        group = [n for n in self.order if n.op == "scan" and loop_key(n) == key]
        self.loops_done.update(group)
        c, x = loop_parts(body)
        steps = code.dim(node.args[c].shape[0])
        read = [k for k in sources(node, plan) if plan[k] is not None]
        with self.scope(body_roots(body)), self.bindings():
            variant = self._bind_invariants(body, node.args[c + x:])
            carries = self._carry_storage(body, node.args[:c])
            stacked = self._stacked_arrays(body, group, steps, key in plan)
            record = self.checkpoints(node, steps) if key in plan else None

            def step(s: str, slots: dict) -> None:
                current = self._load_carries(body, carries)
                self._bind_slices(body, node.args[c:c + x], s, slots)
                if record is not None:
                    self.keep_checkpoint(record, current, s)
                for j, array in stacked["carries"].items():
                    row = code.integer("add", s, "1") if body.reverse else s
                    self._store_part(body.carries[j], array, row)
                rows = {}
                for j, array in stacked["ys"].items():
                    rows[j] = code.at(array, code.integer("mul", s, code.size(body.ys[j].shape)))
                    if body.ys[j].shape:
                        self.destinations.setdefault(body.ys[j], rows[j])
                targets = self._emit_step(body, carries, variant)
                for j, pointer in rows.items():
                    self._store_part(body.ys[j], pointer, "0")
                self._next_carries(body, carries, current, targets)

            if read:
                self.segmented(body, node.args[c:c + x], read, plan, step)
            else:
                with code.loop(steps, unroll=False) as i:
                    step(code.backwards(i, "0", steps) if body.reverse else i, {})
            final = self._load_carries(body, carries)
            for j, array in stacked["carries"].items():
                self._store_part(body.carries[j], array, "0" if body.reverse else steps)
            self.keep_final(record)
        if record is not None:
            plan[key] = {**record, "final": final}
        for n in group:
            kind, j = n.value[1]
            if kind == "carry":
                self._bind(n, final[j])
            elif kind == "ys":
                self.views[n] = whole(code, stacked["ys"][j], n.shape)
            elif j in stacked["carries"]:  # the carries before (after) each step: T of T + 1
                after = (kind == "nexts") != body.reverse
                offset = code.size(body.carries[j].shape) if after else "0"
                self.views[n] = View(stacked["carries"][j], offset, c_strides(code, n.shape),
                                     True)
            # else: checkpointed, read by the sweeps that recompute it (segmented)

    def while_loop(self, node: Expr) -> None:
        """The loop computing ``node`` and the other carry parts of the same loop this
        graph reads: the condition on the current carry, then the step."""
        if node in self.loops_done:
            return
        code, body = self.code, node.value[0]
        group = [n for n in self.order if n.op == "while" and n.args == node.args
                 and n.value[0] is body]
        self.loops_done.update(group)
        c = len(body.carries)
        with self.scope(body_roots(body)), self.bindings():
            variant = self._bind_invariants(body, node.args[c:])
            carries = self._carry_storage(body, node.args[:c])
            head, step, done = code.label("whead"), code.label("wbody"), code.label("wdone")
            code.branch(head)
            code.begin(head)
            code.depth += 1
            code.in_while += 1
            current = self._load_carries(body, carries)
            deciding = set(topological_order([body.cond]))
            self.emit_all([n for n in self.order if n in variant and n in deciding
                           and n not in self.inlined])
            going = code.fresh()
            code.lines += [f"{going} = fcmp une double {self.scalar(body.cond)}, 0.0",
                           f"br i1 {going}, label %{step}, label %{done}"]
            code.begin(step)
            targets = self._emit_step(body, carries, variant - deciding)
            self._next_carries(body, carries, current, targets)
            code.branch(head)
            code.begin(done)
            code.depth -= 1
            code.in_while -= 1
            code.scalar_loops = code.scalar_loops and code.depth > 0
            final = self._load_carries(body, carries)
        for n in group:
            self._bind(n, final[n.value[1]])

    # The parts of a loop.
    @contextmanager
    def bindings(self):
        """Inside: values bound to a loop body's nodes; after: forgotten (another loop
        may run the same body, or one with the same placeholders, on other operands, and
        values made inside a loop are not defined after it)."""
        saved = (dict(self.scalars), dict(self.views), dict(self.fills), set(self.loops_done),
                 set(self.computed_ahead))
        try:
            yield
        finally:
            (self.scalars, self.views, self.fills, self.loops_done,
             self.computed_ahead) = saved

    def _bind(self, node: Expr, value) -> None:
        """``node`` is ``value``: a scalar's name, or an array's data pointer."""
        if node.shape:
            self.views[node] = whole(self.code, value, node.shape)
        else:
            self.scalars[node] = value

    def _bind_invariants(self, body, operands) -> set[Expr]:
        """Bind the invariant placeholders to their operands and compute the body's
        nodes that depend on no carry and no scanned slice (once, before the loop);
        returns the others (computed per step)."""
        for placeholder, operand in zip(body.invariants, operands, strict=True):
            if placeholder is not operand:  # (a symbol the body reads is its own operand)
                self.alias(placeholder, operand)
        variant = depending(self.order, body.carries + body.xs)
        self.hoist(variant)
        self.emit_all([n for n in self.order if n not in variant and n not in self.inlined])
        return variant

    def _carry_storage(self, body, inits) -> list[tuple[str, ...]]:
        """Per carry part, its storage holding the initial value (an operand, or with
        ``inits`` None nothing yet): (slot,) for a scalar, (current buffer's slot, next
        buffer's slot) for an array."""
        code, storage = self.code, []
        for k, part in enumerate(body.carries):
            if not part.shape:
                start = self.scalar(inits[k]) if inits is not None else code.constant(0.0)
                storage.append((code.accumulator(start),))
                continue
            slots = []
            for _ in range(2):
                buffer, slot = code.allocate(code.size(part.shape)), code.slot("ptr")
                code.lines.append(f"store ptr {buffer}, ptr {slot}")
                slots.append(slot)
            if inits is not None:
                self.copy(inits[k], self.pointer(slots[0]))
            storage.append(tuple(slots))
        return storage

    def pointer(self, slot: str) -> str:
        """The pointer held in stack slot ``slot``."""
        pointer = self.code.fresh()
        self.code.lines.append(f"{pointer} = load ptr, ptr {slot}")
        return pointer

    def _load_carries(self, body, storage) -> list[str]:
        """Bind the carry placeholders to the current carry; returns each part's value (a
        scalar, or the current buffer)."""
        values = []
        for part, slots in zip(body.carries, storage, strict=True):
            value = self.code.read(slots[0]) if not part.shape else self.pointer(slots[0])
            self._bind(part, value)
            values.append(value)
        return values

    def _stacked_arrays(self, body, group, steps: str, checkpointed: bool) -> dict:
        """The arrays of the group's stacked outputs, made once: ``ys`` by part (T rows),
        ``carries`` by carry part (T + 1 rows: the carries before each step and the
        final one, so both stacked views of a part share it; none where checkpointed)."""
        code = self.code
        arrays: dict[str, dict[int, str]] = {"ys": {}, "carries": {}}
        for n in group:
            kind, j = n.value[1]
            if kind == "ys" and j not in arrays["ys"]:
                with code.at_start():  # where buffers are made
                    size = code.integer("mul", steps, code.size(body.ys[j].shape))
                arrays["ys"][j] = code.allocate(size)
            elif kind in STACKED_CARRIES and j not in arrays["carries"] and not checkpointed:
                with code.at_start():
                    size = code.integer("mul", code.integer("add", steps, "1"),
                                        code.size(body.carries[j].shape))
                arrays["carries"][j] = code.allocate(size)
        return arrays

    def _bind_slices(self, body, operands, s: str, slots: dict) -> None:
        """Bind the scanned placeholders to row ``s`` of their operands (``slots``: the
        View of row ``s`` by placeholder position, for operands read elsewhere)."""
        code = self.code
        for k, (placeholder, operand) in enumerate(zip(body.xs, operands, strict=True)):
            if k in slots:
                view = slots[k]
            elif operand in self.fills:  # a constant scanned to count steps (fori_loop's)
                if placeholder.shape:
                    self.fills[placeholder] = self.fills[operand]
                else:
                    self.scalars[placeholder] = self.scalar(self.fills[operand])
                continue
            else:
                whole_view = self.views[operand]
                at = code.integer("add", whole_view.offset,
                                  code.integer("mul", s, whole_view.strides[0]))
                view = View(whole_view.base, at, whole_view.strides[1:], whole_view.contiguous)
            if placeholder.shape:
                self.views[placeholder] = view
            else:
                self.scalars[placeholder] = code.read(view.base, view.offset)

    def _store_part(self, part: Expr, array: str, row: str) -> None:
        """``part``'s value (scalar or array) into row ``row`` of ``array``."""
        code = self.code
        if not part.shape:
            code.write(self.scalar(part), array, row)
            return
        pointer = code.at(array, code.integer("mul", row, code.size(part.shape)))
        if not self.in_place(part, pointer):
            self.copy(part, pointer)

    def _emit_step(self, body, storage, variant) -> list[str | None]:
        """The per-step nodes, each array carry's next value computed into its next
        buffer where it is computed here; returns the next buffers (None for scalars)."""
        targets = []
        for new, slots in zip(body.new_carries, storage, strict=True):
            targets.append(self.pointer(slots[1]) if new.shape else None)
            if new.shape and new in variant:
                self.destinations.setdefault(new, targets[-1])
        self.emit_all([n for n in self.order if n in variant and n not in self.inlined])
        return targets

    def _next_carries(self, body, storage, current, targets) -> None:
        """The step's end: every next carry part into its storage (an array's next buffer
        becomes its current one)."""
        code, scalars = self.code, []
        for new, slots, now, target in zip(body.new_carries, storage, current, targets,
                                           strict=True):
            if target is None:
                scalars.append((self.scalar(new), slots[0]))
                continue
            if not self.in_place(new, target):
                self.copy(new, target)  # a view, fill, invariant, or another part's value
            code.lines += [f"store ptr {target}, ptr {slots[0]}",
                           f"store ptr {now}, ptr {slots[1]}"]
        for value, slot in scalars:  # after every read of the old values
            code.write(value, slot)
