"""The entry point of a native function over arrays: CPython calls it as a builtin
(``METH_FASTCALL``); it checks its arguments in place, makes the result arrays with
NumPy's C API, runs the body (codegen.native.arrays) and returns the result.

It takes each scalar input as an exact ``float`` and each array input as a C-ordered,
aligned float64 ``numpy.ndarray`` of the symbol's shape, one open length N for all open
dimensions.  Anything else (another type, dtype, layout, shape or argument count) raises
TypeError, and the caller's input contract (symdiff.runtime.inputs) converts the
arguments, or explains what is wrong, and calls again.  An open length too short for the
function's slices raises ValueError, as the Numba lowering does.
"""

from __future__ import annotations

import dataclasses
import hashlib

from symdiff.ir.index_keys import least_open_length_of
from symdiff.passes.data import is_rows_symbol

from ..directions import GATHER_MESSAGE, SEEDS_MESSAGE
from ..naming import input_names, parameter_names
from .arrays import ArrayBody
from .code import Code
from .driver import driver
from .entry import Layout, NativeFunction, message_constant

_C_CONTIGUOUS_ALIGNED = 0x1 | 0x100  # NumPy's NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED
_NPY_DOUBLE = 12

_DECLARATIONS = """@PyFloat_Type = external global i8
@_sd_ndarray_type = external global i8
@_sd_float64_descr = external global i8
@PyExc_TypeError = external global ptr
@PyExc_ValueError = external global ptr
declare ptr @PyFloat_FromDouble(double)
declare void @PyErr_SetString(ptr, ptr)
declare ptr @PyErr_NoMemory()
declare void @Py_DecRef(ptr)
declare ptr @Py_BuildValue(ptr, ...)
declare ptr @_sd_PyArray_New(ptr, i32, ptr, i32, ptr, ptr, i32, i32, ptr)"""
_RELEASE = """
declare ptr @PyEval_SaveThread()
declare void @PyEval_RestoreThread(ptr)"""


def _format(result) -> str:
    """Py_BuildValue's format of the result: N per part (its reference passed on)."""
    if isinstance(result, tuple):
        return "(" + "".join(_format(part) for part in result) + ")"
    return "N"


