"""Checkpointed loops in the native lowering (mixin of codegen.native.arrays.ArrayBody,
through codegen.native.loops): a loop whose stacked carries only reverse sweeps read
keeps every k-th carry (codegen.checkpoints decides which loops, ``sd.scan``'s
``checkpoint`` the interval); a sweep reading it runs segment by segment, each segment's
carries recomputed from its checkpoint into a buffer of k + 1 rows first.  The interval
is a number where the trip count and shapes are static, else computed at run time as the
Numba lowering computes it (the same steps, so the same numbers)."""

from __future__ import annotations

from ..bodies import body_roots
from ..checkpoints import AUTO_STORE_BYTES, loop_key, loop_parts, static_interval
from .views import View, c_strides

_SQRT = "declare double @llvm.sqrt.f64(double)"
_CEIL = "declare double @llvm.ceil.f64(double)"


class Segments:
    """Mixin: checkpoints of a forward loop, and the segmented sweeps that read them."""

    def checkpoints(self, node, steps: str) -> dict:
        """The checkpoint arrays of the loop of ``node`` (made once) and what its sweeps
        need to recompute it: a record of the plan (codegen.checkpoints)."""
        code, body = self.code, node.value[0]
        k, count = self._interval(body.checkpoint, steps, self.intervals[loop_key(node)])
        arrays = []
        for part in body.carries:
            with code.at_start():  # (a row more: the final carry, where every carry is kept)
                size = code.integer("mul", code.integer("add", count, "1"),
                                    code.size(part.shape))
            arrays.append(code.allocate(size))
        return {"k": k, "count": count, "steps": steps, "checkpoints": arrays, "body": body,
                "args": node.args}

    def _interval(self, policy, steps: str, carries) -> tuple[str, str]:
        """(k, the number of checkpoints) as i64 values of the prologue, decided on
        ``carries`` (codegen.checkpoints.interval_carries)."""
        code = self.code
        static = static_interval(policy, int(steps), carries) if steps.isdigit() else None
        with code.at_start():
            if static is not None:
                k = str(static)
            elif isinstance(policy, int):
                k = code.extreme("smax", "1", code.extreme("smin", str(policy), steps))
            else:
                k = self._root(steps)
                if policy == "auto":  # every carry while they take at most 16 MB
                    size = "0"
                    for part in carries:
                        size = code.integer("add", size, code.size(part.shape))
                    stored = code.integer("mul", code.integer("mul", steps, size), "8")
                    small, chosen = code.compare("sle", stored, str(AUTO_STORE_BYTES)), code.fresh()
                    code.lines.append(f"{chosen} = select i1 {small}, i64 1, i64 {k}")
                    k = chosen
            count = code.integer("sdiv", code.integer("sub", code.integer("add", steps, k), "1"),
                                 k)
        return k, count

    def _root(self, steps: str) -> str:
        """max(1, ceil(sqrt(steps))) as i64."""
        code = self.code
        self.declarations |= {_SQRT, _CEIL}
        real, root, up, whole = code.fresh(), code.fresh(), code.fresh(), code.fresh()
        code.lines += [f"{real} = sitofp i64 {steps} to double",
                       f"{root} = call double @llvm.sqrt.f64(double {real})",
                       f"{up} = call double @llvm.ceil.f64(double {root})",
                       f"{whole} = fptosi double {up} to i64"]
        return code.extreme("smax", "1", whole)

    def keep_final(self, record: dict | None) -> None:
        """After a forward loop that keeps every carry (k = 1, known now or at run time):
        the final carry into the row after the last checkpoint, so that each sweep step
        finds the carries before and after it as two consecutive rows (_segment_rows).
        Nothing for a loop without checkpoints (``record`` None)."""
        if record is None:
            return
        code, body, k = self.code, record["body"], record["k"]
        if body.reverse or (k.isdigit() and k != "1"):
            return
        with code.when(code.compare("eq", k, "1")):
            for part, array in zip(body.carries, record["checkpoints"], strict=True):
                self._store_part(part, array, record["count"])

    def keep_checkpoint(self, record: dict, current, s: str) -> None:
        """At step ``s`` of a checkpointed loop: the carry entering a segment (segments of
        k steps from step 0; a reverse loop enters a segment at its last step) into its
        checkpoint."""
        code, body, k = self.code, record["body"], record["k"]
        if body.reverse:
            ends = code.compare("eq", code.integer("srem", code.integer("add", s, "1"), k), "0")
            last = code.compare("eq", s, code.integer("sub", record["steps"], "1"))
            entering = code.fresh()
            code.lines.append(f"{entering} = or i1 {ends}, {last}")
        else:
            entering = code.compare("eq", code.integer("srem", s, k), "0")
        with code.when(entering):
            row = code.integer("sdiv", s, k)
            for part, array in zip(body.carries, record["checkpoints"], strict=True):
                self._store_part(part, array, row)

    def segmented(self, body, operands, read: list, plan: dict, step) -> None:
        """The steps of a sweep over the loops ``read`` (keys of ``plan``) segment by
        segment in its own order, each segment's carries of those loops recomputed into
        buffers first; ``step(s, slots)`` writes step s with the scanned rows in
        ``slots``."""
        code = self.code
        records = [plan[key] for key in read]
        k, count, steps = records[0]["k"], records[0]["count"], records[0]["steps"]
        made, nexts = [], []
        for key, record in zip(read, records, strict=True):
            nexts.append(any(a.op == "scan" and loop_key(a) == key and a.value[1][0] == "nexts"
                             for a in operands))
            rows = []
            for part in record["body"].carries:
                with code.at_start():
                    size = code.integer("mul", code.integer("add", k, "1"), code.size(part.shape))
                rows.append(code.allocate(size))
            made.append(rows)
        with code.loop(count, unroll=False) as i:
            g = code.backwards(i, "0", count) if body.reverse else i
            lo = code.integer("mul", g, k)
            hi = code.extreme("smin", code.integer("add", lo, k), steps)
            buffers = [self._segment_rows(record, rows, after, g, lo, hi)
                       for record, rows, after in zip(records, made, nexts, strict=True)]
            with code.loop(hi, start=lo, unroll=False) as j:
                s = code.backwards(j, lo, hi) if body.reverse else j
                slots = {}
                for pos, operand in enumerate(operands):
                    if operand.op != "scan" or loop_key(operand) not in read:
                        continue
                    n = read.index(loop_key(operand))
                    source, (kind, part_index) = records[n]["body"], operand.value[1]
                    # A reverse loop's buffer starts with the carry after its segment's
                    # last step; a forward loop's ends with it.
                    shift = int((kind == "nexts") != source.reverse) if nexts[n] else 0
                    row = code.integer("add", code.integer("sub", s, lo), str(shift))
                    part = source.carries[part_index]
                    slots[pos] = View(buffers[n][part_index],
                                      code.integer("mul", row, code.size(part.shape)),
                                      c_strides(code, part.shape), True)
                step(s, slots)

    def _segment_rows(self, record: dict, rows: list, nexts: bool, g: str, lo: str,
                      hi: str) -> list[str]:
        """Where segment ``g``'s carries are, per carry part: for a forward loop that kept
        every carry (k = 1) its checkpoint rows g and g + 1 themselves (keep_final), with
        no recomputation and no copy; else ``rows``, recomputed (k known at run time
        only: a branch chooses)."""
        code, k = self.code, record["k"]
        if record["body"].reverse or (k.isdigit() and k != "1"):
            self._recompute(record, rows, nexts, g, lo, hi)
            return rows
        kept = [code.at(array, code.integer("mul", g, code.size(part.shape)))
                for part, array in zip(record["body"].carries, record["checkpoints"],
                                       strict=True)]
        if k == "1":
            return kept
        every = code.compare("eq", k, "1")
        recompute = code.fresh()
        code.lines.append(f"{recompute} = xor i1 {every}, true")
        with code.when(recompute):
            self._recompute(record, rows, nexts, g, lo, hi)
        chosen = []
        for own, row in zip(rows, kept, strict=True):
            chosen.append(code.fresh())
            code.lines.append(f"{chosen[-1]} = select i1 {every}, ptr {row}, ptr {own}")
        return chosen

    def _recompute(self, record: dict, rows: list, nexts: bool, g: str, lo: str, hi: str):
        """The carries of segment ``g`` (steps lo..hi-1) of a checkpointed loop into
        ``rows`` (per carry part, k + 1 rows), from the segment's checkpoint; with
        ``nexts`` the carry after the segment too."""
        code, source, operands = self.code, record["body"], record["args"]
        c, x = loop_parts(source)
        with self.scope(body_roots(source)), self.bindings():
            variant = self._bind_invariants(source, operands[c + x:])
            storage = self._carry_storage(source, None)
            for part, slots, array in zip(source.carries, storage, record["checkpoints"],
                                          strict=True):
                self._copy_row(array, g, part.shape, slots)
            with code.loop(hi, start=lo, unroll=False) as i:
                r = code.backwards(i, lo, hi) if source.reverse else i
                current = self._load_carries(source, storage)
                at = code.integer("sub", r, lo)
                at = code.integer("add", at, "1") if nexts and source.reverse else at
                for part, buffer in zip(source.carries, rows, strict=True):
                    self._store_part(part, buffer, at)
                last = lo if source.reverse else code.integer("sub", hi, "1")
                with code.when(code.compare("ne", r, last)):
                    self._bind_slices(source, operands[c:c + x], r, {})
                    targets = self._emit_step(source, storage, variant)
                    self._next_carries(source, storage, current, targets)
        if not nexts:
            return
        # The carry after the segment: the next segment's checkpoint, or the final carry.
        end = "0" if source.reverse else code.integer("sub", hi, lo)
        following = code.integer("sub" if source.reverse else "add", g, "1")
        exists = (code.compare("sgt", g, "0") if source.reverse
                  else code.compare("slt", following, record["count"]))
        absent = code.fresh()
        code.lines.append(f"{absent} = xor i1 {exists}, true")
        with code.when(exists):
            for part, array, buffer in zip(source.carries, record["checkpoints"], rows,
                                           strict=True):
                self._copy_between(array, following, buffer, end, part.shape)
        with code.when(absent):
            for part, value, buffer in zip(source.carries, record["final"], rows, strict=True):
                if not part.shape:
                    code.write(value, buffer, end)
                else:
                    self._copy_between(value, "0", buffer, end, part.shape)

    def _copy_row(self, array: str, row: str, shape, slots) -> None:
        """Row ``row`` of ``array`` (rows of ``shape``) into a carry part's storage."""
        code = self.code
        if not shape:
            code.write(code.read(array, row), slots[0])
        else:
            self._copy_between(array, row, self.pointer(slots[0]), "0", shape)

    def _copy_between(self, source: str, row: str, target: str, target_row: str,
                      shape) -> None:
        """Row ``row`` of ``source`` into row ``target_row`` of ``target`` (rows of
        ``shape``)."""
        code = self.code
        size = code.size(shape)
        start = code.integer("mul", row, size)
        destination = code.integer("mul", target_row, size)
        with code.loop(size) as i:
            value = code.read(source, code.integer("add", start, i))
            code.write(value, target, code.integer("add", destination, i))
