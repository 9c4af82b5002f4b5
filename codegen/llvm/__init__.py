"""The LLVM lowering's own table: each elementwise op as LLVM assembly (``elements``)."""
