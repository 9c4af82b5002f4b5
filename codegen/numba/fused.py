"""Several materialized elementwise arrays of one shape computed in one loop.

The array emitter gives each materialized node its loop (codegen.numba.arrays).  A chain
such as the stages of an RK4 step, each used twice, then became one pass over memory
per stage, and its reverse sweep 17 passes: 4.1x the forward pass on 10^5 states.  Here
consecutive roots of the schedule that iterate over the same shape share one loop;
within it a root is a local scalar for the roots after it, and its array is written only
if something outside the loop reads it (an output, a reduction, a product, a slice).

Roots whose element calls an opaque C math function (sin, log, ...) keep their own
loop: such a call stops LLVM from vectorizing the whole loop, which would slow down the
arithmetic fused beside it more than the saved pass over memory gains.
"""

from __future__ import annotations

from symdiff.ir.nodes import OPS, Expr

from ..schedule import fused_members
from .elements import SCALAR, element
from .indexing import loop_indices, shape_text

# Math functions that are LLVM intrinsics LLVM vectorizes (the rest are opaque calls).
VECTORIZED_MATH = ("math.fabs(", "math.sqrt(", "math.copysign(", "math.inf", "math.nan")


def opaque(node: Expr) -> bool:
    """Whether the element of ``node`` in a loop calls a C math function."""
    if node.op not in SCALAR:
        return True
    text = element(node.op, in_loop=True).template
    for allowed in VECTORIZED_MATH:
        text = text.replace(allowed, "")
    return "math." in text or (node.op == "pow" and not _integer_power(node))


def _integer_power(node: Expr) -> bool:
    exponent = node.args[1]
    return exponent.op == "const" and float(exponent.value).is_integer()


class FusedLoops:
    """Mixin of codegen.numba.arrays.ArrayEmitter: groups roots and emits a group's loop."""

    def groupable(self, node: Expr) -> bool:
        """An elementwise root with a loop of its own shape and no opaque element."""
        if (not node.shape or node in self.unit or not OPS[node.op].elementwise
                or node.op == "stop_gradient"):  # an alias of its operand's array
            return False
        return not any(opaque(m) for m in [node, *self.members_of(node)])

    def joins(self, node: Expr, group: list[Expr], members: set[Expr]) -> bool:
        """Whether ``node`` can be computed in the loop of ``group`` (whose roots and
        their producers are ``members``): same shape, and it reads no member at
        another position (through a slice, a gather or a broadcast)."""
        if node.shape != group[0].shape or not self.groupable(node):
            return False
        for m in [node, *self.members_of(node)]:
            shifted = m.op in ("index", "take") or m.op == "broadcast_to"
            for arg in m.args:
                if shifted and arg in members:
                    return False
                while arg in self.views:
                    arg = arg.args[0]
                    if arg in members:
                        return False
        return True

    def members_of(self, root: Expr) -> list[Expr]:
        """The inlined producers computed in the loop of ``root``, in schedule order."""
        return fused_members(root, self.inlined, self.position)

    def fused_loop(self, group: list[Expr]) -> None:
        """One loop computing every root of ``group``, storing the ones read elsewhere."""
        shape = group[0].shape
        indices = loop_indices(shape)
        body: list[str] = []
        local: dict[Expr, str] = {}
        inside = set(group).union(*map(self.members_of, group))
        outputs = set(self.outputs)
        # A producer computed in every loop that reads it (ArrayEmitter._recomputed) is
        # in this loop and in others: a root it reads is stored for those.
        recomputed = {n for n in self.inlined if len(self.consumers.get(n, [])) > 1}
        for root in group:
            for node in self.members_of(root):
                if node not in local:
                    local[node] = self.loop_value(node, shape, indices, local, body)
            local[root] = self.loop_value(root, shape, indices, local, body)
            users = self.consumers.get(root, [])
            if root in outputs or any(u not in inside or u in recomputed for u in users):
                name = self.new_name()
                self.lines.append(f"{name} = np.empty({shape_text(shape)})")
                body.append(f"{name}[{', '.join(indices)}] = {local[root]}")
                self.names[root] = name
        self.nest(shape, indices, body)
