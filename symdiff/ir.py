"""The IR: interned, immutable expression nodes, the op registry and graph walks.

Every node is built through ``Expr._make``, which returns the existing node when the
same (op, operands, payload) was built before.  Structural equality is therefore
identity, sharing is free, and dictionaries keyed by nodes are cheap.
"""

from __future__ import annotations

import keyword
import math
import numbers
import unicodedata
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .errors import SymdiffError, TraceError

# Names the parser reads as constants, so they cannot name symbols.
RESERVED_NAMES = frozenset({"inf", "nan"})


@dataclass(frozen=True)
class Op:
    """Everything about one operation, kept in one record.

    ``evaluate`` computes the value from Python floats with NumPy's inf/nan semantics.
    ``derivative(i, args, out)`` returns the IR of d out / d args[i] (``out`` is the
    node itself, so rules like exp' = exp can reuse it).  ``emit`` is the Python/Numba
    template with ``{0}``, ``{1}`` for operand names; ``helper`` is the source of an njit
    function the template calls, if any.  ``to_sympy`` maps SymPy operands to SymPy.
    """

    name: str
    arity: int
    evaluate: Callable[..., float]
    derivative: Callable[[int, tuple, Expr], Expr]
    emit: str
    to_sympy: Callable
    infix: str | None = None
    precedence: int = 50
    helper: str | None = None
    numpy_ufuncs: tuple[str, ...] = ()


OPS: dict[str, Op] = {}


def register(op: Op) -> Op:
    """Add an op record to the registry (one call per op, in ops.py)."""
    if op.name in OPS:
        raise ValueError(f"op {op.name!r} registered twice")
    OPS[op.name] = op
    return op


_UFUNC_TO_OP: dict[str, str] = {}


def _ufunc_op(ufunc_name: str) -> str | None:
    if not _UFUNC_TO_OP:
        for op in OPS.values():
            for name in op.numpy_ufuncs:
                _UFUNC_TO_OP[name] = op.name
    return _UFUNC_TO_OP.get(ufunc_name)


class Expr:
    """An immutable, interned expression node.

    ``op`` is ``"const"``, ``"symbol"`` or the name of a registered op; ``args`` the
    operand nodes; ``value`` the float of a constant or the name of a symbol.
    """

    __slots__ = ("op", "args", "value", "__weakref__")

    _table: weakref.WeakValueDictionary = weakref.WeakValueDictionary()

    op: str
    args: tuple[Expr, ...]
    value: float | str | None

    @classmethod
    def _make(cls, op: str, args: tuple[Expr, ...] = (), value=None) -> Expr:
        # float.hex keeps -0.0 apart from 0.0 and gives every nan one key.
        key = (op, args, value.hex() if op == "const" else value)
        node = cls._table.get(key)
        if node is None:
            node = object.__new__(cls)
            object.__setattr__(node, "op", op)
            object.__setattr__(node, "args", args)
            object.__setattr__(node, "value", value)
            cls._table[key] = node
        return node

    def __setattr__(self, name, value):
        raise AttributeError("expressions are immutable")

    def __reduce__(self):
        from .printer import to_infix

        return (_unpickle, (to_infix(self),))

    # Python operators build nodes; NotImplemented lets Python raise its usual TypeError.
    def __add__(self, other):
        return _binary("add", self, other)

    def __radd__(self, other):
        return _binary("add", other, self)

    def __sub__(self, other):
        return _binary("sub", self, other)

    def __rsub__(self, other):
        return _binary("sub", other, self)

    def __mul__(self, other):
        return _binary("mul", self, other)

    def __rmul__(self, other):
        return _binary("mul", other, self)

    def __truediv__(self, other):
        return _binary("div", self, other)

    def __rtruediv__(self, other):
        return _binary("div", other, self)

    def __pow__(self, other):
        return _binary("pow", self, other)

    def __rpow__(self, other):
        return _binary("pow", other, self)

    def __neg__(self):
        return apply("neg", self)

    def __pos__(self):
        return self

    def __abs__(self):
        return apply("abs", self)

    def __float__(self):
        raise TraceError(
            f"cannot convert the symbolic expression {self} to a float; "
            "functions of the math module need numbers: use np.sin, np.exp, ... "
            "(they work on symbols) or sd.sin, sd.exp, ..."
        )

    __int__ = __float__
    __index__ = __float__

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        op = _ufunc_op(ufunc.__name__) if method == "__call__" and not kwargs else None
        if op is None:
            return NotImplemented
        return apply(op, *inputs)

    def __str__(self):
        from .printer import to_infix

        return to_infix(self)

    __repr__ = __str__

    @property
    def is_const(self) -> bool:
        """True for a numeric constant."""
        return self.op == "const"

    @property
    def is_symbol(self) -> bool:
        """True for a symbol (an input variable)."""
        return self.op == "symbol"


