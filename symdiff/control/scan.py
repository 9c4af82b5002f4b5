"""Structured loops in the IR: ``sd.scan``, whose body is traced once into a sub-graph.

A scan node is one output of a loop: ``("carry", j)`` (the final carry part j),
``("ys", j)`` (the per-step outputs j, stacked along a new leading axis) or
``("carries", j)`` (carry part j at the start of every step, stacked: what the reverse
sweep reads) or ``("nexts", j)`` (carry part j at the end of every step, stacked: the
sweep reads it where the step's derivative reuses the step's result, as tanh' = 1 -
tanh², instead of computing the step again).  Its operands are the initial carry
parts, the scanned arrays and the loop-invariant values; its payload a ``ScanBody``
(hashable, so equal loops are one node) and the output it selects.

Derivatives of loops are loops, so code size does not grow with the trip count:

- the JVP of a scan is a scan carrying (carry, tangent of the carry), its body the body
  and the body's JVP;
- the VJP is a scan over the steps in the opposite order, carrying the cotangent of the
  carry and the accumulated cotangents of the invariants, reading the stored carries; its
  body is the body's VJP.  Higher orders come by composition.

Emission lives in codegen.numba.loops.  State (issue #10, in progress): scan in the
evaluator and in compiled array code; ``fori_loop``, ``while_loop``, checkpointing and
implicit differentiation come next (see docs/loops.md).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import numpy as np

from symdiff.autodiff.modes import forward_mode, reverse_mode
from symdiff.errors import ShapeError, SymdiffError
from symdiff.ir.eager import eager
from symdiff.ir.evaluate import evaluate
from symdiff.ir.nodes import (
    Expr,
    Op,
    apply,
    as_expr,
    free_symbols,
    internal_symbol,
    register,
    topological_order,
)
from symdiff.ir.printer import summary
from symdiff.ops.structural import broadcast_to, dense_sparsity, zeros
from symdiff.passes.data import lift_data
from symdiff.passes.pipeline import optimize, substitute

TRACING = threading.local()  # nesting depth of bodies being traced: placeholder names


@dataclass(frozen=True)
class ScanBody:
    """A traced loop body: placeholders for the carry parts, for one step's slice of each
    scanned array and for the invariants; the next carry parts and per-step outputs as
    expressions of them.  ``reverse`` runs the steps from last to first."""

    carries: tuple[Expr, ...]
    xs: tuple[Expr, ...]
    invariants: tuple[Expr, ...]
    new_carries: tuple[Expr, ...]
    ys: tuple[Expr, ...]
    reverse: bool = False
    checkpoint: object = "auto"  # what a reverse sweep over this loop keeps: CHECKPOINTS

    def __post_init__(self):
        # The passes run on bodies too (derived ones are raw derivative graphs: x**1.0).
        done = optimized(self.new_carries + self.ys)
        object.__setattr__(self, "new_carries", done[:len(self.new_carries)])
        object.__setattr__(self, "ys", done[len(self.new_carries):])

    def __repr__(self):
        return (f"body(carries={len(self.carries)}, xs={len(self.xs)}, "
                f"invariants={len(self.invariants)}, ys={len(self.ys)}"
                + (", reverse" if self.reverse else "")
                + ("" if self.checkpoint == "auto" else f", checkpoint={self.checkpoint!r}")
                + ")")


# How the carries a reverse sweep reads are kept (codegen.checkpoints decides, the
# lowerings apply it):
# "all" stores every step's carry; an int k stores every k-th and recomputes the steps
# between from it, one segment at a time; "sqrt" takes k = ceil(sqrt(T)) (memory
# O(sqrt(T)) carries for one more forward pass); "auto" stores all while they take at
# most codegen.checkpoints.AUTO_STORE_BYTES (16 MB), else "sqrt".
CHECKPOINTS = ("auto", "all", "sqrt")


def _checked_checkpoint(checkpoint):
    if isinstance(checkpoint, str) and checkpoint in CHECKPOINTS:
        return checkpoint
    if isinstance(checkpoint, (int, np.integer)) and not isinstance(checkpoint, bool) \
            and checkpoint >= 1:
        return int(checkpoint)
    raise SymdiffError(f"scan: checkpoint must be one of {CHECKPOINTS} or a positive int "
                       f"(store every k-th carry), not {checkpoint!r}")


def optimized(exprs: tuple) -> tuple:
    """The expressions after symdiff's passes (folding, simplification), same shapes."""
    return tuple(optimize(list(exprs))) if exprs else ()


