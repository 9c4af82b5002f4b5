"""The Numba lowering: Python source that Numba compiles.

Its tables: how each elementwise op is written (``elements``), the arithmetic-only
versions used inside loops over arrays (``loop_math``) and the helpers of the special
functions (``special``).  Its emitters: one function (``function``: decorator, signature,
body), scalar statements and batched bodies (``scalar``), array code (``arrays``, with
``indexing``, ``fused``, ``sums``, ``products``), loops (``loops``), direction loops
(``directions``) and vmap drivers (``vmap``).
"""
