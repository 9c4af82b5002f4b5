"""Walking the DAG: the topological order every pass, emitter and check starts from.

The walk is an iterative depth-first postorder (deep graphs never meet Python's
recursion limit) over ``node.args`` alone, so this module needs nothing of the IR.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

# The orders of the last few large graphs: compiling one walks it a dozen times (loop
# checks, schedules, constants), 30 ms each at 26,000 nodes.  Graphs are immutable, so an
# order stays valid; only a few are kept, as they keep their graphs alive.
_RECENT_ORDERS: dict[tuple, list] = {}
RECENT_LOCK = threading.Lock()
RECENT_ORDERS, RECENT_MIN_NODES = 4, 5000


def topological_order(roots: Iterable, seen: set | None = None) -> list:
    """All nodes reachable from ``roots``, operands before users (iterative DFS postorder).

    The order depends only on the structure of the graph, so code generated from it is
    deterministic across processes.  Nodes in ``seen`` are skipped (and the set is
    updated), which lets a caller extend an order it already has.
    """
    if seen is not None:
        return _walk(roots, seen)
    key = tuple(roots)
    with RECENT_LOCK:
        order = _RECENT_ORDERS.pop(key, None)
        if order is not None:
            _RECENT_ORDERS[key] = order  # most recent last
            return list(order)
    order = _walk(key, set())
    if len(order) >= RECENT_MIN_NODES:
        with RECENT_LOCK:
            _RECENT_ORDERS[key] = order
            while len(_RECENT_ORDERS) > RECENT_ORDERS:
                del _RECENT_ORDERS[next(iter(_RECENT_ORDERS))]
        return list(order)
    return order


def _walk(roots, seen: set) -> list:
    order: list = []
    for root in roots:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(root.args))]
        while stack:
            node, children = stack[-1]
            for child in children:
                if child not in seen:
                    seen.add(child)
                    stack.append((child, iter(child.args)))
                    break
            else:
                stack.pop()
                order.append(node)
    return order
