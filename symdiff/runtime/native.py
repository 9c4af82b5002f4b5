"""The native backend's loader: a function's LLVM text compiled in this process by
llvmlite's JIT, its entry point made a CPython builtin (``METH_FASTCALL``), no Numba on
the way.  Machine code in milliseconds whatever Numba's state, and a call through the
interpreter's own function-call path (about 50 ns, against about 180 ns for a Numba
dispatcher); the code is cached on disk (codegen.cache), so another process loads it.

Which functions (``lowerable``): straight-line scalar code (codegen.native.entry) and
its batches of points (codegen.native.batched), code over arrays and loops
(codegen.native.arrays) and the loops over directions of its derivative matrices
(codegen.native.driver); the vmap of such code runs it over chunks of points
(symdiff.runtime.points, ``map_pieces``); the rest (batches of functions with loops,
vmaps of what the points graph cannot hold, linear solves, digamma) stays with Numba.
The entry reads objects in place, so the interpreter's object layout is measured once
here (``layout``); where it is not the expected one (another build of CPython or NumPy),
the native backend is unavailable and Numba does the work.
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import llvmlite
import llvmlite.binding as llvm
import numpy as np

try:  # NumPy 2
    from numpy._core import _multiarray_umath
except ImportError:  # NumPy 1
    from numpy.core import _multiarray_umath

from codegen import (
    NATIVE_ARRAY_SYMBOLS,
    NATIVE_SYMBOLS,
    DirectionLoop,
    Layout,
    array_function,
    array_lowerable,
    batched_function,
    cache,
    direction_function,
    direction_lowerable,
    llvm_lowerable,
    native_function,
)
from symdiff.errors import SymdiffError

LOCK = threading.Lock()  # one JIT module at a time (one engine; taken around fork too)
_STATE: dict = {}
_BUILTINS: dict = {}  # entry name -> the builtin calling its machine code
_RECORDS: list = []  # the method records of the builtins
STATS = {"compiled": 0, "cached": 0}  # machine code made here, and loaded from the cache
# LLVM's passes over array code.  Load PRE across a loop's back edge is off while they
# run: it turns a stencil's overlapping loads (x[i - 1], x[i], x[i + 1]) into values
# carried from the iteration before, which the vectorizer then rebuilds with shuffles
# competing with the arithmetic (the Rosenbrock Hessian's products: 241 -> 195 us at
# 10^5 columns).  The option is LLVM's, global to the process (Numba's included), so it
# is restored after each module.
PIPELINE = {"speed_level": 2, "loop_unrolling": False, "load_in_loop_pre": False}
CODE_VERSION = 1  # raised when what the same text compiles to changes (cached code)


class _MethodDef(ctypes.Structure):
    _fields_ = [("ml_name", ctypes.c_char_p), ("ml_meth", ctypes.c_void_p),
                ("ml_flags", ctypes.c_int), ("ml_doc", ctypes.c_char_p)]


_METH_FASTCALL = 0x80
_new_builtin = ctypes.pythonapi.PyCFunction_NewEx
_new_builtin.restype = ctypes.py_object
_new_builtin.argtypes = [ctypes.POINTER(_MethodDef), ctypes.c_void_p, ctypes.c_void_p]


def _measured_layout() -> Layout | None:
    """The byte offsets the entry reads, found in live objects (None: not as expected).
    The array fields are 0 where an array's are not the expected ones (array functions
    then stay with Numba)."""
    word = ctypes.sizeof(ctypes.c_void_p)
    value, array = 1.25, np.zeros(3)
    candidate = Layout(type=word, float_value=2 * word, array_data=2 * word)
    if (ctypes.c_void_p.from_address(id(value) + candidate.type).value != id(float)
            or ctypes.c_double.from_address(id(value) + candidate.float_value).value != value
            or ctypes.c_void_p.from_address(id(array) + candidate.array_data).value
            != array.ctypes.data):
        return None
    # NumPy's PyArrayObject: data, nd, dimensions, strides, base, descr, flags.
    # ... and PyArray_Descr: typeobj, kind, type, byteorder, flags, type_num.
    full = Layout(candidate.type, candidate.float_value, candidate.array_data,
                  array_nd=3 * word, array_dims=4 * word, array_descr=7 * word,
                  array_flags=8 * word, descr_type_num=3 * word + 4,
                  descr_byteorder=3 * word + 2, int64_type_num=np.dtype(np.int64).num,
                  uint32_type_num=np.dtype(np.uint32).num)
    if sys.byteorder != "little":
        return candidate
    for dtype in (np.dtype(np.float64), np.dtype(">f8"), np.dtype(np.int32)):
        if (ctypes.c_int.from_address(id(dtype) + full.descr_type_num).value != dtype.num
                or ctypes.c_char.from_address(id(dtype) + full.descr_byteorder).value
                != dtype.byteorder.encode()):
            return candidate
    for probe in (np.zeros((2, 3)), np.ones((5, 1, 7))[:, :, ::2]):
        dims = ctypes.c_void_p.from_address(id(probe) + full.array_dims).value
        if (ctypes.c_int.from_address(id(probe) + full.array_nd).value != probe.ndim
                or ctypes.c_void_p.from_address(id(probe) + full.array_descr).value
                != id(probe.dtype)
                or ctypes.c_int.from_address(id(probe) + full.array_flags).value
                != probe.flags.num
                or [ctypes.c_int64.from_address(dims + 8 * k).value
                    for k in range(probe.ndim)] != list(probe.shape)):
            return candidate
    return full


def layout() -> Layout | None:
    """This interpreter's object layout as the entry reads it, or None (no native code)."""
    if "layout" not in _STATE:
        _STATE["layout"] = _measured_layout()
    return _STATE["layout"]