def _output_shape(body: ScanBody, kind: str, j: int, length) -> tuple:
    if kind == "carry":
        return body.carries[j].shape
    part = body.ys[j] if kind == "ys" else body.carries[j]  # carries, nexts: carry shapes
    return (length,) + part.shape


def check_loop_operands(body, shapes, scanned: bool) -> None:
    """The operands' shapes are the body's placeholders' (the scanned arrays' with the
    steps' axis first, all of one length) and its next carry keeps the carry's shapes:
    what tracing guarantees, and what a loop node read from a pickle must show (compiled
    code trusts these shapes)."""
    xs = body.xs if scanned else ()
    placeholders = list(body.carries) + list(xs) + list(body.invariants)
    if len(shapes) != len(placeholders) or (scanned and not xs):
        raise ShapeError("loop: the operands do not match the body's placeholders")
    c = len(body.carries)
    lengths = {tuple(s[:1]) for s in shapes[c:c + len(xs)]}
    for k, (p, s) in enumerate(zip(placeholders, shapes, strict=True)):
        scanned_part = c <= k < c + len(xs)
        if tuple(s[1:] if scanned_part else s) != p.shape or (scanned_part and not s):
            raise ShapeError(f"loop: operand {k} has shape {s}, its placeholder {p.shape}")
    if len(lengths) > 1 or [n.shape for n in body.new_carries] != [p.shape for p in
                                                                    body.carries]:
        raise ShapeError("loop: the steps' lengths or the carry's shapes disagree")


def _scan_shape(shapes, payload):
    body, (kind, j) = payload
    check_loop_operands(body, shapes, scanned=True)
    return _output_shape(body, kind, j, shapes[len(body.carries)][0])


def _evaluate_scan(shape, payload, *args):
    body, (kind, j) = payload
    c, x = len(body.carries), len(body.xs)
    carry = list(args[:c])
    xs, invariants = args[c:c + x], args[c + x:]
    length = np.shape(xs[0])[0]
    names = {p.value: v for p, v in zip(body.invariants, invariants, strict=True)}
    roots = list(body.new_carries) + list(body.ys)
    steps = range(length - 1, -1, -1) if body.reverse else range(length)
    collected = []
    for t in steps:
        values = dict(names)
        values.update((p.value, v) for p, v in zip(body.carries, carry, strict=True))
        values.update((p.value, a[t]) for p, a in zip(body.xs, xs, strict=True))
        if kind == "carries":
            collected.append((t, carry[j]))
        results = evaluate(roots, values) if roots else []
        if kind == "ys":
            collected.append((t, results[c + j]))
        carry = results[:c]
        if kind == "nexts":
            collected.append((t, carry[j]))
    if kind == "carry":
        return np.asarray(carry[j], dtype=np.float64) if shape else float(carry[j])
    out = np.empty(shape, dtype=np.float64)
    for t, value in collected:
        out[t] = value
    return out


def _scan_jvp(node: Expr, tangents) -> Expr | None:
    body, (kind, j) = node.value
    c, x = len(body.carries), len(body.xs)
    args = node.args
    depth = depth_of(body)
    zero = [t is None for t in tangents]
    if all(zero):
        return None
    d_carries = tuple(internal_symbol(f"scan{depth}_dc{k}", p.shape)
                      for k, p in enumerate(body.carries))
    d_xs = tuple(internal_symbol(f"scan{depth}_dx{k}", p.shape) for k, p in enumerate(body.xs))
    d_inv = tuple(internal_symbol(f"scan{depth}_di{k}", p.shape)
                  for k, p in enumerate(body.invariants))
    seeds = dict(zip(body.carries + body.xs + body.invariants, d_carries + d_xs + d_inv,
                     strict=True))
    outputs = list(body.new_carries) + list(body.ys)
    derived = forward_mode(outputs, seeds)
    new_body = ScanBody(body.carries + d_carries, body.xs + d_xs,
                        body.invariants + d_inv, body.new_carries + tuple(derived[:c]),
                        body.ys + tuple(derived[c:]), body.reverse, body.checkpoint)
    filled = [zeros(a.shape) if t is None else t for a, t in zip(args, tangents, strict=True)]
    operands = (args[:c] + tuple(filled[:c]) + args[c:c + x] + tuple(filled[c:c + x])
                + args[c + x:] + tuple(filled[c + x:]))
    offset = {"carry": c, "ys": len(body.ys), "carries": c, "nexts": c}[kind]
    return scan_node(new_body, (kind, offset + j), operands)


def _scan_vjp(i: int, node: Expr, adjoint: Expr) -> Expr | None:
    return _scan_joint_vjp(node, {node.value[1]: adjoint})[i]


