"""What symdiff guarantees to threads, processes and callers (issue #9): interning and
compiling from many threads, fork and spawn, pickling by structure, one input contract
for both tiers, any user name, long texts, atomic saves, prompt exit."""

import dataclasses
import decimal
import fractions
import multiprocessing
import os
import pickle
import subprocess
import sys
import threading

import numpy as np
import pytest

import symdiff as sd
from symdiff.ir.nodes import graph_rows
from symdiff.runtime import loading

X = sd.vector("x", 3)


def _array_function(background):
    return sd.compile(lambda x, c: (x ** 2).sum() * c + sd.sin(x[0]), args=[X, sd.symbol("c")],
                      background=background)


def test_interning_from_many_threads_keeps_identity():
    texts = [f"sin(a{k}) * b{k} + cos(a{k} - {k}) ** 2" for k in range(150)]
    barrier, built = threading.Barrier(8), []

    def build():
        barrier.wait()
        built.append([sd.parse(t) for t in texts])

    threads = [threading.Thread(target=build) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(len(texts)):
        assert len({id(b[k]) for b in built}) == 1


def test_gradients_built_and_compiled_from_many_threads(monkeypatch):
    compiles = []
    real = loading.load_module_for
    monkeypatch.setattr(loading, "load_module_for",
                        lambda *a, **k: compiles.append(a[1]) or real(*a, **k))
    f = sd.compile("a * exp(b) - 3.5 * a ** 3", background=False, backend="numba")
    barrier, results = threading.Barrier(6), []

    def work(k):
        barrier.wait()
        g = sd.grad(sd.parse(f"a{k} * exp(b) - 3.5 * a{k} ** 3"), sd.symbol(f"a{k}"))
        results.append((f.grad(1.5, 0.5), sd.evaluate(g, {f"a{k}": 1.5, "b": 0.5})))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = [np.exp(0.5) - 3 * 3.5 * 1.5 ** 2, 1.5 * np.exp(0.5)]
    for compiled, symbolic in results:
        np.testing.assert_allclose(compiled, expected)
        assert symbolic == pytest.approx(expected[0])
    assert compiles == ["symdiff_gradient"]  # one compile for six threads


def test_fork_while_a_background_compile_runs():
    f = _array_function(background=True)
    x = np.array([0.5, -1.0, 2.0])
    first = f.grad(x, 1.5)  # starts the compile in a thread
    pid = os.fork()
    if pid == 0:  # the child: its own compile, the same answers
        try:
            ok = all(np.allclose(a, b) for a, b in zip(f.grad(x, 1.5), first, strict=True))
            f.wait()
            ok = ok and all(np.allclose(a, b) for a, b in zip(f.grad(x, 1.5), first,
                                                             strict=True))
        except BaseException:  # noqa: BLE001 - the forked child must exit, whatever happened
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    f.wait()


def _first_gradient(fn):
    return float(fn.grad(np.array([0.5, -1.0, 2.0]), 1.5)[0][0])


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_compiled_functions_work_in_multiprocessing(method):
    f = _array_function(background=True)
    expected = _first_gradient(f)
    with multiprocessing.get_context(method).Pool(2) as pool:
        assert pool.map(_first_gradient, [f, f, f]) == [pytest.approx(expected)] * 3


def test_expressions_pickle_by_structure():
    v = sd.vector("v", 3)
    assert pickle.loads(pickle.dumps(v)).shape == (3,)
    m = sd.matrix("m", 2, 3)
    expr = sd.sum(sd.tanh(m @ v) * 2.0) + sd.logsumexp(v)
    assert pickle.loads(pickle.dumps(expr)) is expr
    wide = sd.parse("+".join(f"w{k} * {k}" for k in range(5000)))
    assert pickle.loads(pickle.dumps(wide)) is wide
    deep = sd.symbol("d")
    for k in range(50_000):
        deep = sd.sin(deep) + k
    assert pickle.loads(pickle.dumps(deep)) is deep


def test_compiled_function_pickles_and_recompiles():
    f = sd.compile(lambda x: (x[1:] * x[:-1]).sum() + sd.exp(x).sum(), args=[X])
    g = pickle.loads(pickle.dumps(f))
    assert g is not f and g.args[0].shape == (3,)
    x = np.array([0.1, 0.2, 0.3])
    np.testing.assert_array_equal(g.grad(x), f.grad(x))


class _Crafted:
    """A pickle that calls one of symdiff's reconstructors with arguments of its choosing
    (what an attacker can write without any other callable)."""

    def __init__(self, function, *arguments):
        self.function, self.arguments = function, arguments

    def __reduce__(self):
        return self.function, self.arguments


def _crafted(function, *arguments):
    return pickle.loads(pickle.dumps(_Crafted(function, *arguments)))


def test_crafted_expression_pickles_are_checked_row_by_row():
    from symdiff.ir.nodes import ArrayData, unpickle_expression
    good = pickle.loads(pickle.dumps(sd.vector("v", 3) * 2.0))
    assert good.shape == (3,)
    bad_rows = {
        "symbol name": [("symbol", (), 'x"""\nimport os', ())],
        "operands order": [("symbol", (), "x", ()), ("add", (0, 1), None, ())],
        "false shape": [("symbol", (), "v", (3,)), ("sin", (0,), None, (1000,))],
        "unknown op": [("symbol", (), "x", ()), ("system", (0,), None, ())],
        "payload": [("symbol", (), "v", (3,)), ("sum", (0,), ("__import__('os')", 1), ())],
        "array key": [("array", (), _forged_array(ArrayData), (2,))],
        "constant": [("const", (), "1; import os", ())],
        "row": ["symbol"],
        # Keys past an axis's end: compiled code would read and write outside the array.
        "slice past the end": [("symbol", (), "x", (4,)),
                               ("index", (0,), (("s", 0, 1000, 1),), (1000,))],
        "position past the end": [("symbol", (), "x", (4,)), ("index", (0,), (("i", 9),), ())],
        "embed past the end": [("symbol", (), "y", ()),
                               ("embed", (0,), ((("i", 10 ** 8),), (4,)), (4,))],
    }
    for what, rows in bad_rows.items():
        with pytest.raises(sd.SymdiffError, match="unpickling|invalid symbol|index key"):
            _crafted(unpickle_expression, rows)
        assert what
    # A loop body whose placeholders do not match the operands it is given.
    x = sd.vector("x", 2)
    carry, _ = sd.scan(lambda c, t: (c * t, None), x, np.ones(3))
    rows, _ = graph_rows([carry])
    scan_row = next(k for k, row in enumerate(rows) if row[0] == "scan")
    body, part = rows[scan_row][2]
    forged = dataclasses.replace(body, carries=(sd.ir.internal_symbol("c", (1000,)),))
    rows[scan_row] = ("scan", rows[scan_row][1], (forged, part), (1000,))
    with pytest.raises(sd.SymdiffError, match="placeholder|loop"):
        _crafted(unpickle_expression, rows)


def _forged_array(kind):
    data = kind(np.array([1.0, 2.0]))
    object.__setattr__(data, "key", ((2,), "0; import os"))
    return data


def test_compiled_functions_unpickle_by_content_not_by_token():
    # Two different functions unpickle as themselves (identity follows content), and
    # copies of one function are one object.
    plus, times = sd.compile("a+b", background=False), sd.compile("a*b", background=False)
    plus_copy = pickle.loads(pickle.dumps(plus))
    assert pickle.loads(pickle.dumps(plus)) is plus_copy
    times_copy = pickle.loads(pickle.dumps(times))
    assert times_copy is not plus_copy
    assert plus_copy(2.0, 3.0) == 5.0 and times_copy(2.0, 3.0) == 6.0
    reducer, arguments = plus.__reduce__()
    with pytest.raises(sd.SymdiffError, match="unpickling"):
        _crafted(reducer, arguments[0], arguments[1], 1, 5, *arguments[4:])
    rows, roots = arguments[0], list(arguments[1])
    doubled = [roots[0], roots[1], roots[1], roots[1]]  # args (a, a), wrt a
    with pytest.raises(sd.SymdiffError, match="distinct symbols"):
        _crafted(reducer, rows, doubled, 1, 2, *arguments[4:])
    with pytest.raises(sd.SymdiffError, match="lowering must be"):
        _crafted(reducer, *arguments[:7], "exec", *arguments[8:])


ACCEPTED_SCALARS = [2, True, np.float32(1.5), np.array(1.5), decimal.Decimal("1.5"),
                    fractions.Fraction(3, 2), np.longdouble(1.5), np.int64(3)]
REJECTED_SCALARS = [("1.5", "real number, got str"), (1 + 2j, "complex"),
                    (np.complex128(1), "complex"), (None, "got NoneType"),
                    (object(), "got object")]
ACCEPTED_ARRAYS = [[1.0, 2.0, 3.0], np.arange(3), np.ones(3, np.float32), np.ones(6)[::2],
                   np.ones(3, np.longdouble), np.array([1, 2, 3], dtype=object)]
REJECTED_ARRAYS = [(np.ones((3, 1)), "1-D array of shape (3,), got shape (3, 1)"),
                   (np.ones(2), "shape (3,), got (2,)"), (1.5, "got shape ()"),
                   (np.ones(3) + 1j, "complex array"),
                   (np.array(["1", "2", "3"]), "real array"),
                   (np.array([1, "x", 3], dtype=object), "real array")]


def _outcome(call, *args):
    try:
        return [np.asarray(part, dtype=float) for part in call(*args)]
    except sd.ArgumentError as error:
        return str(error)


def _both_tiers(make, method, *args):
    interpreted = _outcome(make(background=True).loader.evaluator(method), *args)
    return interpreted, _outcome(getattr(make(background=False), method), *args)


def _same(a, b):
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))


