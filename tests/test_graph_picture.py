"""Pictures of the graph (sd.to_dot, --graph): the lecture's forward and backward sweeps."""

import errno
import os
import re
import shutil

import numpy as np
import pytest

import symdiff as sd
from symdiff.cli import main


def _nodes(dot: str) -> dict[str, str]:
    return dict(re.findall(r'^  (n\d+) \[label="([^"]*)"', dot, re.M))


def _edges(dot: str) -> list[tuple[str, str]]:
    return re.findall(r"^  (n\d+) -> (n\d+)", dot, re.M)


def test_the_lecture_graph_with_values_and_adjoints():
    dot = sd.to_dot("((a+b)*c)**2", a=1, b=2, c=2)
    assert dot.startswith("digraph symdiff {") and dot.rstrip().endswith("}")
    labels = sorted(_nodes(dot).values())
    for want in [r"a\n= 1\nadjoint 24", r"b\n= 2\nadjoint 24", r"c\n= 2\nadjoint 36",
                 r"+\n= 3\nadjoint 24", r"*\n= 6\nadjoint 12", r"**\n= 36\nadjoint 1", "2"]:
        assert want in labels, (want, labels)
    assert len(_edges(dot)) == 6  # each operand once: a, b -> +; +, c -> *; *, 2 -> **


def test_shared_nodes_are_drawn_once():
    x = sd.symbol("x")
    shared = sd.sin(x)
    dot = sd.to_dot(shared * x + shared)
    names = {label: name for name, label in _nodes(dot).items()}
    assert list(_nodes(dot).values()).count("sin") == 1
    assert sum(1 for a, _ in _edges(dot) if a == names["sin"]) == 2  # two users
    arrays = sd.to_dot(sd.sum(sd.vector("v", 3) ** 2))  # arrays: shapes, no adjoints
    assert "v (3,)" in arrays and "sum" in arrays


def test_command_line_draws_the_graph(tmp_path, capsys):
    picture = tmp_path / "lecture.dot"
    assert main(["((a+b)*c)**2", "--at", "a=1", "b=2", "c=2", "--graph", str(picture)]) == 0
    assert "adjoint 36" in picture.read_text() and "drew" in capsys.readouterr().out
    svg = tmp_path / "lecture.svg"
    status = main(["((a+b)*c)**2", "--graph", str(svg)])
    if shutil.which("dot"):  # Graphviz installed: rendered
        assert status == 0 and "<svg" in svg.read_text()
    else:
        assert status == 2 and "Graphviz" in capsys.readouterr().err


def test_to_dot_reads_text_and_lists():
    dot = sd.to_dot(["a*b", "a+b"])
    assert len(_nodes(dot)) == 4 and dot.count("peripheries=2") == 2
    with pytest.raises(sd.SymdiffError):
        sd.to_dot(object())


def test_latex_of_expressions_and_gradients():
    assert sd.to_latex("((a+b)*c)**2") == r"c^{2} \left(a + b\right)^{2}"
    column = sd.to_latex(sd.grad("((a+b)*c)**2"))
    assert column.startswith(r"\left[\begin{matrix}") and column.count(r"\\") == 2
    assert sd.to_latex(sd.sum(sd.vector("v", 3))) == "{v}_{0} + {v}_{1} + {v}_{2}"
    m, x = sd.matrix("M", 2, 2), sd.vector("x", 2)
    assert sd.to_latex(sd.tanh(m @ x)) == (
        r"\left[\begin{matrix}\tanh{\left({M}_{0,0} {x}_{0} + {M}_{0,1} {x}_{1} \right)}"
        r"\\\tanh{\left({M}_{1,0} {x}_{0} + {M}_{1,1} {x}_{1} \right)}\end{matrix}\right]")
    with pytest.raises(sd.SymdiffError, match="open"):
        sd.to_sympy(sd.sum(sd.vector("v", None)))


def test_to_sympy_of_array_expressions_and_their_gradients():
    import sympy

    m, x = sd.matrix("M", 2, 3), sd.vector("x", 3)
    loss = sd.sum(sd.tanh(m @ x) ** 2) + sd.amax(x)
    converted = sd.to_sympy(loss)
    gradient = sd.to_sympy(sd.grad(loss, [x])[0])
    assert isinstance(gradient, sympy.Matrix) and gradient.shape == (3, 1)
    xs, ms = sympy.IndexedBase("x", real=True), sympy.IndexedBase("M", real=True)
    values = {xs[0]: 0.3, xs[1]: -0.2, xs[2]: 0.5}
    values.update({ms[i, j]: 0.5 * i - 0.25 * j + 0.1 for i in range(2) for j in range(3)})
    for k in range(3):
        want = float(sympy.diff(converted, xs[k]).subs(values))
        assert float(gradient[k].subs(values)) == pytest.approx(want, rel=1e-13)


def test_array_expressions_print_in_numpy_notation():
    y, m, a = sd.vector("y", 5), sd.matrix("M", 3, 4), sd.symbol("a")
    printed = [str(e) for e in (y[0], y[1:], y[::-1], m[1, 2:], m[:, 0], (y * a)[2],
                                sd.sum(y * y), sd.sum(m, axis=0),
                                sd.amax(m, axis=1, keepdims=True))]
    assert printed == ["y[0]", "y[1:5]", "y[4::-1]", "M[1, 2:4]", "M[:, 0]", "(y*a)[2]",
                       "sum(y*y)", "sum(M, axis=0)", "amax(M, axis=1, keepdims=True)"]
    values = np.arange(5.0)  # the printed slices mean what they say in NumPy
    np.testing.assert_array_equal(sd.evaluate(y[1:], y=values), values[1:5])
    np.testing.assert_array_equal(sd.evaluate(y[::-1], y=values), values[4::-1])


def test_the_graph_file_is_written_atomically(tmp_path, capsys, monkeypatch):
    # A symlink at the path is replaced, never followed; a full disk leaves the old file
    # whole and says so in one line.
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    link = tmp_path / "g.dot"
    os.symlink(target, link)
    assert main(["a*b", "--graph", str(link)]) == 0
    assert target.read_text() == "keep me\n" and not link.is_symlink()
    assert "digraph" in link.read_text()

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr("symdiff.cli.write_atomic", full_disk)
    capsys.readouterr()
    assert main(["a+b", "--graph", str(link)]) == 2
    assert "--graph" in capsys.readouterr().err and "digraph" in link.read_text()
    assert "a + b" not in link.read_text()
