"""Code generation: schedule IR into statements and emit Numba-jitted Python source.

``emit_module`` returns a string (testable, diffable, saveable); ``load_module`` is the
separate step that executes our own generated source into a module object.  This
package's namespace is codegen's public surface for the runtime; ``codegen.cache``,
``codegen.load`` and ``codegen.naming`` are imported by name too.
"""

from .load import load_module
from .numba.directions import DirectionLoop, Slot, run_direction_loop
from .numba.scalar import body_specs, emit_function, emit_module
from .numba.vmap import emit_vmap, result_layout
from .spec import LOWERINGS, ArrayParam, FunctionSpec

__all__ = ["LOWERINGS", "ArrayParam", "DirectionLoop", "FunctionSpec", "Slot", "body_specs",
           "emit_function", "emit_module", "emit_vmap", "load_module", "result_layout",
           "run_direction_loop"]
