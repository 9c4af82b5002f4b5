#!/usr/bin/env bash
# Saved modules stand alone: write two with symdiff (the active venv), then import them in
# a fresh venv holding only numpy and numba.  A module of scalars runs there; one with
# matrix products stops at import with the message naming SciPy.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
SYMDIFF_BACKGROUND=0 python -m symdiff "((a+b)*c)**2" -o "$work/lecture.py" >/dev/null
SYMDIFF_BACKGROUND=0 python - "$work/mlp.py" <<'PY'
import sys
import numpy as np
import symdiff as sd
def loss(w1, w2, x):
    return np.sum(np.tanh(x @ w1) @ w2)
sd.compile(loss, args=[sd.matrix("w1", 3, 4), sd.vector("w2", 4), sd.matrix("x", 5, 3)],
           wrt=["w1", "w2"]).save(sys.argv[1])
PY
python3 -m venv "$work/bare"
"$work/bare/bin/pip" install --quiet numpy numba
cd "$work"
"$work/bare/bin/python" - <<'PY'
import importlib.util
for name in ("symdiff", "sympy", "scipy"):
    assert importlib.util.find_spec(name) is None, f"{name} is installed in the bare venv"
import lecture
assert lecture.forward(1.0, 2.0, 2.0) == 36.0
assert lecture.gradient(1.0, 2.0, 2.0).tolist() == [24.0, 24.0, 36.0]
try:
    import mlp  # noqa: F401
except ImportError as error:
    assert "need SciPy" in str(error), error
else:
    raise SystemExit("a module with matrix products imported without SciPy")
print("saved modules: the scalar one runs with numpy and numba alone; the one with "
      "matrix products asks for SciPy at import")
PY
