"""Algebraic simplification rules, as data: one record and one comment per rule.

Rules marked ``fast_math`` are wrong for some inf/nan inputs and only run when asked
for.  The others give the same value for every input, inf and nan included; like
``-fno-signed-zeros`` they may turn a -0.0 result into 0.0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from symdiff.ir.index_keys import step_one_ranges
from symdiff.ir.nodes import OPS, Expr, apply, const, is_number


@dataclass(frozen=True)
class Rule:
    """``rewrite(node)`` returns the replacement, or None when the rule does not apply."""

    op: str  # an op name, or "elementwise" for every elementwise op
    doc: str
    rewrite: Callable[[Expr], Expr | None]
    fast_math: bool = False


def _neg(node: Expr) -> bool:
    return node.op == "neg"


def _when(condition, result):
    """A rewrite from two functions of the operands: a test and the replacement."""
    return lambda node: result(*node.args) if condition(*node.args) else None


def _unbroadcast_operands(node: Expr) -> Expr | None:
    # Elementwise ops broadcast by themselves: an explicit broadcast_to of an operand is
    # redundant when dropping it leaves the result's shape unchanged; otherwise the op
    # runs on the smaller operands and its result is broadcast (a broadcast constant
    # folds to one broadcast number).
    args = tuple(a.args[0] if a.op == "broadcast_to" else a for a in node.args)
    if args == node.args:
        return None
    rebuilt = apply(node.op, *args)
    return rebuilt if rebuilt.shape == node.shape else apply("broadcast_to", rebuilt,
                                                             payload=node.shape)


def _same_op_twice(node: Expr) -> bool:
    return node.args[0].op == node.op


_WHOLE = ("s", None, None, None)


def _zeros(node: Expr) -> bool:
    """Whether every element of ``node`` is a zero (a broadcast 0, an array of zeros)."""
    if node.op == "broadcast_to":
        node = node.args[0]
    if node.op == "const":
        return node.value == 0
    return node.op == "array" and not node.value.array.any()


def _key(ranges, shape) -> tuple:
    """The normalized index key of step-1 ``ranges`` of ``shape`` (whole axes as such,
    trailing whole axes left out)."""
    entries = [_WHOLE if (lo, hi) == (0, dim) else ("s", lo, hi, 1)
               for (lo, hi), dim in zip(ranges, shape, strict=True)]
    while entries and entries[-1] == _WHOLE:
        entries.pop()
    return tuple(entries)


def _slice_of_concatenation(node: Expr) -> Expr | None:
    # A slice of parts joined along an axis reads only the parts it overlaps: the one it
    # lies in (a slice of that part), or one part and zero padding (that part's slice
    # placed into zeros: an embed, which loops compute without the padded copy).
    source = node.args[0]
    ranges = step_one_ranges(node.value, source.shape) if source.op == "concatenate" else None
    if ranges is None:
        return None
    axis, (start, stop) = source.value, ranges[source.value]
    overlapping, offset = [], 0
    for part in source.args:
        lo, hi = max(start, offset), min(stop, offset + part.shape[axis])
        if lo < hi:
            overlapping.append((part, lo - offset, hi - offset, lo - start))
        offset += part.shape[axis]
    read = [o for o in overlapping if not _zeros(o[0])]
    if not read:
        return apply("broadcast_to", const(0), payload=node.shape)
    if len(read) > 1:
        return None
    part, lo, hi, at = read[0]
    inner = list(ranges)
    inner[axis] = (lo, hi)
    key = _key(inner, part.shape)
    piece = apply("index", part, payload=key) if key else part
    if len(overlapping) == 1:
        return piece
    place = [(0, d) for d in node.shape]
    place[axis] = (at, at + hi - lo)
    return apply("embed", piece, payload=(_key(place, node.shape), node.shape))


def _embed_of_embed(node: Expr) -> Expr | None:
    # Zeros around zeros: one placement of the innermost operand.
    inner = node.args[0]
    if inner.op != "embed":
        return None
    (outer_key, shape), (inner_key, middle) = node.value, inner.value
    outer, within = step_one_ranges(outer_key, shape), step_one_ranges(inner_key, middle)
    if outer is None or within is None:
        return None
    placed = [(a + lo, a + hi) for (a, _), (lo, hi) in zip(outer, within, strict=True)]
    return apply("embed", inner.args[0], payload=(_key(placed, shape), shape))


def _zeros_moved(node: Expr) -> Expr | None:
    # Ops that only move, gather, scatter or add their operand's elements give zeros
    # from zeros, whatever the rest (no product with a possible inf or nan): the
    # `.at[idx].set(v)` of a zeros array takes and scatters zeros otherwise.
    if not _zeros(node.args[0]):
        return None
    return const(0) if not node.shape else apply("broadcast_to", const(0), payload=node.shape)


def _reshape_through_elementwise(node: Expr) -> Expr | None:
    # The same elements in the same order: reshaped back, an elementwise op of reshaped
    # arrays is the op of the arrays (a residual's -take(...) raveled: the gather then
    # runs inside the negation's loop, no array between them).
    inner = node.args[0]
    if not inner.args or not OPS[inner.op].elementwise:
        return None
    operands = []
    for a in inner.args:
        if a.shape and not (a.op == "reshape" and a.shape == inner.shape
                            and a.args[0].shape == node.shape):
            return None
        operands.append(a.args[0] if a.shape else a)
    return apply(inner.op, *operands)


# (scatter_add, embed and cumsum: adding zeros; the others: moving them)
_ZERO_PRESERVING = ("reshape", "transpose", "permute", "index", "take", "scatter_add",
                    "embed", "sum", "sum_to", "cumsum")


RULES: tuple[Rule, ...] = (
    *(Rule(op, f"{op}(0) -> 0", _zeros_moved) for op in _ZERO_PRESERVING),
    Rule("elementwise", "f(broadcast_to(x), y) -> f(x, y), broadcast to its shape",
         _unbroadcast_operands),
    Rule("reshape", "reshape(reshape(x)) -> reshape(x)", lambda n: apply(
        "reshape", n.args[0].args[0], payload=n.value) if _same_op_twice(n) else None),
    Rule("reshape", "reshape(c) -> c for a scalar constant c of one element",
         lambda n: n.args[0] if n.args[0].op == "const" else None),
    Rule("reshape", "reshape(f(reshape(x), c)) -> f(x, c) for elementwise f, x of the "
         "outer shape", _reshape_through_elementwise),
    Rule("broadcast_to", "broadcast_to(broadcast_to(x)) -> broadcast_to(x)", lambda n: apply(
        "broadcast_to", n.args[0].args[0], payload=n.value) if _same_op_twice(n) else None),
    Rule("index", "concatenate(..., x, ...)[k] -> x[k'], or x[k'] placed into zeros where "
         "the rest it reads is zero padding", _slice_of_concatenation),
    Rule("embed", "embed(embed(x)) -> embed(x), one placement into zeros", _embed_of_embed),
    Rule("transpose", "transpose(transpose(x)) -> x",
         lambda n: n.args[0].args[0] if _same_op_twice(n) else None),
    # A transposed product is the product of the transposes: no transposed copy needed.
    Rule("transpose", "transpose(a @ b) -> transpose(b) @ transpose(a)", lambda n: apply(
        "matmul", apply("transpose", n.args[0].args[1]), apply("transpose", n.args[0].args[0]))
        if n.args[0].op == "matmul" and n.args[0].args[0].ndim == 2
        and n.args[0].args[1].ndim == 2 else None),
    # Row and column vectors: transposing moves no element, multiplying sums one term.
    Rule("transpose", "transpose(x) -> reshape(x) for a row or column x", lambda n: apply(
        "reshape", n.args[0], payload=n.shape)
        if n.args[0].ndim == 2 and 1 in n.args[0].shape else None),
    Rule("transpose", "transpose(f(x, y)) -> f(transpose(x), transpose(y)) for elementwise f "
         "of rows and columns", lambda n: apply(n.args[0].op, *(
             apply("transpose", a) if a.shape else a for a in n.args[0].args))
         if n.args[0].args and OPS[n.args[0].op].elementwise and all(
             not a.shape or (a.ndim == 2 and 1 in a.shape) for a in n.args[0].args) else None),
    Rule("matmul", "a @ b -> a * b when the inner dimension is 1 (an outer product)",
         lambda n: apply("mul", *n.args) if n.args[0].ndim == 2 and n.args[1].ndim == 2
         and n.args[0].shape[1] == 1 else None),
    Rule("add", "x + 0 -> x", _when(lambda x, y: is_number(y, 0), lambda x, y: x)),
    Rule("add", "0 + x -> x", _when(lambda x, y: is_number(x, 0), lambda x, y: y)),
    Rule("add", "x + (-y) -> x - y", _when(lambda x, y: _neg(y),
                                           lambda x, y: apply("sub", x, y.args[0]))),
    Rule("add", "(-x) + y -> y - x", _when(lambda x, y: _neg(x),
                                           lambda x, y: apply("sub", y, x.args[0]))),
    Rule("sub", "x - 0 -> x", _when(lambda x, y: is_number(y, 0), lambda x, y: x)),
    Rule("sub", "0 - x -> -x", _when(lambda x, y: is_number(x, 0),
                                     lambda x, y: apply("neg", y))),
    Rule("sub", "x - (-y) -> x + y", _when(lambda x, y: _neg(y),
                                           lambda x, y: apply("add", x, y.args[0]))),
    Rule("sub", "x - x -> 0 (inf - inf is nan)", _when(lambda x, y: x is y,
                                                       lambda x, y: const(0)), True),
    Rule("mul", "x * 1 -> x", _when(lambda x, y: is_number(y, 1), lambda x, y: x)),
    Rule("mul", "1 * x -> x", _when(lambda x, y: is_number(x, 1), lambda x, y: y)),
    Rule("mul", "x * -1 -> -x", _when(lambda x, y: is_number(y, -1),
                                      lambda x, y: apply("neg", x))),
    Rule("mul", "-1 * x -> -x", _when(lambda x, y: is_number(x, -1),
                                      lambda x, y: apply("neg", y))),
    Rule("mul", "(-x) * (-y) -> x * y", _when(lambda x, y: _neg(x) and _neg(y),
                                              lambda x, y: apply("mul", x.args[0], y.args[0]))),
    # Negations move outwards, where + and - absorb them.
    Rule("mul", "(-x) * y -> -(x * y)", _when(
        lambda x, y: _neg(x), lambda x, y: apply("neg", apply("mul", x.args[0], y)))),
    Rule("mul", "x * (-y) -> -(x * y)", _when(
        lambda x, y: _neg(y), lambda x, y: apply("neg", apply("mul", x, y.args[0])))),
    Rule("mul", "x * 0 -> 0 (inf * 0 is nan)", _when(lambda x, y: is_number(y, 0),
                                                     lambda x, y: const(0)), True),
    Rule("mul", "0 * x -> 0 (0 * inf is nan)", _when(lambda x, y: is_number(x, 0),
                                                     lambda x, y: const(0)), True),
    Rule("div", "x / 1 -> x", _when(lambda x, y: is_number(y, 1), lambda x, y: x)),
    Rule("div", "x / -1 -> -x", _when(lambda x, y: is_number(y, -1),
                                      lambda x, y: apply("neg", x))),
    Rule("div", "(-x) / (-y) -> x / y", _when(lambda x, y: _neg(x) and _neg(y),
                                              lambda x, y: apply("div", x.args[0], y.args[0]))),
    Rule("div", "(-x) / y -> -(x / y)", _when(
        lambda x, y: _neg(x), lambda x, y: apply("neg", apply("div", x.args[0], y)))),
    Rule("div", "x / (-y) -> -(x / y)", _when(
        lambda x, y: _neg(y), lambda x, y: apply("neg", apply("div", x, y.args[0])))),
    Rule("div", "x / x -> 1 (0/0 and inf/inf are nan)", _when(lambda x, y: x is y,
                                                              lambda x, y: const(1)), True),
    Rule("neg", "-(-x) -> x", _when(_neg, lambda x: x.args[0])),
    Rule("neg", "-(x - y) -> y - x", _when(lambda x: x.op == "sub",
                                           lambda x: apply("sub", x.args[1], x.args[0]))),
    Rule("pow", "x ** 1 -> x", _when(lambda x, y: is_number(y, 1), lambda x, y: x)),
    Rule("pow", "x ** 0 -> 1 (IEEE pow(nan, 0) is 1 too)",
         _when(lambda x, y: is_number(y, 0), lambda x, y: const(1))),
    Rule("log", "log(exp(x)) -> x (differs once exp overflows)",
         _when(lambda x: x.op == "exp", lambda x: x.args[0]), True),
    Rule("exp", "exp(log(x)) -> x (differs for x < 0)",
         _when(lambda x: x.op == "log", lambda x: x.args[0]), True),
)
