"""Loops whose trip count is decided by the values: ``sd.while_loop`` without a bound and
``sd.fori_loop`` with bounds that are expressions.

A ``while`` node is one carry part of such a loop; its operands are the initial carry
parts and the loop-invariant values, its payload a ``WhileBody`` (placeholders, the
condition and the next carry as expressions of them) and the part it selects.

Values and forward mode work to any order: the tangent of a while loop is a while loop
carrying (carry, tangent of the carry) under the same condition, which reads the primal
carry only (the trip count is piecewise constant, so it has no derivative).  Reverse mode
would need every carry of an unknown number of steps: it asks for ``max_steps`` (which
makes the loop a scan, see while_loop below) or an implicit derivative
(``sd.custom_root``).  Emission: codegen.numba.loops.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import numpy as np

from symdiff.autodiff.modes import forward_mode
from symdiff.control.scan import (
    TRACING,
    check_loop_operands,
    depth_of,
    optimized,
    restore_tree,
    scan,
    tree_parts,
)
from symdiff.errors import NotDifferentiableError, ShapeError, SymdiffError
from symdiff.ir.eager import eager
from symdiff.ir.evaluate import evaluate
from symdiff.ir.nodes import (
    Expr,
    Op,
    apply,
    as_expr,
    const,
    free_symbols,
    internal_symbol,
    register,
)
from symdiff.ir.printer import summary
from symdiff.ops.arrays import where
from symdiff.ops.structural import dense_sparsity, zeros


@dataclass(frozen=True)
class WhileBody:
    """A traced ``while cond(carry): carry = body(carry)``: placeholders for the carry
    parts and the invariants, the condition (nonzero: go on) and the next carry parts."""

    carries: tuple[Expr, ...]
    invariants: tuple[Expr, ...]
    cond: Expr
    new_carries: tuple[Expr, ...]
    limit: int | None = None  # iterations after which the loop raises (a way out)

    # Placeholder naming of derived loops (symdiff.control.scan._depth_of) reads these.
    xs = ()

    def __post_init__(self):
        done = optimized((self.cond,) + self.new_carries)
        object.__setattr__(self, "cond", done[0])
        object.__setattr__(self, "new_carries", done[1:])

    def __repr__(self):
        return f"while(carries={len(self.carries)}, invariants={len(self.invariants)})"


def _while_shape(shapes, payload):
    body, j = payload
    check_loop_operands(body, shapes, scanned=False)
    if body.cond.shape or not (body.limit is None or (
            isinstance(body.limit, int) and not isinstance(body.limit, bool)
            and 1 <= body.limit <= EXACT_COUNT)):
        raise ShapeError("while: the condition is one number, the limit a positive int")
    return body.carries[j].shape


def limit_message(limit: int) -> str:
    """What a while loop says when it runs past its ``limit`` (every tier the same)."""
    return f"while_loop ran past its limit of {limit} iterations"


def _evaluate_while(shape, payload, *args):
    body, j = payload
    c = len(body.carries)
    carry = list(args[:c])
    names = {p.value: v for p, v in zip(body.invariants, args[c:], strict=True)}
    roots = [body.cond] + list(body.new_carries)
    steps = 0
    while True:
        values = dict(names)
        values.update((p.value, v) for p, v in zip(body.carries, carry, strict=True))
        if evaluate([body.cond], values)[0] == 0:
            break
        steps += 1
        if body.limit is not None and steps > body.limit:
            raise RuntimeError(limit_message(body.limit))
        carry = evaluate(roots, values)[1:]
    return np.asarray(carry[j], dtype=np.float64) if shape else float(carry[j])


# body -> its tangent loop's body: every carry part's tangent is one part of the same
# loop object, so the lowering (which groups a loop's parts by body) runs one tangent
# loop for all outputs, not one per output.  Weak: freed with the body.
_TANGENT_BODIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _tangent_body(body: WhileBody) -> WhileBody:
    """The loop carrying (carry, tangent of the carry, for every part) under the same
    condition; its invariants are the body's and their tangents."""
    derived_body = _TANGENT_BODIES.get(body)
    if derived_body is None:
        depth = depth_of(body)
        d_carries = tuple(internal_symbol(f"while{depth}_dc{k}", p.shape)
                          for k, p in enumerate(body.carries))
        d_inv = tuple(internal_symbol(f"while{depth}_di{k}", p.shape)
                      for k, p in enumerate(body.invariants))
        seeds = dict(zip(body.carries + body.invariants, d_carries + d_inv, strict=True))
        derived = forward_mode(list(body.new_carries), seeds)
        derived_body = WhileBody(body.carries + d_carries, body.invariants + d_inv,
                                 body.cond, body.new_carries + tuple(derived), body.limit)
        _TANGENT_BODIES[body] = derived_body
    return derived_body


