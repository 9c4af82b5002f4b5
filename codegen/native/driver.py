"""The native lowering of a dense direction loop (codegen.directions.DirectionLoop): a
driver function that calls the kernel's body (codegen.native.arrays) once per unit
direction e_j and writes each product into column j of the matrix (row j where the
loop is transposed: products of a vjp).  The number of directions is a loop bound, so
the text has one size for every array size."""

from __future__ import annotations

from symdiff.ir.dims import is_open
from symdiff.ir.nodes import Expr

from .arrays import lowerable as array_lowerable
from .code import Code, Total

DRIVER_METADATA = 1_000_000  # the driver's metadata numbers: past its kernel's


def _slot_shape(slot, loop) -> tuple:
    where = slot.source
    if slot.kind == "scalar":
        return ()
    if where[0] == "arg":
        return loop.inputs[where[1]].shape
    if where[0] == "output":
        return loop.forward.result.shape
    return tuple(where[1])


SEEDS_MESSAGE = "_seeds must have one row per direction of the direction size"
GATHER_MESSAGE = "_gather positions must lie among the products (seeds x results)"


def lowerable(loop) -> bool:
    """Whether the driver and its kernel are native: a loop of an array kernel."""
    forward_ok = not loop.needs_forward() or isinstance(loop.forward.result, Expr)
    return not loop.arrays and forward_ok and array_lowerable(loop.kernel)


def driver(loop, kernel_name: str) -> tuple[str, tuple]:
    """(the LLVM text of ``@driver``, the shape of what it fills).  The driver takes the
    loop's inputs (doubles, data pointers), ``i64 %nb``, for a compressed loop the seeds
    (data, rows, width) and gather positions (data, count), then the result's data; it
    returns 0, 1 (no memory), 2 (seeds of another width) or 3 (a gather position out of
    range)."""
    code = Code(metadata_base=DRIVER_METADATA)
    params, arguments = [], []
    for k, sym in enumerate(loop.inputs):
        kind = "ptr noalias" if sym.shape else "double"
        params.append(f"{kind} %p{k}")
        arguments.append(f"{'ptr' if sym.shape else 'double'} %p{k}")
    d_shapes = [_slot_shape(s, loop) for s in loop.directions]
    r_shapes = [_slot_shape(s, loop) for s in loop.results]
    for shape in d_shapes + r_shapes:
        for d in shape:
            if is_open(d):
                code.dim(d)
    n, m = code.dim(Total(tuple(d_shapes))), code.dim(Total(tuple(r_shapes)))
    d_sizes = [code.size(s) for s in d_shapes]
    r_sizes = [code.size(s) for s in r_shapes]
    d_offsets, r_offsets = _offsets(code, d_sizes), _offsets(code, r_sizes)
    count, products = n, None
    if loop.compressed:
        params += ["ptr noalias %seeds", "i64 %count", "i64 %width", "ptr noalias %gather",
                   "i64 %gathered"]
        right = code.fresh()
        code.lines.append(f"{right} = icmp eq i64 %width, {n}")
        code.unless(right, "wrong")
        count = "%count"
        products = code.allocate(code.integer("mul", count, m))
    single = loop.compressed and len(d_shapes) == 1 and loop.directions[0].kind != "scalar"
    directions = []
    for slot, size in zip(loop.directions, d_sizes, strict=True):
        if slot.kind == "scalar" or single:  # a value, or the seed row itself
            directions.append(None)
            continue
        buffer = code.allocate(size)
        with code.loop(size) as i:
            code.write(code.constant(0.0), buffer, i)
        directions.append(buffer)
    results = [code.slot() if slot.kind == "scalar" else code.allocate(size)
               for slot, size in zip(loop.results, r_sizes, strict=True)]
    with code.loop(count) as j:
        operands = arguments + _directions(code, loop, j, directions, d_offsets, d_sizes)
        status, done = code.fresh(), code.fresh()
        code.lines += [f"{status} = call i32 @{kernel_name}("
                       + ", ".join(operands + ["i64 %nb"] + [f"ptr {r}" for r in results])
                       + ")", f"{done} = icmp eq i32 {status}, 0"]
        code.unless(done, "nomem")
        if not loop.compressed:
            for k, buffer in enumerate(directions):
                if buffer is not None:
                    _set(code, buffer, code.integer("sub", j, d_offsets[k]), d_sizes[k], "0.0")
        # Products by rows (of the products to gather, or of a transposed matrix), or
        # by columns.
        target = products if loop.compressed else "%out"
        by_rows = loop.compressed or loop.transpose
        for k, result in enumerate(results):
            with code.loop(r_sizes[k]) as i:
                row = code.integer("add", r_offsets[k], i)
                at = (code.integer("add", code.integer("mul", j, m), row) if by_rows
                      else code.integer("add", code.integer("mul", row, n), j))
                code.write(code.read(result, i), target, at)
    if loop.compressed:
        stored = code.integer("mul", count, m)
        with code.loop("%gathered") as q:
            address, position, inside = code.fresh(), code.fresh(), code.fresh()
            code.lines += [f"{address} = getelementptr inbounds i64, ptr %gather, i64 {q}",
                           f"{position} = load i64, ptr {address}, align 8",
                           f"{inside} = icmp ult i64 {position}, {stored}"]
            code.unless(inside, "outside")
            code.write(code.read(products, position), "%out", q)
    code.finish()
    if loop.compressed:  # (temporaries made before: freed at nomem, which returns 1)
        code.lines += ["wrong:", "ret i32 2", "outside:"]
        code.finish_with(3)
    signature = ", ".join(params + ["i64 %nb", "ptr noalias %out"])
    text = code.function(f"internal i32 @driver({signature})")
    if loop.compressed:
        return text + "\n", ("%gather.d0",)
    d_total, r_total = Total(tuple(d_shapes)), Total(tuple(r_shapes))
    return text + "\n", (d_total, r_total) if loop.transpose else (r_total, d_total)


