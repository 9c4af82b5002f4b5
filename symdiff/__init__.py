"""symdiff: a symbolic differentiation compiler.

Expressions (from text, Python operators, Python functions or SymPy) become an interned
DAG; ``diff``/``grad``/``hessian``/``jacobian`` build derivative graphs; ``optimize``
folds and simplifies them; ``compile`` emits Numba-jitted value, gradient and Hessian
functions as readable Python source.
"""

import importlib

from codegen.cache import clear as _clear
from symdiff.control.implicit import custom_root
from symdiff.control.scan import scan
from symdiff.control.while_loops import fori_loop, while_loop
from symdiff.errors import (
    ArgumentError,
    NotDifferentiableError,
    ParseError,
    ShapeError,
    SymdiffError,
    TraceError,
)
from symdiff.frontend import numpy_methods as _numpy_methods  # installs Expr's NumPy methods
from symdiff.frontend.graph_picture import to_dot
from symdiff.frontend.numpy_extras import cumprod, cumsum, einsum, tril, triu
from symdiff.frontend.parser import parse
from symdiff.frontend.sympy_bridge import from_sympy, to_latex, to_sympy
from symdiff.ir.evaluate import evaluate
from symdiff.ir.nodes import Expr, const, count_ops, free_symbols, symbol
from symdiff.ir.printer import to_let_form
from symdiff.ops import elementwise as _ops
from symdiff.ops import special as _special  # registers log-gamma, digamma, polygamma, log-ndtr
from symdiff.ops.arrays import (
    amax,
    concatenate,
    dot,
    index,
    log_softmax,
    logsumexp,
    matmul,
    matrix,
    mean,
    moveaxis,
    outer,
    reshape,
    softmax,
    stack,
    sum,  # noqa: A004 - NumPy's name
    swapaxes,
    take,
    transpose,
    vector,
    zeros,
)
from symdiff.ops.arrays import where as _where
from symdiff.ops.linalg import solve
from symdiff.passes.pipeline import optimize
from symdiff.runtime.progress import show_progress
from symdiff.version import __version__ as __version__

# The runtime (compiled functions and the transformations that make them) loads on first
# use: importing symdiff.ir, as codegen does, runs this package's __init__, which must not
# then import the runtime, which imports codegen (PEP 562, as NumPy and SciPy do).
_RUNTIME = {
    "compile": "transforms", "ByShape": "transforms", "jit": "transforms",
    "value_and_grad": "transforms", "vmap": "transforms", "diff": "transforms",
    "grad": "transforms", "hessian": "transforms", "hvp": "transforms",
    "jacobian": "transforms", "jvp": "transforms", "vjp": "transforms",
    "CompiledFunction": "compiled",
    "VMapped": "batching", "Lowered": "lowering", "ravel_pytree": "pytrees",
}


def __getattr__(name: str):
    module = _RUNTIME.get(name)
    if module is None:
        raise AttributeError(f"module 'symdiff' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.runtime.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_RUNTIME))


# sd.sin, sd.abs, sd.gammaln, ...: one public function per elementwise op, derived from
# the op records, so no op can be missing here; sd.where is the array-aware one.
globals().update(_ops.PUBLIC, where=_where)


def symbols(names: str):
    """Symbols from names separated by spaces or commas: ``a, b, c = symbols("a b c")``.

    ``"x0:3"`` stands for ``x0 x1 x2``.  One name gives one symbol; several a tuple.
    """
    parts = []
    for part in names.replace(",", " ").split():
        stem, colon, stop = part.partition(":")
        digits = len(stem) - len(stem.rstrip("0123456789"))
        if colon and digits and stop.isdigit():
            prefix, start = stem[:len(stem) - digits], int(stem[len(stem) - digits:])
            parts += [f"{prefix}{i}" for i in range(start, int(stop))]
        else:
            parts.append(part)
    if not parts:
        raise SymdiffError("symbols() needs at least one name")
    made = tuple(symbol(p) for p in parts)
    return made[0] if len(made) == 1 else made


def clear_cache() -> int:
    """Remove every entry of the on-disk compile cache (see the README's Guarantees);
    returns how many were removed.  Compiled functions already loaded keep working."""
    return _clear()


__all__ = [
    "Expr", "ParseError", "SymdiffError", "TraceError", "ShapeError", "ArgumentError",
    "NotDifferentiableError", "symbols", "symbol", "const", "parse", "evaluate", "optimize",
    "count_ops", "free_symbols", "to_let_form", "to_dot", "show_progress",
    "diff", "grad", "hessian", "jacobian", "jvp", "vjp", "hvp", "compile", "CompiledFunction",
    "ByShape",
    "jit", "value_and_grad", "vmap", "VMapped", "Lowered", "ravel_pytree", "from_sympy",
    "to_sympy", "to_latex",
    "vector", "matrix", "amax", "concatenate", "dot", "index", "log_softmax", "logsumexp",
    "matmul", "mean", "moveaxis", "outer", "reshape", "softmax", "stack", "sum", "swapaxes",
    "take", "transpose",
    "zeros", "cumsum", "cumprod", "einsum", "tril", "triu", "solve", "scan", "fori_loop",
    "while_loop", "custom_root", "clear_cache", *sorted(_ops.PUBLIC),
]

del _numpy_methods, _special
