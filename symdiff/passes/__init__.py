"""Graph passes: the optimization pipeline (``pipeline``: constant folding,
simplification, dead code), its rewrite rules as data (``rules``), and captured arrays
lifted to hidden arguments (``data``)."""
