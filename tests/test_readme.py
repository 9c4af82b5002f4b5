"""The README's Python examples run, in order, in one namespace (as a reader would paste
them), and its first command's output matches what the tour says."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_every_python_example_of_the_readme_runs(capsys):
    blocks = _python_blocks()
    assert len(blocks) >= 7
    namespace: dict = {}
    for k, block in enumerate(blocks):
        code = compile(block, f"README.md python block {k + 1}", "exec")
        exec(code, namespace)  # noqa: S102 - our own documentation
    printed = capsys.readouterr().out
    assert "[24. 24. 36.]" in printed
    shown = README.read_text(encoding="utf-8").split("```\n@numba.njit")[1].split("```")[0]
    assert "@numba.njit" + shown.rstrip("\n") in printed  # the gradient source, as shown
    assert namespace["batch"].shape == (100, 4)
    assert namespace["lazy"].shape == (10**6, 2)
