"""The LLVM lowering: large straight-line scalar functions as LLVM assembly that an njit
intrinsic links in (``emit``), from its own table of each elementwise op (``elements``)."""