def _while_jvp(node: Expr, tangents) -> Expr | None:
    body, j = node.value
    c = len(body.carries)
    if all(t is None for t in tangents):
        return None
    new_body = _tangent_body(body)
    args = node.args
    filled = [zeros(a.shape) if t is None else t for a, t in zip(args, tangents, strict=True)]
    operands = args[:c] + tuple(filled[:c]) + args[c:] + tuple(filled[c:])
    return apply("while", *operands, payload=(new_body, c + j))


def _while_vjp(i: int, node: Expr, adjoint: Expr):
    raise NotDifferentiableError(
        "reverse-mode derivatives (grad, hessian, vjp) of a while_loop need a bound on "
        "its steps: sd.while_loop(cond, body, init, max_steps=N), or fori_loop with int "
        "bounds, or an implicit derivative with sd.custom_root; forward mode (jvp, "
        "sd.diff) works without one")


def _describe_while(node: Expr) -> str:
    body, j = node.value
    names = ", ".join(p.value for p in body.carries)
    return (f"carry {j} of while {summary(body.cond)}: ({names}) <- "
            f"({', '.join(map(summary, body.new_carries))})")


def _no_sympy(node: Expr, *operands):
    raise SymdiffError("to_sympy: a while loop has no SymPy form (its trip count depends "
                       "on the values)")


register(Op("while", None, _evaluate_while, None, _no_sympy, shape_rule=_while_shape,
            vjp=_while_vjp, jvp=_while_jvp, sparsity=dense_sparsity,
            describe=_describe_while))


def unbounded_while(cond, body, init, limit: int | None = None):
    """``while cond(carry): carry = body(carry)`` as while nodes; returns the final
    carry in init's structure.  ``limit``: iterations after which it raises."""
    inits, kind = tree_parts(init, "init")
    depth = getattr(TRACING, "depth", 0)
    carries = tuple(internal_symbol(f"while{depth}_c{k}", a.shape)
                    for k, a in enumerate(inits))
    TRACING.depth = depth + 1
    try:
        placeholder = restore_tree(list(carries), kind)
        test = as_expr(cond(placeholder))
        new_carries, _ = tree_parts(body(placeholder), "the carry")
    finally:
        TRACING.depth = depth
    if test.shape:
        raise ShapeError(f"while_loop: cond must return a scalar, got shape {test.shape}")
    if [n.shape for n in new_carries] != [c.shape for c in carries]:
        raise ShapeError(f"while_loop: body changed the carry's shapes from "
                         f"{[c.shape for c in carries]} to {[n.shape for n in new_carries]}")
    placeholders = set(carries)
    invariants = tuple(s for s in free_symbols([test] + new_carries) if s not in placeholders)
    loop = WhileBody(carries, invariants, test, tuple(new_carries), limit)
    operands = tuple(inits) + invariants
    return restore_tree([apply("while", *operands, payload=(loop, k)) for k in range(len(inits))],
                    kind)


# Counts a float64 step counter holds exactly: every integer up to 2**53.
EXACT_COUNT = 2 ** 53


def _whole(bound):
    """A number bound of fori_loop: a whole number as an int (the loop is then a scan,
    with every derivative), else checked to be finite and countable."""
    if isinstance(bound, Expr) or isinstance(bound, (int, np.integer)):
        return bound
    value = float(bound)
    if not math.isfinite(value) or abs(value) > EXACT_COUNT:
        raise SymdiffError(f"fori_loop: the bound {bound!r} is not a finite number of at "
                           "most 2**53 (the loop could never end, or its index not count)")
    return int(value) if value.is_integer() else bound


