"""The Numba lowering of loops (``sd.scan``, ``sd.while_loop``): the array emitter's
entries for the loop ops (``LOOP_EMITTERS``).

A scan is one ``for`` loop in the generated code around a call of its body, and the body
one more njit function of the module (emitted once, whatever the trip count: the
functions a body becomes are codegen.bodies').  All outputs of one loop (final carries,
stacked per-step outputs, stacked carries) that a function uses come from the same loop;
a reverse sweep over checkpointed carries runs segment by segment.
"""

from __future__ import annotations

from symdiff.control.while_loops import limit_message
from symdiff.ir.nodes import Expr

from ..checkpoints import (
    AUTO_STORE_BYTES,
    STACKED_CARRIES,
    checkpointed,
    loop_key,
    loop_parts,
    sources,
    static_interval,
)
from ..naming import extent, literal


def emit_while(emitter, node: Expr) -> None:
    """Lines of a while loop computing ``node`` and the loop's other carry parts."""
    body = node.value[0]
    name = emitter.body_name(body)
    c = len(body.carries)
    operands = [emitter.operand(a) for a in node.args]
    carry = [emitter.new_name() for _ in range(c)]
    result = emitter.new_name()
    arguments = ", ".join(carry + operands[c:])
    lines = [f"{n} = {v}" + (".copy()" if part.shape else "")  # one signature: see scan
             for n, v, part in zip(carry, operands[:c], body.carries, strict=True)]
    steps = emitter.new_name() if body.limit is not None else None
    if steps is not None:  # a way out (while_loop(..., limit=N)), as the evaluator says it
        lines.append(f"{steps} = 0")
    lines.append(f"while {name.replace('_sd_while_', '_sd_cond_')}({arguments}) != 0.0:")
    if steps is not None:
        lines += [f"    {steps} += 1", f"    if {steps} > {body.limit}:",
                  f"        raise RuntimeError({limit_message(body.limit)!r})"]
    lines.append(f"    {result} = {name}({arguments})")
    lines += [f"    {n} = {result}[{k}]" for k, n in enumerate(carry)]
    emitter.lines += lines
    for n in emitter.order:
        if n.op == "while" and n.args == node.args and n.value[0] is body:
            emitter.names[n] = carry[n.value[1]]


def _plan(emitter) -> dict:
    """The loops of this function whose stacked carries are checkpointed, by (body,
    operands) (codegen.checkpoints.checkpointed); each gets its record once emitted."""
    plan = getattr(emitter, "loop_plan", None)
    if plan is None:
        chosen = checkpointed(emitter.order, emitter.consumers, emitter.outputs)
        emitter.interval_carries = chosen
        plan = emitter.loop_plan = dict.fromkeys(chosen)
    return plan


def _segment_length(policy, steps: str, carry) -> str:
    """The checkpoint interval for a loop of ``steps``: a number when the trip count and
    the carry's shapes are static (resolved here), else the generated expression."""
    if steps.isdigit():
        interval = static_interval(policy, int(steps), carry)
        if interval is not None:
            return str(interval)
    if isinstance(policy, int):
        return f"max(1, min({policy}, {steps}))"
    root = f"max(1, int(math.ceil(math.sqrt({steps}))))"
    if policy == "sqrt":
        return root
    size = " + ".join("*".join(["8"] + [extent(d) for d in p.shape]) for p in carry) or "0"
    return f"1 if {steps} * ({size}) <= {AUTO_STORE_BYTES} else {root}"


def _plus(count: str, n: int) -> str:
    """``count + n`` as code: a number when ``count`` is one."""
    if count.isdigit():
        return str(int(count) + n)
    return f"{count} + {n}" if n >= 0 else f"{count} - {-n}"


def _shape(dims: list[str]) -> str:
    """A shape tuple as code."""
    return f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(dims)})"


def _store(target: str, index: str, value: str, shape: tuple,
           row: str | None = None) -> list[str]:
    """``target[index] = value`` (``value[row]`` if given) for a part of ``shape``, as
    element loops: an array assignment makes Numba compile its shape-mismatch message
    (about 2 s of string formatting code per process)."""
    if not shape:
        return [f"{target}[{index}] = {value}" + (f"[{row}]" if row else "")]
    axes = ["0" if d == 1 else f"_q{k}" for k, d in enumerate(shape)]  # no loop of 1
    bounds = [str(d) if isinstance(d, int) else f"{target}.shape[{k + 1}]"
              for k, d in enumerate(shape) if d != 1]
    loops = [q for q in axes if q != "0"]
    lines = ["    " * k + f"for {q} in range({bound}):"
             for k, (q, bound) in enumerate(zip(loops, bounds, strict=True))]
    source = ", ".join(([row] if row else []) + axes)
    lines.append("    " * len(loops) + f"{target}[{index}, {', '.join(axes)}] = {value}[{source}]")
    return lines


