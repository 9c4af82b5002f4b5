"""Control flow: ``scan`` (loops with a static trip count, and their derivatives),
``while_loops`` (``fori_loop``, ``while_loop``) and ``implicit`` (roots and their
implicit derivatives)."""
