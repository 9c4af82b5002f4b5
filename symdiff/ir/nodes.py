"""The IR: interned, immutable expression nodes, the op registry and graph helpers.

Every node is built through ``Expr._make``, which returns the existing node when the
same (op, operands, payload) was built before.  Structural equality is therefore
identity, sharing is free, and dictionaries keyed by nodes are cheap.
"""

from __future__ import annotations

import dataclasses
import hashlib
import keyword
import math
import numbers
import re
import threading
import unicodedata
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from symdiff.errors import ShapeError, SymdiffError, TraceError
from symdiff.ir.walk import topological_order

# Names the parser reads as constants, so they cannot name symbols.
RESERVED_NAMES = frozenset({"inf", "nan"})
# Names text reads as mathematical constants unless the caller declares them as symbols
# (``sd.parse("e*x", symbols=["e"])``): in a formula, pi and e mean the numbers.
NAMED_CONSTANTS = {"pi": math.pi, "e": math.e}


@dataclass(frozen=True)
class Op:
    """Everything about one operation's math, kept in one record; how each backend
    renders it is in that backend's own table (codegen/numba/elements.py,
    codegen/llvm/elements.py, and the array emitter for structural ops).

    Elementwise ops (``shape_rule`` None) broadcast like NumPy.  ``evaluate`` computes
    one element from Python floats with NumPy's inf/nan semantics;
    ``derivative(i, args, out)`` returns the IR of the local partial d out / d args[i]
    (``out`` is the node itself, so exp' = exp can reuse it).  ``to_sympy`` maps SymPy
    operands to SymPy; ``infix`` and ``precedence`` print it; ``numpy_ufuncs`` are the
    NumPy ufuncs that trace to it.

    Structural ops (matmul, sum, indexing, ...) set ``shape_rule(arg_shapes, payload)``,
    ``evaluate`` over NumPy arrays ``(payload, *args)``, ``vjp(i, node, adjoint)`` and
    ``jvp(node, tangents)`` (None for a zero tangent) building IR.
    ``sparsity(i, node, shape, arg_shapes)`` gives which elements of operand i each
    element of the result depends on, as two integer arrays (result positions, operand
    positions; C order) over the concrete ``shape`` and ``arg_shapes`` (see
    symdiff.autodiff.sparsity; elementwise ops need none: they read operands where they broadcast).
    Ops with several outputs (a loop) have one node per output, siblings sharing operands
    and ``value[0]``; ``joint_vjp(node, {value[1]: adjoint}, needed)`` gives every
    operand's contribution from the adjoints of several siblings at once (one reverse
    sweep; None for the operands ``needed`` marks False).
    Structural ops' ``to_sympy(node, *operands)`` receive the node too (payload, shapes).
    ``batch(node, operands, batched, size)`` is the node over a batch of values along a
    trailing axis of length ``size`` (symdiff.autodiff.batch_axis): ``operands`` are the
    node's operands, those that ``batched`` marks with the batch axis appended; None
    where the op has no such rule (elementwise ops need none: they broadcast).
    """

    name: str
    arity: int | None
    evaluate: Callable
    derivative: Callable[[int, tuple, Expr], Expr] | None
    to_sympy: Callable | None
    infix: str | None = None
    precedence: int = 50
    numpy_ufuncs: tuple[str, ...] = ()
    shape_rule: Callable | None = None
    vjp: Callable | None = None
    jvp: Callable | None = None
    sparsity: Callable | None = None
    joint_vjp: Callable | None = None
    describe: Callable | None = None  # describe(node): printed text of the payload
    batch: Callable | None = None

    @property
    def elementwise(self) -> bool:
        """True for ops applied element by element (with broadcasting)."""
        return self.shape_rule is None


OPS: dict[str, Op] = {}


class ArrayData:
    """A constant array as a hashable payload (compared by content and type); ``key`` is
    its shape and the SHA-256 of its bytes (names in generated code derive from it)."""

    __slots__ = ("array", "key")
    dtype = np.float64

    def __init__(self, array: np.ndarray):
        self.array = np.array(array, dtype=self.dtype)
        self.array.setflags(write=False)
        self.key = (self.array.shape, hashlib.sha256(self.array.tobytes()).hexdigest())

    def __eq__(self, other):
        return type(other) is type(self) and self.key == other.key

    def __hash__(self):
        return hash(self.key)

    def __repr__(self):
        return f"array(shape={self.array.shape})"


