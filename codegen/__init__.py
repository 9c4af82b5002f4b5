"""Code generation: schedule IR into statements and emit Numba-jitted Python source.

``emit_module`` returns a string (testable, diffable, saveable); ``load_module`` is the
separate step that executes our own generated source into a module object.  This
namespace is codegen's public surface for the runtime (with the modules ``codegen.cache``,
``codegen.load`` and ``codegen.naming``).

Backend-neutral, here: what a function is (``spec``), loops as functions (``bodies``),
direction loops (``directions``), names (``naming``), order (``schedule``), the walk of
the scalar lowerings (``walker``), the choice of a lowering (``lower``), module assembly
(``module``), loading (``load``, ``cache``).  One folder per backend: ``numba/`` (Python
source for Numba), ``llvm/`` (LLVM text in an njit intrinsic) and ``native/`` (that text
behind a CPython entry point, compiled without Numba).
"""

from .directions import DirectionLoop, Slot, run_direction_loop
from .load import load_module
from .lower import emit_function, llvm_lowerable
from .module import body_specs, emit_module
from .native.array_entry import array_function, direction_function
from .native.arrays import lowerable as array_lowerable
from .native.batched import batched_function
from .native.driver import lowerable as direction_lowerable
from .native.entry import ARRAY_SYMBOLS as NATIVE_ARRAY_SYMBOLS
from .native.entry import SYMBOLS as NATIVE_SYMBOLS
from .native.entry import Layout, NativeFunction, native_function
from .numba.vmap import emit_vmap
from .spec import LOWERINGS, ArrayParam, FunctionSpec, result_layout, result_parts

__all__ = ["LOWERINGS", "NATIVE_ARRAY_SYMBOLS", "NATIVE_SYMBOLS", "ArrayParam",
           "DirectionLoop", "FunctionSpec", "Layout", "NativeFunction", "Slot",
           "array_function", "array_lowerable", "batched_function",
           "body_specs", "direction_function",
           "direction_lowerable", "emit_function", "emit_module",
           "emit_vmap", "llvm_lowerable", "load_module", "native_function", "result_layout",
           "result_parts",
           "run_direction_loop"]
