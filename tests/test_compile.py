"""sd.compile: inputs it accepts, the methods it returns, and the generated source."""

import ast
import hashlib
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import sympy

import symdiff as sd

a, b = sd.symbols("a b")


@pytest.fixture(scope="module")
def traced():
    def f(y, x):  # parameter order, not name order, gives the argument order
        return np.sin(x) * y + np.exp(-x * y) + np.tanh(np.maximum(x, y))

    return sd.compile(f)


@pytest.fixture(scope="module")
def vector():
    return sd.compile([a * b, sd.sin(a) + b**2, a / b])


def test_traced_python_function(traced):
    assert isinstance(traced, sd.ByShape)  # a function of what it is called with
    assert [s.value for s in traced.compiled_for(0.3, 1.1).wrt] == ["y", "x"]
    y, x = 0.3, 1.1
    expected = math.sin(x) * y + math.exp(-x * y) + math.tanh(max(x, y))
    assert math.isclose(traced(y, x), expected, rel_tol=1e-14)
    dy = math.sin(x) - x * math.exp(-x * y)
    dx = math.cos(x) * y - y * math.exp(-x * y) + 1 - math.tanh(x) ** 2
    np.testing.assert_allclose(traced.grad(y, x), [dy, dx], rtol=1e-13)
    value, gradient = traced.value_and_grad(y, x)
    assert value == traced(y, x) and list(gradient) == list(traced.grad(y, x))


def test_math_module_on_symbols_is_a_clear_error():
    with pytest.raises(sd.TraceError, match=r"np\.sin.*sd\.sin"):
        sd.compile(lambda x: math.sin(x))(1.0)  # traced at the call
    with pytest.raises(TypeError):  # TraceError is a TypeError too
        sd.compile(lambda x: math.exp(x) + 1, args=["x"])


def test_untraceable_signatures():
    with pytest.raises(sd.TraceError, match="args"):
        sd.compile(lambda *args: args[0])


def test_vector_valued(vector):
    x = (0.5, 2.0)
    np.testing.assert_allclose(vector(*x), [1.0, math.sin(0.5) + 4.0, 0.25], rtol=1e-15)
    jac = vector.jacobian(*x)
    np.testing.assert_allclose(jac, [[2.0, 0.5], [math.cos(0.5), 4.0], [0.5, -0.125]],
                               rtol=1e-15)
    ct = np.array([1.0, -2.0, 3.0])
    np.testing.assert_allclose(vector.vjp(*x, ct), ct @ jac, rtol=1e-14)
    t = np.array([0.25, -1.0])
    np.testing.assert_allclose(vector.jvp(*x, t), jac @ t, rtol=1e-14)
    with pytest.raises(sd.SymdiffError, match="scalar"):
        vector.grad(*x)


def test_scalar_vjp_and_jvp(lecture):
    np.testing.assert_array_equal(lecture.vjp(1.0, 2.0, 2.0, 0.5), [12.0, 12.0, 18.0])
    assert lecture.jvp(1.0, 2.0, 2.0, np.array([1.0, 0.0, 1.0])) == 60.0
    with pytest.raises(sd.SymdiffError, match="vector- or array-valued"):
        lecture.jacobian(1.0, 2.0, 2.0)


def test_integer_arguments_are_converted(lecture):
    assert lecture(1, 2, 2) == 36.0
    assert lecture.grad(1, 2, 2).dtype == np.float64


@pytest.mark.parametrize("f", ["a*b + 1", sympy.Symbol("a") * sympy.Symbol("b") + 1,
                               a * b + 1, lambda a, b: a * b + 1])
def test_accepted_inputs(f):
    fn = sd.compile(f)
    if isinstance(fn, sd.ByShape):  # a Python function: compiled for its arguments' shapes
        fn = fn.compiled_for(2.0, 3.0)
    assert [s.value for s in fn.wrt] == ["a", "b"]
    assert sd.evaluate(fn.outputs[0], a=2.0, b=3.0) == 7.0


def test_wrt_and_args_rules():
    fn = sd.compile("a*b", wrt=["b", "a", "c"])
    assert list(fn.grad(2.0, 3.0, 5.0)) == [3.0, 2.0, 0.0]
    # wrt first, then the other inputs; derivatives only with respect to wrt.
    partial = sd.compile("a*b + c", wrt=["c", "a"])
    assert [s.value for s in partial.args] == ["c", "a", "b"]
    assert list(partial.grad(1.0, 2.0, 3.0)) == [1.0, 3.0]
    assert sd.compile("a*b", wrt="a").grad(2.0, 3.0) == 3.0  # one symbol: its derivative
    with pytest.raises(sd.SymdiffError, match="depends on b"):
        sd.compile("a*b", wrt=["a"], args=["a"])
    with pytest.raises(sd.SymdiffError, match="symbols"):
        sd.compile("a*b", wrt=[a * b])


HAZARDS = ["math", "np", "numba", "t0", "_t0", "_x1", "forward", "abs", "float", "θ", "x_",
           "_out", "gradient"]


