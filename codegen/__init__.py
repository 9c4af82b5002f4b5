"""Code generation: schedule IR into statements and emit Numba-jitted Python source.

``emit_module`` returns a string (testable, diffable, saveable); ``load_module`` is the
separate step that executes our own generated source into a module object.
"""

from .emit_numba import emit_function, emit_module
from .load import load_module
from .spec import LOWERINGS, ArrayParam, FunctionSpec

__all__ = ["ArrayParam", "FunctionSpec", "LOWERINGS", "emit_function", "emit_module",
           "load_module"]
