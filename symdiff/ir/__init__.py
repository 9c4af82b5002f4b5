"""The IR: interned expression nodes (``nodes``), iterative graph walks (``walk``),
dimensions and the open length (``dims``), index keys (``index_keys``), printing
(``printer``), the reference evaluator (``evaluate``) and eager numeric calls (``eager``).

``symdiff.ir`` names what the node layer offers, as it did when it was one module.
"""

from symdiff.ir.nodes import (
    INTERNING,
    OPS,
    RESERVED_NAMES,
    ArrayData,
    DataRows,
    Expr,
    Op,
    Rows,
    apply,
    array_constant,
    as_expr,
    broadcast_shapes,
    check_shape,
    const,
    count_ops,
    flatten,
    fold,
    free_symbols,
    from_rows,
    graph_rows,
    install_methods,
    internal_symbol,
    is_number,
    natural_key,
    register,
    restructure,
    symbol,
    topological_order,
    ufunc_op,
    unpickle_expression,
    with_operands,
)

# Expressions pickled when the IR was one module name this function so.
_unpickle = unpickle_expression

__all__ = [
    "RESERVED_NAMES", "Op", "OPS", "ArrayData", "DataRows", "Rows", "register", "ufunc_op",
    "INTERNING", "Expr", "graph_rows", "from_rows", "const", "array_constant",
    "install_methods", "check_shape", "symbol", "internal_symbol", "as_expr",
    "with_operands", "apply", "broadcast_shapes", "fold", "natural_key", "free_symbols",
    "count_ops", "flatten", "restructure", "is_number", "topological_order",
    "unpickle_expression",
]
