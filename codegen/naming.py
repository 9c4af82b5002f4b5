"""Names in generated code: parameters from user symbols, temporaries, literals.

User symbols keep their names when those are plain ASCII identifiers of at most
``MAX_NAME_LENGTH`` characters that cannot clash with anything the generated code uses
(Numba and LLVM derive longer names from parameters, and LLVM truncates them: two
parameters of 1,100 characters collided); every other name is replaced by
``_x<position>``.
Temporaries are ``_t<k>`` and helpers ``_sd_<op>``; both start with an underscore,
which no kept user name does, so nothing can collide or inject code.  A loop body's
step function names its placeholders by role (``role_names``), which no temporary or
module name can be, avoiding the user names of the same function.
"""

from __future__ import annotations

import builtins
import keyword
import math
import re

from symdiff.ir.dims import dim_text

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


# A loop's placeholder: "$scan<depth>_<what><k>" (what: c carry, x slice, ct cotangent, ...).
_PLACEHOLDER = re.compile(r"\$(?:scan|while)\d+_([a-z]+\d*)$")


def role_names(groups) -> list[str]:
    """Parameter names of a loop body's step function, for ``groups`` of symbols by role
    (("carry", carries), ("step", slices), ("inv", invariants)), in order.

    User symbols keep their parameter names; a loop's placeholders are named by role and
    what they stand for (``carry_c0``, ``carry_ct0``, ``step_x0``: not ``_scan100_ct0``,
    whose depth counter means nothing to a reader), other internal symbols by role and
    position.  A name another parameter has already gets a trailing underscore.
    """
    symbols = [sym for _, group in groups for sym in group]
    names = parameter_names([sym.value for sym in symbols])
    taken = {n for n, sym in zip(names, symbols, strict=True) if not sym.value.startswith("$")}
    position = 0
    for role, group in groups:
        for k, sym in enumerate(group):
            if sym.value.startswith("$"):
                match = _PLACEHOLDER.match(sym.value)
                name = f"{role}_{match.group(1)}" if match else f"{role}{k}"
                while name in taken:
                    name += "_"
                taken.add(name)
                names[position] = name
            position += 1
    return names


def input_names(spec) -> list[str]:
    """The parameter names of a function's inputs: codegen's own (``spec.params``, for
    loop bodies), else from the symbols' names."""
    return list(spec.params) or parameter_names([s.value for s in spec.inputs])


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
