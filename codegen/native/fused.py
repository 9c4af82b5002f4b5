"""Several materialized elementwise arrays of one shape computed in one native loop
(mixin of codegen.native.arrays.ArrayBody), as the Numba lowering's fused loops
(codegen.numba.fused): consecutive roots of the schedule that iterate over the same
shape share a loop; within it a root is a register for the roots after it, and its
array is written only if something outside the loop reads it.

Roots whose element calls an opaque C math function (sin, log, ...) keep their own loop:
the call stops LLVM from vectorizing the whole loop.
"""

from __future__ import annotations

import re

from symdiff.ir.nodes import OPS, Expr

from ..llvm.elements import ELEMENTS
from ..naming import unrolled_power
from ..schedule import REDUCTIONS, iteration_shape
from .loop_math import LOOP
from .views import ALIASES, position, whole

# The most nodes a shared producer (with its own fused producers) may hold to be
# computed again in each of its readers, and the most loops it is computed in when they
# are loops of their own (see ``share``).
SHARED_NODES = 8
RECOMPUTED_LOOPS = 3


def _streams(members: list[Expr]) -> set[Expr]:
    """The arrays the fused ``members`` read (their operands outside the group)."""
    inside = set(members)
    return {a for m in members for a in m.args if a.shape and a not in inside}

# LLVM intrinsics that stay vector instructions (the rest of the calls are opaque).
VECTORIZED = ("llvm.fabs.f64", "llvm.sqrt.f64", "llvm.copysign.f64", "llvm.fmuladd.f64",
              "llvm.maxnum.f64", "llvm.minnum.f64")


def opaque(node: Expr) -> bool:
    """Whether the element of ``node`` in a loop calls a C math function."""
    if node.op in LOOP or node.op not in ELEMENTS or (
            node.op == "pow" and unrolled_power(node.args[1]) is not None):
        return False  # arithmetic, a gather
    template, helper = ELEMENTS[node.op]
    called = re.findall(r"@([\w.]+)\(", template + (helper or ""))
    return any(not name.startswith("_sd_") and name not in VECTORIZED for name in called)


class FusedLoops:
    """Mixin: ``groups`` of roots and the loop of a group."""

    def groupable(self, node: Expr) -> bool:
        """An elementwise array root computed by a loop of its own, with no opaque call."""
        if not node.shape or not OPS[node.op].elementwise or node.op in ALIASES:
            return False
        # (Embeds inlined into a root cut its loop into pieces of its own.)
        return not any(opaque(m) or m.op == "embed" for m in [node, *self.members(node)])

    def share(self) -> None:
        """Cheap elementwise producers read by several nodes that all end in one loop are
        computed in that loop at each place they are read (a stencil's shifted terms, an
        adjoint read as it is and shifted): no array is written and read back, for a few
        arithmetic instructions more."""
        root = {}
        for node in reversed(self.order):
            users = self.consumers.get(node, [])
            if node in self.inlined:
                root[node] = root[users[0]]
                continue
            root[node] = node
            if (len(users) < 2 or node in self.results or not node.shape
                    or not OPS[node.op].elementwise or node.op in ALIASES):
                continue
            ends = {root[u] for u in users}
            members = [node, *self.members(node)]
            # (No embed: its loop's pieces were settled already, see settle_embeds.)
            if (len(members) > SHARED_NODES
                    or any(m.op in LOOP or m.op == "embed" or opaque(m) for m in members)
                    or not all(((OPS[u.op].elementwise and u.op not in ALIASES)
                                or u.op in REDUCTIONS)
                               and iteration_shape(u) == node.shape for u in users)):
                continue
            if len(ends) == 1:
                self.inlined.add(node)
                root[node] = ends.pop()
            elif len(ends) <= RECOMPUTED_LOOPS and len(_streams(members)) <= 2:
                # Read by a few loops of its own: each computes it from at most two
                # arrays rather than reading an array written once (a broadcast
                # difference of k-means, (n, k, d), was a 64 MB array).
                self.inlined.add(node)
                self.recomputed.add(node)

    def hoist(self, variant: set[Expr]) -> None:
        """Producers that do not vary but are fused into a consumer that does (per
        direction, per step) become arrays of their own, computed once before the loop,
        where their element calls a transcendental or opaque function: the loop would
        compute it again on every pass."""
        for node in [n for n in self.order if n in self.inlined and n not in variant]:
            users = self.consumers.get(node, [])
            if users and users[0] in variant and any(
                    m.op in LOOP or opaque(m) for m in [node, *self.members(node)]):
                self.inlined.discard(node)

    def joins(self, node: Expr, group: list[Expr], inside: set[Expr]) -> bool:
        """Whether ``node`` can be computed in the loop of ``group`` (whose roots and fused
        producers are ``inside``): same shape, and no member read at another position.
        Views and aliases are roots of their own, never groupable, so one between a
        member and its reader has ended the group already; only a fused gather (a take)
        can read a member elsewhere."""
        if node.shape != group[0].shape or not self.groupable(node):
            return False
        return not any(m.op == "take" and m.args[0] in inside
                       for m in [node, *self.members(node)])

    def emit_all(self, order: list[Expr]) -> None:
        """Emit ``order`` (the nodes to compute), consecutive groupable roots together."""
        k = 0
        while k < len(order):
            node = order[k]
            k += 1
            if self.groupable(node):
                group, inside = [node], {node, *self.members(node)}
                while k < len(order) and self.joins(order[k], group, inside):
                    group.append(order[k])
                    inside.update([order[k], *self.members(order[k])])
                    k += 1
                if len(group) > 1:
                    self.fused_loop(group, inside)
                    continue
            self.emit_node(node)

    def fused_loop(self, group: list[Expr], inside: set[Expr]) -> None:
        """One loop computing every root of ``group``, storing the ones read elsewhere
        (outside the loop, or by a producer ``share`` computes in other loops too)."""
        shape, code = group[0].shape, self.code
        # Read outside the loop, or by a producer computed in other loops too: one that
        # share recomputes, or a fused producer of one (computed wherever it is).
        elsewhere = set(self.recomputed).union(
            *(self.members(r) for r in self.recomputed))
        stored = {root: self.buffer(root) for root in group
                  if root in self.results or any(u not in inside or u in elsewhere
                                                 for u in self.consumers.get(root, []))}
        with code.nest(shape) as indices:
            local: dict[Expr, str] = {}
            for root in group:
                value = self.loop_value(root, shape, indices, local)
                if root in stored:
                    target = whole(code, stored[root], shape)
                    code.write(value, target.base, position(code, target, shape, shape,
                                                            indices))
        for root, pointer in stored.items():
            self.views[root] = whole(code, pointer, shape)