def _array_api(index: int) -> int:
    """The address of entry ``index`` of NumPy's C API table (its ABI fixes the order)."""
    capsule = _multiarray_umath._ARRAY_API
    table = _capsule_pointer(capsule, None)
    return ctypes.c_void_p.from_address(table + index * ctypes.sizeof(ctypes.c_void_p)).value


def _capsule_pointer(capsule, name: bytes | None) -> int:
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return get(capsule, name)


def _blas(name: str) -> int:
    """The address of BLAS's ``name`` as SciPy exposes it (scipy.linalg.cython_blas)."""
    from scipy.linalg import cython_blas  # only functions with products: scipy at need
    capsule = cython_blas.__pyx_capi__[name]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    return _capsule_pointer(capsule, get_name(capsule))


_PY_ARRAY_NEW = 93  # PyArray_New's index in NumPy's C API table


def _symbol_address(name: str) -> int:
    api = ctypes.pythonapi
    if name == "PyFloat_Type":
        return id(float)
    if name == "_sd_ndarray_type":
        return id(np.ndarray)
    if name == "_sd_float64_descr":
        return id(np.dtype(np.float64))
    if name == "_sd_PyArray_New":
        return _array_api(_PY_ARRAY_NEW)
    if name.startswith("PyExc_"):
        return ctypes.addressof(ctypes.c_void_p.in_dll(api, name))
    library = ctypes.CDLL(None) if name in ("malloc", "free") else api  # the C library
    return ctypes.cast(getattr(library, name), ctypes.c_void_p).value


class _Scratch(ctypes.Structure):
    """The process's scratch buffer for native temporaries (codegen.native.code's
    workspace): its data, its size in bytes, and whether a call holds it."""

    _fields_ = [("data", ctypes.c_void_p), ("size", ctypes.c_int64), ("busy", ctypes.c_int8)]


_SCRATCH = _Scratch()  # for the life of the process, as the machine code that uses it


