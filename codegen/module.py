"""Module assembly: a generated module is its header (docstring and imports), the array
constants, the helpers, and the kernels other functions call, each emitted once and in
that order, then the functions.

The kernels are the step functions of the loops the functions run (nested ones
included), the one-point functions of batched functions with loops, and the functions a
direction loop calls; each comes before its callers.
"""

from __future__ import annotations

from dataclasses import replace

from symdiff.ir.nodes import flatten

from .bodies import has_loops, loop_bodies, step_specs
from .directions import DirectionLoop
from .llvm.emit import PRELUDE as LLVM_PRELUDE
from .lower import body_name, emit_function, uses_llvm
from .naming import POINT
from .numba.directions import emit_direction_loop
from .numba.function import helpers_used
from .numba.indexing import constants_used

IMPORTS = "import math\n\nimport numba\nimport numpy as np\n"
# What importing a module needs, said in its docstring: the first sentence, or the
# second where Numba runs its matrix products or linear algebra through SciPy, which
# the module then checks for at import with a clear message.
NEEDS = "import needs only math, numpy and numba (with its llvmlite)."
NEEDS_SCIPY = ("import needs math, numpy, numba (with its llvmlite) and SciPy, through which "
               "Numba runs np.dot and np.linalg.")
SCIPY_CHECK = (
    "\ntry:  # Numba runs np.dot and np.linalg through SciPy's BLAS and LAPACK\n"
    "    import scipy.linalg  # noqa: F401\n"
    "except ImportError:\n"
    "    raise ImportError(\"this module's matrix products and linear algebra need SciPy \"\n"
    "                      \"(Numba runs them through it): pip install scipy\") from None\n")


def body_specs(specs) -> list:
    """The FunctionSpecs of every loop body the specs call, nested ones included, by
    name."""
    roots = [n for s in specs if hasattr(s, "result") for n in flatten(s.result)]
    found = {f.name: f for body in loop_bodies(roots) for f in step_specs(body, body_name(body))}
    return [found[name] for name in sorted(found)]


def point_specs(spec) -> list:
    """The one-point function a batched function with loops calls at every point."""
    if not getattr(spec, "batched", False) or not has_loops(spec.result):
        return []
    return [replace(spec, name=POINT + spec.name, batched=False, doc="one point of "
                    + spec.name)]


def _with_kernels(specs: list) -> list:
    """The functions of the module in order: every kernel once, before its callers."""
    ordered: dict[str, object] = {}
    for spec in specs:
        for needed in getattr(spec, "specs", []) + [spec]:  # a direction loop's kernels
            ordered.setdefault(needed.name, needed)
    functions = [f for spec in ordered.values() for f in point_specs(spec) + [spec]]
    return body_specs(functions) + functions  # the bodies of the loops they run


def _constants(specs: list) -> list[str]:
    constants = constants_used(specs)
    return ["\n".join(constants) + "\n"] if constants else []


def _helpers(specs: list) -> list[str]:
    """The LLVM lowering's prelude if a function takes it, then the Numba helpers."""
    prelude = [LLVM_PRELUDE] if any(uses_llvm(spec) for spec in specs) else []
    return prelude + helpers_used([spec for spec in specs if not uses_llvm(spec)])


def emit_module(specs: list, docstring: str) -> str:
    """A complete module: docstring, imports (math, numba, numpy only), constants,
    helpers, kernels and functions.

    ``specs`` are FunctionSpecs and direction loops (codegen.directions), whose kernels
    are emitted before them.
    """
    functions = _with_kernels(specs)
    plain = [spec for spec in functions if not isinstance(spec, DirectionLoop)]
    texts = [emit_direction_loop(spec) if isinstance(spec, DirectionLoop)
             else emit_function(spec) for spec in functions]
    imports = IMPORTS
    if any("np.dot(" in text or "np.linalg." in text for text in texts):
        docstring, imports = docstring.replace(NEEDS, NEEDS_SCIPY), IMPORTS + SCIPY_CHECK
    # (Escaped although every name in it is checked: no text ends the docstring early.)
    docstring = docstring.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    parts = [f'"""{docstring}\n"""\n\n{imports}', *_constants(plain), *_helpers(plain)]
    return "\n\n".join(parts + texts)
