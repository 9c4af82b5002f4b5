"""The ways in: the text parser (``parser``, ``long_parser``), tracing Python functions
(``trace``) with the NumPy layer (``numpy_methods`` installs Expr's array methods and
operators; ``numpy_extras``, ``updates``), the SymPy bridge and graph pictures."""
