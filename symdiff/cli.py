"""Command line: ``python -m symdiff "((a+b)*c)**2" --wrt a b c --order 2 --at a=1 b=2 c=2``."""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys

from codegen.cache import clear, configured_directory, umask, write_atomic
from codegen.spec import LOWERINGS
from symdiff.autodiff.modes import as_variables, diff
from symdiff.errors import SymdiffError
from symdiff.frontend.graph_picture import render, to_dot
from symdiff.frontend.parser import parse
from symdiff.ir.evaluate import evaluate
from symdiff.ir.nodes import NAMED_CONSTANTS, free_symbols
from symdiff.ir.printer import to_let_form
from symdiff.runtime.compiled import compile_expression

EXAMPLE = "((a+b)*c)**2"
# --form auto prints an expression in let-form once its infix text is longer than this:
# derivatives repeat subexpressions, and one line of kilobytes is unreadable.
LET_FORM_CHARS = 200
# Bounds on what --order prints: partial derivatives grow as (variables)**order.
MAX_ORDER = 20
MAX_PARTIALS = 2_000


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m symdiff",
        description="Differentiate an expression symbolically, print every partial "
                    "derivative up to --order (with its value at --at), and optionally "
                    "write a Numba module with forward, gradient and Hessian functions.",
        epilog=f'example: python -m symdiff "{EXAMPLE}" --wrt a b c --order 2 '
               "--at a=1 b=2 c=2 -o lecture.py",
    )
    parser.add_argument("expression", nargs="?", default=EXAMPLE,
                        help=f"Python expression syntax (default: the lecture example {EXAMPLE})")
    parser.add_argument("--wrt", nargs="+", metavar="NAME", action="extend",
                        help="variables to differentiate by (default: all, sorted)")
    parser.add_argument("--order", type=int, default=1,
                        help="highest derivative order to print (default 1)")
    parser.add_argument("--at", nargs="+", metavar="NAME=VALUE", default=[], action="extend",
                        help="point at which to evaluate, e.g. a=1 b=2 c=2")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write the generated module (importable without symdiff)")
    parser.add_argument("--graph", metavar="FILE",
                        help="draw the computation graph (with values and adjoints at --at): "
                             "FILE.dot, or .svg/.png/.pdf through Graphviz's dot")
    parser.add_argument("--form", choices=("auto", "infix", "let"), default="auto",
                        help="how to print expressions: 'let' names every shared "
                             "subexpression (_1 = ...), 'infix' prints one line each, 'auto' "
                             f"(default) uses let-form for texts over {LET_FORM_CHARS} "
                             "characters")
    parser.add_argument("--lowering", choices=LOWERINGS, default="auto",
                        help="how -o writes large straight-line functions: 'python' keeps "
                             "every function readable Python (no LLVM text), 'auto' "
                             "(default) lowers those of 100 operations or more to LLVM")
    parser.add_argument("--fast-math", action="store_true",
                        help="allow simplifications that are wrong for inf/nan inputs")
    parser.add_argument("--clear-cache", action="store_true",
                        help="remove every entry of the compile cache, then exit")
    return parser


def _unknown(option: str, name: str, variables: list[str]) -> SymdiffError:
    known = ", ".join(variables) if variables else "none"
    constant = (f"; {name} is the constant here: --wrt {name} makes it a variable"
                if name in NAMED_CONSTANTS else "")
    return SymdiffError(f"{option}: the expression has no variable {name!r} "
                        f"(its variables: {known}){constant}")


def _point(items: list[str], variables: list[str]) -> dict[str, float]:
    point = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            raise SymdiffError(f"--at expects NAME=VALUE, got {item!r}")
        if name not in variables:
            raise _unknown(f"--at {item}", name, variables)
        if name in point:
            raise SymdiffError(f"--at gives {name} twice")
        try:
            point[name] = float(value)
        except ValueError:
            raise SymdiffError(f"--at {item!r}: {value!r} is not a number") from None
    return point


