"""Small arrays as scalars: a graph of many tiny arrays becomes a graph of their elements.

A Python loop over a small state (an RK4 step on a 2-vector, unrolled for 50 steps)
traces into thousands of 2-element array ops: each one an allocation, a loop and a
piece of generated code, so the Hessian of 50 steps took 38 s to compile, where the same
math written on scalars took 1.5 s.  When every array of a graph has a static size of at
most SMALL_ELEMENTS, and there are at least MIN_ARRAY_NODES of them, each array node is
replaced by its elements: elementwise ops apply per element, and the structural ops
(indexing, stacking, reshapes, sums, products) only rearrange or combine elements, done
here by NumPy on object arrays of expressions.  Array inputs are read element by element
(``y[0]``, ``y[1]``) and array outputs are stacked again, so the function's signature
does not change.  Nodes it cannot take apart (loops, reductions it has no rule for,
large arrays) stay nodes: their small operands are stacked again for them and their
small results read element by element, so one np.max or one sd.scan in a long Python
loop leaves the rest scalar.  Small graphs keep their arrays, where arrays cost little.
"""

from __future__ import annotations

import numpy as np

from symdiff.ir.index_keys import key_to_python
from symdiff.ir.nodes import OPS, Expr, apply, const, topological_order, with_operands
from symdiff.ops.arrays import index, reshape, stack

SMALL_ELEMENTS = 16
MIN_ARRAY_NODES = 100

_ZERO = const(0.0)


def _embed(shape, payload, y):
    # (np.full would hand the expression to its __array_function__, and assigning a 0-d
    # object array would store the array itself: positions, then element by element.)
    out = _from_list([_ZERO] * int(np.prod(shape)), shape)
    positions = np.arange(out.size).reshape(shape)[key_to_python(payload[0])]
    values = np.broadcast_to(np.asarray(y, dtype=object), np.shape(positions))
    flat = out.reshape(-1)
    for p, value in zip(np.ravel(positions), values.ravel(), strict=True):
        flat[p] = value
    return out


# The structural ops whose own records' evaluators (NumPy calls) take object arrays of
# scalar expressions as they take numbers: NumPy's + and * on them build add and mul nodes.
_BY_RECORD = frozenset({"reshape", "transpose", "permute", "broadcast_to", "sum",
                        "sum_to", "concatenate", "take", "cumsum", "batch_matmul"})
# The others, written for object arrays: (node shape, payload, operands) -> elements (the
# records' evaluators make float arrays, or a float of a 0-d product).
_OWN = {
    "index": lambda shape, key, x: x[key_to_python(key)],
    "matmul": lambda shape, p, a, b: np.matmul(a, b),
    "embed": _embed,
}


def _small(node: Expr) -> bool:
    """A scalar, or an array of static shape and at most SMALL_ELEMENTS elements."""
    return all(isinstance(d, int) for d in node.shape) and node.size <= SMALL_ELEMENTS


def _taken_apart(node: Expr) -> bool:
    """Whether the pass replaces ``node`` by its elements: a small node whose op it can
    take apart, over small operands.  Other nodes (loops, reductions it has no rule
    for, large arrays, symdiff's own data and seeds) stay nodes."""
    if not _small(node):
        return False
    if node.op == "symbol":
        return not (node.shape and node.value.startswith("$"))
    if not node.args:
        return True
    return (OPS[node.op].elementwise or node.op in _BY_RECORD or node.op in _OWN) and all(
        _small(a) for a in node.args)


def applies(order: list[Expr]) -> bool:
    """Whether a graph (its nodes in order) has enough small arrays the pass can take
    apart to be worth it."""
    return sum(1 for n in order if n.shape and _taken_apart(n)) >= MIN_ARRAY_NODES


def _from_list(items: list, shape: tuple) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for k, item in enumerate(items):
        out[k] = item
    return out.reshape(shape)


def _boxed(value, shape: tuple) -> np.ndarray:
    """``value`` (an expression, or an array of them) as an object array of ``shape``."""
    if isinstance(value, Expr):
        box = np.empty((), dtype=object)
        box[()] = value
        value = box
    return np.asarray(value, dtype=object).reshape(shape)


def _elements(node: Expr, done: dict) -> np.ndarray:
    """The node's elements (an object array of its shape), its operands' in ``done``."""
    if node.op == "symbol":
        return _from_list([index(node, k) for k in np.ndindex(node.shape)], node.shape)
    if node.op == "array":
        values = np.asarray(node.value.array, dtype=np.float64)
        return _from_list([const(float(v)) for v in values.ravel()], node.shape)
    operands = [done[a] for a in node.args]
    if OPS[node.op].elementwise:
        def one(*parts, op=node.op, payload=node.value):
            return apply(op, *parts, payload=payload)
        return _boxed(np.frompyfunc(one, len(operands), 1)(*operands), node.shape)
    rule = _OWN.get(node.op) or OPS[node.op].evaluate
    return _boxed(rule(node.shape, node.value, *operands), node.shape)


def _rebuilt(elements: np.ndarray, shape: tuple) -> Expr:
    if not shape:
        return elements.reshape(()).item()
    flat = stack(list(elements.ravel()))
    return flat if len(shape) == 1 else reshape(flat, shape)


def _read(node: Expr) -> np.ndarray | None:
    """The elements of a node that stays a node: itself for a scalar, its reads
    ``node[k]`` for a small array (None for a large one: nothing taken apart reads it)."""
    if not node.shape:
        return _boxed(node, ())
    if not _small(node):
        return None
    return _from_list([index(node, k) for k in np.ndindex(node.shape)], node.shape)


def scalarize(outputs: list[Expr]) -> list[Expr]:
    """``outputs`` with their small arrays taken apart into elements, where the pass
    applies (see the module); else ``outputs`` unchanged.  The nodes it cannot take
    apart stay, over their operands stacked again, and are read element by element."""
    order = topological_order(outputs)
    if not applies(order):
        return list(outputs)
    done: dict[Expr, np.ndarray] = {}  # each node's elements
    nodes: dict[Expr, Expr] = {}  # each node as a node again, made once where needed

    def as_node(a: Expr) -> Expr:
        found = nodes.get(a)
        if found is None:
            found = nodes[a] = _rebuilt(done[a], a.shape)
        return found

    for node in order:
        if not _taken_apart(node):
            kept = with_operands(node, tuple(as_node(a) for a in node.args)) \
                if node.args else node
            nodes[node], done[node] = kept, _read(kept)
        elif not node.args and not node.shape:
            done[node] = _boxed(node, ())
        else:
            done[node] = _elements(node, done)
    return [as_node(out) for out in outputs]
