"""The native lowering of functions over arrays (codegen.native.arrays): loops, reductions
and products in LLVM text symdiff writes, compiled by llvmlite without Numba.  Each
function is checked against the Numba lowering, bit for bit where both add in the same
order (everything but matrix-matrix products, which both leave to BLAS)."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import symdiff as sd
from codegen import array_function, array_lowerable, direction_function
from symdiff.errors import ArgumentError
from symdiff.runtime import native

RNG = np.random.default_rng(7)


def _flat(result) -> np.ndarray:
    parts, stack = [], [result]
    while stack:
        part = stack.pop(0)
        if isinstance(part, tuple):
            stack = list(part) + stack
        else:
            parts.append(np.ravel(np.asarray(part, dtype=float)))
    return np.concatenate(parts)


def _mlp(batch):
    w1, b1 = sd.matrix("W1", 5, 4), sd.vector("b1", 5)
    w2 = sd.matrix("W2", 3, 5)
    x = sd.matrix("X", batch, 4) if batch != 0 else sd.vector("x", 4)
    h = sd.tanh(x @ sd.transpose(w1) + b1)
    z = h @ sd.transpose(w2)
    axis = -1
    m = sd.amax(z, axis=axis, keepdims=True)
    lse = m + sd.log(sd.sum(sd.exp(z - m), axis=axis, keepdims=True))
    return sd.sum(lse - z[:, :1]) if batch != 0 else sd.sum(lse) - z[0], [w1, b1, w2, x]


def _rosenbrock():
    x = sd.vector("x", None)
    return sd.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2), [x]


def _pairs():
    x = sd.matrix("x", 6, 3)
    rows_i, rows_j = np.triu_indices(6, 1)
    d = x[rows_i] - x[rows_j]
    r2 = sd.sum(d * d, axis=1)
    return sd.sum(1.0 / r2 ** 3 - 1.0 / r2 ** 6), [x]


def _products():
    a, v = sd.matrix("A", 4, 3), sd.vector("v", 3)
    u = sd.vector("u", 4)
    return sd.sum(sd.sin(a @ v) * u) + (u @ a) @ v + v @ v + sd.sum(sd.transpose(a) @ u), \
        [a, v, u]


def _broadcasts():
    m, c = sd.matrix("M", None, 3), sd.vector("c", 3)
    s = sd.symbol("s")
    centred = m - sd.sum(m, axis=0) / 4.0 + c * s
    return sd.sum(sd.sigmoid(centred) * sd.amax(centred, axis=1, keepdims=True)) + s ** 2, \
        [m, c, s]


def _joins():
    x, w = sd.vector("x", None), sd.vector("w", 3)
    joined = sd.concatenate([w * 2, x[1:] ** 2, w])
    return sd.sum(joined ** 2) + sd.sum(sd.cumsum(sd.tanh(x)) * x) + sd.mean(x ** 2), [x, w]


FUNCTIONS = {"mlp": lambda: _mlp(0), "joins": _joins, "mlp batch": lambda: _mlp(None),
             "rosenbrock": _rosenbrock, "pairs": _pairs, "products": _products,
             "broadcasts": _broadcasts}


def _arguments(args, batch=6):
    values = []
    for sym in args:
        shape = tuple(batch if d is None else d for d in sym.shape)
        values.append(RNG.uniform(0.5, 1.5, shape) if shape else 0.7)
    return values


@pytest.fixture(scope="module", params=sorted(FUNCTIONS))
def pair(request):
    expression, args = FUNCTIONS[request.param]()
    return (request.param, args,
            sd.compile(expression, args=args, backend="native", background=False),
            sd.compile(expression, args=args, backend="numba", background=False))


@pytest.mark.parametrize("method", ["forward", "value_and_grad", "hvp"])
def test_native_arrays_agree_with_numba(pair, method):
    name, args, fast, numba = pair
    values = _arguments(args)
    if method == "hvp":
        values += [np.ones(np.shape(v)) if np.shape(v) else 1.0 for v in values]
    got, want = getattr(fast, method)(*values), getattr(numba, method)(*values)
    assert fast.loader.tiers[method] == "native" and not fast.loader.modules
    assert type(got) is type(want)
    if "mlp" in name:  # matrix products by BLAS in both, not necessarily in one order
        np.testing.assert_allclose(_flat(got), _flat(want), rtol=1e-12, atol=1e-13)
    else:
        np.testing.assert_array_equal(_flat(got), _flat(want))


def test_arguments_go_through_the_input_contract():
    expression, args = _broadcasts()
    fast = sd.compile(expression, args=args, backend="native", background=False)
    m, c, s = _arguments(args)
    want = fast(m, c, s)
    strided = np.asfortranarray(m)  # converted, not read in the wrong order
    assert fast(strided, c, s) == want
    assert fast(m.tolist(), list(c), np.float64(s)) == want
    assert fast(pickle.loads(pickle.dumps(m)), c, s) == want  # an equal, distinct dtype
    entry = fast.forward.dispatcher  # the builtin itself, behind the contract
    assert entry(pickle.loads(pickle.dumps(m)), c, s) == want  # no conversion needed
    unaligned = np.frombuffer(bytearray(8 * c.size + 1), dtype=np.float64, offset=1,
                              count=c.size)
    unaligned[:] = c
    assert not unaligned.flags.aligned
    with pytest.raises(TypeError):
        entry(m, unaligned, s)
    assert fast(m, unaligned, s) == want  # converted
    with pytest.raises(ArgumentError, match="shape"):
        fast(m, np.ones(4), s)
    with pytest.raises(ArgumentError, match="real"):
        fast(m.astype(complex), c, s)
    with pytest.raises(ArgumentError):
        fast(m, c)


def test_an_empty_batch_and_a_too_short_one():
    expression, args = _mlp(None)
    fast = sd.compile(expression, args=args, backend="native", background=False)
    values = _arguments(args, batch=0)
    value, grads = fast.value_and_grad(*values)
    assert value == 0.0 and all(not np.any(g) for g in grads[:3])
    rosen, rargs = _rosenbrock()
    short = sd.compile(rosen, args=rargs, backend="native", background=False)
    with pytest.raises(ValueError, match="at least 1"):
        short(np.ones(0))
    assert short(np.ones(1)) == 0.0


def test_results_that_are_inputs_or_views_are_fresh_arrays():
    a, b, x = sd.vector("a", 3), sd.vector("b", 3), sd.vector("x", 3)
    m, n = sd.matrix("m", 2, 3), sd.matrix("n", 3, 2)
    fn = sd.compile(sd.sum(a * x) + sd.sum(b * x) + sd.sum(sd.transpose(m) * n),
                    args=[a, b, x, m, n], backend="native", background=False)
    values = [np.arange(3.0), np.ones(3), np.arange(3.0) + 5, np.arange(6.0).reshape(2, 3),
              np.arange(6.0).reshape(3, 2) - 3]
    ga, gb, gx, gm, gn = fn.grad(*values)
    assert fn.loader.tiers["grad"] == "native"
    np.testing.assert_array_equal(ga, values[2])
    np.testing.assert_array_equal(gb, values[2])  # one result twice: two arrays
    np.testing.assert_array_equal(gx, values[0] + values[1])
    np.testing.assert_array_equal(gm, values[4].T)
    np.testing.assert_array_equal(gn, values[3].T)
    results = [ga, gb, gx, gm, gn]
    assert not any(np.shares_memory(r, v) for r in results for v in values)
    assert not np.shares_memory(ga, gb)
    ga[0] = 99.0
    assert values[2][0] == 5.0 and gb[0] == 5.0


def test_the_text_does_not_grow_with_array_sizes():
    texts = []
    for n in (100, 100_000):  # past the loops LLVM unrolls fully (trip counts to 8)
        x = sd.vector("x", n)
        expression = sd.sum(sd.tanh(x[1:] * x[:-1])) + sd.amax(x)
        fn = sd.compile(expression, args=[x], backend="native")
        spec = fn.derivation.spec("value_and_grad")
        assert array_lowerable(spec)
        texts.append(array_function(spec, native.layout()).text)
    assert len(texts[0].splitlines()) == len(texts[1].splitlines())


def _matrices(name):
    x = sd.vector("x", None)
    w = sd.matrix("W", 2, 5)
    v = sd.vector("v", 5)
    s = sd.symbol("s")
    if name == "hessian":
        return sd.sum(sd.tanh(x[1:] * x[:-1])) + sd.sum(x ** 2) * s, [x, s]
    if name == "jacobian (columns)":
        return sd.sin(x) * sd.sum(x ** 2) + x[::-1], [x]
    return sd.tanh(w @ v) * s, [w, v, s]  # 2 outputs, 16 inputs: rows by vjp


@pytest.mark.parametrize("name", ["hessian", "jacobian (columns)", "jacobian (rows)"])
def test_dense_matrices_are_native_direction_loops(name):
    expression, args = _matrices(name)
    method = "hessian" if name == "hessian" else "jacobian"
    fast = sd.compile(expression, args=args, backend="native", background=False)
    numba = sd.compile(expression, args=args, backend="numba", background=False)
    values = _arguments(args, batch=7)
    got, want = getattr(fast, method)(*values), getattr(numba, method)(*values)
    assert fast.loader.tiers[method] == "native" and not fast.loader.modules
    np.testing.assert_array_equal(_flat(got), _flat(want))
    assert np.shape(got) == np.shape(want)


CACHED_SCRIPT = """
import numpy as np, symdiff as sd
from symdiff.runtime import native
x = sd.vector("x", None)
fn = sd.compile(sd.sum(sd.tanh(x) * x[::-1]), args=[x], background=False)
print(fn.value_and_grad(np.linspace(0.0, 1.0, 9))[0], native.STATS["compiled"],
      native.STATS["cached"])
