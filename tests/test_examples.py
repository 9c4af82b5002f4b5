"""The examples run and print what they promise."""

import pathlib
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def _run(name, cwd):
    return subprocess.run([sys.executable, str(EXAMPLES / name)], cwd=cwd, capture_output=True,
                          text=True, check=True).stdout


def test_lecture_example(tmp_path):
    out = _run("lecture.py", tmp_path)
    assert "d2f/da db = c*(2*c) = 8.0" in out and "compiled gradient: [24. 24. 36.]" in out
    assert (tmp_path / "lecture_generated.py").exists()


def test_neuron_example_learns(tmp_path):
    out = _run("neuron_sgd.py", tmp_path)
    accuracy = float(out.rsplit("training accuracy ", 1)[1].strip().rstrip("%"))
    assert accuracy >= 95.0