class Rows(ArrayData):
    """Constant row positions (a read-only int64 vector), the payload of take."""

    __slots__ = ()
    dtype = np.int64

    def __init__(self, positions):
        super().__init__(np.reshape(positions, -1))

    def __len__(self):
        return len(self.array)

    def __repr__(self):
        shown = ", ".join(map(str, self.array[:8]))
        return f"rows([{shown}])" if len(self) <= 8 else f"rows([{shown}, ...], n={len(self)})"


class DataRows(Rows):
    """Row positions that compiled code takes as a hidden argument (``slot``: the k of
    ``$rows<k>``, symdiff.passes.data) rather than as a constant written into its source;
    the positions stay here, for the evaluator and the analyses."""

    __slots__ = ("slot",)

    def __init__(self, positions, slot: int):
        super().__init__(positions)
        self.slot = slot
        self.key = self.key + (slot,)  # (one graph's slot k is not another's)

    def __repr__(self):  # (not the positions: printed in the source of any positions)
        return f"rows($rows{self.slot}, n={len(self)})"


def register(op: Op) -> Op:
    """Add an op record to the registry (one call per op, in ops.py)."""
    if op.name in OPS:
        raise ValueError(f"op {op.name!r} registered twice")
    OPS[op.name] = op
    return op


_UFUNC_TO_OP: dict[str, str] = {}


def ufunc_op(ufunc_name: str) -> str | None:
    """The op a NumPy ufunc of this name maps to (ops declare their ufuncs), or None."""
    if not _UFUNC_TO_OP:
        for op in OPS.values():
            for name in op.numpy_ufuncs:
                _UFUNC_TO_OP[name] = op.name
    return _UFUNC_TO_OP.get(ufunc_name)


# Lookup and insertion are one step for every thread: two threads building the same node
# must get the same object, or identity would stop meaning equality.
INTERNING = threading.Lock()


class Expr:
    """An immutable, interned expression node.

    ``op`` is ``"const"``, ``"symbol"`` or the name of a registered op; ``args`` the
    operand nodes; ``value`` the float of a constant, the name of a symbol or an op's
    static parameters (axis, index key, ...); ``shape`` a tuple of ints, where ``None``
    stands for the open batch dimension.
    """

    __slots__ = ("op", "args", "value", "shape", "__weakref__")

    _table: weakref.WeakValueDictionary = weakref.WeakValueDictionary()

    op: str
    args: tuple[Expr, ...]
    value: object
    shape: tuple

    @classmethod
    def _make(cls, op: str, args: tuple[Expr, ...] = (), value=None, shape=()) -> Expr:
        # float.hex keeps -0.0 apart from 0.0 and gives every nan one key.  An op's
        # shape follows from its operands; a leaf's is part of its identity.
        key = (op, args, value.hex() if op == "const" else value, () if args else shape)
        with INTERNING:
            node = cls._table.get(key)
            if node is None:
                node = object.__new__(cls)
                object.__setattr__(node, "op", op)
                object.__setattr__(node, "args", args)
                object.__setattr__(node, "value", value)
                object.__setattr__(node, "shape", shape)
                cls._table[key] = node
        return node

    def __setattr__(self, name, value):
        raise AttributeError("expressions are immutable")

    def __reduce__(self):
        # By structure, not printed text: shapes survive, and flat rows pickle at any
        # depth and width.
        rows, _ = graph_rows([self])
        return (unpickle_expression, (rows,))

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

    # == and != with numbers build comparisons, as < and > do, so a traced `if x == 0:`
    # raises instead of silently taking one branch and np.where(x != 0, ...) works.
    # Between two expressions they stay identity (interned nodes: the same node is the
    # same expression), which dictionaries, sets and tuples of nodes rely on;
    # sd.equal(x, y) compares two expressions symbolically.
    def __eq__(self, other):
        if isinstance(other, Expr):
            return self is other
        return _numeric_comparison("equal", self, other)

    def __ne__(self, other):
        if isinstance(other, Expr):
            return self is not other
        return _numeric_comparison("not_equal", self, other)

    __hash__ = object.__hash__

    def __lt__(self, other):
        return _binary("less", self, other)

    def __le__(self, other):
        return _binary("less_equal", self, other)

    def __gt__(self, other):
        return _binary("greater", self, other)

    def __ge__(self, other):
        return _binary("greater_equal", self, other)

    def __bool__(self):
        raise TraceError(
            f"the truth value of the symbolic expression {self} is unknown while tracing; "
            "use sd.where(condition, x, y) instead of if/else, and sd.maximum for max()")

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a scalar expression")
        if not isinstance(self.shape[0], int):
            raise TypeError("len() of an expression with an open batch dimension")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    @property
    def ndim(self) -> int:
        """Number of dimensions (0 for a scalar)."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of elements (static shapes only; 1 for a scalar)."""
        return math.prod(self.shape)

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

    def __repr__(self):  # the printer installs the infix form (symdiff.ir.printer)
        return f"<Expr {self.op} {self.shape}>"

    @property
    def is_const(self) -> bool:
        """True for a numeric constant."""
        return self.op == "const"

    @property
    def is_symbol(self) -> bool:
        """True for a symbol (an input variable)."""
        return self.op == "symbol"


