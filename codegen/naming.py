"""Names in generated code: parameters from user symbols, temporaries, literals.

User symbols keep their names when those are plain ASCII identifiers of at most
``MAX_NAME_LENGTH`` characters that cannot clash with anything the generated code uses
(Numba and LLVM derive longer names from parameters, and LLVM truncates them: two
parameters of 1,100 characters collided); every other name is replaced by
``_x<position>``.
Temporaries are ``_t<k>`` and helpers ``_sd_<op>``; both start with an underscore,
which no kept user name does, so nothing can collide or inject code.
"""

from __future__ import annotations

import builtins
import keyword
import math

from symdiff.dims import dim_text

# Names the generated module defines or uses at module level.
MODULE_NAMES = frozenset({"math", "np", "numba", "forward", "gradient", "value_and_grad",
                          "hessian", "hvp", "jacobian", "vjp", "jvp", "sparse_hessian",
                          "sparse_jacobian", "forward_batch", "gradient_batch",
                          "value_and_grad_batch",
                          # the LLVM lowering's module names and its codegen's parameters
                          "types", "cgutils", "intrinsic", "typingctx", "context", "bd",
                          "signature", "args", "codegen"})


MAX_NAME_LENGTH = 64


def is_safe_identifier(name: str) -> bool:
    """True if ``name`` can appear as-is as a parameter of generated code."""
    return (len(name) <= MAX_NAME_LENGTH and name.isascii() and name.isidentifier()
            and not keyword.iskeyword(name)
            and not name.startswith("_") and name not in MODULE_NAMES
            and not hasattr(builtins, name))


def parameter_names(symbol_names: list[str]) -> list[str]:
    """Parameter names for symbols, in order: the symbol's own name when safe.

    symdiff's internal symbols (``$ct0``) become ``_ct0``.
    """
    return [name if is_safe_identifier(name) else
            "_" + name[1:] if name.startswith("$") else f"_x{i}"
            for i, name in enumerate(symbol_names)]


def temporary(index: int) -> str:
    """The name of the index-th temporary."""
    return f"_t{index}"


def literal(value: float) -> str:
    """A float literal of generated code (parenthesized when negative)."""
    if math.isnan(value):
        return "math.nan"
    if math.isinf(value):
        return "math.inf" if value > 0 else "(-math.inf)"
    text = repr(float(value))
    return f"({text})" if text.startswith("-") else text


# x ** n for small integer n is emitted as a product (strength reduction).
MAX_UNROLLED_POWER = 4


def unrolled_power(exponent) -> int | None:
    """The integer n of ``x ** n`` when it is emitted as a product, else None."""
    n = exponent.value if exponent.op == "const" else None
    if n is None or not math.isfinite(n) or n != int(n) or not 2 <= abs(n) <= MAX_UNROLLED_POWER:
        return None
    return int(n)


# The open batch dimension's length in generated code, read from the arguments.
BATCH = "_nb"

# The name of a batched function with loops starts its one-point function's name.
POINT = "_sd_point_"


def extent(d) -> str:
    """A dimension as generated code writes it: the number, or the open length N + k."""
    return dim_text(d, BATCH)