@pytest.mark.parametrize("index", range(len(ACCEPTED_SCALARS) + len(REJECTED_SCALARS)))
def test_one_input_contract_for_scalar_arguments(index):
    value, message = ([(v, None) for v in ACCEPTED_SCALARS] + REJECTED_SCALARS)[index]
    interpreted, compiled = _both_tiers(lambda background: sd.compile(
        "a * b + sin(a)", background=background), "grad", value, 2.0)
    assert _same(interpreted, compiled)
    if message:
        assert compiled.startswith("argument a ") and message in compiled
    else:
        a = float(value)
        np.testing.assert_allclose(compiled[0], 2.0 + np.cos(a))


@pytest.mark.parametrize("index", range(len(ACCEPTED_ARRAYS) + len(REJECTED_ARRAYS)))
def test_one_input_contract_for_array_arguments(index):
    cases = [(v, None) for v in ACCEPTED_ARRAYS] + REJECTED_ARRAYS
    value, message = cases[index]
    interpreted, compiled = _both_tiers(_array_function, "grad", value, 2.0)
    assert _same(interpreted, compiled)
    if message:
        assert compiled.startswith("argument x ") and message in compiled
    else:
        np.testing.assert_allclose(compiled[1], (np.asarray(value, float) ** 2).sum())