def _engine():
    """This process's one JIT engine (created on first use): every native function is a
    module added to it, kept for the life of the process, as Numba keeps its code."""
    engine = _STATE.get("engine")
    if engine is None:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        for name in NATIVE_SYMBOLS + NATIVE_ARRAY_SYMBOLS:
            llvm.add_symbol(name, _symbol_address(name))
        llvm.add_symbol("_sd_scratch", ctypes.addressof(_SCRATCH))
        # The engine owns its target machine: this CPU's, as Numba's (its vector width,
        # and FMA for llvm.fmuladd: the loop helpers round as Numba's do).
        _STATE["features"] = llvm.get_host_cpu_features().flatten()
        target = llvm.Target.from_default_triple().create_target_machine(
            cpu=llvm.get_host_cpu_name(), features=_STATE["features"], opt=2, jit=True)
        _STATE["target"] = target
        engine = _STATE["engine"] = llvm.create_mcjit_compiler(llvm.parse_assembly(""),
                                                               target)
    return engine


def _optimized(module):
    """``module`` after LLVM's O2 pipeline (mem2reg, loop passes, vectorizers): array
    bodies keep counters in stack slots and leave the rest to it."""
    tuning = llvm.create_pipeline_tuning_options(speed_level=PIPELINE["speed_level"])
    # Unrolling doubled the code LLVM then compiled (0.3 of 0.6 s for an MLP's
    # Hessian-vector product) for loops that are mostly calls and memory traffic.
    tuning.loop_unrolling = PIPELINE["loop_unrolling"]
    builder = llvm.create_pass_builder(_STATE["target"], tuning)
    pre = str(PIPELINE["load_in_loop_pre"]).lower()
    llvm.set_option("", f"--enable-load-in-loop-pre={pre}")
    try:
        builder.getModulePassManager().run(module, builder)
    finally:
        llvm.set_option("", "--enable-load-in-loop-pre=true")  # (LLVM's default)
    return module


def _writer(spec):
    """Which native function writes ``spec``: native_function (straight-line scalar
    code with scalar inputs only), batched_function (that code at many points),
    array_function (a function over arrays of the ops the array lowering knows:
    codegen.native.arrays), direction_function (a direction loop of such a kernel:
    codegen.native.driver), or None, also on an interpreter whose layout it does not
    know."""
    if layout() is None:
        return None
    arrays = layout().array_nd > 0
    if isinstance(spec, DirectionLoop):
        return direction_function if arrays and direction_lowerable(spec) else None
    if spec.batched:  # straight-line code at each point
        one_point = dataclasses.replace(spec, batched=False)
        lowered = arrays and not spec.arrays and llvm_lowerable(one_point)
        return batched_function if lowered else None
    if not spec.arrays and llvm_lowerable(spec):
        return native_function
    return array_function if arrays and array_lowerable(spec) else None


def lowerable(spec) -> bool:
    """Whether the native backend compiles ``spec`` (see _writer)."""
    return _writer(spec) is not None


def _machine_code(function, optimize: bool) -> tuple[int, bool]:
    """The address of ``function``'s entry in this process's engine, and whether its
    object code came from the disk cache (codegen.cache: keyed by the text and this CPU,
    checked by its SHA-256), else was compiled now (and cached)."""
    engine = _engine()
    target = _STATE["target"]
    if "@_sd_dgemm(" in function.text and "dgemm" not in _STATE:
        llvm.add_symbol("_sd_dgemm", _blas("dgemm"))
        _STATE["dgemm"] = True
    # Everything the machine code depends on besides the text: the CPU, LLVM, the passes.
    machine = (f"{target.triple} {llvm.get_host_cpu_name()} {_STATE['features']} "
               f"llvmlite {llvmlite.__version__} llvm {llvm.llvm_version_info} "
               f"passes {PIPELINE if optimize else 'none'} symdiff native {CODE_VERSION}")
    key = "native_" + hashlib.sha256(f"{machine}\0{function.text}".encode()).hexdigest()[:32]
    code = cached = cache.read_checked(key)
    if code is None:
        module = llvm.parse_assembly(function.text)
        module.verify()
        # The target's layout and triple guide LLVM's cost models.
        module.triple, module.data_layout = target.triple, str(target.target_data)
        if optimize:
            _optimized(module)
        code = target.emit_object(module)
        cache.write_checked(key, code)
        STATS["compiled"] += 1
    else:
        STATS["cached"] += 1
    engine.add_object_file(llvm.ObjectFileRef.from_data(code))
    engine.finalize_object()
    return engine.get_function_address(function.entry), cached is not None