class _Entry:
    """The entry function under construction (its arithmetic through a Code)."""

    def __init__(self, layout: Layout):
        self.layout = layout
        self.code = Code()
        self.lines = self.code.lines
        self.slots: list[str] = []
        self.globals: list[str] = []

    def field(self, name: str, pointer: str, offset: int, kind: str) -> str:
        self.lines += [f"{name}.at = getelementptr i8, ptr {pointer}, i64 {offset}",
                       f"{name} = load {kind}, ptr {name}.at"]
        return name

    def check(self, condition: str, label: str, otherwise: str = "refuse") -> None:
        """Go on at ``label`` if ``condition`` (an i1) holds, else to ``otherwise``."""
        self.lines += [f"br i1 {condition}, label %{label}, label %{otherwise}", f"{label}:"]

    def string(self, text: str) -> str:
        characters, size = message_constant(text)
        name = f"@text{len(self.globals)}"
        self.globals.append(f'{name} = private unnamed_addr constant [{size} x i8] '
                            f'c"{characters}"')
        return name

    def arguments(self, inputs, count: int) -> list[str]:
        """Check the arguments in place (TypeError: refuse); their values for the body
        (typed operands), the open length stored in %nb.slot."""
        lines, layout = self.lines, self.layout
        lines.append(f"%count = icmp eq i64 %nargs, {count}")
        self.check("%count", "arg0")
        values, open_seen = [], False
        for k, sym in enumerate(inputs):
            o = f"%o{k}"
            lines += [f"{o}.at = getelementptr ptr, ptr %args, i64 {k}",
                      f"{o} = load ptr, ptr {o}.at"]
            kind = self.field(f"{o}.type", o, layout.type, "ptr")
            if not sym.shape:
                lines.append(f"{o}.ok = icmp eq ptr {kind}, @PyFloat_Type")
                self.check(f"{o}.ok", f"arg{k}.value")
                values.append(f"double {self.field(f'{o}.value', o, layout.float_value, 'double')}")
                continue
            dims = self.array_checks(o, kind, f"arg{k}", len(sym.shape),
                                     layout.int64_type_num if is_rows_symbol(sym)
                                     else _NPY_DOUBLE)
            for j, d in enumerate(sym.shape):
                extent = f"{o}.d{j}"
                lines += [f"{extent}.at = getelementptr i64, ptr {dims}, i64 {j}",
                          f"{extent} = load i64, ptr {extent}.at"]
                if d is None and not open_seen:
                    open_seen = True
                    lines.append(f"store i64 {extent}, ptr %nb.slot")
                    continue
                wanted = str(d)
                if d is None:
                    wanted = f"%nb.first{k}.{j}"
                    lines.append(f"{wanted} = load i64, ptr %nb.slot")
                lines.append(f"{extent}.ok = icmp eq i64 {extent}, {wanted}")
                self.check(f"{extent}.ok", f"arg{k}.d{j}")
            values.append(f"ptr {self.field(f'{o}.data', o, layout.array_data, 'ptr')}")
        lines.append("%nb = load i64, ptr %nb.slot")
        return values

    def array_checks(self, o: str, kind: str, label: str, ndim: int, type_num: int) -> str:
        """Refuse the object ``o`` (of type ``kind``) unless it is an aligned, C-ordered
        numpy.ndarray of ``ndim`` axes whose dtype has ``type_num`` in native byte order
        (NumPy's own float64 dtype passes at once); its pointer to the extents."""
        lines, layout = self.lines, self.layout
        lines.append(f"{o}.ok = icmp eq ptr {kind}, @_sd_ndarray_type")
        self.check(f"{o}.ok", f"{label}.descr")
        descr = self.field(f"{o}.descr", o, layout.array_descr, "ptr")
        if type_num == _NPY_DOUBLE:  # an equal float64 dtype too (an unpickled array's)
            lines += [f"{o}.f64 = icmp eq ptr {descr}, @_sd_float64_descr",
                      f"br i1 {o}.f64, label %{label}.flags, label %{label}.dtype",
                      f"{label}.dtype:"]
        number = self.field(f"{o}.num", descr, layout.descr_type_num, "i32")
        order = self.field(f"{o}.order", descr, layout.descr_byteorder, "i8")
        lines += [f"{o}.typed = icmp eq i32 {number}, {type_num}",
                  f"{o}.native = icmp eq i8 {order}, {ord('=')}",
                  f"{o}.little = icmp eq i8 {order}, {ord('<')}",
                  f"{o}.ordered = or i1 {o}.native, {o}.little",
                  f"{o}.same = and i1 {o}.typed, {o}.ordered"]
        self.check(f"{o}.same", f"{label}.flags")
        flags = self.field(f"{o}.flags", o, layout.array_flags, "i32")
        lines += [f"{o}.c = and i32 {flags}, {_C_CONTIGUOUS_ALIGNED}",
                  f"{o}.cok = icmp eq i32 {o}.c, {_C_CONTIGUOUS_ALIGNED}"]
        self.check(f"{o}.cok", f"{label}.nd")
        nd = self.field(f"{o}.nd", o, layout.array_nd, "i32")
        lines.append(f"{o}.ndok = icmp eq i32 {nd}, {ndim}")
        self.check(f"{o}.ndok", f"{label}.dims")
        return self.field(f"{o}.dims", o, layout.array_dims, "ptr")

    def raw_array(self, k: int, name: str, ndim: int, integer: bool) -> list[str]:
        """Check argument ``k``, one of symdiff's own arrays (seeds: float64, gather
        positions: uint32), C-ordered of ``ndim`` axes; its data pointer and extents
        (typed operands; the extents also as %<name>.d<j>)."""
        lines, layout, o = self.lines, self.layout, f"%{name}"
        lines += [f"{o}.at = getelementptr ptr, ptr %args, i64 {k}",
                  f"{o} = load ptr, ptr {o}.at"]
        kind = self.field(f"{o}.type", o, layout.type, "ptr")
        dims = self.array_checks(o, kind, f"{name}.check", ndim,
                                 layout.uint32_type_num if integer else _NPY_DOUBLE)
        values = [f"ptr {self.field(f'{o}.data', o, layout.array_data, 'ptr')}"]
        for j in range(ndim):
            lines += [f"{o}.d{j}.at = getelementptr i64, ptr {dims}, i64 {j}",
                      f"{o}.d{j} = load i64, ptr {o}.d{j}.at"]
            values.append(f"i64 {o}.d{j}")
        return values

    def make_array(self, j: int, shape) -> str:
        """A new C-ordered float64 array of ``shape`` (dims: numbers, open, or Totals);
        its data pointer (on failure: to ``fail``)."""
        code, lines = self.code, self.lines
        extents = [code.dim(d) for d in shape]
        self.slots.append(f"%shape{j} = alloca [{len(shape)} x i64]")
        for i, e in enumerate(extents):
            lines += [f"%shape{j}.{i} = getelementptr i64, ptr %shape{j}, i64 {i}",
                      f"store i64 {e}, ptr %shape{j}.{i}"]
        lines += [f"%out{j} = call ptr @_sd_PyArray_New(ptr @_sd_ndarray_type, "
                  f"i32 {len(shape)}, ptr %shape{j}, i32 {_NPY_DOUBLE}, ptr null, "
                  "ptr null, i32 0, i32 0, ptr null)",
                  f"store ptr %out{j}, ptr %out{j}.slot",
                  f"%out{j}.made = icmp ne ptr %out{j}, null"]
        self.check(f"%out{j}.made", f"made{j}", "fail")
        return self.field(f"%out{j}.data", f"%out{j}", self.layout.array_data, "ptr")


