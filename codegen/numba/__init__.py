"""The Numba lowering's own tables: how each elementwise op is written as Python that
Numba compiles (``elements``), the arithmetic-only versions used inside loops over arrays
(``loop_math``) and the helpers of the special functions (``special``)."""
