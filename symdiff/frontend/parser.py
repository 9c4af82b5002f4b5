"""Parse Python expression syntax into the IR, never evaluating the text.

The text goes through ``ast.parse`` and an allow-list walk (iterative, so deep
expressions cannot exhaust Python's stack); texts too long or too deeply chained for
``ast.parse`` go to the iterative parser of ``symdiff.frontend.long_parser`` instead.  Accepted:
numbers, names (``inf``, ``nan``, and ``pi`` and ``e`` unless declared as symbols, are
constants), ``+ - * / **``, unary ``+``/``-``, one comparison (``<``, ``<=``, ``>``,
``>=``, ``==``, ``!=``: 1.0 or 0.0), calls of known functions by bare name, and the loops
``fori_loop(lower, upper, lambda i, c: body, init)`` and
``while_loop(lambda c: cond, lambda c: body, init)`` with scalar carries (their lambdas
are parsed like the rest, their parameters bound to the loop's placeholders).  Anything
else is a ParseError naming the piece and its column.
"""

from __future__ import annotations

import ast
import threading

from symdiff.control.while_loops import fori_loop, while_loop
from symdiff.errors import ParseError, SymdiffError
from symdiff.frontend.long_parser import parse_long
from symdiff.ir.nodes import Expr, apply, const, text_name
from symdiff.ops.elementwise import FUNCTIONS

MAX_TEXT_CHARS = 10_000_000
# CPython 3.11 keeps the AST constructor's recursion depth per interpreter, not per
# thread: ast.parse in two threads at once can raise "SystemError: AST constructor
# recursion depth mismatch" (python/cpython#106905; tests/test_guarantees.py's threads
# met it).  Texts are parsed one at a time.
_AST_LOCK = threading.Lock()
# Longer texts go to the iterative parser (symdiff.frontend.long_parser): ast.parse needs about
# 250 bytes of memory per character and fails on flat sums of a few thousand terms.
AST_MAX_CHARS = 100_000

_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow"}
_COMPARE = {ast.Lt: "less", ast.LtE: "less_equal", ast.Gt: "greater",
            ast.GtE: "greater_equal", ast.Eq: "equal", ast.NotEq: "not_equal"}
# Loop calls: the positions of their lambda arguments and each lambda's parameter count.
_LOOPS = {"fori_loop": {2: 2}, "while_loop": {0: 1, 1: 1}}

_DESCRIBE = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscript",
    ast.Lambda: "lambda",
    ast.ListComp: "list comprehension",
    ast.SetComp: "set comprehension",
    ast.DictComp: "dict comprehension",
    ast.GeneratorExp: "generator expression",
    ast.Compare: "chained comparison",
    ast.BoolOp: "boolean operator",
    ast.IfExp: "conditional expression",
    ast.Starred: "starred argument",
    ast.NamedExpr: "assignment expression",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.JoinedStr: "f-string",
    ast.List: "list",
    ast.Tuple: "tuple",
    ast.Dict: "dict",
    ast.Set: "set",
}


def parse(text: str, symbols=()) -> Expr:
    """Parse ``text`` (Python expression syntax) into an expression.

    Names become symbols, except ``inf``, ``nan``, and ``pi`` and ``e`` (the constants)
    unless ``symbols`` lists them: ``parse("e*x", symbols=["e"])`` reads ``e`` as a symbol.
    """
    declared = declared_names(symbols)
    if not isinstance(text, str):
        raise ParseError(f"expected a string, got {type(text).__name__}")
    if len(text) > MAX_TEXT_CHARS:
        raise ParseError(f"expression text too long ({len(text)} characters, "
                         f"limit {MAX_TEXT_CHARS})")
    if not text.strip():
        raise ParseError("empty expression")
    if len(text) > AST_MAX_CHARS:
        return parse_long(text.strip(), declared)
    try:
        with _AST_LOCK:
            tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        if "too many nested parentheses" in str(exc.msg):  # CPython's limit of 200: ours has
            return parse_long(text.strip(), declared)    # none (an iterative parser)
        text = text.strip()
        line = exc.lineno or 1
        # Python gives offset 0 when the text ends too early: point past its end.
        column = exc.offset or len((text.splitlines() or [""])[min(line, 1) - 1]) + 1
        raise ParseError(f"invalid syntax: {exc.msg}", text, line, column) from None
    except (RecursionError, MemoryError):
        return parse_long(text.strip(), declared)
    except ValueError as exc:  # e.g. null bytes
        raise ParseError(f"invalid text: {exc}") from None
    return _Builder(text.strip(), declared).build(tree.body)