class _Step:
    """The call of one loop's body at step ``index`` and what the loop keeps of it."""

    def __init__(self, emitter, body, args, slots=None):
        self.emitter = emitter
        self.body = body
        # Scanned operands may be recomputed into segment buffers: ``slots`` gives those,
        # as element expressions of the step index ``{i}``.
        self.slots = slots or {}
        # A constant array scanned only to count the steps (fori_loop's) is no array:
        # each step gets the constant (ArrayEmitter.filled).
        self.fills = {k: literal(a.args[0].value) for k, a in enumerate(args)
                      if a in emitter.filled}
        self.operands = [None if k in self.slots or k in self.fills else emitter.operand(a)
                         for k, a in enumerate(args)]
        self.carry = [emitter.new_name() for _ in body.carries]
        self.stacked: dict[Expr, str] = {}
        self.shift: dict[Expr, str] = {}  # index offsets of stacked outputs

    def call(self, index: str) -> list[str]:
        c, x = loop_parts(self.body)
        result = self.emitter.new_name()
        scanned = [self.slots[c + k].format(i=index) if c + k in self.slots
                   else self.fills[c + k] if c + k in self.fills
                   else f"{self.operands[c + k]}[{index}]" for k in range(x)]
        arguments = self.carry + scanned + self.operands[c + x:]
        body = self.body

        def stores(kind: str) -> list[str]:
            out = []
            for n, name in self.stacked.items():
                j = n.value[1][1]
                if n.value[1][0] == kind == "ys":
                    out += _store(name, index, f"{result}[{c + j}]", body.ys[j].shape)
                elif n.value[1][0] == kind:
                    out += _store(name, index + self.shift.get(n, ""), self.carry[j],
                                  body.carries[j].shape)
            return out

        lines = stores("carries")
        lines.append(f"{result} = {self.emitter.body_name(body)}({', '.join(arguments)})")
        lines += stores("ys")
        lines += [f"{name} = {result}[{k}]" for k, name in enumerate(self.carry)]
        return lines + stores("nexts")


def emit_scan(emitter, node: Expr) -> None:
    """Lines of the loop computing ``node`` and every other output of the same loop that
    the function uses (``emitter`` is a codegen.numba.arrays.ArrayEmitter).  A reverse
    sweep over checkpointed carries runs segment by segment, recomputing each segment's
    carries from its checkpoint first."""
    plan = _plan(emitter)
    key = loop_key(node)
    body = node.value[0]
    group = [n for n in emitter.order if n.op == "scan" and loop_key(n) == key]
    c, _ = loop_parts(body)
    read = [s for s in sources(node, plan) if plan[s] is not None]
    lines, slots, buffers = _segment_buffers(emitter, node, plan, read)
    step = _Step(emitter, body, node.args, slots)
    if read:
        steps, k, count = (plan[read[0]][name] for name in ("steps", "k", "count"))
    elif emitter.length(node.args[c]) is not None:  # a number, or from _nb
        steps = emitter.length(node.args[c])
    else:
        steps = emitter.new_name()
        lines.append(f"{steps} = {step.operands[c]}.shape[0]")
    # Array carries start as copies: C-contiguous and writable like every later carry, so
    # the body compiles for one signature (a constant or a strided argument is another).
    lines += [f"{name} = {value}" + (".copy()" if part.shape else "") for name, value, part
              in zip(step.carry, step.operands[:c], body.carries, strict=True)]
    checkpointed = key in plan
    both, more = _stacked_outputs(emitter, step, group, steps, checkpointed)
    lines += more
    if checkpointed:
        lines += _checkpoint_arrays(emitter, plan, key, steps, body)
        plan[key]["final"] = step.carry  # hold the final carry once the loop has run
    if read:
        lines += _segmented_loop(step, plan.get(key), steps, k, count, buffers)
    else:
        order = f"range({_plus(steps, -1)}, -1, -1)" if body.reverse else f"range({steps})"
        lines.append(f"for _s in {order}:")
        lines += ["    " + line for line in _keep_checkpoint(plan.get(key), body, step, "_s")]
        lines += ["    " + line for line in step.call("_s")]
    views, more = _carry_views(emitter, step, group, both, steps)
    emitter.lines += lines + more
    for n in group:
        kind, j = n.value[1]
        if kind == "carry":
            emitter.names[n] = step.carry[j]
        elif n in views:
            emitter.names[n] = views[n]
        elif n in step.stacked:
            emitter.names[n] = step.stacked[n]
        else:  # read only through the checkpoints, by the sweeps that recompute it
            emitter.names[n] = plan[key]["checkpoints"][j]