def _native(name, inputs, params, shapes, result, body: tuple[str, str], least: int,
            layout: Layout, seeds: bool = False, failures=(),
            release: bool = False) -> NativeFunction:
    """The native function: an entry that checks ``inputs`` (named ``params``; with
    ``seeds``, then a compressed loop's seeds and gather positions), makes result
    arrays of ``shapes`` (None: a float), calls the body (text, name) and returns
    ``result`` (a part index, or a tuple of them).  ``failures``: ValueError messages
    of the body's statuses from 2 on.  With ``release``, the GIL is released while the
    body runs (it reads and writes only memory the entry holds)."""
    entry = _Entry(layout)
    lines = entry.lines
    lines += ["%nb.slot = alloca i64", "store i64 0, ptr %nb.slot"]
    lines += [f"%out{j}.slot = alloca ptr" for j in range(len(shapes))]
    lines += [f"store ptr null, ptr %out{j}.slot" for j in range(len(shapes))]
    lines += [f"%value{j} = alloca double" for j, s in enumerate(shapes) if s is None]
    values = entry.arguments(inputs, len(inputs) + 2 * seeds)
    if seeds:
        values += entry.raw_array(len(inputs), "seeds", 2, integer=False)
        values += entry.raw_array(len(inputs) + 1, "gather", 1, integer=True)
    if least > 0:
        first = next(p for p, s in zip(params, inputs, strict=True) if None in s.shape)
        message = entry.string(f"argument {first} is too short: its open (None) dimension "
                               f"must have length at least {least}")
        lines += [f"%long = icmp sge i64 %nb, {least}",
                  "br i1 %long, label %outputs, label %short", "short:",
                  "%verror = load ptr, ptr @PyExc_ValueError",
                  f"call void @PyErr_SetString(ptr %verror, ptr {message})", "ret ptr null",
                  "outputs:"]
    pointers = [f"ptr %value{j}" if shape is None else f"ptr {entry.make_array(j, shape)}"
                for j, shape in enumerate(shapes)]
    call = f"%status = call i32 @{body[1]}({', '.join(values + ['i64 %nb'] + pointers)})"
    lines += (["%thread = call ptr @PyEval_SaveThread()", call,
               "call void @PyEval_RestoreThread(ptr %thread)"] if release else [call])
    lines += ["%ok = icmp eq i32 %status, 0",
              "br i1 %ok, label %results, label %failed", "failed:",
              "%nomem.status = icmp eq i32 %status, 1",
              "br i1 %nomem.status, label %nomem, label %invalid", "invalid:"]
    for status, message in enumerate(failures, start=2):
        lines += [f"%is{status} = icmp eq i32 %status, {status}",
                  f"br i1 %is{status}, label %message{status}, label %other{status}",
                  f"message{status}:", f"%verror{status} = load ptr, ptr @PyExc_ValueError",
                  f"call void @PyErr_SetString(ptr %verror{status}, ptr "
                  f"{entry.string(message)})", "br label %fail", f"other{status}:"]
    lines += ["br label %nomem", "results:"]
    objects = []
    for j, shape in enumerate(shapes):
        if shape is not None:
            objects.append(f"%out{j}")
            continue
        lines += [f"%scalar{j} = load double, ptr %value{j}",
                  f"%float{j} = call ptr @PyFloat_FromDouble(double %scalar{j})"]
        objects.append(f"%float{j}")
    if isinstance(result, tuple):
        fmt = entry.string(_format(result))
        lines += [f"%result = call ptr (ptr, ...) @Py_BuildValue(ptr {fmt}, "
                  + ", ".join(f"ptr {o}" for o in objects) + ")", "ret ptr %result"]
    else:
        lines.append(f"ret ptr {objects[0]}")
    lines += ["refuse:", "%terror = load ptr, ptr @PyExc_TypeError",
              f"call void @PyErr_SetString(ptr %terror, ptr "
              f"{entry.string(f'{name}: arguments for the input contract')})",
              "ret ptr null", "nomem:", "call ptr @PyErr_NoMemory()", "br label %fail",
              "fail:"]
    for j in range(len(shapes)):
        lines += [f"%left{j} = load ptr, ptr %out{j}.slot", f"call void @Py_DecRef(ptr %left{j})"]
    lines.append("ret ptr null")
    function = ("define ptr @ENTRY(ptr %self, ptr %args, i64 %nargs) {\n"
                + "".join(f"  {line}\n" for line in entry.slots + entry.code.slots)
                + "".join(f"{line}\n" if line.endswith(":") else f"  {line}\n"
                          for line in lines) + "}")
    declarations = _DECLARATIONS + (_RELEASE if release else "")
    text = "\n\n".join([body[0].rstrip(), declarations, *entry.globals, function]) + "\n"
    symbol = f"_sd_{name}_{hashlib.sha256(text.encode()).hexdigest()[:16]}_py"
    return NativeFunction(name, text.replace("@ENTRY(", f"@{symbol}(", 1), symbol, "")