def _scan_joint_vjp(node: Expr, adjoints: dict, needed=None) -> list[Expr | None]:
    """What the adjoints of several outputs of one loop (``{output: adjoint}``) add to
    each of its operands: one reverse scan for all of them.  ``needed`` (a bool per
    operand) leaves out the cotangents of scanned arrays and invariants nobody asks for
    (None in their places): the sweep neither computes nor accumulates them."""
    body = node.value[0]
    c, x = len(body.carries), len(body.xs)
    args = node.args
    depth = depth_of(body)
    shapes = [p.shape for p in body.carries]
    ct_carries = tuple(internal_symbol(f"scan{depth}_ct{k}", s) for k, s in enumerate(shapes))
    needed = [True] * len(args) if needed is None else list(needed)
    want_xs = [k for k in range(x) if needed[c + k]]
    want_inv = [m for m in range(len(body.invariants)) if needed[c + x + m]]
    ct_inv = tuple(internal_symbol(f"scan{depth}_acc{m}", body.invariants[m].shape)
                   for m in want_inv)
    # One step back: the cotangent of the carry before the step, of the step's slice and
    # (summed over the steps) of the invariants.  The step-t seeds of stacked outputs
    # reach the loop as scanned arrays; those of final carries as the initial cotangent.
    seeds = [(nc, ct) for nc, ct in zip(body.new_carries, ct_carries, strict=True)]
    init = [zeros(s) for s in shapes] + [zeros(body.invariants[m].shape) for m in want_inv]
    scanned, slices = [], []
    for (kind, j), adjoint in sorted(adjoints.items()):
        if kind == "carry":
            init[j] = broadcast_to(adjoint, shapes[j])
            continue
        part = body.ys[j] if kind == "ys" else body.carries[j]
        seed_slice = internal_symbol(f"scan{depth}_seed{len(slices)}", part.shape)
        seeds.append((part, seed_slice))
        scanned.append(adjoint)
        slices.append(seed_slice)
    grads = reverse_mode(seeds, list(body.carries + body.xs + body.invariants))
    # Where the step's derivative reads the step's result (tanh' = 1 - tanh**2), it reads
    # the stored next carry instead: the sweep need not compute the step again.
    present = set(topological_order(grads))
    reused = {}
    for k, new in enumerate(body.new_carries):
        if new.args and new in present and new not in reused:
            reused[new] = internal_symbol(f"scan{depth}_n{k}", new.shape)
    if reused:
        grads = substitute(grads, reused)
    nexts = tuple(scan_node(body, ("nexts", body.new_carries.index(new)), args) for new in reused)
    stored = tuple(scan_node(body, ("carries", k), args) for k in range(c))
    back = ScanBody(
        carries=ct_carries + ct_inv,
        xs=body.carries + body.xs + tuple(reused.values()) + tuple(slices),
        invariants=body.invariants,
        new_carries=tuple(grads[:c]) + tuple(a + grads[c + x + m] for a, m in
                                             zip(ct_inv, want_inv, strict=True)),
        ys=tuple(grads[c + k] for k in want_xs),
        reverse=not body.reverse,
        checkpoint=body.checkpoint)
    operands = tuple(init) + stored + args[c:c + x] + nexts + tuple(scanned) + args[c + x:]
    out: list[Expr | None] = [scan_node(back, ("carry", i), operands) for i in range(c)]
    out += [None] * (len(args) - c)
    for n, k in enumerate(want_xs):
        out[c + k] = scan_node(back, ("ys", n), operands)
    for n, m in enumerate(want_inv):
        out[c + x + m] = scan_node(back, ("carry", c + n), operands)
    return out


def depth_of(body: ScanBody) -> int:
    """The nesting level of the placeholders derived from ``body``."""
    # Placeholders of derived bodies nest one level below the deepest of the body's own.
    levels = [int(m.group(1)) for p in body.carries + body.xs + body.invariants
              if p.op == "symbol" and (m := _PLACEHOLDER.match(p.value))]
    return max(levels, default=0) + 100


_PLACEHOLDER = re.compile(r"\$(?:scan|while)(\d+)_")


def _describe_scan(node: Expr) -> str:
    body, (kind, j) = node.value
    names = ", ".join(p.value for p in body.carries + body.xs)
    text = (f"{kind} {j} of {'reverse ' if body.reverse else ''}step({names}) -> "
            f"carry ({', '.join(map(summary, body.new_carries))})")
    if body.ys:
        text += f", y ({', '.join(map(summary, body.ys))})"
    return text + ("" if body.checkpoint == "auto" else f", checkpoint {body.checkpoint!r}")