def _unpickle(text):
    from .parser import parse

    return parse(text)


def _binary(op, x, y):
    try:
        return apply(op, x, y)
    except TypeError:
        return NotImplemented


def const(value) -> Expr:
    """The constant node of a number (stored as a float64)."""
    return Expr._make("const", (), float(value))


def symbol(name: str) -> Expr:
    """A symbol; the name must be a Python identifier, not a keyword, not inf/nan."""
    if not isinstance(name, str):
        raise SymdiffError(f"a symbol name must be a string, got {type(name).__name__}")
    name = unicodedata.normalize("NFKC", name)
    if not name.isidentifier():
        raise SymdiffError(f"invalid symbol name {name!r}: use a Python identifier")
    if keyword.iskeyword(name):
        raise SymdiffError(f"invalid symbol name {name!r}: it is a Python keyword")
    if name in RESERVED_NAMES:
        raise SymdiffError(f"invalid symbol name {name!r}: reserved for the constant {name}")
    return Expr._make("symbol", (), name)


def internal_symbol(name: str) -> Expr:
    """A symbol for symdiff's own use (seeds, cotangents); its name is not an identifier."""
    return Expr._make("symbol", (), "$" + name)


def as_expr(value) -> Expr:
    """Return ``value`` as a node: nodes pass through, real numbers become constants."""
    if isinstance(value, Expr):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"cannot use {type(value).__name__} {value!r} in an expression")
    return const(float(value))


def apply(op_name: str, *operands) -> Expr:
    """Build the node ``op_name(*operands)``; numbers become constants.

    The negation of a constant is the negative constant, so that ``-2`` written in text,
    printed and parsed again is always the same node.
    """
    op = OPS.get(op_name)
    if op is None:
        raise SymdiffError(f"unknown operation {op_name!r}")
    if len(operands) != op.arity:
        raise SymdiffError(f"{op_name} takes {op.arity} argument(s), got {len(operands)}")
    args = tuple(as_expr(x) for x in operands)
    if op_name == "neg" and args[0].op == "const":
        return const(-args[0].value)
    return Expr._make(op_name, args)


def topological_order(roots: Iterable[Expr], seen: set[Expr] | None = None) -> list[Expr]:
    """All nodes reachable from ``roots``, operands before users (iterative DFS postorder).

    The order depends only on the structure of the graph, so code generated from it is
    deterministic across processes.  Nodes in ``seen`` are skipped (and the set is
    updated), which lets a caller extend an order it already has.
    """
    seen = set() if seen is None else seen
    order: list[Expr] = []
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


def free_symbols(exprs) -> list[Expr]:
    """The symbols the expressions depend on, sorted by name."""
    roots = [exprs] if isinstance(exprs, Expr) else list(flatten(exprs))
    found = [n for n in topological_order(roots) if n.op == "symbol"]
    return sorted(found, key=lambda s: s.value)


def count_ops(exprs) -> int:
    """Number of operations in the shared DAG of one or more expressions (each node once)."""
    roots = [exprs] if isinstance(exprs, Expr) else list(flatten(exprs))
    return sum(1 for n in topological_order(roots) if n.args)


def flatten(nested) -> list[Expr]:
    """The nodes of a node, or of a (nested) list/tuple of nodes and numbers, in order."""
    out: list[Expr] = []
    stack = [nested]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
        elif getattr(item, "dtype", None) is not None and item.dtype.kind == "O":
            stack.extend(reversed(list(item.ravel())))  # NumPy object array of nodes
        else:
            out.append(as_expr(item))
    return out


def restructure(nested, items):
    """Rebuild the list/tuple nesting of ``nested`` with the next values of ``items``."""
    if isinstance(nested, (list, tuple)):
        return type(nested)(restructure(item, items) for item in nested)
    return next(items)


def is_number(node: Expr, value: float) -> bool:
    """True if ``node`` is the constant ``value`` (0 matches -0 too)."""
    return node.op == "const" and node.value == value and not math.isnan(node.value)
