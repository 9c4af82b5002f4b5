"""The parser for long texts: an operator-precedence (shunting-yard) parser over Python's
tokenizer, with no recursion and no syntax tree.

``ast.parse`` needs memory of about 250 times a text's size and gives up on flat sums of
a few thousand terms (its C parser recurses along the chain).  This parser reads the same
language as ``symdiff.parser`` (numbers, names, ``+ - * / **``, unary ``+``/``-``,
parentheses, calls of known functions by bare name) from a token stream, building IR
nodes as operators complete, so its memory is that of the expression it builds.
"""

from __future__ import annotations

import ast
import io
import math
import tokenize

from .errors import ParseError, SymdiffError
from .ir import RESERVED_NAMES, Expr, apply, const, symbol
from .ops import FUNCTIONS

_BINARY = {"+": ("add", 1), "-": ("sub", 1), "*": ("mul", 2), "/": ("div", 2),
           "**": ("pow", 4)}
_UNARY = 3  # binds tighter than * and /, looser than ** on its right: -a**2 = -(a**2)
_SKIP = {tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
         tokenize.ENCODING, tokenize.COMMENT}


class _Call:
    """An open parenthesis: a call of ``name`` (None for grouping) and its arguments."""

    def __init__(self, name: str | None, column: int):
        self.name, self.column, self.count = name, column, 0


def parse_long(text: str) -> Expr:
    """Parse ``text`` (already stripped, non-empty) like ``symdiff.parser.parse``."""
    operands: list[Expr] = []
    operators: list = []  # ("bin", op, precedence) | ("neg",) | ("pos",) | _Call
    expect_operand = True
    pending_name: tuple[str, int] | None = None

    def error(message, column):
        return ParseError(message, text, 1, column + 1)

    def reduce_top():
        top = operators.pop()
        if top[0] == "bin":
            right, left = operands.pop(), operands.pop()
            operands.append(apply(top[1], left, right))
        elif top[0] == "neg":
            operands.append(apply("neg", operands.pop()))

    def reduce_while(precedence: int, right_assoc: bool):
        while operators and not isinstance(operators[-1], _Call):
            top = operators[-1]
            strength = top[2] if top[0] == "bin" else _UNARY
            if strength > precedence or (strength == precedence and not right_assoc):
                reduce_top()
            else:
                break

    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    try:
        for token in tokens:
            kind, string, (line, column) = token.type, token.string, token.start
            if kind in _SKIP:
                continue
            if line != 1 and kind != tokenize.ENDMARKER:
                raise ParseError("long expressions must be on one line", text, line, column + 1)
            if pending_name is not None:
                name = pending_name
                pending_name = None
                if string == "(":  # a call
                    operators.append(_Call(name[0], name[1]))
                    continue
                operands.append(_name(name, error))
                expect_operand = False
            if kind == tokenize.ENDMARKER:
                break
            if expect_operand:
                if kind == tokenize.NUMBER:
                    operands.append(_number(string, column, error))
                    expect_operand = False
                elif kind == tokenize.NAME:
                    pending_name = (string, column)
                elif string in ("-", "+"):
                    operators.append(("neg",) if string == "-" else ("pos",))
                elif string == "(":
                    operators.append(_Call(None, column))
                elif string == ")" and operators and isinstance(operators[-1], _Call) \
                        and operators[-1].name is not None and operators[-1].count == 0:
                    _check_call(operators[-1], error)  # a call without arguments
                else:
                    raise error(f"invalid syntax: expected a number, name or '(' before "
                                f"{string!r}", column)
                continue
            if string in _BINARY:
                op, precedence = _BINARY[string]
                reduce_while(precedence, right_assoc=string == "**")
                operators.append(("bin", op, precedence))
                expect_operand = True
            elif string in (",", ")"):
                reduce_while(-1, False)
                if not operators:
                    raise error(f"invalid syntax: unmatched {string!r}", column)
                frame = operators[-1]
                frame.count += 1
                if string == ",":
                    if frame.name is None:
                        raise error("unsupported tuple", frame.column)
                    expect_operand = True
                    continue
                operators.pop()
                if frame.name is not None:
                    _check_call(frame, error)
                    args = operands[len(operands) - frame.count:]
                    del operands[len(operands) - frame.count:]
                    operands.append(apply(frame.name, *args))
                elif frame.count != 1:
                    raise error("unsupported tuple", frame.column)
            else:
                raise error(f"invalid syntax: unexpected {string!r}", column)
    except tokenize.TokenError as exc:
        raise ParseError(f"invalid syntax: {exc.args[0]}", text, 1, len(text) + 1) from None
    if expect_operand:
        raise error("invalid syntax: the expression ends early", len(text))
    reduce_while(-1, False)
    if operators:
        raise error("invalid syntax: '(' was never closed", operators[-1].column)
    return operands[0]


def _name(name: tuple[str, int], error) -> Expr:
    text, column = name
    if text in RESERVED_NAMES:
        return const(math.inf if text == "inf" else math.nan)
    try:
        return symbol(text)
    except SymdiffError as exc:
        raise error(str(exc), column) from None


def _check_call(frame: _Call, error) -> None:
    op = FUNCTIONS.get(frame.name)
    if op is None:
        known = ", ".join(sorted(FUNCTIONS))
        raise error(f"unknown function {frame.name!r} (known: {known})", frame.column)
    if frame.count != op.arity:
        raise error(f"{frame.name}() takes {op.arity} argument(s), got {frame.count}",
                    frame.column)


def _number(string: str, column: int, error) -> Expr:
    shown = string if len(string) <= 60 else string[:57] + "..."
    try:
        value = ast.literal_eval(string)  # one NUMBER token: a literal, nothing to execute
    except (SyntaxError, ValueError):  # an integer of more digits than Python converts
        raise error(f"number {shown!r} is too large for a float64", column) from None
    if not isinstance(value, (int, float)):
        raise error(f"unsupported constant {shown!r}: only real numbers are allowed", column)
    try:
        return const(float(value))
    except OverflowError:
        raise error(f"number {shown!r} is too large for a float64", column) from None