def _check_output(path: str) -> None:
    """A clear error before any work when a file cannot be written there."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise SymdiffError(f"{path}: the directory {folder} does not exist")
    if os.path.isdir(path):
        raise SymdiffError(f"{path}: is a directory")


def _label(order: int, names: tuple[str, ...]) -> str:
    if order == 1:
        return f"df/d{names[0]}"
    return f"d{order}f/" + " ".join(f"d{n}" for n in names)


def run(argv: list[str] | None = None, out=None) -> int:
    """Run the command line; returns the exit status."""
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    if args.clear_cache:
        print(f"removed {clear()} entries from {configured_directory()}", file=out)
        return 0
    for path in (args.output, args.graph):
        if path:
            _check_output(path)
    f = parse(args.expression, args.wrt or ())
    variables = [s.value for s in free_symbols([f])]
    for name in args.wrt or ():
        if name not in variables:
            raise _unknown(f"--wrt {name}", name, variables)
    wrt = as_variables(args.wrt, [f])
    _check_order(args.order, len(wrt))
    point = _point(args.at, variables)
    missing = [name for name in variables if name not in point]
    if point and missing:
        print(f"(no values: --at does not give {', '.join(missing)})", file=out)
        point = {}
    _print_partials(f, wrt, point, args, out)
    _write_files(f, wrt, point, args, out)
    return 0


def _check_order(order: int, count: int) -> None:
    """--order within bounds: the partials printed grow as count**order."""
    if not 0 <= order <= MAX_ORDER:
        raise SymdiffError(f"--order must be between 0 and {MAX_ORDER}, got {order}")
    partials = math.comb(count + order - 1, order) if count else 0
    if partials > MAX_PARTIALS:
        raise SymdiffError(f"--order {order} with {count} variables prints {partials} "
                           f"partial derivatives (at most {MAX_PARTIALS}): lower --order or "
                           "name fewer variables with --wrt")


def _print_partials(f, wrt, point, args, out) -> None:
    """f and every partial derivative up to --order, with its value at ``point``."""
    def show(label: str, expr) -> None:
        value = f"  = {evaluate(expr, point)!r}" if point else ""
        text = f"{label} = {expr}"
        if args.form == "let" or (args.form == "auto" and len(text) > LET_FORM_CHARS):
            # Its last line binds the label; the shared parts above it are indented.
            *shared, last = to_let_form(expr, [label]).split("\n")
            text = "\n".join([f"    {line}" for line in shared] + [last])
        print(f"{text}{value}", file=out)

    show(f"f({', '.join(s.value for s in wrt)})", f)
    # Each partial is the derivative of a lower-order one, so reuse them.
    partials = {(): f}
    for order in range(1, args.order + 1):
        print(f"\norder {order}:", file=out)
        for combo in itertools.combinations_with_replacement(range(len(wrt)), order):
            partials[combo] = diff(partials[combo[:-1]], wrt[combo[-1]])
            show(_label(order, tuple(wrt[i].value for i in combo)), partials[combo])


def _write_files(f, wrt, point, args, out) -> None:
    """The graph (--graph) and the module (-o), each written atomically."""
    if args.graph:
        drawing = render(to_dot(f, point or None), args.graph)
        try:  # as -o: a full disk or a symlink at the path leaves the old file whole
            write_atomic(args.graph, drawing, mode=0o666 & ~umask())
        except OSError as error:
            raise SymdiffError(f"--graph {args.graph}: {error.strerror or error}") from None
        print(f"\ndrew {args.graph}", file=out)
    if args.output:
        try:
            path = compile_expression(f, wrt, fast_math=args.fast_math,
                                      lowering=args.lowering).save(args.output)
        except OSError as error:
            raise SymdiffError(f"-o {args.output}: {error.strerror or error}") from None
        print(f"\nwrote {path}", file=out)


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print one clear line and exit with status 2."""
    try:
        return run(argv)
    except SymdiffError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader stopped early (| head): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