def test_symbol_names_never_break_generated_code():
    syms = [sd.symbol(name) for name in HAZARDS]
    f = sum((k + 1) * s * s for k, s in enumerate(syms))
    fn = sd.compile(f, syms)
    x = [float(k) / 10 for k in range(len(syms))]
    assert math.isclose(fn(*x), sum((k + 1) * v * v for k, v in enumerate(x)), rel_tol=1e-14)
    np.testing.assert_allclose(fn.grad(*x), [2 * (k + 1) * v for k, v in enumerate(x)])
    source = fn.source
    compile(source, "<test>", "exec")
    header = next(line for line in source.splitlines() if line.startswith("def forward("))
    assert "math" not in header.split("(")[1] and "_x0" in header


def test_generated_module_imports_only_math_numpy_numba(lecture):
    tree = ast.parse(lecture.source)
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    assert imported == {"math", "numpy", "numba"}
    assert {node.module.split(".")[0] for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)} <= {"numba"}
    defined = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)
               and not n.name.startswith("_")]
    assert defined == ["forward", "gradient", "value_and_grad", "hessian", "hvp", "vjp", "jvp",
                       "sparse_hessian",
                       "forward_batch", "gradient_batch", "value_and_grad_batch",
                       "hessian_batch"]


SOURCE_SCRIPT = """
import hashlib, symdiff as sd
sd.parse("c*(a+b) + sin(b)*2")  # build nodes in another order first
print(hashlib.sha256(sd.compile("((a+b)*c)**2 + sin(a*b)*exp(-c*c)").source.encode()).hexdigest())
"""


def test_source_is_byte_identical_across_processes():
    here = sd.compile("((a+b)*c)**2 + sin(a*b)*exp(-c*c)").source
    assert here == sd.compile("((a+b)*c)**2 + sin(a*b)*exp(-c*c)").source
    there = subprocess.run([sys.executable, "-c", SOURCE_SCRIPT], capture_output=True,
                           text=True, check=True).stdout.strip()
    assert there == hashlib.sha256(here.encode()).hexdigest()


def test_exact_generated_function(lecture):
    assert lecture.source.split("\n\n\n")[2] == '''@numba.njit(error_model="numpy", cache=True)
def gradient(a, b, c):
    """gradient"""
    _t0 = a + b
    _t1 = _t0 * c  # (a + b)*c
    _t2 = 2.0 * _t1  # 2*((a + b)*c)
    _t3 = _t2 * c  # 2*((a + b)*c)*c
    _t4 = _t2 * _t0  # 2*((a + b)*c)*(a + b)
    _out = np.empty(3)
    _out[0] = _t3
    _out[1] = _t3
    _out[2] = _t4
    return _out'''


def test_value_and_grad_is_one_fused_pass():
    f = sd.parse("sin(a*b)*exp(-a) + (a*b)**2")
    fn = sd.compile(f)
    body = fn.lower("value_and_grad").source.split("def value_and_grad")[1]
    statements = [line for line in body.splitlines() if line.strip().startswith("_t")]
    assert len(statements) == sd.count_ops([f] + sd.grad(f))


def test_fast_math_changes_only_what_it_may():
    f = sd.parse("x*0 + x - x")
    assert sd.evaluate(sd.optimize(f), x=math.inf) != sd.evaluate(sd.optimize(f), x=1.0)
    assert str(sd.optimize(f, fast_math=True)) == "0"
    fn = sd.compile(f)
    assert math.isnan(fn(math.inf))


def test_save_writes_the_source(lecture, tmp_path):
    path = lecture.save(tmp_path / "m.py")
    with open(path, encoding="utf-8") as saved:
        assert saved.read() == lecture.source


CACHE_SCRIPT = """
import symdiff as sd
fn = sd.compile("((a+b)*c)**2 + sin(a*b)*exp(-c*c)", backend="numba")  # Numba's disk cache
g = fn.grad(1.0, 2.0, 3.0)
print(sum(fn.grad.dispatcher.stats.cache_hits.values()))
"""


def test_a_second_process_loads_compiled_code_from_the_disk_cache(tmp_path):
    env = {**os.environ, "SYMDIFF_CACHE_DIR": str(tmp_path / "cache")}
    runs = [subprocess.run([sys.executable, "-c", CACHE_SCRIPT], env=env, capture_output=True,
                           text=True, check=True).stdout.split() for _ in range(2)]
    assert int(runs[0][-1]) == 0 and int(runs[1][-1]) >= 1
    assert any(p.suffix == ".py" for p in (tmp_path / "cache").iterdir())


def test_methods_bound_before_the_first_call_keep_working():
    fn = sd.compile("a*b")
    grad = fn.grad  # bound method, taken before anything is compiled
    assert list(grad(2.0, 3.0)) == [3.0, 2.0] and list(grad(1.0, 1.0)) == [1.0, 1.0]
    assert fn.grad is not grad and list(fn.grad(2.0, 3.0)) == [3.0, 2.0]