def _segment_buffers(emitter, node: Expr, plan: dict, keys: list):
    """(lines, slots, buffers) of a reverse sweep reading checkpointed loops ``keys``:
    one buffer per source for a segment's carries, and the slots of the scanned operands
    that read them."""
    c, x = loop_parts(node.value[0])
    slots, buffers, lines = {}, [], []
    if not keys:
        return lines, slots, buffers
    k = plan[keys[0]]["k"]
    read = [a for a in node.args[c:c + x] if a.op == "scan" and loop_key(a) in keys]
    for source in keys:
        record = plan[source]
        # The carries of a segment before each step; if the sweep reads the carries
        # after each step too, one more: they are the same carries shifted by one.
        nexts = any(loop_key(a) == source and a.value[1][0] == "nexts" for a in read)
        names = [emitter.new_name() for _ in record["shapes"]]
        buffers.append((record, names, nexts))
        size = _plus(k, 1) if nexts else k
        lines += [f"{b} = np.empty({_shape([size] + [extent(d) for d in shape])})"
                  for b, shape in zip(names, record["shapes"], strict=True)]
    for pos, a in enumerate(node.args[c:c + x], start=c):
        if a.op == "scan" and loop_key(a) in keys:
            record, names, nexts = buffers[keys.index(loop_key(a))]
            # A reverse loop's buffer starts with the carry after its segment's last
            # step; a forward loop's ends with it.
            after = a.value[1][0] == "nexts"
            shift = 0 if not nexts else int(after != record["body"].reverse)
            slots[pos] = f"{names[a.value[1][1]]}[{{i}} - _lo{' + 1' * shift}]"
    return lines, slots, buffers


def _stacked_outputs(emitter, step, group: list, steps: str, checkpointed: bool):
    """({j: node} of carries stacked before and after every step, both used: one array of
    T + 1 seen through two views, memory for one; the lines allocating the stacked
    outputs of the loop)."""
    body = step.body
    kinds = {(n.value[1][0], n.value[1][1]): n for n in group}
    both = {j: kinds["carries", j] for kind, j in kinds
            if kind == "nexts" and ("carries", j) in kinds and not checkpointed}
    lines = []
    for n in group:
        kind, j = n.value[1]
        if not (kind == "ys" or (kind in STACKED_CARRIES and not checkpointed)):
            continue
        if kind == "nexts" and j in both:
            continue
        part = body.ys[j] if kind == "ys" else body.carries[j]
        step.stacked[n] = emitter.new_name()
        length = _plus(steps, 1) if kind == "carries" and j in both else steps
        shape = _shape([length] + [extent(d) for d in part.shape])
        lines.append(f"{step.stacked[n]} = np.empty({shape})")
        if kind == "carries" and j in both and body.reverse:
            step.shift[n] = " + 1"  # a reverse loop's carry after step t: entry t
    return both, lines


def _carry_views(emitter, step, group: list, both: dict, steps: str):
    """The two views (before and after each step) of each carry stacked once (see
    _stacked_outputs), by node, and the lines making them."""
    body = step.body
    nexts = {n.value[1][1]: n for n in group if n.value[1][0] == "nexts"}
    views, lines = {}, []
    for j, n in both.items():
        whole, end = step.stacked[n], "0" if body.reverse else steps
        lines += _store(whole, end, step.carry[j], body.carries[j].shape)
        views[n], views[nexts[j]] = emitter.new_name(), emitter.new_name()
        early, late = f"{whole}[:{steps}]", f"{whole}[1:]"
        before, after = (late, early) if body.reverse else (early, late)
        lines += [f"{views[n]} = {before}", f"{views[nexts[j]]} = {after}"]
    return views, lines