register(Op("scan", None, _evaluate_scan, None, None, shape_rule=_scan_shape,
            vjp=_scan_vjp, jvp=_scan_jvp, sparsity=dense_sparsity,
            joint_vjp=_scan_joint_vjp, describe=_describe_scan))


def scan_node(body: ScanBody, output: tuple, operands) -> Expr:
    """The node of output ``output`` of a scan of ``body`` over ``operands``."""
    return apply("scan", *operands, payload=(body, output))


def tree_parts(tree, what: str) -> tuple[list[Expr], object]:
    """A carry or output (an expression, a tuple or list of them, or None) as a list of
    expressions and the kind to rebuild it with (restore_tree)."""
    if isinstance(tree, (tuple, list)):
        return [as_expr(t) for t in tree], type(tree)
    if tree is None:
        return [], None
    try:
        return [as_expr(tree)], None
    except TypeError:
        raise SymdiffError(f"scan: {what} must be expressions or tuples of them") from None


def restore_tree(parts, kind):
    """The inverse of tree_parts."""
    return parts[0] if kind is None and len(parts) == 1 else (
        None if kind is None and not parts else kind(parts))


@eager
def scan(step, init, xs, reverse: bool = False, checkpoint="auto"):
    """Loop ``carry, y = step(carry, x)`` over the leading axis of ``xs``, like
    ``jax.lax.scan``; returns ``(final carry, ys stacked)``.

    ``init`` and the carry are an expression or a tuple of them (each keeps its shape);
    ``xs`` an array expression or a tuple of them with one leading length (it may be the
    open ``None`` dimension: one compile serves every length); ``step`` returns the next
    carry (same structure and shapes) and ``y`` (an expression, a tuple, or None).  The
    body is traced once; derivatives of the result are loops too.

    ``checkpoint`` says what the reverse sweep of a gradient keeps of the forward carries:
    ``"all"``, every k-th (an int k: the steps between are recomputed), ``"sqrt"``
    (k = ceil(sqrt(T)): O(sqrt(T)) carries in memory for one more forward pass) or
    ``"auto"`` (all while they take at most 16 MB, else ``"sqrt"``).  Every choice gives the
    same numbers (docs/loops.md).
    """
    checkpoint = _checked_checkpoint(checkpoint)
    inits, carry_kind = tree_parts(init, "init")
    arrays, xs_kind = tree_parts(xs, "xs")
    if not arrays:
        raise SymdiffError("scan needs at least one scanned array (xs)")
    lengths = {a.shape[0] if a.shape else "scalar" for a in arrays}
    if "scalar" in lengths or len(lengths) != 1:
        raise ShapeError(f"scan: every xs needs the same leading length, got "
                         f"{[a.shape for a in arrays]}")
    depth = getattr(TRACING, "depth", 0)
    carries = tuple(internal_symbol(f"scan{depth}_c{k}", a.shape) for k, a in enumerate(inits))
    slices = tuple(internal_symbol(f"scan{depth}_x{k}", a.shape[1:])
                   for k, a in enumerate(arrays))
    TRACING.depth = depth + 1
    try:
        result = step(restore_tree(list(carries), carry_kind), restore_tree(list(slices), xs_kind))
    finally:
        TRACING.depth = depth
    if not isinstance(result, tuple) or len(result) != 2:
        raise SymdiffError("scan: step must return (carry, y)")
    new_carries, _ = tree_parts(result[0], "the carry")
    ys, ys_kind = tree_parts(result[1], "y")
    if [n.shape for n in new_carries] != [c.shape for c in carries]:
        raise ShapeError(f"scan: step changed the carry's shapes from "
                         f"{[c.shape for c in carries]} to {[n.shape for n in new_carries]}")
    # Captured arrays enter as invariants, so the compiled function takes them as data.
    lifted, holders, constants = lift_data(list(new_carries) + list(ys), f"scan{depth}_d")
    new_carries, ys = lifted[:len(new_carries)], lifted[len(new_carries):]
    placeholders = set(carries) | set(slices)
    invariants = tuple(s for s in free_symbols(new_carries + ys) if s not in placeholders)
    body = ScanBody(carries, slices, invariants, tuple(new_carries), tuple(ys), reverse,
                    checkpoint)
    outer = dict(zip(holders, constants, strict=True))
    operands = tuple(inits) + tuple(arrays) + tuple(outer.get(s, s) for s in invariants)
    final = [scan_node(body, ("carry", k), operands) for k in range(len(carries))]
    stacked = [scan_node(body, ("ys", k), operands) for k in range(len(ys))]
    return restore_tree(final, carry_kind), restore_tree(stacked, ys_kind)
