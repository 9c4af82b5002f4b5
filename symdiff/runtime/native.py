"""The native backend's loader: a function's LLVM text compiled in this process by
llvmlite's JIT, its entry point made a CPython builtin (``METH_FASTCALL``), no Numba on
the way.  Machine code in about 10 ms whatever Numba's state, and a call through the
interpreter's own function-call path (about 50 ns, against about 180 ns for a Numba
dispatcher).

Which functions: straight-line scalar code with no array parameters
(``lowerable``); the rest stays with Numba.  The entry reads objects in place, so the
interpreter's object layout is measured once here (``layout``); where it is not the
expected one (another build of CPython), the native backend is unavailable and Numba
does the work.
"""

from __future__ import annotations

import ctypes
import threading

import llvmlite.binding as llvm
import numpy as np

from codegen import NATIVE_SYMBOLS, Layout, llvm_lowerable, native_function
from symdiff.errors import SymdiffError

LOCK = threading.Lock()  # one JIT module at a time (one engine; taken around fork too)
_STATE: dict = {}
_BUILTINS: dict = {}  # entry name -> the builtin calling its machine code
_RECORDS: list = []  # the method records of the builtins


class _MethodDef(ctypes.Structure):
    _fields_ = [("ml_name", ctypes.c_char_p), ("ml_meth", ctypes.c_void_p),
                ("ml_flags", ctypes.c_int), ("ml_doc", ctypes.c_char_p)]


_METH_FASTCALL = 0x80
_new_builtin = ctypes.pythonapi.PyCFunction_NewEx
_new_builtin.restype = ctypes.py_object
_new_builtin.argtypes = [ctypes.POINTER(_MethodDef), ctypes.c_void_p, ctypes.c_void_p]


def _measured_layout() -> Layout | None:
    """The byte offsets the entry reads, found in live objects (None: not as expected)."""
    word = ctypes.sizeof(ctypes.c_void_p)
    value, array = 1.25, np.zeros(3)
    candidate = Layout(type=word, float_value=2 * word, array_data=2 * word)
    if (ctypes.c_void_p.from_address(id(value) + candidate.type).value != id(float)
            or ctypes.c_double.from_address(id(value) + candidate.float_value).value != value
            or ctypes.c_void_p.from_address(id(array) + candidate.array_data).value
            != array.ctypes.data):
        return None
    return candidate


def layout() -> Layout | None:
    """This interpreter's object layout as the entry reads it, or None (no native code)."""
    if "layout" not in _STATE:
        _STATE["layout"] = _measured_layout()
    return _STATE["layout"]


def _engine():
    """This process's one JIT engine (created on first use): every native function is a
    module added to it, kept for the life of the process, as Numba keeps its code."""
    engine = _STATE.get("engine")
    if engine is None:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        api = ctypes.pythonapi
        for name in NATIVE_SYMBOLS:
            if name == "PyFloat_Type":
                address = id(float)
            elif name == "_sd_ndarray_type":
                address = id(np.ndarray)
            elif name.startswith("PyExc_"):
                address = ctypes.addressof(ctypes.c_void_p.in_dll(api, name))
            else:
                address = ctypes.cast(getattr(api, name), ctypes.c_void_p).value
            llvm.add_symbol(name, address)
        # The engine owns its target machine.
        target = llvm.Target.from_default_triple().create_target_machine(opt=2, jit=True)
        engine = _STATE["engine"] = llvm.create_mcjit_compiler(llvm.parse_assembly(""),
                                                               target)
    return engine


def lowerable(spec) -> bool:
    """Whether the native backend compiles ``spec``: a straight-line scalar FunctionSpec
    with scalar inputs only, on an interpreter whose layout it knows."""
    return (hasattr(spec, "result") and not spec.arrays and llvm_lowerable(spec)
            and layout() is not None)


def compile_native(spec):
    """``spec`` as a Python callable running native code (see the module)."""
    function = native_function(spec, layout())
    with LOCK:
        # Entry names are digests of the text: the same function compiled again (in
        # another CompiledFunction) is the machine code, and the builtin, already made.
        entry = _BUILTINS.get(function.entry)
        if entry is None:
            module = llvm.parse_assembly(function.text)
            module.verify()
            engine = _engine()
            engine.add_module(module)
            engine.finalize_object()
            address = engine.get_function_address(function.entry)
            if not address:
                raise SymdiffError(f"the native code of {spec.name} has no entry point")
            definition = _MethodDef(function.name.encode(), address, _METH_FASTCALL, None)
            entry = _new_builtin(ctypes.byref(definition), None, None)  # self: NULL
            _BUILTINS[function.entry] = entry
            _RECORDS.append(definition)  # the builtin points into it
    if not function.wrapper:
        return entry  # the result is the float it returns
    namespace = {"np": np, "_entry": entry}
    exec(function.wrapper, namespace)  # noqa: S102 - source we generated (codegen.native)
    return namespace[function.name]