def _checkpoint_arrays(emitter, plan, key, steps, body) -> list[str]:
    """Allocate a loop's checkpoints and record them in ``plan`` for its sweeps."""
    length = _segment_length(body.checkpoint, steps, emitter.interval_carries[key])
    if length.isdigit():  # static: numbers in the code, not variables
        k, count, lines = length, str((int(steps) + int(length) - 1) // int(length)), []
    else:
        k, count = emitter.new_name(), emitter.new_name()
        lines = [f"{k} = {length}", f"{count} = ({steps} + {k} - 1) // {k}"]
    names = [emitter.new_name() for _ in body.carries]
    plan[key] = {"steps": steps, "k": k, "count": count, "checkpoints": names,
                 "shapes": [p.shape for p in body.carries], "args": key[1], "body": body,
                 "final": None}
    lines += [f"{n} = np.empty({_shape([count] + [extent(d) for d in p.shape])})"
              for n, p in zip(names, body.carries, strict=True)]
    return lines


def _keep_checkpoint(record, body, step, index: str) -> list[str]:
    """Store the carry entering each segment (segments of k steps from step 0; a reverse
    loop enters a segment at its last step)."""
    if record is None:
        return []
    k, steps = record["k"], record["steps"]
    entering = (f"{index} % {k} == 0" if not body.reverse
                else f"({index} + 1) % {k} == 0 or {index} == {_plus(steps, -1)}")
    lines = [f"if {entering}:"]
    for ck, carry, part in zip(record["checkpoints"], step.carry, body.carries, strict=True):
        lines += ["    " + line for line in _store(ck, f"{index} // {k}", carry, part.shape)]
    return lines


def _segmented_loop(step, record, steps, k, count, buffers) -> list[str]:
    """A sweep over segments in its own order: each segment's carries of every source
    loop are recomputed into buffers from the segment's checkpoint, then its steps run
    (``record``: the sweep's own checkpoints, if a later sweep recomputes it in turn)."""
    body = step.body
    segments = f"range({_plus(count, -1)}, -1, -1)" if body.reverse else f"range({count})"
    lines = [f"for _g in {segments}:", f"    _lo = _g * {k}", f"    _hi = min(_lo + {k}, {steps})"]
    for source_record, buffer, nexts in buffers:
        forward = source_record["body"]
        source = _Step(step.emitter, forward, source_record["args"])
        checkpoints = source_record["checkpoints"]
        lines += [f"    {name} = {ck}[_g]" for name, ck in
                  zip(source.carry, checkpoints, strict=True)]
        order, last = (("range(_hi - 1, _lo - 1, -1)", "_lo") if forward.reverse
                       else ("range(_lo, _hi)", "_hi - 1"))
        at = "_r - _lo + 1" if nexts and forward.reverse else "_r - _lo"
        shapes = source_record["shapes"]
        lines.append(f"    for _r in {order}:")
        for b, carry, shape in zip(buffer, source.carry, shapes, strict=True):
            lines += ["        " + line for line in _store(b, at, carry, shape)]
        lines.append(f"        if _r != {last}:")
        lines += ["            " + line for line in source.call("_r")]
        if nexts:  # the carry after the segment: the next segment's checkpoint, or the end
            end, following, exists = (("0", "_g - 1", "_g > 0") if forward.reverse else
                                      ("_hi - _lo", "_g + 1", f"_g + 1 < {count}"))
            lines.append(f"    if {exists}:")
            for b, ck, shape in zip(buffer, checkpoints, shapes, strict=True):
                lines += ["        " + line for line in _store(b, end, ck, shape, following)]
            lines.append("    else:")
            for b, final, shape in zip(buffer, source_record["final"], shapes, strict=True):
                lines += ["        " + line for line in _store(b, end, final, shape)]
    order = ("range(_hi - 1, _lo - 1, -1)" if body.reverse else "range(_lo, _hi)")
    lines.append(f"    for _s in {order}:")
    lines += ["        " + line for line in _keep_checkpoint(record, body, step, "_s")]
    lines += ["        " + line for line in step.call("_s")]
    return lines


# Each loop op's emission, for the array emitter's dispatch.
LOOP_EMITTERS = {"scan": emit_scan, "while": emit_while}