def test_read_only_inputs_are_not_written_and_outputs_never_alias_inputs():
    f = sd.compile(lambda x: x * 1.0, args=[X])
    x = np.array([1.0, 2.0, 3.0])
    x.flags.writeable = False
    out = f(x)
    assert not np.shares_memory(out, x)
    tangent = np.ones(3)
    assert not np.shares_memory(f.jvp(x, tangent), tangent)
    assert not np.shares_memory(f.vjp(x, tangent), tangent)


@pytest.mark.parametrize("lowering", ["python", "llvm"])
def test_any_user_name_works_in_every_lowering(lowering):
    long = sd.symbol("a" * 1100)
    other = sd.symbol("b" * 1100)
    f = sd.compile(long * other + sd.sin(long), lowering=lowering)
    np.testing.assert_allclose(f.grad(1.0, 2.0), [2.0 + np.cos(1.0), 1.0])


def test_long_flat_sums_and_long_texts_parse():
    terms = 20_000
    expr = sd.parse("+".join(f"x{k % 7} * {k}" for k in range(terms)))
    assert sd.evaluate(expr, {f"x{k}": 1.0 for k in range(7)}) == sum(range(terms))
    chain = sd.parse("-".join(["a"] * 5000))
    assert sd.evaluate(chain, {"a": 1.0}) == 1.0 - 4999


def test_save_is_atomic_and_replaces_a_symlink(tmp_path, monkeypatch):
    f = sd.compile("a * b")
    target = tmp_path / "target.py"
    target.write_text("keep me")
    link = tmp_path / "module.py"
    os.symlink(target, link)
    f.save(link)
    assert target.read_text() == "keep me" and not link.is_symlink()
    assert "def gradient" in link.read_text()
    good = link.read_text()

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        f.save(link)
    assert link.read_text() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["module.py", "target.py"]


