"""A native function of scalars evaluated at many points (``fn(points)``): the body of the
one-point function (codegen.llvm) inlined into a loop over points, behind a CPython
entry that releases the GIL while it runs, so the runtime can give chunks of one batch
to several threads at once (symdiff.runtime.native.run_chunks).

The entry takes the input arrays (one value per point), then the output arrays the
wrapper made (the returned value's, then each stored result's, one row per point); every
argument must be a NumPy array (else TypeError), of float64, C-ordered and as long as
the first: the wrapper, the only caller, passes exactly those.  The wrapper source
(def ``name``) makes the outputs, runs the entry over the points and builds the result
as the Numba lowering's batched functions do: an array per scalar result, one more
leading axis per array result.
"""

from __future__ import annotations

import dataclasses
import re

from ..llvm.emit import llvm_body
from ..naming import input_names
from .entry import Layout, NativeFunction, message_constant, typed_argument


def batched_function(spec, layout: Layout) -> NativeFunction:
    """The native function of a batched FunctionSpec whose one point is straight-line
    code (codegen.lower.llvm_lowerable of it unbatched; see the module)."""
    body = llvm_body(dataclasses.replace(spec, batched=False))
    params = input_names(spec)
    outputs = (["_value"] if body.returned is not None else []) + [
        name for name, _, _ in body.stored]
    arrays = len(params) + len(outputs)
    message, size = message_constant(f"{spec.name} takes {arrays} arrays")
    entry = f"{body.entry}_points"
    lines = [f"  %count = icmp eq i64 %nargs, {arrays}",
             "  br i1 %count, label %a0, label %refuse"]
    for k in range(arrays):  # arrays, or the data pointer read would be garbage
        following = f"a{k + 1}" if k + 1 < arrays else "run"
        lines += typed_argument(f"a{k}", f"%o{k}", k, "array", following, layout)
    lines.append("run:")
    for k in range(arrays):
        lines += [f"  %d{k}.at = getelementptr i8, ptr %o{k}, i64 {layout.array_data}",
                  f"  %d{k} = load ptr, ptr %d{k}.at"]
    lines += [f"  %dims.at = getelementptr i8, ptr %o0, i64 {layout.array_dims}",
              "  %dims = load ptr, ptr %dims.at",
              "  %n = load i64, ptr %dims",
              "  %thread = call ptr @PyEval_SaveThread()",
              "  br label %head",
              "head:",
              "  %i = phi i64 [0, %run], [%next, %point]",
              "  %going = icmp slt i64 %i, %n",
              "  br i1 %going, label %point, label %done",
              "point:"]
    values = []
    for k in range(len(params)):
        lines += [f"  %x{k}.at = getelementptr inbounds double, ptr %d{k}, i64 %i",
                  f"  %x{k} = load double, ptr %x{k}.at"]
        values.append(f"double %x{k}")
    first = len(params) + (body.returned is not None)
    for j, (_, shape, _) in enumerate(body.stored):
        width = 1
        for d in shape:
            width *= d
        lines += [f"  %s{j}.row = mul i64 %i, {width}",
                  f"  %s{j} = getelementptr inbounds double, ptr %d{first + j}, i64 %s{j}.row"]
        values.append(f"ptr %s{j}")
    lines.append(f"  %v = call double @{body.entry}({', '.join(values)})")
    if body.returned is not None:
        lines += [f"  %v.at = getelementptr inbounds double, ptr %d{len(params)}, i64 %i",
                  "  store double %v, ptr %v.at"]
    lines += ["  %next = add i64 %i, 1",
              "  br label %head",
              "done:",
              "  call void @PyEval_RestoreThread(ptr %thread)",
              '  %none = call ptr (ptr, ...) @Py_BuildValue(ptr @empty)',
              "  ret ptr %none",
              "refuse:",
              "  %error = load ptr, ptr @PyExc_TypeError",
              "  call void @PyErr_SetString(ptr %error, ptr @message)",
              "  ret ptr null"]
    text = "\n".join([
        body.text,
        "@_sd_ndarray_type = external global i8",
        "@PyExc_TypeError = external global ptr",
        "declare void @PyErr_SetString(ptr, ptr)",
        "declare ptr @PyEval_SaveThread()",
        "declare void @PyEval_RestoreThread(ptr)",
        "declare ptr @Py_BuildValue(ptr, ...)",
        f'@message = private unnamed_addr constant [{size} x i8] c"{message}"',
        '@empty = private unnamed_addr constant [1 x i8] c"\\00"',
        f"define ptr @{entry}(ptr %self, ptr %args, i64 %nargs) {{",
        *lines,
        "}", ""])
    made = ["_value = np.empty(_n)"] if body.returned is not None else []
    made += [f"{name} = np.empty((_n, {', '.join(map(str, shape))}))"
             for name, shape, _ in body.stored]
    # An extra scalar result is stored as one element per point: its column.
    returned = re.sub(r"\b(_out\w*)\[0\]", r"\1[:, 0]", body.result_text)
    doc = f'    """{spec.doc}"""\n' if spec.doc else ""
    source = [f"_n = {params[0]}.shape[0]", *made,
              f"_run(_entry, _n, ({', '.join(params)},), ({', '.join(outputs)},))",
              f"return {returned}"]
    wrapper = (f"def {spec.name}({', '.join(params)}):\n{doc}"
               + "".join(f"    {line}\n" for line in source))
    return NativeFunction(spec.name, text, entry, wrapper)
