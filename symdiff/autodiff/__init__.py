"""Symbolic differentiation: reverse and forward mode and the derivatives built from them
(``modes``), structural sparsity of Jacobians and Hessians (``sparsity``) and their
colorings (``coloring``)."""
