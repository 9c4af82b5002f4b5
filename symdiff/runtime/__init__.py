"""Compiled functions and the transformations that make them, as stages: ``derivation``
(the graphs of each method), ``lowering`` (generated source), ``loading`` (tiers, cache,
Numba), ``calls`` (the input contract on the call path), ``compiled`` (the
CompiledFunction composing them), and around them ``matrices``, ``batching`` (vmap),
``chunked`` (Dask), ``processes`` (fork safety) and ``transforms`` (``sd.compile``,
``sd.grad``, ``ByShape``)."""
