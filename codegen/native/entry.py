"""The LLVM text of a native function: the body of codegen.llvm and an entry point that
CPython calls directly, as a builtin function with ``METH_FASTCALL``.

The entry takes the Python arguments as an array of object pointers: each scalar input
must be an exact ``float`` (its double read in place) and each output buffer a NumPy
array the caller made (its data pointer read in place); anything else, or another argument
count, raises TypeError, and the caller converts the arguments and calls again (the input
contract, symdiff.runtime.inputs).  It returns the body's value as a new float.  The
object layout (where an object's type, a float's value and an array's data pointer lie)
is the running interpreter's, measured by the loader and passed in as ``Layout``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..llvm.emit import LLVMBody, llvm_body
from ..naming import input_names

# The symbols the entry uses (CPython's, and NumPy's array type as _sd_ndarray_type); the
# loader gives their addresses to the JIT.
SYMBOLS = ("PyFloat_Type", "_sd_ndarray_type", "PyFloat_FromDouble", "PyErr_SetString",
           "PyExc_TypeError")
# What array functions use besides (codegen.native.array_entry): NumPy's float64 dtype and
# array constructor (PyArray_New of its C API), malloc and free; batches of points
# (codegen.native.batched) release the GIL while they run.
ARRAY_SYMBOLS = ("_sd_float64_descr", "_sd_PyArray_New", "PyExc_ValueError", "PyErr_NoMemory",
                 "Py_DecRef", "Py_BuildValue", "malloc", "free", "PyEval_SaveThread",
                 "PyEval_RestoreThread")


@dataclass(frozen=True)
class Layout:
    """Byte offsets in the running interpreter's objects."""

    type: int  # of an object's type pointer
    float_value: int  # of a float's double
    array_data: int  # of a NumPy array's data pointer
    array_nd: int = 0  # its number of dimensions (an int)
    array_dims: int = 0  # its pointer to the extents (64-bit each)
    array_descr: int = 0  # its dtype
    array_flags: int = 0  # its flags (an int)
    descr_type_num: int = 0  # of a dtype's type number (an int)
    descr_byteorder: int = 0  # of a dtype's byte order character
    int64_type_num: int = 7  # NumPy's type number of int64 here (NPY_LONG on LP64)
    uint32_type_num: int = 6  # and of uint32 (gather positions)


@dataclass(frozen=True)
class NativeFunction:
    """A native function: its LLVM ``text``, the ``entry`` CPython calls, and the Python
    ``wrapper`` source (def ``name``) that allocates the output buffers, calls
    ``_entry`` and builds the result; none (``""``) where the result is the one float
    the entry returns, and the entry is the function.  ``tiled_from``: for a compressed
    driver that keeps its products in tiles of rows, the number of products from which
    it does (codegen.native.compressed), and so takes gather positions in its tiles."""

    name: str
    text: str
    entry: str
    wrapper: str
    tiled_from: int | None = None


def message_constant(text: str) -> tuple[str, int]:
    """(``text`` NUL-terminated as an LLVM string constant's characters, its byte size)."""
    data = text.encode("ascii") + b"\0"
    return "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\{b:02X}"
                   for b in data), len(data)


# The type each kind of argument must have exactly: a float, or a NumPy array.
EXACT_TYPES = {"float": "@PyFloat_Type", "array": "@_sd_ndarray_type"}


def typed_argument(label: str, name: str, index: int, kind: str, following: str,
                   layout: Layout) -> list[str]:
    """The block ``label`` loading argument ``index`` into ``name`` and going on to
    ``following`` if its type is exactly ``kind``'s (EXACT_TYPES), else to ``refuse``."""
    return [f"{label}:",
            f"  {name}.at = getelementptr ptr, ptr %args, i64 {index}",
            f"  {name} = load ptr, ptr {name}.at",
            f"  {name}.type.at = getelementptr i8, ptr {name}, i64 {layout.type}",
            f"  {name}.type = load ptr, ptr {name}.type.at",
            f"  {name}.{kind} = icmp eq ptr {name}.type, {EXACT_TYPES[kind]}",
            f"  br i1 {name}.{kind}, label %{following}, label %refuse"]