def test_background_compiles_do_not_hold_up_exit(tmp_path):
    # The script exits with its answer while the compile thread is still running; the
    # next process finds a complete cache entry or none, and computes the same answer.
    script = ("import numpy as np, symdiff as sd\n"
              "x = sd.vector('x', 30)\n"
              "f = sd.compile(lambda x: (sd.tanh(x) * sd.exp(-x) * x[::-1]).sum(), args=[x])\n"
              "print(f.grad(np.linspace(0, 1, 30))[3])\n"
              "print(all(t.daemon for t in f.loader.threads.values()))\n")
    env = dict(os.environ, SYMDIFF_CACHE_DIR=str(tmp_path), SYMDIFF_BACKGROUND="1")
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                           text=True, timeout=120) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr
    assert runs[0].stdout == runs[1].stdout and runs[0].stdout.endswith("True\n")


def test_large_first_calls_wait_for_the_compiled_code(monkeypatch):
    monkeypatch.setattr(loading, "EVALUATOR_SHARE", 0.0)
    f = _array_function(background=True)
    f.grad(np.ones(3), 1.0)
    assert ("grad", False) in f.loader.loaded  # answered by the compiled code


def test_malformed_long_text_is_rejected_before_anything_is_built(monkeypatch):
    from symdiff.frontend import long_parser

    built = []
    monkeypatch.setattr(long_parser, "apply", lambda *a: built.append(a))
    with pytest.raises(sd.ParseError, match="ends early"):
        sd.parse("a + " * 30_000)
    with pytest.raises(sd.ParseError, match="unknown function 'nope'"):
        sd.parse("a * b + " * 30_000 + "nope(a)")
    assert built == []


def test_data_too_short_for_the_open_dimension_is_one_argument_error_in_both_tiers():
    u = sd.symbol("u", (None,))
    picked = u[5] * sd.sum(u)
    w = sd.symbol("w", (None,))
    scanned = sd.scan(lambda c, x: (c + x * sd.sum(w[-2:]), None), 0.0, w)[0]
    for expr, name, data in ((picked, "u", np.ones(3)), (scanned, "w", np.ones(1))):
        for method, extra in (("forward", ()), ("grad", ()), ("hessian", ()), ("vjp", (1.0,))):
            interpreted, compiled = _both_tiers(
                lambda background, expr=expr, name=name: sd.compile(
                    expr, args=[sd.symbol(name, (None,))], background=background),
                method, data, *extra)
            assert interpreted == compiled
            assert f"argument {name} is too short" in compiled
    long_enough = sd.compile(picked, args=[u], background=False)
    assert long_enough.grad(np.ones(7)).tolist() == [1, 1, 1, 1, 1, 8, 1]


def test_sparse_matrices_of_empty_or_too_short_data():
    u = sd.symbol("u", (None,))
    squares = sd.compile(sd.sum(u ** 2), args=[u], background=False)
    assert squares.sparse_hessian(np.ones(0)).shape == (0, 0)
    linear = sd.compile(sd.sum(u), args=[u], background=False)
    assert linear.hessian_coloring(np.ones(4)).count == 1  # an all-zero pattern
    assert not linear.sparse_hessian(np.ones(4)).toarray().any()
    shifted = sd.compile(sd.sum(u[1:] * u[:-1]), args=[u], background=False)
    with pytest.raises(sd.ArgumentError, match="argument u is too short"):
        shifted.sparse_hessian(np.ones(0))


def test_sympy_forms_without_a_counterpart_are_named():
    import sympy
    s = sympy.Symbol("s")
    with pytest.raises(sd.SymdiffError, match=r"Integral: .*\.doit\(\)"):
        sd.from_sympy(sympy.Integral(s ** 2, s))
    with pytest.raises(sd.SymdiffError, match=r"Piecewise: .*sd\.where"):
        sd.from_sympy(sympy.Piecewise((s, s > 0), (0, True)))


def test_vmapped_functions_pickle():
    fn = sd.compile("sin(x) * y", background=False).vmap((0, None))
    copy = pickle.loads(pickle.dumps(fn))
    np.testing.assert_array_equal(copy(np.ones(3), 2.0), fn(np.ones(3), 2.0))
