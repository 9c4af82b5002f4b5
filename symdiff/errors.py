"""Exceptions raised for mistakes a user can make."""


class SymdiffError(Exception):
    """Base class of every error symdiff raises on purpose."""


class ParseError(SymdiffError, ValueError):
    """Text that is not an expression symdiff accepts.

    ``column`` (1-based) and ``line`` locate the offending piece when known.
    """

    def __init__(self, message, text=None, line=None, column=None):
        self.line = line
        self.column = column
        self.text = text
        if column is not None:
            where = f"column {column}" if not line or line == 1 else f"line {line}, column {column}"
            message = f"{message} at {where}"
            snippet = _source_line(text, line)
            if snippet is not None and len(snippet) <= 200:
                message += f"\n  {snippet}\n  {' ' * (column - 1)}^"
        super().__init__(message)


def _source_line(text, line):
    if text is None:
        return None
    lines = text.splitlines() or [""]
    index = (line or 1) - 1
    return lines[index] if 0 <= index < len(lines) else None


class TraceError(SymdiffError, TypeError):
    """A Python function could not be traced into an expression."""


class ShapeError(SymdiffError, ValueError):
    """Operands whose shapes do not fit the operation."""


class ArgumentError(SymdiffError, TypeError, ValueError):
    """An argument of a compiled function of the wrong type, shape or count.

    Both a TypeError and a ValueError, as NumPy or Numba would raise one or the other;
    the message names the argument, the expected shape and what was given.
    """


class NotDifferentiableError(SymdiffError):
    """A derivative mode that does not apply to the graph: reverse mode through a while
    loop without a bound on its steps."""
