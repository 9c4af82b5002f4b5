"""The lecture's worked example, through every route: diff + evaluate, compiled code, a
saved module imported where symdiff cannot be, and the command line."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import symdiff as sd
from symdiff.cli import main, run

POINT = {"a": 1.0, "b": 2.0, "c": 2.0}


def test_diff_and_evaluate():
    a, b, c = sd.symbols("a b c")
    f = ((a + b) * c) ** 2
    assert f is sd.parse("((a+b)*c)**2")
    assert sd.evaluate(f, POINT) == 36.0
    assert sd.evaluate(sd.grad(f, [a, b, c]), POINT) == [24.0, 24.0, 36.0]
    assert sd.evaluate(sd.diff(f, a, b), POINT) == 8.0
    assert sd.evaluate(sd.diff(f, a, c), POINT) == 24.0
    assert sd.evaluate(sd.diff(f, c, b), POINT) == 24.0
    assert sd.evaluate(sd.diff(f, c, c), POINT) == 18.0
    assert sd.evaluate(sd.diff(f, "a", "a", "a"), POINT) == 0.0
    # The intermediate adjoints of the lecture: df/dz2 = 12, df/dz1 = 24.
    z1, z2 = sd.symbols("z1 z2")
    assert sd.evaluate(sd.diff(z2**2, z2), z2=6.0) == 12.0
    assert sd.evaluate(sd.diff((z1 * c) ** 2, z1), z1=3.0, c=2.0) == 24.0


def test_compiled(lecture):
    assert lecture(1.0, 2.0, 2.0) == 36.0
    np.testing.assert_array_equal(lecture.grad(1.0, 2.0, 2.0), [24.0, 24.0, 36.0])
    np.testing.assert_array_equal(lecture.hessian(1, 2, 2),
                                  [[8.0, 8.0, 24.0], [8.0, 8.0, 24.0], [24.0, 24.0, 18.0]])
    value, gradient = lecture.value_and_grad(1.0, 2.0, 2.0)
    assert value == 36.0 and list(gradient) == [24.0, 24.0, 36.0]


def test_saved_module_runs_without_symdiff(lecture, tmp_path):
    lecture.save(tmp_path / "lecture_grad.py")
    script = textwrap.dedent("""
        import sys
        sys.modules["symdiff"] = None  # any import of symdiff now fails
        sys.modules["codegen"] = None
        import numba
        import lecture_grad as m
        try:
            import symdiff
        except ImportError:
            pass
        else:
            raise SystemExit("symdiff was importable")

        @numba.njit
        def user_code(a, b, c):  # the project's own njit code calls the generated one
            return m.gradient(a, b, c)[2] + m.forward(a, b, c)

        print(m.forward(1.0, 2.0, 2.0), m.gradient(1.0, 2.0, 2.0).tolist(),
              m.hessian(1.0, 2.0, 2.0).tolist(), user_code(1.0, 2.0, 2.0))
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout
    assert out.split("\n")[0] == ("36.0 [24.0, 24.0, 36.0] [[8.0, 8.0, 24.0], [8.0, 8.0, 24.0],"
                                  " [24.0, 24.0, 18.0]] 72.0")


def test_command_line(tmp_path, capsys):
    module = tmp_path / "m.py"
    assert run(["((a+b)*c)**2", "--wrt", "a", "b", "c", "--order", "2",
                "--at", "a=1", "b=2", "c=2", "-o", str(module)]) == 0
    out = capsys.readouterr().out
    for line in ["f(a, b, c) = ((a + b)*c)**2  = 36.0", "df/da = 2*((a + b)*c)*c  = 24.0",
                 "df/dc = 2*((a + b)*c)*(a + b)  = 36.0", "d2f/da db = c*(2*c)  = 8.0",
                 "d2f/da dc = c*(2*(a + b)) + 2*((a + b)*c)  = 24.0",
                 "d2f/dc dc = (a + b)*(2*(a + b))  = 18.0"]:
        assert line in out.splitlines()
    assert "def hessian(a, b, c):" in module.read_text()


@pytest.mark.parametrize("arguments, message", [
    (["--wrt", "z"], "--wrt z: the expression has no variable 'z' (its variables: a, b, c)"),
    (["--at", "a=1", "d=2"], "--at d=2: the expression has no variable 'd'"),
    (["--at", "a=1", "a=2"], "--at gives a twice"),
    (["-o", "missing/m.py"], "the directory"),
    (["-o", "."], ".: is a directory"),
    (["--order", "-1"], "--order must be between 0 and 20"),
    (["--order", "100000"], "--order must be between 0 and 20"),
])
def test_command_line_errors_name_what_is_wrong(arguments, message, tmp_path, monkeypatch,
                                                capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["((a+b)*c)**2", *arguments]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""  # nothing printed before
    assert not (tmp_path / "missing").exists()


def test_command_line_bounds_what_order_prints(capsys):
    many = " + ".join(f"x{k}**2" for k in range(30))
    assert main([many, "--order", "4"]) == 2  # 46,376 partials
    assert "at most 2000" in capsys.readouterr().err


def test_command_line_options_given_twice_add_up(capsys):
    assert run(["((a+b)*c)**2", "--wrt", "a", "--wrt", "c", "--at", "a=1", "b=2",
                "--at", "c=2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "f(a, c) = ((a + b)*c)**2  = 36.0" in lines
    assert "df/dc = 2*((a + b)*c)*(a + b)  = 36.0" in lines


def test_command_line_prints_long_derivatives_in_let_form(capsys):
    # A Black-Scholes-like term: its second derivatives repeat whole subexpressions.
    assert run(["S*exp(-(log(S/K) + s**2/2)**2/s)", "--wrt", "S", "K", "--order", "2",
                "--at", "S=1", "K=2", "s=0.3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "    _1 = S/K" in lines  # shared parts named, indented under the label line
    entry = next(line for line in lines if line.startswith("d2f/dS dS = "))
    assert "_1" in entry and entry.endswith("= 4.02447155414445")
    assert run(["a*b", "--form", "let"]) == 0
    assert "f(a, b) = a*b" in capsys.readouterr().out.splitlines()
    assert run(["e*x + pi", "--wrt", "e", "x"]) == 0  # --wrt declares e a symbol
    assert "f(e, x) = e*x + 3.141592653589793" in capsys.readouterr().out.splitlines()


def test_command_line_lowering_python_keeps_saved_code_readable(tmp_path, capsys):
    # 100 operations or more: "auto" writes LLVM text, "python" keeps Python statements.
    expression = " + ".join(f"sin(x*{k})*y**{k % 4}" for k in range(1, 40))
    for lowering, llvm in (("auto", True), ("python", False)):
        module = tmp_path / f"m_{lowering}.py"
        assert run([expression, "-o", str(module), "--lowering", lowering]) == 0
        assert ("define " in module.read_text()) is llvm


def test_command_line_process():
    done = subprocess.run([sys.executable, "-m", "symdiff", "sin(x)*y", "--order", "1",
                           "--at", "x=0", "y=3"], capture_output=True, text=True)
    assert done.returncode == 0
    assert "df/dx = y*cos(x)  = 3.0" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "symdiff", "sin(x"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "column 4" in bad.stderr
    helped = subprocess.run([sys.executable, "-m", "symdiff", "--help"], capture_output=True,
                            text=True)
    assert helped.returncode == 0 and "--order" in helped.stdout
