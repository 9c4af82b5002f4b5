"""The import layers (issue 22): every module imports only from its own layer or below,
and no modules import each other in a circle.

Every import counts, top-level and inside functions (an import moved into a function to
dodge a cycle is still an edge); and each module must import as the first import of an
interpreter (packages' __init__ run first: an edge no import statement shows).  There are
no exceptions: at 8bc93aa, 12 imports went upward and 45 modules formed one circle.
"""

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("symdiff", "codegen")

# Bottom to top: a module's layer is the one that lists its name (an entry ending in "."
# lists every module under it).  The folders are the layers.
LAYERS = [
    ("errors", ["symdiff.errors", "symdiff.version"]),
    ("ir", ["symdiff.ir", "symdiff.ir."]),
    ("ops", ["symdiff.ops", "symdiff.ops."]),
    ("passes", ["symdiff.passes", "symdiff.passes."]),
    ("autodiff", ["symdiff.autodiff", "symdiff.autodiff."]),
    ("control", ["symdiff.control", "symdiff.control."]),
    ("frontend", ["symdiff.frontend", "symdiff.frontend."]),
    ("codegen", ["codegen", "codegen."]),
    ("runtime", ["symdiff.runtime", "symdiff.runtime."]),
    ("public", ["symdiff.cli", "symdiff.__main__", "symdiff"]),
]


def modules() -> dict[str, pathlib.Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def layer_of(module: str) -> int:
    for k, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or p.endswith(".") and module.startswith(p) for p in prefixes):
            return k
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_layers.py")


def imports(known: dict[str, pathlib.Path]) -> set[tuple[str, str]]:
    """(importer, imported) for every import of a project module, local ones included."""
    edges = set()
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                # "from . import api" imports the module api; "from .ir import Expr" ir.
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                           for alias in node.names]
            for target in targets:
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add((name, target))
    return edges


def strongly_connected(nodes, edges) -> list[list[str]]:
    """Tarjan's components, iteratively (no recursion)."""
    successors = {n: sorted(b for a, b in edges if a == n) for n in nodes}
    index, low, on_stack, stack, components, counter = {}, {}, set(), [], [], 0
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(successors[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(successors[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def test_every_module_has_a_layer():
    for name in modules():
        layer_of(name)


def test_imports_go_downward_only():
    known = modules()
    upward = sorted((a, b) for a, b in imports(known) if layer_of(b) > layer_of(a))
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(
        f"  {a} ({LAYERS[layer_of(a)][0]}) -> {b} ({LAYERS[layer_of(b)][0]})"
        for a, b in upward)


def test_no_import_cycles():
    known = modules()
    components = strongly_connected(known, imports(known))
    circles = [c for c in components if len(c) > 1]
    assert not circles, "modules in import cycles: " + "; ".join(", ".join(c) for c in circles)
    assert len(components) == len(known)  # every module its own component


def test_modules_import_first():
    # Importing a module runs its packages' __init__ first, which the walk above does not
    # see: codegen imports symdiff.ir.nodes, so symdiff/__init__ must not import back into
    # codegen while it loads (it loads the runtime on first use).  Each module of codegen,
    # and the entry points of symdiff, as the first import of a fresh interpreter.
    names = [n for n in modules() if n.split(".")[0] == "codegen"] + [
        "symdiff", "symdiff.ir", "symdiff.runtime.compiled", "symdiff.runtime.transforms",
        "symdiff.runtime.batching"]

    # One interpreter: before each import every module of the project is forgotten, so
    # each is the first of ours to load (NumPy and Numba stay loaded: one start, not 45).
    script = (
        "import importlib, sys, traceback\n"
        "for name in sys.argv[1:]:\n"
        "    for loaded in [m for m in sys.modules if m.split('.')[0] in ('symdiff', "
        "'codegen')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception:\n"
        "        print(name + ': ' + traceback.format_exc()[-300:])\n")
    done = subprocess.run([sys.executable, "-c", script, *names], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr[-500:]


# The packages whose modules are held to it (symdiff's own modules still import 10
# private names of their siblings).
def test_no_private_names_imported_across_modules():
    # A name starting with "_" is its module's own: another module that needs it imports
    # a public name (or the module), never "from M import _name" for a project module M.
    known = modules()
    found = []
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] in PACKAGES:
                found += [f"{name}: from {base} import {a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    assert not found, "private names imported across modules:\n" + "\n".join(found)