def test_llvm_lowering_matches_python_lowering_in_every_method():
    f = "sigmoid(a*b) + softplus(a - c)**3 + maximum(a, c)*atan2(b, c) + relu(b)/c"
    python, llvm = (sd.compile(f, lowering=kind) for kind in ("python", "llvm"))
    assert "@intrinsic" in llvm.source and "@intrinsic" not in python.source
    x, t = (0.3, -1.2, 0.7), np.array([0.5, -1.0, 2.0])
    for method, extra in [("forward", ()), ("grad", ()), ("value_and_grad", ()),
                          ("hessian", ()), ("vjp", (2.0,)), ("jvp", (t,)), ("hvp", (t,))]:
        got, want = getattr(llvm, method)(*x, *extra), getattr(python, method)(*x, *extra)
        for g, w in zip(np.atleast_1d(got) if method != "value_and_grad" else got,
                        np.atleast_1d(want) if method != "value_and_grad" else want,
                        strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-14, atol=1e-15)
    for fn in (python, llvm):  # array parameters are read by position: lengths checked
        with pytest.raises(ValueError, match="_tangent must have 3 items"):
            fn.jvp(*x, t[:2])
        with pytest.raises(ValueError, match="_direction must have 3 items"):
            fn.hvp(*x, t[:2])
    with pytest.raises(sd.SymdiffError, match="lowering"):
        sd.compile(f, lowering="fast")


def test_llvm_bodies_split_into_pieces_give_the_same_results(monkeypatch):
    # Long bodies become pieces (values crossing them in a scratch array): forced here
    # on a short function, every method against the unsplit lowering, bit for bit.
    import codegen.llvm.emit

    f = ("sigmoid(a*b) + softplus(a - c)**3 + maximum(a, c)*atan2(b, c) + relu(b)/c"
         " + where(a < b, a**-2, c) + stop_gradient(b)*b")
    x, t = (0.3, -1.2, 0.7), np.array([0.5, -1.0, 2.0])
    calls = [("forward", ()), ("grad", ()), ("value_and_grad", ()), ("hessian", ()),
             ("vjp", (2.0,)), ("jvp", (t,)), ("hvp", (t,))]
    whole = sd.compile(f, lowering="llvm", background=False)
    want = [getattr(whole, method)(*x, *extra) for method, extra in calls]
    assert "@piece" not in whole.source
    monkeypatch.setattr(codegen.llvm.emit, "PIECE_OPS", 5)
    split = sd.compile(f, lowering="llvm", background=False)
    assert "@piece2(" in split.source
    for (method, extra), w in zip(calls, want, strict=True):
        got = getattr(split, method)(*x, *extra)
        for g, w1 in zip(got if method == "value_and_grad" else [got],
                         w if method == "value_and_grad" else [w], strict=True):
            np.testing.assert_array_equal(g, w1)


def test_equal_array_results_are_separate_arrays():
    # Both gradients are the same node (ones): each must be its own buffer.
    x, y = sd.vector("x", 3), sd.vector("y", 3)
    fn = sd.compile(sd.sum(x) + sd.sum(y), [x, y])
    g1, g2 = fn.grad(np.ones(3), np.ones(3))
    g1 *= 0.1
    assert g2.tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("text", ["a**1e999", "a**nan", "a**(10**10**10)", "a**(-1e999)"])
def test_non_finite_exponents_compile_like_the_evaluator(text):
    fn = sd.compile(text)
    want = [sd.evaluate(sd.parse(text), a=2.0), sd.evaluate(sd.grad(text)[0], a=2.0)]
    got = [fn(2.0), fn.grad(2.0)[0]]
    np.testing.assert_array_equal(got, want)  # nan == nan here


def test_symbols_named_like_the_llvm_lowerings_own_names():
    names = "bd types signature context typingctx codegen args intrinsic cgutils".split()
    symbols = sd.symbols(" ".join(names))
    f = sum(s * sd.sin(s) for s in symbols)
    fn = sd.compile(f, lowering="llvm")
    values = [0.1 * (i + 1) for i in range(len(names))]
    point = dict(zip((s.value for s in fn.args), values, strict=True))
    assert fn(*values) == pytest.approx(sd.evaluate(f, point), rel=1e-14)


def test_saved_matrix_products_say_they_need_scipy(tmp_path):
    # Numba runs np.dot through SciPy: the saved module says so in its docstring and
    # checks at import with a clear message instead of Numba's at the first call.
    w, x = sd.matrix("W", 30, 40), sd.matrix("X", 50, 40)
    fn = sd.compile(np.sum(np.tanh(x @ w.T)), args=[w, x], backend="numba")
    path = tmp_path / "saved_products.py"
    fn.save(str(path))
    source = path.read_text()
    assert "np.dot(" in source and "and SciPy, through which" in source
    script = ("import sys; sys.modules['scipy'] = None\n"
              "try:\n    import saved_products\n"
              "except ImportError as error:\n    print(error)\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout
    assert "need SciPy" in out and "pip install scipy" in out
    plain = sd.compile(sd.parse("x * y"), args=list(sd.symbols("x y"))).source
    assert "scipy" not in plain and "import needs only math, numpy and numba" in plain