# A batch of points splits into chunks of at least this many points, one per thread.
CHUNK_POINTS = 8192
_POOL: dict = {}
_POOL_LOCK = threading.Lock()


def point_threads() -> int:
    """Threads for batches of points: ``NUMBA_NUM_THREADS`` where set (the limit users
    already give Numba's ``prange``), else the CPUs this process may run on."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    wanted = os.environ.get("NUMBA_NUM_THREADS", "")
    return max(1, min(int(wanted), available)) if wanted.isdigit() else available


def _pool() -> ThreadPoolExecutor:
    """The process's pool of ``point_threads()`` threads (made again after a fork)."""
    with _POOL_LOCK:  # one pool, however many threads make their first batch at once
        pool = _POOL.get("pool")
        if pool is None or _POOL.get("pid") != os.getpid():  # (a fork has no threads)
            pool = _POOL["pool"] = ThreadPoolExecutor(point_threads(), "symdiff points")
            _POOL["pid"] = os.getpid()
    return pool


def point_ranges(n: int, least: int) -> list[tuple[int, int]]:
    """``n`` points as one (start, stop) range per thread of the pool, each at least
    ``least`` long (one range where they would be fewer than two)."""
    count = min(point_threads(), n // least)
    if count < 2:
        return [(0, n)]
    return list(pairwise([n * k // count for k in range(count + 1)]))


def map_pieces(function, pieces: list) -> list:
    """``function(*piece)`` of each piece, in order: on the pool, the last piece on the
    calling thread; every piece is waited for, also when one raises."""
    pending = [_pool().submit(function, *piece) for piece in pieces[:-1]]
    try:
        last = function(*pieces[-1])
    finally:
        done = [future.result() for future in pending]
    return done + [last]


def run_chunks(entry, n: int, inputs: tuple, outputs: tuple) -> None:
    """``entry`` (a batched native entry, which releases the GIL while it runs) over the
    ``n`` points of ``inputs`` into ``outputs``: in chunks on a pool of ``point_threads()``
    threads, the last chunk on the calling thread, as the Numba lowering's ``prange``
    spreads points over its threads."""
    ranges = point_ranges(n, CHUNK_POINTS)
    if len(ranges) == 1:
        entry(*inputs, *outputs)
        return
    # (the other chunks write into the outputs: map_pieces waits for every one)
    map_pieces(entry, [[a[lo:hi] for a in inputs + outputs] for lo, hi in ranges])


def compile_native(spec):
    """``spec`` as a Python callable running native code (see the module), whether its
    machine code came from the disk cache (or from this process), and for a compressed
    driver the number of products from which it works in tiles of rows (None where it
    never does: NativeFunction.tiled_from)."""
    writer = _writer(spec)
    function = writer(spec, layout())
    scalar = writer is native_function  # straight-line SSA: no passes needed
    with LOCK:
        # Entry names are digests of the text: the same function compiled again (in
        # another CompiledFunction) is the machine code, and the builtin, already made.
        entry, cached = _BUILTINS.get(function.entry), True
        if entry is None:
            address, cached = _machine_code(function, optimize=not scalar)
            if not address:
                raise SymdiffError(f"the native code of {spec.name} has no entry point")
            definition = _MethodDef(function.name.encode(), address, _METH_FASTCALL, None)
            entry = _new_builtin(ctypes.byref(definition), None, None)  # self: NULL
            _BUILTINS[function.entry] = entry
            _RECORDS.append(definition)  # the builtin points into it
    if not function.wrapper:
        return entry, cached, function.tiled_from  # the result is the float it returns
    namespace = {"np": np, "_entry": entry, "_run": run_chunks}
    exec(function.wrapper, namespace)  # noqa: S102 - source we generated (codegen.native)
    return namespace[function.name], cached, function.tiled_from