def _directions(code: Code, loop, j: str, buffers, offsets, sizes) -> list[str]:
    """The kernel's direction operands for direction (or seed row) ``j``: e_j dense, the
    seed row compressed (the row in place where it is the only direction)."""
    operands = []
    for k, buffer in enumerate(buffers):
        scalar = loop.directions[k].kind == "scalar"
        if not loop.compressed:
            if scalar:
                hit, value = code.fresh(), code.fresh()
                code.lines += [f"{hit} = icmp eq i64 {j}, {offsets[k]}",
                               f"{value} = select i1 {hit}, double 1.0, double 0.0"]
                operands.append(f"double {value}")
            else:
                _set(code, buffer, code.integer("sub", j, offsets[k]), sizes[k], "1.0")
                operands.append(f"ptr {buffer}")
            continue
        row = code.integer("add", code.integer("mul", j, "%width"), offsets[k])
        if scalar:
            operands.append(f"double {code.read('%seeds', row)}")
        elif buffer is None:  # the seed row itself
            operands.append(f"ptr {code.at('%seeds', row)}")
        else:
            with code.loop(sizes[k]) as i:
                code.write(code.read("%seeds", code.integer("add", row, i)), buffer, i)
            operands.append(f"ptr {buffer}")
    return operands


def _offsets(code: Code, sizes: list[str]) -> list[str]:
    offsets, total = [], "0"
    for size in sizes:
        offsets.append(total)
        total = code.integer("add", total, size)
    return offsets


def _set(code: Code, buffer: str, position: str, size: str, value: str) -> None:
    """``buffer[position] = value`` where ``0 <= position < size``."""
    inside, write, after = code.fresh(), code.label("set"), code.label("kept")
    code.lines += [f"{inside} = icmp ult i64 {position}, {size}",
                   f"br i1 {inside}, label %{write}, label %{after}"]
    code.begin(write)
    code.write(value, buffer, position)
    code.branch(after)
    code.begin(after)