def graph_rows(roots) -> tuple[list[tuple], list[int]]:
    """The graph under ``roots`` as plain rows (op, operand positions, payload, shape),
    operands first, and the position of each root: what pickling stores."""
    order = topological_order(roots)
    position = {node: k for k, node in enumerate(order)}
    rows = [(n.op, tuple(position[a] for a in n.args), n.value, n.shape) for n in order]
    return rows, [position[r] for r in roots]


# Names symdiff gives its own symbols (seeds, cotangents, loop placeholders, data).
_INTERNAL_NAME = re.compile(r"\$[A-Za-z0-9_]{1,80}")
_TAG = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,40}")


def _plain_payload(value) -> bool:
    """Whether a payload read from a pickle holds only what symdiff puts in payloads:
    numbers, short tags, tuples, constant arrays whose key matches their bytes, nodes,
    and symdiff's own records (loop bodies) of those."""
    stack = [value]
    while stack:
        item = stack.pop()
        if item is None or isinstance(item, (bool, numbers.Real, Expr)):
            continue
        if isinstance(item, str):
            if not _TAG.fullmatch(item):
                return False
        elif isinstance(item, tuple):
            stack.extend(item)
        elif type(item) in (ArrayData, Rows):
            if item.key != type(item)(item.array).key:
                return False
        elif dataclasses.is_dataclass(item) and type(item).__module__.startswith("symdiff."):
            stack.extend(getattr(item, f.name) for f in dataclasses.fields(item))
        else:
            return False
    return True


def _row_node(nodes: list, row) -> Expr:
    """One row of a pickled graph as a node, checked as if built by the constructors: a
    known op, operands before it, a symbol name symdiff accepts, a payload of plain
    data, and the shape the op's rule gives (never the stored one)."""
    if not isinstance(row, tuple) or len(row) != 4:
        raise SymdiffError("unpickling: a malformed row")
    op_name, operands, value, shape = row
    if not isinstance(operands, tuple) or any(
            isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < len(nodes)
            for k in operands):
        raise SymdiffError("unpickling: operands must come before their node")
    args = tuple(nodes[k] for k in operands)
    if op_name == "symbol" and not args:
        if isinstance(value, str) and _INTERNAL_NAME.fullmatch(value):
            return internal_symbol(value[1:], check_shape(shape))
        return symbol(value, shape)
    if op_name == "const" and not args:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or shape != ():
            raise SymdiffError("unpickling: a constant must be a real number")
        return Expr._make("const", (), float(value), ())
    if op_name == "array" and not args:
        if type(value) is not ArrayData or not _plain_payload(value):
            raise SymdiffError("unpickling: a constant array with a forged key")
        return Expr._make("array", (), value, value.array.shape)
    op = OPS.get(op_name) if isinstance(op_name, str) else None
    if op is None or op_name in ("symbol", "const", "array"):
        raise SymdiffError(f"unpickling: unknown operation {op_name!r}")
    if op.arity is not None and len(args) != op.arity:
        raise SymdiffError(f"unpickling: {op_name} takes {op.arity} operand(s)")
    if not _plain_payload(value):
        raise SymdiffError(f"unpickling: the payload of {op_name} is not symdiff's")
    if op.shape_rule is None:
        checked = broadcast_shapes(op_name, *(a.shape for a in args))
    else:
        checked = op.shape_rule(tuple(a.shape for a in args), value)
    if tuple(checked) != tuple(shape):
        raise SymdiffError(f"unpickling: {op_name} has shape {checked}, not the {shape} "
                           "stored")
    return Expr._make(op_name, args, value, tuple(checked))