def _entry_text(body: LLVMBody, scalars: int, layout: Layout) -> list[str]:
    """The entry function's instructions (args: scalars, then output buffers)."""
    buffers = len(body.stored)
    lines = [f"  %count = icmp eq i64 %nargs, {scalars + buffers}",
             "  br i1 %count, label %arg0, label %refuse"]
    after_scalars = "buffer0" if buffers else "call"
    for k in range(scalars):
        following = f"arg{k + 1}" if k + 1 < scalars else after_scalars
        lines += typed_argument(f"arg{k}", f"%o{k}", k, "float", following, layout)
    if not scalars:
        lines[1] = f"  br i1 %count, label %{after_scalars}, label %refuse"
    for j in range(buffers):  # arrays, or the data pointer read would be garbage
        k, following = scalars + j, f"buffer{j + 1}" if j + 1 < buffers else "call"
        lines += typed_argument(f"buffer{j}", f"%b{j}", k, "array", following, layout)
    lines.append("call:")
    values = []
    for k in range(scalars):
        lines += [f"  %v{k}.at = getelementptr i8, ptr %o{k}, i64 {layout.float_value}",
                  f"  %v{k} = load double, ptr %v{k}.at"]
        values.append(f"double %v{k}")
    for j in range(buffers):
        lines += [f"  %d{j}.at = getelementptr i8, ptr %b{j}, i64 {layout.array_data}",
                  f"  %d{j} = load ptr, ptr %d{j}.at"]
        values.append(f"ptr %d{j}")
    lines += [f"  %value = call double @{body.entry}({', '.join(values)})",
              "  %result = call ptr @PyFloat_FromDouble(double %value)",
              "  ret ptr %result",
              "refuse:",
              "  %error = load ptr, ptr @PyExc_TypeError",
              "  call void @PyErr_SetString(ptr %error, ptr @message)",
              "  ret ptr null"]
    return lines


def native_function(spec, layout: Layout) -> NativeFunction:
    """The native function of a straight-line FunctionSpec of scalar inputs with no array
    parameters (codegen.lower.llvm_lowerable, and ``spec.arrays`` empty)."""
    body = llvm_body(spec)
    params = input_names(spec)
    message, size = message_constant(f"{spec.name} takes {len(params)} floats")
    entry = f"{body.entry}_py"
    text = "\n".join([
        body.text,
        "@PyFloat_Type = external global i8",
        "@_sd_ndarray_type = external global i8",
        "@PyExc_TypeError = external global ptr",
        "declare ptr @PyFloat_FromDouble(double)",
        "declare void @PyErr_SetString(ptr, ptr)",
        f'@message = private unnamed_addr constant [{size} x i8] c"{message}"',
        f"define ptr @{entry}(ptr %self, ptr %args, i64 %nargs) {{",
        *_entry_text(body, len(params), layout),
        "}", ""])
    buffers = [name for name, _, _ in body.stored]
    if not buffers and body.result_text == "_value":
        return NativeFunction(spec.name, text, entry, "")
    lines = [f"{name} = np.empty({shape})" for name, shape, _ in body.stored]
    lines.append(f"_value = _entry({', '.join(params + buffers)})")
    # A scalar result stored in a buffer is a float, as Numba returns it (not np.float64).
    lines.append("return " + re.sub(r"\b(_out\w*)\[0\]", r"float(\1[0])", body.result_text))
    doc = f'    """{spec.doc}"""\n' if spec.doc else ""
    wrapper = (f"def {spec.name}({', '.join(params)}):\n{doc}"
               + "".join(f"    {line}\n" for line in lines))
    return NativeFunction(spec.name, text, entry, wrapper)
