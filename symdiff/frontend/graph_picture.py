"""Pictures of the computation graph: Graphviz DOT text, as the lecture draws it.

One box per node of the shared DAG (a shared subexpression is one node with several
arrows out), arrows from operands to their users.  At a point, each node shows its value
(the forward sweep) and, for a scalar function of scalars, its adjoint d f / d node (the
backward sweep: each node's adjoint is the sum over its users of the user's adjoint times
the local partial, as the lecture computes it by hand).
"""

from __future__ import annotations

import shutil
import subprocess

from symdiff.errors import SymdiffError
from symdiff.frontend.trace import read_expression
from symdiff.ir.evaluate import evaluate
from symdiff.ir.nodes import OPS, Expr, topological_order
from symdiff.ir.printer import format_number


def _label(node: Expr) -> str:
    if node.op == "symbol":
        text = node.value
    elif node.op == "const":
        text = format_number(node.value)
    else:
        op = OPS[node.op]
        text = op.infix if op.infix else node.op
        if node.value is not None and not op.elementwise:
            text += f" {op.describe(node) if op.describe else node.value}"
    if node.shape:
        text += " " + str(node.shape).replace("None", "batch")
    return text


def _number(value) -> str:
    return format_number(float(value)) if len(str(float(value))) < 12 else f"{value:.6g}"


def _adjoints(order: list[Expr], values: dict[Expr, float], output: Expr) -> dict:
    """d output / d node for every node, by one backward sweep over local partials."""
    adjoint = {output: 1.0}
    point = {a.value: values[a] for a in order if a.op == "symbol"}
    for node in reversed(order):
        if node not in adjoint or not node.args:
            continue
        for i, arg in enumerate(node.args):
            partial = OPS[node.op].derivative(i, node.args, node)
            adjoint[arg] = adjoint.get(arg, 0.0) + adjoint[node] * float(
                evaluate(partial, point))
    return adjoint


def to_dot(f, at: dict | None = None, **values) -> str:
    """The DOT text of the graph of ``f`` (an expression or a list), optionally with the
    values (and, for a scalar function of scalars, the adjoints) at a point."""
    roots = [read_expression(x) for x in (f if isinstance(f, (list, tuple)) else [f])]
    point = {**(at or {}), **values}
    order = topological_order(roots)
    number = {node: k for k, node in enumerate(order)}
    computed = {}
    if point:
        computed = dict(zip(order, evaluate(order, point), strict=True))
    scalar = len(roots) == 1 and all(not n.shape and (not n.args or OPS[n.op].elementwise)
                                     for n in order)
    adjoint = _adjoints(order, computed, roots[0]) if point and scalar else {}
    lines = ["digraph symdiff {", "  rankdir=LR;", '  node [shape=box, fontname="Helvetica"];']
    for node in order:
        label = _label(node)
        if node in computed and not node.shape and node.op != "const":
            label += f"\\n= {_number(computed[node])}"
        if node in adjoint and node.op != "const":
            label += f"\\nadjoint {_number(adjoint[node])}"
        style = ", style=rounded" if not node.args else ""
        if node in roots:
            style += ", peripheries=2"
        lines.append(f'  n{number[node]} [label="{_escape(label)}"{style}];')
    for node in order:
        ordered = node.op in ("sub", "div", "pow", "atan2", "where") or len(node.args) > 2
        for i, arg in enumerate(node.args):
            edge = f' [label="{i}"]' if ordered else ""
            lines.append(f"  n{number[arg]} -> n{number[node]}{edge};")
    return "\n".join(lines + ["}"]) + "\n"


def _escape(text: str) -> str:
    return text.replace('"', '\\"')


def render(dot: str, path: str) -> bytes:
    """The bytes of the file ``path`` should hold: the DOT text for .dot/.gv, else the
    drawing Graphviz's ``dot`` renders in the format of the extension (svg, png, pdf).
    The caller writes them (atomically: symdiff.cli)."""
    extension = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if extension in ("dot", "gv"):
        return dot.encode("utf-8")
    program = shutil.which("dot")
    if program is None:
        raise SymdiffError(f"{path}: drawing needs Graphviz's dot program, which is not "
                           "installed; write a .dot file instead (or install graphviz)")
    done = subprocess.run([program, f"-T{extension}"], input=dot.encode("utf-8"),
                          capture_output=True)
    if done.returncode != 0:
        raise SymdiffError(f"{path}: Graphviz failed: "
                           f"{done.stderr.decode('utf-8', 'replace').strip()[:200]}")
    return done.stdout