def from_rows(rows) -> list[Expr]:
    """The nodes of ``graph_rows``' rows, interned again (in this process's table), each
    row checked as the constructors check what they build (see _row_node): a pickle
    crafted with symdiff's own reconstructor cannot make a node the constructors would
    refuse.  (Unpickling stays as trusted as ``pickle`` itself: see the README.)"""
    if not isinstance(rows, (list, tuple)):
        raise SymdiffError("unpickling: a malformed graph")
    nodes: list[Expr] = []
    for row in rows:
        nodes.append(_row_node(nodes, row))
    return nodes


def unpickle_expression(rows):
    """The expression pickled as ``rows`` (graph_rows), interned again."""
    return from_rows(rows)[-1]


def _binary(op, x, y):
    try:
        return apply(op, x, y)
    except TypeError:
        return NotImplemented


def _numeric_comparison(op, x, other):
    if isinstance(other, (numbers.Real, np.ndarray)) and not isinstance(other, bool):
        return _binary(op, x, other)
    return NotImplemented


def const(value) -> Expr:
    """The constant node of a number (stored as a float64), or of an array of numbers."""
    if getattr(value, "ndim", 0) > 0 or isinstance(value, (list, tuple)):
        return array_constant(value)
    return Expr._make("const", (), float(value))


def array_constant(values) -> Expr:
    """A constant array node (float64); a 0-d array gives a scalar constant."""
    if np.iscomplexobj(values):  # NumPy would drop the imaginary parts with a warning
        raise SymdiffError("complex constants are not supported: symdiff computes in float64")
    data = ArrayData(np.asarray(values, dtype=np.float64))
    if data.array.ndim == 0:
        return Expr._make("const", (), float(data.array))
    return Expr._make("array", (), data, data.array.shape)


def install_methods(**methods) -> None:
    """Set methods and properties of ``Expr`` from a layer above the IR: the NumPy layer
    installs indexing, ``.T``, ``.sum``, ``@``, NumPy's protocols and ``.at``
    (symdiff.frontend.numpy_methods), the printer ``str`` (symdiff.ir.printer), as JAX's NumPy layer
    installs its tracer's methods; the IR itself never imports those layers."""
    for name, method in methods.items():
        setattr(Expr, name, method)


def check_shape(shape) -> tuple:
    """A valid static shape: a tuple of positive ints, ``None`` for an open batch dimension."""
    shape = (shape,) if isinstance(shape, int) or shape is None else tuple(shape)
    for dim in shape:
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, numbers.Integral)
                                or dim < 1):
            raise SymdiffError(f"invalid shape {shape}: dimensions are positive ints or None")
    return tuple(None if d is None else int(d) for d in shape)


def symbol(name: str, shape=()) -> Expr:
    """A symbol of the given shape (scalar by default).

    The name must be a Python identifier, not a keyword, not inf/nan.  ``None`` in the
    shape leaves a batch dimension open: it is taken from the arguments at call time.
    """
    if not isinstance(name, str):
        raise SymdiffError(f"a symbol name must be a string, got {type(name).__name__}")
    name = unicodedata.normalize("NFKC", name)
    if not name.isidentifier():
        raise SymdiffError(f"invalid symbol name {name!r}: use a Python identifier")
    if keyword.iskeyword(name):
        raise SymdiffError(f"invalid symbol name {name!r}: it is a Python keyword")
    if name in RESERVED_NAMES:
        raise SymdiffError(f"invalid symbol name {name!r}: reserved for the constant {name}")
    return Expr._make("symbol", (), name, check_shape(shape))


def text_name(name: str, declared=frozenset()) -> Expr:
    """What a bare name in text means: inf and nan, then pi and e unless ``declared``
    names them, are constants; any other name is a symbol."""
    if name in RESERVED_NAMES:
        return const(math.inf if name == "inf" else math.nan)
    if name in NAMED_CONSTANTS and name not in declared:
        return const(NAMED_CONSTANTS[name])
    return symbol(name)


def internal_symbol(name: str, shape=()) -> Expr:
    """A symbol for symdiff's own use (seeds, cotangents); its name is not an identifier."""
    return Expr._make("symbol", (), "$" + name, shape)