def array_function(spec, layout: Layout) -> NativeFunction:
    """The native function of a FunctionSpec over arrays (codegen.native.arrays.lowerable):
    its LLVM text and entry; the entry is the function (no Python wrapper)."""
    body = ArrayBody(spec, "body")
    text = body.text()
    shapes = [p.shape or None for p in body.parts]
    numbering = iter(range(len(shapes)))

    def indices(result):
        if isinstance(result, tuple):
            return tuple(indices(part) for part in result)
        return next(numbering)
    return _native(spec.name, list(spec.inputs), input_names(spec), shapes,
                   indices(spec.result), text, least_open_length_of(body.every), layout,
                   release=spec.releases_gil)


def direction_function(loop, layout: Layout) -> NativeFunction:
    """The native function of a DirectionLoop whose kernel the array lowering writes
    (codegen.native.driver): the matrix it returns (dense), or the gathered nonzeros
    (compressed: it takes the seeds and gather positions after the arguments)."""
    body = ArrayBody(loop.block or loop.kernel, "driver")
    text, shape, tiled_from = driver(loop, body)
    function = _native(loop.name, list(loop.inputs), parameter_names(
        [s.value for s in loop.inputs]), [shape], 0, (text, "driver"),
        least_open_length_of(body.every), layout, seeds=loop.compressed,
        failures=[SEEDS_MESSAGE, GATHER_MESSAGE] if loop.compressed else [])
    return dataclasses.replace(function, tiled_from=tiled_from)
