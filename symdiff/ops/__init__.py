"""The ops: one record per op holding its math (value, shape, derivative rule,
sparsity), no backend text.  ``elementwise`` holds the scalar ops and the public function
of each, ``structural`` the array ops (index, broadcast, sums, products, ...),
``special`` the gamma family, ``linalg`` solves, and ``arrays`` the array functions
users call (``sd.sum``, ``sd.matmul``, ``sd.vector``, ...)."""

from symdiff.ops.elementwise import FUNCTIONS, PUBLIC

__all__ = ["FUNCTIONS", "PUBLIC"]
