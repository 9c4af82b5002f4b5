"""The cache against another local user (issue #25, items 1 and 2), with real user ids:
run as root with ``setpriv`` and a Python other users can run (``SYMDIFF_OTHER_PYTHON``,
an interpreter with symdiff's dependencies; the repository must be readable), else
skipped.  The attacker owns the directory above the victim's cache, or plants Numba's
shared cache directory; the victim's compiles must neither use nor write there."""

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = os.environ.get("SYMDIFF_OTHER_PYTHON", sys.executable)
ATTACKER, VICTIM = 1000, 1001

pytestmark = pytest.mark.skipif(
    os.getuid() != 0 or shutil.which("setpriv") is None
    or not os.access(PYTHON, os.X_OK) or "SYMDIFF_OTHER_PYTHON" not in os.environ,
    reason="needs root, setpriv and SYMDIFF_OTHER_PYTHON (a Python other users can run)")

VICTIM_SCRIPT = """
import warnings, symdiff as sd
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    f = sd.compile("a*b - 3.5*a", background=False, backend="numba")
    print(f.grad(2.0, 3.0).tolist())
    f.sparse_hessian(2.0, 3.0)  # symdiff's own jitted coloring loops run too
print(f.loader.loaded["grad", False].dispatcher.py_func.__code__.co_filename)
print(" | ".join(str(w.message) for w in seen))
"""


@pytest.fixture
def place():
    """A directory every user can reach (pytest's own is private to root)."""
    path = tempfile.mkdtemp(prefix="symdiff-users-")
    os.chmod(path, 0o755)
    yield __import__("pathlib").Path(path)
    shutil.rmtree(path, ignore_errors=True)


def _as_victim(tmp_path, **env):
    home = tmp_path / "victim-home"
    home.mkdir(exist_ok=True)
    os.chown(home, VICTIM, VICTIM)
    settings = {"HOME": str(home), "PYTHONPATH": ROOT, "SYMDIFF_BACKGROUND": "0",
                "PATH": os.environ.get("PATH", ""), **env}
    done = subprocess.run(["setpriv", f"--reuid={VICTIM}", f"--regid={VICTIM}",
                           "--clear-groups", "env", "-i",
                           *[f"{k}={v}" for k, v in settings.items()],
                           PYTHON, "-c", VICTIM_SCRIPT],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split("\n")[:3]


def _shared(path, owner, mode):
    path.mkdir()
    os.chown(path, owner, owner)
    os.chmod(path, mode)
    return path


def test_a_parent_owned_by_another_user_is_not_trusted(place):
    tmp_path = place
    parent = _shared(tmp_path / "attackers", ATTACKER, 0o755)
    grad, module, warnings = _as_victim(tmp_path, SYMDIFF_CACHE_DIR=str(parent / "cache"))
    assert grad == "[-0.5, 2.0]"
    assert "belongs to user id 1000" in warnings and not module.startswith(str(parent))
    assert not os.listdir(parent)


def test_numba_cache_dir_planted_by_another_user_is_not_used(place):
    tmp_path = place
    shared = _shared(tmp_path / "numba-shared", 0, 0o1777)  # as /tmp: anyone writes
    cache = _shared(tmp_path / "victim-cache-parent", VICTIM, 0o755)
    grad, module, _ = _as_victim(tmp_path, SYMDIFF_CACHE_DIR=str(cache / "cache"),
                                 NUMBA_CACHE_DIR=str(shared))
    assert grad == "[-0.5, 2.0]" and module.startswith(str(cache / "cache"))
    assert not any(files for _, _, files in os.walk(shared))
