"""symdiff: a symbolic differentiation compiler.

Expressions (from text, Python operators, Python functions or SymPy) become an interned
DAG; ``diff``/``grad``/``hessian``/``jacobian`` build derivative graphs; ``optimize``
folds and simplifies them; ``compile`` emits Numba-jitted value, gradient and Hessian
functions as readable Python source.
"""

from . import array_ops as _array_ops  # registers the array ops
from . import numpy_methods as _numpy_methods  # installs Expr's NumPy methods
from . import ops as _ops  # registers the op table
from . import special as _special  # registers log-gamma, digamma, polygamma, log-ndtr
from .errors import (
    ArgumentError,
    NotDifferentiableError,
    ParseError,
    ShapeError,
    SymdiffError,
    TraceError,
)
from .evaluate import evaluate
from .graph_picture import to_dot
from .ir import Expr, const, count_ops, free_symbols, symbol
from .ops import abs_ as abs  # noqa: F401, A001 - public name, as in numpy
from .ops import (  # noqa: E402
    acos,
    asin,
    atan,
    atan2,
    cos,
    cosh,
    equal,
    erf,
    erfc,
    exp,
    expm1,
    greater,
    greater_equal,
    less,
    less_equal,
    log,
    log1p,
    maximum,
    minimum,
    not_equal,
    relu,
    sigmoid,
    sign,
    sin,
    sinh,
    softplus,
    sqrt,
    step,
    stop_gradient,
    tan,
    tanh,
)
from .parser import parse
from .passes import optimize
from .printer import to_let_form
from .progress import show_progress
from .special import digamma, gammaln, log_ndtr, polygamma
from .version import __version__ as __version__

del _ops, _array_ops, _special, _numpy_methods


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


__all__ = [
    "Expr", "ParseError", "SymdiffError", "TraceError",
    "symbols", "symbol", "const", "parse", "evaluate", "diff", "grad", "hessian", "jacobian",
    "optimize", "count_ops", "free_symbols", "to_let_form",
    "sin", "cos", "tan", "exp", "log", "sqrt", "tanh", "sinh", "cosh", "asin", "acos", "atan",
    "atan2", "log1p", "expm1", "erf", "erfc", "sign", "step", "sigmoid", "relu", "softplus",
    "maximum", "minimum", "ByShape", "jit", "value_and_grad", "vmap", "VMapped", "to_dot",
    "show_progress", "gammaln", "digamma", "polygamma", "log_ndtr",
]

from .api import CompiledFunction  # noqa: E402
from .arrays import (  # noqa: E402
    amax,
    concatenate,
    dot,
    index,
    log_softmax,
    logsumexp,
    matmul,
    matrix,
    mean,
    outer,
    reshape,
    softmax,
    stack,
    sum,  # noqa: A004
    take,
    transpose,
    vector,
    where,
    zeros,
)
from .implicit import custom_root  # noqa: E402
from .linalg import solve  # noqa: E402
from .loops import scan  # noqa: E402
from .numpy_extras import cumprod, cumsum, einsum, tril, triu  # noqa: E402
from .transforms import (  # noqa: E402
    ByShape,
    compile,  # noqa: A004
    diff,
    grad,
    hessian,
    hvp,
    jacobian,
    jit,
    value_and_grad,
    vmap,
)
from .vmap import VMapped  # noqa: E402
from .while_loops import fori_loop, while_loop  # noqa: E402  (registers the while op)


def clear_cache() -> int:
    """Remove every entry of the on-disk compile cache (see the README's Guarantees);
    returns how many were removed.  Compiled functions already loaded keep working."""
    from codegen.cache import clear

    return clear()


from .sympy_bridge import from_sympy, to_latex, to_sympy  # noqa: E402

__all__ += ["compile", "CompiledFunction", "from_sympy", "to_sympy", "to_latex", "vector", "matrix",
            "amax", "concatenate", "dot", "index", "log_softmax", "logsumexp", "matmul", "mean",
            "outer", "reshape", "softmax", "stack", "sum", "take", "transpose", "where", "hvp",
            "stop_gradient", "less", "less_equal", "greater", "greater_equal", "equal",
            "not_equal", "ShapeError", "ArgumentError", "NotDifferentiableError", "clear_cache",
            "scan", "fori_loop", "while_loop", "custom_root", "solve", "zeros", "cumsum",
            "cumprod", "einsum", "tril", "triu"]
