"""The native backend: a function's LLVM text (codegen.llvm's body) behind an entry point
with CPython's calling convention, compiled in process by llvmlite without Numba (the
runtime's loader: symdiff.runtime.native)."""
