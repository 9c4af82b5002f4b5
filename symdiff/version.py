"""The version of symdiff (written into generated modules' docstrings)."""

__version__ = "0.1.0"