"""


def test_machine_code_is_cached_on_disk_and_checked(tmp_path):
    folder = tmp_path / "cache"
    env = {**os.environ, "SYMDIFF_CACHE_DIR": str(folder)}
    env.pop("SYMDIFF_BACKEND", None)

    def run():
        done = subprocess.run([sys.executable, "-c", CACHED_SCRIPT], env=env, check=True,
                              capture_output=True, text=True)
        value, compiled, cached = done.stdout.split()
        return float(value), int(compiled), int(cached), done.stderr

    first, second = run(), run()
    assert first[1:3] == (1, 0) and second[1:3] == (0, 1) and first[0] == second[0]
    (entry,) = folder.glob("*.native")
    data = bytearray(entry.read_bytes())
    data[-1] ^= 0xFF  # one bit of machine code changed: its digest no longer matches
    entry.write_bytes(bytes(data))
    third = run()
    assert third[:3] == first[:3] and "damaged" in third[3]
    cleared = subprocess.run([sys.executable, "-c", "import symdiff; symdiff.clear_cache()"],
                             env=env, check=True)
    assert cleared.returncode == 0 and not list(folder.glob("*.native"))
    assert run()[1:3] == (1, 0)


@pytest.mark.parametrize("kind", ["hessian", "jacobian"])
def test_sparse_matrices_are_native_compressed_loops(kind):
    x = sd.vector("x", 12)
    if kind == "hessian":
        expression = sd.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    else:
        expression = sd.concatenate([x[:1] * 2.0, x[1:] * sd.exp(x[:-1]) - x[:-1]])
    method = f"sparse_{kind}"
    fast = sd.compile(expression, args=[x], backend="native", background=False)
    numba = sd.compile(expression, args=[x], backend="numba", background=False)
    point = np.linspace(-0.5, 1.5, 12)
    got, want = getattr(fast, method)(point), getattr(numba, method)(point)
    assert fast.loader.tiers[f"{method}_data"] == "native"
    assert (got != want).nnz == 0 and got.nnz == want.nnz > 12
    np.testing.assert_array_equal(got.toarray(), getattr(fast, kind)(point))
    data = fast.loader.load(f"{method}_data")
    with pytest.raises(ValueError, match="one row per direction"):
        data(point, np.ones((2, 5)), np.zeros(3, dtype=np.uint32))
    assert native._SCRATCH.busy == 0  # every way out gives the scratch buffer back


def test_results_that_are_roots_or_fills_are_written():
    a = sd.vector("a", 4)
    solution = sd.custom_root(lambda x: x * 2.0 - a, 0.0 * a,
                              lambda f, x0: sd.exp(a) / 2.0 + 0.0 * x0)
    for result in (solution, sd.stop_gradient(a), sd.sum(a) + sd.zeros((4,))):
        fast = sd.compile(result, args=[a], backend="native", background=False)
        numba = sd.compile(result, args=[a], backend="numba", background=False)
        point = np.array([0.5, 1.0, 2.0, 3.0])
        got = fast(point)
        assert fast.loader.tiers["forward"] == "native"
        np.testing.assert_array_equal(got, numba(point))


@pytest.mark.parametrize("n", [3, 257, 1003])
def test_long_sums_of_transcendental_maps_add_in_numbas_blocks(n):
    x = sd.vector("x", n)
    expression = sd.sum(sd.tanh(x * 3.0)) + sd.sum(sd.exp(-x) * x)
    fast = sd.compile(expression, args=[x], backend="native", background=False)
    numba = sd.compile(expression, args=[x], backend="numba", background=False)
    for seed in range(3):
        point = np.random.default_rng(seed).normal(size=n)
        assert fast(point) == numba(point)


def test_compressed_loops_check_their_gather_positions():
    x = sd.vector("x", 6)
    fast = sd.compile(sd.sum(x[1:] * x[:-1] ** 2), args=[x], backend="native",
                      background=False)
    fast.sparse_hessian(np.ones(6))
    data = fast.loader.load("sparse_hessian_data")
    seeds = np.ones((1, 6))
    with pytest.raises(ValueError, match="_gather positions"):
        data(np.ones(6), seeds, np.array([0, 4000], dtype=np.uint32))
    with pytest.raises(ValueError, match="_gather positions"):
        data(np.ones(6), seeds, np.array([2 ** 32 - 1], dtype=np.uint32))
    assert native._SCRATCH.busy == 0
    for refused in (">u4", np.int64):  # byte-swapped or wider: refused, never misread
        with pytest.raises(TypeError):
            data.dispatcher(np.ones(6), seeds, np.array([0, 1], dtype=refused))
    np.testing.assert_array_equal(data(np.ones(6), seeds, np.array([0, 5], dtype=np.uint32)),
                                  fast.hessian(np.ones(6)).sum(axis=1)[[0, 5]])


def test_a_fill_returned_twice_is_two_arrays():
    x, y = sd.vector("x", 3), sd.vector("y", 3)
    fn = sd.compile(sd.sum(x) + sd.sum(y), args=[x, y], backend="native", background=False)
    g1, g2 = fn.grad(np.ones(3), np.ones(3))
    assert fn.loader.tiers["grad"] == "native" and not np.shares_memory(g1, g2)
    assert g1.tolist() == g2.tolist() == [1.0, 1.0, 1.0]


def _temporaries():
    x = sd.vector("x", None)
    y = sd.tanh(x) * x
    return sd.sum(y * sd.cumsum(y)) + sd.amax(y), [x]


def test_temporaries_live_in_the_scratch_buffer_or_in_memory_of_their_own(monkeypatch):
    """The process's scratch buffer grows as calls need, and a call finding it held (or
    needing more than SCRATCH_BYTES) uses memory of its own, leaving the flag alone."""
    expression, args = _temporaries()
    fast = sd.compile(expression, args=args, backend="native", background=False)
    numba = sd.compile(expression, args=args, backend="numba", background=False)
    for n in (5, 50_000, 7):  # the buffer grows, then serves a smaller call
        x = RNG.normal(size=n)
        np.testing.assert_array_equal(_flat(fast.value_and_grad(x)),
                                      _flat(numba.value_and_grad(x)))
        assert native._SCRATCH.busy == 0 and native._SCRATCH.size >= 8 * n
    x = RNG.normal(size=300)
    native._SCRATCH.busy = 1  # as if another call held it
    try:
        np.testing.assert_array_equal(_flat(fast.value_and_grad(x)),
                                      _flat(numba.value_and_grad(x)))
        assert native._SCRATCH.busy == 1
    finally:
        native._SCRATCH.busy = 0
    monkeypatch.setattr("codegen.native.code.SCRATCH_BYTES", 64)
    small = sd.compile(expression, args=args, backend="native", background=False)
    size = native._SCRATCH.size
    np.testing.assert_array_equal(_flat(small.value_and_grad(x)),
                                  _flat(numba.value_and_grad(x)))
    assert native._SCRATCH.busy == 0 and native._SCRATCH.size == size


def test_a_full_maximum_runs_in_lanes_and_propagates_nan():
    """amax over a vector keeps four running maxima (exact: the Numba lowering's value)
    and a NaN anywhere, in any lane or the tail, makes the result NaN."""
    x = sd.vector("x", None)
    fast = sd.compile(sd.logsumexp(x) + sd.amax(x * 2.0), args=[x], backend="native",
                      background=False)
    numba = sd.compile(sd.logsumexp(x) + sd.amax(x * 2.0), args=[x], backend="numba",
                       background=False)
    for n in (1, 3, 4, 5, 11, 1001):
        point = RNG.normal(size=n)
        assert fast(point) == numba(point)
        for where in {0, n // 2, n - 1}:
            spoiled = point.copy()
            spoiled[where] = np.nan
            assert np.isnan(fast(spoiled))


def _stencil(x):
    u = np.reshape(x, (6, 6))
    p = np.concatenate([np.zeros((6, 1)), u, np.zeros((6, 1))], axis=1)
    return np.reshape(p[:, :-2] + p[:, 2:] - 2.0 * u + np.exp(u), (36,))


def test_a_raveled_grid_is_computed_in_its_result():
    # The residual's grid is computed where its raveled result (or its row of the
    # products) goes: no temporary (workspace) in the function, one in the driver.
    fast, reference = (sd.compile(_stencil, args=[sd.vector("x", 36)], backend=b,
                                  background=False) for b in ("native", "numba"))
    x = np.linspace(-1.0, 1.0, 36)
    np.testing.assert_array_equal(fast(x), reference(x))
    np.testing.assert_array_equal(fast.sparse_jacobian(x).toarray(),
                                  reference.sparse_jacobian(x).toarray())
    assert fast.loader.tiers["sparse_jacobian_data"] == "native"
    assert "%ws" not in array_function(fast.derivation.spec("forward"), native.layout()).text
    driver = direction_function(fast.derivation.spec("sparse_jacobian_data"),
                                native.layout()).text
    assert driver.count("getelementptr inbounds i8, ptr %ws.base,") == 2  # products, exp(u)



_ROWS = np.array([0, 3, 1, 1, 2, 0, 3, 2, 2, 1, 0, 3])


def _gathered(x):
    return np.sin(x * x)[_ROWS] * np.linspace(0.5, 2.0, 12)


def test_a_jacobian_column_is_written_by_its_loop(monkeypatch):
    # One direction at a time, a result computed by a loop of its own (here a gather)
    # writes its products straight into its column of the matrix: no temporary copied
    # there, the same numbers.
    from symdiff.runtime import derivation
    monkeypatch.setattr(derivation, "BLOCK_DIRECTIONS", 1)
    fast, reference = (sd.compile(_gathered, args=[sd.vector("x", 4)], backend=b,
                                  background=False) for b in ("native", "numba"))
    x = np.array([0.3, -0.7, 1.1, 0.2])
    np.testing.assert_array_equal(fast.jacobian(x), reference.jacobian(x))
    assert fast.loader.tiers["jacobian"] == "native"
    driver = direction_function(fast.derivation.spec("jacobian"), native.layout()).text
    # The direction's buffer, cos(x * x) (hoisted) and the tangent of sin(x * x) that
    # the gather reads: no temporary for the products (there was one before).
    assert driver.count("getelementptr inbounds i8, ptr %ws.base,") == 3
    assert driver.count("getelementptr inbounds double, ptr %out,") == 1


_TALL = np.resize(np.array([2, 0, 3, 1, 1, 2]), 96)
_SPREAD = np.linspace(-1.0, 1.0, 96)


@pytest.mark.parametrize("f", [lambda x: np.sin(x * x)[_TALL] * _SPREAD,
                               lambda x: x[_TALL] * _SPREAD - 1.0,
                               lambda x: np.tanh(np.outer(x, x))[_TALL] * 2.0,
                               lambda x: (np.broadcast_to(np.sum(x * x), (4,))[_TALL]
                                          * np.sin(x)[_TALL[::-1]])])
def test_a_tall_result_of_small_sources_is_written_by_rows(monkeypatch, f):
    # One direction at a time, a result much larger than the arrays it reads that vary
    # (the tangent of sin(x * x), the direction itself, a 4 x 4 product, a broadcast
    # number and a tangent) keeps those for
    # every direction and is written after the loop, a row of the matrix at a time:
    # the same numbers as the Numba lowering and as the column-by-column driver.
    from codegen.native import driver as native_driver
    from symdiff.runtime import derivation
    monkeypatch.setattr(derivation, "BLOCK_DIRECTIONS", 1)
    x = np.array([0.3, -0.7, 1.1, 0.2])
    reference = sd.compile(f, args=[sd.vector("x", 4)], backend="numba", background=False)
    texts = []
    for numbers in (native_driver.DEFERRED_NUMBERS, 0):
        monkeypatch.setattr(native_driver, "DEFERRED_NUMBERS", numbers)
        fast = sd.compile(f, args=[sd.vector("x", 4)], background=False)
        np.testing.assert_array_equal(fast.jacobian(x), reference.jacobian(x))
        assert fast.loader.tiers["jacobian"] == "native"
        texts.append(direction_function(fast.derivation.spec("jacobian"),
                                        native.layout()).text)
    assert texts[0] != texts[1]


DEFERRED_SCRIPT = """
import hashlib, numpy as np, symdiff as sd
from codegen import direction_function
from symdiff.runtime import derivation, native
derivation.BLOCK_DIRECTIONS = 1
rows = np.arange(2000) % 40
f = lambda x: np.sin(x)[rows] * np.cos(x)[rows[::-1]] + np.exp(x)[rows] * x[rows[::-1]]
fn = sd.compile(f, args=[sd.vector("x", 40)], background=False)
text = direction_function(fn.derivation.spec("jacobian"), native.layout()).text
print(hashlib.sha256(text.encode()).hexdigest(), text.count("ptr %out,"))
"""


def test_a_deferred_result_has_the_same_text_in_every_process(tmp_path):
    # Its sources (here several) are kept in the graph's order, not in an order of
    # object addresses: the text, and so the machine-code cache's key, is the same.
    env = {**os.environ, "SYMDIFF_CACHE_DIR": str(tmp_path)}
    texts = {subprocess.run([sys.executable, "-c", DEFERRED_SCRIPT], env=env, check=True,
                            capture_output=True, text=True).stdout for _ in range(4)}
    assert len(texts) == 1 and texts.pop().split()[1] == "1"


def test_a_stencil_loop_reads_its_neighbours_again(monkeypatch):
    # LLVM's load PRE across the back edge is off for native code: a stencil's loads of
    # x[i - 1], x[i] and x[i + 1] stay loads, not values carried from the iteration
    # before that the vectorizer rebuilds with shuffles (the Rosenbrock Hessian's
    # products took 25% longer with them).
    import llvmlite.binding as llvm

    def rosenbrock(x):
        return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    fn = sd.compile(rosenbrock, args=[sd.vector("x", 1000)], background=False)
    fn.sparse_hessian(np.linspace(-1.0, 1.0, 1000))  # (the engine and its target)
    text = direction_function(fn.derivation.spec("sparse_hessian_data"),
                              native.layout()).text
    target = native._STATE["target"]

    def recurrences(pre: bool | None) -> int:
        module = llvm.parse_assembly(text)
        module.triple, module.data_layout = target.triple, str(target.target_data)
        if pre is None:  # LLVM's passes as Numba runs them, after ours
            tuning = llvm.create_pipeline_tuning_options(speed_level=2)
            tuning.loop_unrolling = False
            builder = llvm.create_pass_builder(target, tuning)
            builder.getModulePassManager().run(module, builder)
        else:
            monkeypatch.setitem(native.PIPELINE, "load_in_loop_pre", pre)
            native._optimized(module)
        return str(module).count("%vector.recur.init")
    carried, loaded = recurrences(True), recurrences(False)
    assert carried > loaded
    assert recurrences(None) == carried  # (LLVM's option restored for others)