@eager
def fori_loop(lower, upper, body, init):
    """``carry = body(i, carry)`` for i = lower, ..., upper - 1, like
    ``jax.lax.fori_loop``; returns the final carry.  ``i`` is a float, for arithmetic in
    the body.

    With Python-int bounds the loop is a scan over the step index: every derivative
    works.  Bounds that are expressions (a scalar argument: one compile serves every
    trip count) make it a while loop: values and forward mode (jvp, sd.diff) only.
    """
    if any(isinstance(v, bool) for v in (lower, upper)):
        raise SymdiffError("fori_loop: lower and upper must be ints or scalar expressions")
    lower, upper = _whole(lower), _whole(upper)
    if not all(isinstance(v, (int, np.integer)) for v in (lower, upper)):
        # The loop counts its steps k exactly (0, 1, ... while k < upper - lower) and the
        # body sees i = lower + k: past 2**53 a counter of i itself would stop moving,
        # and the loop would never end.
        inits, kind = tree_parts(init, "init")
        start, span = as_expr(lower), as_expr(upper) - as_expr(lower)
        final = unbounded_while(
            lambda c: c[0] < span,
            lambda c: (c[0] + 1.0,) + tuple(tree_parts(
                body(start + c[0], restore_tree(list(c[1:]), kind)), "the carry")[0]),
            (const(0.0),) + tuple(inits))
        return restore_tree(list(final[1:]), kind)
    if max(abs(int(lower)), abs(int(upper))) > EXACT_COUNT:
        raise SymdiffError(f"fori_loop: bounds {lower}, {upper} are beyond 2**53, where the "
                           "body's index i (a float64) could not take every value: shift "
                           "them (fori_loop(0, upper - lower, ...) and add lower inside)")
    if upper <= lower:
        return init
    inits, kind = tree_parts(init, "init")

    def step(carry, _):
        i, parts = carry[0], list(carry[1:])
        updated, _ = tree_parts(body(i, restore_tree(parts, kind)), "the carry")
        return (i + 1.0,) + tuple(updated), None

    # The step index is a carried counter, and the scanned array a zeros node filled at
    # run time: no array of T indices in the generated source.
    final, _ = scan(step, (const(float(lower)),) + tuple(inits), zeros((upper - lower,)))
    return restore_tree(list(final[1:]), kind)


@eager
def while_loop(cond, body, init, *, max_steps: int | None = None, limit: int | None = None):
    """``while cond(carry): carry = body(carry)``, like ``jax.lax.while_loop``; returns
    the final carry.

    ``cond`` returns a comparison (1.0 / 0.0).  Without ``max_steps`` the loop runs until
    ``cond`` fails (a ``while`` in the generated code): values and forward mode of any
    order (jvp, sd.diff); reverse mode needs the bound.  With it the loop is a scan whose
    steps keep the carry once ``cond`` fails, so values, forward and reverse derivatives
    of every order work as for ``scan`` (the derivative does not flow through ``cond``:
    the trip count is piecewise constant).  The loop always runs ``max_steps`` steps.

    ``limit`` (without ``max_steps``) is a way out of a loop that may never end: after
    that many iterations it raises RuntimeError, in compiled code as in the evaluator,
    instead of running on (a compiled loop does not see Ctrl-C).  The result of a loop
    that ends in time is unchanged.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer))
                              or not 1 <= limit <= EXACT_COUNT):
        raise SymdiffError(f"while_loop: limit must be an int from 1 to 2**53, got {limit!r}")
    if max_steps is None:
        return unbounded_while(cond, body, init, None if limit is None else int(limit))
    if limit is not None:
        raise SymdiffError("while_loop: max_steps bounds the loop already (it then runs "
                           "exactly max_steps steps); limit is for loops without it")
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) \
            or not 1 <= max_steps <= EXACT_COUNT:
        raise SymdiffError(f"while_loop: max_steps must be an int from 1 to 2**53, got "
                           f"{max_steps!r}")
    inits, kind = tree_parts(init, "init")

    def step(carry, _):
        parts = list(carry) if kind is not None else [carry]
        running = cond(carry)
        updated, _ = tree_parts(body(carry), "the carry")
        if len(updated) != len(parts):
            raise SymdiffError("while_loop: body must return a carry of init's structure")
        kept = [where(running, new, old) for new, old in zip(updated, parts, strict=True)]
        return restore_tree(kept, kind), None

    final, _ = scan(step, restore_tree(inits, kind), zeros((max_steps,)))
    return final
