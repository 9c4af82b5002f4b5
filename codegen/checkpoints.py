"""Which loops keep every carry for their reverse sweeps and which keep checkpoints: the
policy of ``sd.scan(checkpoint=...)``, the same for every lowering (codegen.numba.loops
and codegen.native.segments write the segmented sweeps).

A loop's stacked carries (the outputs ``("carries", j)`` and ``("nexts", j)``) are
checkpointed when only reverse sweeps read them: the sweep then recomputes them segment
by segment from every k-th carry instead of reading all T of them."""

from __future__ import annotations

import math

from symdiff.ir.nodes import Expr

# "auto" stores every carry while they take at most this many bytes, else checkpoints
# every ceil(sqrt(T)) steps.  Measured (python -m benchmarks.loops --memory): the
# recomputation makes a gradient 23-52% slower (RNN of 64 states, T = 10^3..10^5; RK4),
# and saves what the carries take: 48.5 of 49 MB at T = 10^5.  Below 16 MB the time
# matters more; above, the memory.
AUTO_STORE_BYTES = 1 << 24

# Outputs of a loop holding its carries at every step: before it, after it.
STACKED_CARRIES = ("carries", "nexts")


def loop_key(node: Expr) -> tuple:
    """What makes outputs of one loop: its body and operands."""
    return node.value[0], node.args


def loop_parts(body) -> tuple[int, int]:
    """(carry parts, scanned arrays) of a loop body."""
    return len(body.carries), len(body.xs)


def static_interval(policy, steps: int, carries) -> int | None:
    """The checkpoint interval of a loop of ``steps`` steps under ``policy`` when the
    carries' shapes are static (1: every carry stored), else None (decided at run time)."""
    if not all(isinstance(d, int) for p in carries for d in p.shape):
        return None
    root = max(1, math.ceil(math.sqrt(steps)))
    if isinstance(policy, int):
        return max(1, min(policy, steps))
    stored = steps * sum(8 * math.prod(p.shape) for p in carries)
    return root if policy == "sqrt" or stored > AUTO_STORE_BYTES else 1


def _degenerate(node: Expr) -> bool:
    """Whether the checkpoints of a static loop would be degenerate: an interval of one
    step (every carry a checkpoint) or one segment (the sweep recomputes every carry
    before its first step).  Storing every carry then takes no more memory, and the
    sweep reads them without segments."""
    body = node.value[0]
    steps = node.args[len(body.carries)].shape[0]
    if not isinstance(steps, int):
        return False
    length = static_interval(body.checkpoint, steps, body.carries)
    return length is not None and (length == 1 or length >= steps)


def sources(node: Expr, chosen) -> list[tuple]:
    """The checkpointed loops (keys among ``chosen``) whose stacked carries ``node``'s
    loop scans."""
    c, x = loop_parts(node.value[0])
    keys = [loop_key(a) for a in node.args[c:c + x] if a.op == "scan"
            and a.value[1][0] in STACKED_CARRIES]
    return list(dict.fromkeys(k for k in keys if k in chosen))


def checkpointed(order: list[Expr], consumers: dict, outputs) -> dict[tuple, tuple]:
    """The loops of a graph (``order``, its ``consumers``, its ``outputs``) whose stacked
    carries are checkpointed: those read only as scanned arrays of loops running the
    other way (reverse sweeps, which then recompute them segment by segment), not
    outputs, not ``checkpoint="all"``, not degenerate; by key, in the loops' order, each
    with the carry parts its interval is decided on (``interval_carries``)."""
    outputs = set(outputs)

    def recomputable(n: Expr) -> bool:
        forward = n.value[0]
        if n in outputs or forward.checkpoint == "all":
            return False
        for user in consumers.get(n, []):
            if user.op != "scan" or user.value[0].reverse == forward.reverse:
                return False
            c, x = loop_parts(user.value[0])
            if any(a is n for a in user.args[:c] + user.args[c + x:]):
                return False
        return True

    stacked: dict[tuple, list] = {}
    for n in order:
        if n.op == "scan" and n.value[1][0] in STACKED_CARRIES:
            stacked.setdefault(loop_key(n), []).append(n)
    chosen = {key for key, nodes in stacked.items()
              if all(map(recomputable, nodes)) and not _degenerate(nodes[0])}
    # A sweep's segments are those of every loop it recomputes: one policy among them.
    changed = True
    while changed:
        changed = False
        for n in order:
            if n.op != "scan":
                continue
            found = sources(n, chosen)
            if len({key[0].checkpoint for key in found}) > 1:
                chosen -= set(found)
                changed = True
    # In the loops' order: sets of keys (loop bodies, hashed by node identity) iterate in
    # another order in every process.
    kept = [key for key in stacked if key in chosen]
    return {key: interval_carries(key, kept, order) for key in kept}


def interval_carries(key: tuple, kept: list, order: list[Expr]) -> tuple:
    """The carry parts that decide a checkpointed loop's interval: those of every loop
    a sweep reads together with it (transitively), since one sweep runs the segments of
    all the loops it reads with one interval.  ("auto" compares what they take together
    with AUTO_STORE_BYTES; the other policies depend on the trip count alone.)"""
    group, changed = {key}, True
    while changed:
        changed = False
        for n in order:
            if n.op == "scan":
                read = set(sources(n, kept))
                if read & group and not read <= group:
                    group |= read
                    changed = True
    return tuple(p for k in kept if k in group for p in k[0].carries)