def as_expr(value) -> Expr:
    """Return ``value`` as a node: nodes pass through, numbers and arrays become constants."""
    if isinstance(value, Expr):
        return value
    if getattr(value, "ndim", 0) > 0 and getattr(value, "dtype", None) is not None:
        if value.dtype.kind == "O":
            raise TypeError("object arrays of expressions are not expressions; build arrays "
                            "with sd.vector / sd.matrix / sd.stack")
        return const(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"cannot use {type(value).__name__} {value!r} in an expression")
    return const(float(value))


def with_operands(node: Expr, operands: tuple) -> Expr:
    """``node`` with other operands of the same shapes (op, payload and shape kept, no
    rule run again): for passes that rewrite a graph below its nodes."""
    return Expr._make(node.op, operands, node.value, node.shape)


def apply(op_name: str, *operands, payload=None) -> Expr:
    """Build the node ``op_name(*operands)``; numbers become constants.

    The negation of a constant is the negative constant, so that ``-2`` written in text,
    printed and parsed again is always the same node.
    """
    op = OPS.get(op_name)
    if op is None:
        raise SymdiffError(f"unknown operation {op_name!r}")
    if op.arity is not None and len(operands) != op.arity:
        raise SymdiffError(f"{op_name} takes {op.arity} argument(s), got {len(operands)}")
    args = tuple(as_expr(x) for x in operands)
    if op_name == "neg" and args[0].op == "const":
        return const(-args[0].value)
    if op.shape_rule is None:
        shape = broadcast_shapes(op_name, *(a.shape for a in args))
    else:
        shape = op.shape_rule(tuple(a.shape for a in args), payload)
    return Expr._make(op_name, args, payload, shape)


def broadcast_shapes(op_name: str, *shapes: tuple) -> tuple:
    """NumPy broadcasting of static shapes; an open (None) dimension matches only itself or 1."""
    if all(s == shapes[0] for s in shapes):
        return shapes[0]
    ndim = max(len(s) for s in shapes)
    padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]
    result = []
    for dims in zip(*padded, strict=True):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            listed = " and ".join(str(tuple(s)) for s in shapes)
            raise ShapeError(f"{op_name}: shapes {listed} do not broadcast")
        result.append(sizes.pop() if sizes else 1)
    return tuple(result)


def fold(op_name: str, items) -> Expr:
    """``op(op(op(x0, x1), x2), ...)``: a left-nested chain of one binary op."""
    items = list(items)
    total = as_expr(items[0])
    for item in items[1:]:
        total = apply(op_name, total, item)
    return total


def natural_key(name: str) -> tuple:
    """Sort key of a name that orders its runs of digits by value: x2 before x10."""
    return tuple((0, int(part), part) if part.isdigit() else (1, 0, part)
                 for part in re.split(r"(\d+)", name) if part)


def free_symbols(exprs) -> list[Expr]:
    """The symbols the expressions depend on, in natural order of their names (x2
    before x10)."""
    roots = [exprs] if isinstance(exprs, Expr) else list(flatten(exprs))
    found = [n for n in topological_order(roots) if n.op == "symbol"]
    return sorted(found, key=lambda s: natural_key(s.value))


def count_ops(exprs) -> int:
    """Number of operations in the shared DAG of one or more expressions (each node once)."""
    roots = [exprs] if isinstance(exprs, Expr) else list(flatten(exprs))
    return sum(1 for n in topological_order(roots) if n.args)


def flatten(nested, convert=None) -> list[Expr]:
    """The nodes of a node, or of a (nested) list/tuple of nodes and numbers, in order.

    ``convert`` turns each item into a node (default: ``as_expr``).
    """
    convert = convert or as_expr
    out: list[Expr] = []
    stack = [nested]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
        elif getattr(item, "dtype", None) is not None and item.dtype.kind == "O":
            stack.extend(reversed(list(item.ravel())))  # NumPy object array of nodes
        else:
            out.append(convert(item))
    return out


def restructure(nested, items):
    """Rebuild the list/tuple nesting of ``nested`` with the next values of ``items``."""
    if isinstance(nested, (list, tuple)):
        return type(nested)(restructure(item, items) for item in nested)
    return next(items)


def is_number(node: Expr, value: float) -> bool:
    """True if ``node`` is the constant ``value`` (0 matches -0 too)."""
    return node.op == "const" and node.value == value and not math.isnan(node.value)