def declared_names(symbols, others: str = "raise") -> frozenset[str]:
    """The names ``symbols`` declares: strings or symbols, one or a list.  Anything else
    raises, or with ``others="skip"`` is passed over (``args`` lists arrays too)."""
    if isinstance(symbols, (str, Expr)):
        symbols = [symbols]
    elif others == "skip" and not isinstance(symbols, (list, tuple)):
        return frozenset()
    names = set()
    for s in symbols or ():
        if isinstance(s, Expr) and s.op == "symbol":
            names.add(s.value)
        elif isinstance(s, str):
            names.add(s)
        elif others != "skip":
            raise SymdiffError(f"symbols= takes names or symbols, got {s!r}")
    return frozenset(names)


class _Builder:
    def __init__(self, text: str, declared: frozenset[str],
                 bound: dict[str, Expr] | None = None):
        self.text = text
        self.declared = declared  # names read as symbols even where they name a constant
        self.lines = text.splitlines() or [""]
        self.bound = bound or {}  # lambda parameters in scope

    def error(self, message: str, node: ast.AST) -> ParseError:
        line = getattr(node, "lineno", 1)
        offset = getattr(node, "col_offset", 0)
        # ast offsets count UTF-8 bytes; report characters.
        source_line = self.lines[line - 1] if line - 1 < len(self.lines) else ""
        column = len(source_line.encode("utf-8")[:offset].decode("utf-8", "replace")) + 1
        return ParseError(message, self.text, line, column)

    def snippet(self, node: ast.AST) -> str:
        piece = ast.get_source_segment(self.text, node) or type(node).__name__
        return piece if len(piece) <= 60 else piece[:57] + "..."

    def build(self, root: ast.AST) -> Expr:
        # Iterative postorder: a node is built once all its children are.
        done: dict[int, Expr] = {}
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                done[id(node)] = self.combine(node, done)
                continue
            children = self.children(node)
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(children))
        return done[id(root)]

    def children(self, node: ast.AST) -> list[ast.AST]:
        if isinstance(node, ast.BinOp):
            if type(node.op) not in _BINOPS:
                hint = ("; write powers with ** (^ is not a power in Python)"
                        if isinstance(node.op, ast.BitXor) else "")
                raise self.error(f"unsupported operator in {self.snippet(node)!r}{hint}", node)
            return [node.left, node.right]
        if isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.USub, ast.UAdd)):
                raise self.error(f"unsupported unary operator in {self.snippet(node)!r}", node)
            return [node.operand]
        if isinstance(node, ast.Compare) and len(node.ops) == 1 \
                and type(node.ops[0]) in _COMPARE:
            return [node.left, node.comparators[0]]
        if isinstance(node, ast.Call):
            self.check_call(node)
            lambdas = _LOOPS.get(node.func.id, {})
            return [a for k, a in enumerate(node.args) if k not in lambdas]
        if isinstance(node, (ast.Constant, ast.Name)):
            return []
        what = _DESCRIBE.get(type(node), f"syntax {type(node).__name__}")
        raise self.error(f"unsupported {what} {self.snippet(node)!r}", node)

    def check_call(self, node: ast.Call) -> None:
        if not isinstance(node.func, ast.Name):
            raise self.error(f"only calls of known functions by bare name are allowed, "
                             f"not {self.snippet(node.func)!r}", node.func)
        name = node.func.id
        if name in _LOOPS:
            self.check_loop(node)
            return
        op = FUNCTIONS.get(name)
        if op is None:
            known = ", ".join(sorted(FUNCTIONS))
            raise self.error(f"unknown function {name!r} (known: {known}, fori_loop, "
                             "while_loop)", node.func)
        if node.keywords:
            raise self.error(f"keyword arguments are not allowed in a call of {name!r}",
                             node.keywords[0])
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self.error(f"starred argument in a call of {name!r}", arg)
        if len(node.args) != op.arity:
            raise self.error(f"{name}() takes {op.arity} argument(s), got {len(node.args)}",
                             node)

    def check_loop(self, node: ast.Call) -> None:
        name, lambdas = node.func.id, _LOOPS[node.func.id]
        if node.keywords or len(node.args) != (4 if name == "fori_loop" else 3):
            usage = ("fori_loop(lower, upper, lambda i, c: body, init)" if name == "fori_loop"
                     else "while_loop(lambda c: cond, lambda c: body, init)")
            raise self.error(f"{name} is called as {usage}", node)
        for position, count in lambdas.items():
            arg = node.args[position]
            if not isinstance(arg, ast.Lambda):
                raise self.error(f"argument {position + 1} of {name} must be a lambda", arg)
            params = arg.args
            if (params.posonlyargs or params.kwonlyargs or params.vararg or params.kwarg
                    or params.defaults or len(params.args) != count):
                raise self.error(f"the lambda of {name} takes {count} plain parameter(s)",
                                 arg)

    def function(self, node: ast.Lambda):
        """A Python function building the lambda's body with its parameters bound."""
        names = [a.arg for a in node.args.args]

        def call(*values):
            bound = dict(self.bound)
            bound.update(zip(names, values, strict=True))
            return _Builder(self.text, self.declared, bound).build(node.body)
        return call

    def loop(self, node: ast.Call, done: dict[int, Expr]) -> Expr:
        args = [self.function(a) if isinstance(a, ast.Lambda) else done[id(a)]
                for a in node.args]
        try:
            if node.func.id == "fori_loop":
                # Integer literal bounds make a scan (every derivative); others a while.
                args[:2] = [int(b.value) if b.op == "const" and float(b.value).is_integer()
                            else b for b in args[:2]]
                return fori_loop(*args)
            return while_loop(*args)
        except SymdiffError as exc:
            raise self.error(f"{node.func.id}: {exc}", node) from None

    def combine(self, node: ast.AST, done: dict[int, Expr]) -> Expr:
        if isinstance(node, ast.Constant):
            return self.number(node)
        if isinstance(node, ast.Name):
            if node.id in self.bound:
                return self.bound[node.id]
            try:
                return text_name(node.id, self.declared)
            except SymdiffError as exc:
                raise self.error(str(exc), node) from None
        if isinstance(node, ast.BinOp):
            return apply(_BINOPS[type(node.op)], done[id(node.left)], done[id(node.right)])
        if isinstance(node, ast.UnaryOp):
            operand = done[id(node.operand)]
            return apply("neg", operand) if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.Compare):
            return apply(_COMPARE[type(node.ops[0])], done[id(node.left)],
                         done[id(node.comparators[0])])
        if node.func.id in _LOOPS:
            return self.loop(node, done)
        return apply(node.func.id, *(done[id(a)] for a in node.args))

    def number(self, node: ast.Constant) -> Expr:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(f"unsupported constant {self.snippet(node)!r}: only real "
                             "numbers are allowed", node)
        try:
            return const(float(value))
        except OverflowError:
            raise self.error(f"number {self.snippet(node)!r} is too large for a float64",
                             node) from None
