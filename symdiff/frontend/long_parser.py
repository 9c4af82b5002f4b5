"""The parser for long texts: an operator-precedence (shunting-yard) parser over a regular
expression tokenizer, with no recursion and no syntax tree.

``ast.parse`` needs memory of about 250 times a text's size and gives up on flat sums of
a few thousand terms (its C parser recurses along the chain).  This parser reads the same
language as ``symdiff.frontend.parser`` (numbers, names, ``+ - * / **``, unary ``+``/``-``,
parentheses, calls of known functions by bare name) in two passes over the text: the
first checks it with constant memory, so malformed text is rejected without building
anything; the second builds IR nodes as operators complete.
"""

from __future__ import annotations

import ast
import re

from symdiff.errors import ParseError, SymdiffError
from symdiff.ir.nodes import Expr, apply, const, text_name
from symdiff.ops.elementwise import FUNCTIONS

_BINARY = {"+": ("add", 1), "-": ("sub", 1), "*": ("mul", 2), "/": ("div", 2),
           "**": ("pow", 4)}
_UNARY = 3  # binds tighter than * and /, looser than ** on its right: -a**2 = -(a**2)
_TOKEN = re.compile(r"""
    (?P<space>[ \t\f]+|\\\r?\n)
  | (?P<newline>\r?\n|\r)
  | (?P<number>(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+
      |(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d[\d_]*)?)[jJ]?)(?![\w.])
  | (?P<name>[^\W\d]\w*)
  | (?P<op>\*\*|[-+*/(),])
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)


class _Call:
    """An open parenthesis: a call of ``name`` (None for grouping) and its arguments."""

    def __init__(self, name: str | None, column: int):
        self.name, self.column, self.count = name, column, 0


def parse_long(text: str, declared=frozenset()) -> Expr:
    """Parse ``text`` (already stripped, non-empty) like ``symdiff.frontend.parser.parse``;
    ``declared`` names are symbols even where they name a constant (pi, e)."""
    _Pass(text, declared, build=False).run()
    return _Pass(text, declared, build=True).run()


class _Pass:
    def __init__(self, text: str, declared: frozenset[str], build: bool):
        self.text, self.declared, self.build = text, declared, build
        self.operands: list = []  # IR nodes; None placeholders when only checking
        self.operators: list = []  # ("bin", op, precedence) | ("neg",) | ("pos",) | _Call

    def error(self, message: str, column: int) -> ParseError:
        line = self.text.count("\n", 0, column) + 1
        start = self.text.rfind("\n", 0, column) + 1
        return ParseError(message, self.text, line, column - start + 1)

    def depth(self) -> int:
        """Open parentheses."""
        return sum(isinstance(o, _Call) for o in self.operators)

    def node(self, op: str, *args):
        return apply(op, *args) if self.build else None

    def reduce_top(self):
        top = self.operators.pop()
        if top[0] == "bin":
            right, left = self.operands.pop(), self.operands.pop()
            self.operands.append(self.node(top[1], left, right))
        elif top[0] == "neg":
            self.operands.append(self.node("neg", self.operands.pop()))

    def reduce_while(self, precedence: int, right_assoc: bool = False):
        operators = self.operators
        while operators and not isinstance(operators[-1], _Call):
            top = operators[-1]
            strength = top[2] if top[0] == "bin" else _UNARY
            if strength > precedence or (strength == precedence and not right_assoc):
                self.reduce_top()
            else:
                break

    def run(self) -> Expr | None:
        self.expect_operand, self.pending = True, None  # pending: a name that may start a call
        for match in _TOKEN.finditer(self.text):
            kind, string, column = match.lastgroup, match.group(), match.start()
            if kind == "space" or (kind == "newline" and self.depth()):
                continue  # a line break inside parentheses is white space, as in Python
            if self.pending is not None and self.resolve_pending(string):
                continue
            if kind in ("other", "newline"):
                what = "line break" if kind == "newline" else repr(string)
                raise self.error(f"invalid syntax: unexpected {what}", column)
            if self.expect_operand:
                self.operand(kind, string, column)
            else:
                self.after_operand(string, column)
        return self.finish()

    def resolve_pending(self, string: str) -> bool:
        """A pending name followed by '(' starts a call (True: that token is used up);
        followed by anything else, it is an operand."""
        name, column = self.pending
        self.pending = None
        if string == "(":
            self.operators.append(_Call(name, column))
            return True
        self.operands.append(self.name(name, column))
        self.expect_operand = False
        return False

    def operand(self, kind: str, string: str, column: int) -> None:
        """A token where an operand is expected: a number, a name, a sign or a '('."""
        operators = self.operators
        if kind == "number":
            self.operands.append(self.number(string, column))
            self.expect_operand = False
        elif kind == "name":
            self.pending = (string, column)
        elif string in ("-", "+"):
            operators.append(("neg",) if string == "-" else ("pos",))
        elif string == "(":
            operators.append(_Call(None, column))
        elif string == ")" and operators and isinstance(operators[-1], _Call) \
                and operators[-1].name is not None and operators[-1].count == 0:
            self.check_call(operators[-1])  # a call without arguments
        else:
            raise self.error(f"invalid syntax: expected a number, name or '(' "
                             f"before {string!r}", column)

    def after_operand(self, string: str, column: int) -> None:
        """A token after an operand: a binary operator, a ',' or a ')'."""
        operands, operators = self.operands, self.operators
        if string in _BINARY:
            op, precedence = _BINARY[string]
            self.reduce_while(precedence, right_assoc=string == "**")
            operators.append(("bin", op, precedence))
            self.expect_operand = True
            return
        if string not in (",", ")"):
            raise self.error(f"invalid syntax: unexpected {string!r}", column)
        self.reduce_while(-1)
        if not operators:
            raise self.error(f"invalid syntax: unmatched {string!r}", column)
        frame = operators[-1]
        frame.count += 1
        if string == ",":
            if frame.name is None:
                raise self.error("unsupported tuple", frame.column)
            self.expect_operand = True
            return
        operators.pop()
        if frame.name is not None:
            self.check_call(frame)
            args = operands[len(operands) - frame.count:]
            del operands[len(operands) - frame.count:]
            operands.append(self.node(frame.name, *args))
        elif frame.count != 1:
            raise self.error("unsupported tuple", frame.column)

    def finish(self) -> Expr:
        """The expression, once the text has ended."""
        if self.pending is not None:
            self.operands.append(self.name(*self.pending))
            self.expect_operand = False
        if self.expect_operand:
            raise self.error("invalid syntax: the expression ends early", len(self.text))
        self.reduce_while(-1)
        if self.operators:
            raise self.error("invalid syntax: '(' was never closed", self.operators[-1].column)
        return self.operands[0]

    def name(self, text: str, column: int):
        try:  # checked in both passes (symbols are interned: nothing accumulates)
            return text_name(text, self.declared)
        except SymdiffError as exc:
            raise self.error(str(exc), column) from None

    def check_call(self, frame: _Call) -> None:
        op = FUNCTIONS.get(frame.name)
        if op is None:
            known = ", ".join(sorted(FUNCTIONS))
            raise self.error(f"unknown function {frame.name!r} (known: {known})", frame.column)
        if frame.count != op.arity:
            raise self.error(f"{frame.name}() takes {op.arity} argument(s), got {frame.count}",
                             frame.column)

    def number(self, string: str, column: int):
        shown = string if len(string) <= 60 else string[:57] + "..."
        if string[-1] in "jJ":
            raise self.error(f"unsupported constant {shown!r}: only real numbers are allowed",
                             column)
        try:
            value = ast.literal_eval(string)  # one number token: a literal, nothing to run
            return const(float(value))
        except OverflowError:
            raise self.error(f"number {shown!r} is too large for a float64", column) from None
        except (SyntaxError, ValueError):  # bad underscores, or more digits than Python reads
            if string.isdigit() and len(string) > 1000:
                raise self.error(f"number {shown!r} is too large for a float64",
                                 column) from None
            raise self.error(f"invalid number {shown!r}", column) from None
