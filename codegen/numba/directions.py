"""The Numba lowering of a direction loop (codegen.directions.DirectionLoop): the driver
function, a loop over directions around calls of its kernel."""

from __future__ import annotations

import math

from ..directions import GATHER_MESSAGE, SEEDS_MESSAGE, DirectionLoop, Slot
from ..naming import parameter_names
from .helpers import DECORATOR


def _shape_text(slot: Slot, params) -> str:
    where = slot.source
    if where[0] == "arg":
        return f"{params[where[1]]}.shape"
    if where[0] == "output":
        return "_v.shape"
    shape = where[1]
    return f"({', '.join(map(str, shape))},)" if len(shape) == 1 else str(tuple(shape))


def _size_text(slot: Slot, params) -> str:
    if slot.kind == "scalar":
        return "1"
    where = slot.source
    if where[0] == "arg":
        return f"{params[where[1]]}.size"
    if where[0] == "output":
        return "_v.size"
    return str(math.prod(where[1]))


def _offset(names: list[str], k: int) -> str:
    return " + ".join(names[:k]) or "0"


def emit_direction_loop(loop: DirectionLoop) -> str:
    """Source of the driver function (decorator included)."""
    params = parameter_names([s.value for s in loop.inputs])
    arguments = ", ".join(params)
    lines: list[str] = []
    if loop.needs_forward():
        lines.append(f"_v = {loop.forward.name}({arguments})")
    directions, sizes, flats = [], [], []
    for k, slot in enumerate(loop.directions):
        d, e, n = f"_d{k}", f"_e{k}", f"_n{k}"
        directions.append(d)
        sizes.append(n)
        flats.append(e)
        if slot.kind == "scalar":
            lines += [f"{d} = 0.0", f"{n} = 1"]
        elif loop.compressed and len(loop.directions) == 1:  # seed rows are the directions
            lines.append(f"{n} = {_size_text(slot, params)}")
        else:
            lines += [f"{d} = np.zeros({_shape_text(slot, params)})",
                      f"{e} = {d}.reshape(-1)", f"{n} = {e}.size"]
    results = [f"_m{k}" for k in range(len(loop.results))]
    lines += [f"{m} = {_size_text(slot, params)}" for m, slot in zip(results, loop.results,
                                                                     strict=True)]
    total_n = " + ".join(sizes) or "0"
    total_m = " + ".join(results) or "0"
    lines += [f"_n = {total_n}", f"_m = {total_m}"]
    if loop.compressed:
        lines += ["_count = _seeds.shape[0]",
                  "if _seeds.shape[1] != _n:",  # 2-D by its compiled signature
                  f"    raise ValueError({SEEDS_MESSAGE!r})",
                  "_out = np.empty((_count, _m))"]
    else:
        lines.append("_count = _n")
        lines.append("_out = np.empty((_n, _m))" if loop.transpose else "_out = np.empty((_m, _n))")
    lines.append("for _j in range(_count):")
    body = _set_directions(loop, directions, flats, sizes, 1.0, params)
    call = f"{loop.kernel.name}({', '.join(params + directions)})"
    body.append(f"_r = {call}")
    if not loop.compressed:
        body += _set_directions(loop, directions, flats, sizes, 0.0, params)
    body += _store_results(loop, results)
    lines += ["    " + line for line in body]
    if loop.compressed:
        # codegen.directions.gathered: a place among the products, or past them a
        # nonzero to copy.
        lines += ["_flat = _out.reshape(-1)",
                  "_end = _flat.size",
                  "_data = np.empty(_gather.size)",
                  "_copies = 0",
                  "for _q in range(_gather.size):",
                  "    _at = _gather[_q]",
                  "    if _at >= _end:",
                  "        _copies += 1",
                  "        continue",
                  "    if _at < 0:",  # (a signed dtype)
                  f"        raise ValueError({GATHER_MESSAGE!r})",
                  "    _data[_q] = _flat[_at]",
                  "for _q in range(_gather.size if _copies else 0):",
                  "    _at = _gather[_q]",
                  "    if _at >= _end:",
                  "        _k = _at - _end",
                  "        if _k >= _gather.size or _gather[_k] >= _end:",
                  f"            raise ValueError({GATHER_MESSAGE!r})",
                  "        _data[_q] = _data[_k]",
                  "return _data"]
    else:
        lines.append("return _out")
    signature = ", ".join(params + list(loop.extra_arguments))
    doc = f'    """{loop.doc}"""\n' if loop.doc else ""
    return (f"{DECORATOR}\ndef {loop.name}({signature}):\n{doc}"
            + "".join(f"    {line}\n" for line in lines))


def _set_directions(loop: DirectionLoop, directions, flats, sizes, value: float,
                    params) -> list[str]:
    """Lines that put direction _j into the direction slots (dense: the unit vector e_j,
    ``value`` 1.0 to set it and 0.0 to clear it; compressed: seed row _j)."""
    lines: list[str] = []
    for k, slot in enumerate(loop.directions):
        offset = _offset(sizes, k)
        if loop.compressed:
            source = "_seeds[_j, {}]".format(offset if slot.kind == "scalar"
                                              else f"{offset} + _i")
            if len(loop.directions) == 1 and slot.kind != "scalar":  # the seed row itself
                lines.append(f"{directions[k]} = _seeds[_j]" if slot.kind == "flat" else
                             f"{directions[k]} = _seeds[_j].reshape({_shape_text(slot, params)})")
                continue
            if slot.kind == "scalar":
                lines.append(f"{directions[k]} = {source}")
            else:
                lines += [f"for _i in range({sizes[k]}):", f"    {flats[k]}[_i] = {source}"]
            continue
        target = directions[k] if slot.kind == "scalar" else (
            f"{flats[k]}[_j]" if offset == "0" else f"{flats[k]}[_j - {offset}]" if k == 1
            else f"{flats[k]}[_j - ({offset})]")
        if len(loop.directions) == 1:
            lines.append(f"{target} = {value!r}")
            continue
        last = k == len(loop.directions) - 1
        guard = "else:" if last else f"{'if' if k == 0 else 'elif'} _j < {_offset(sizes, k + 1)}:"
        lines += [guard, f"    {target} = {value!r}"]
    return lines


def _store_results(loop: DirectionLoop, results) -> list[str]:
    """Lines that write the kernel's result ``_r`` into column (row) _j of ``_out``."""
    lines: list[str] = []
    for k, slot in enumerate(loop.results):
        part = f"_r[{k}]" if loop.tuple_result else "_r"
        offset = _offset(results, k)
        at = "" if offset == "0" else f"{offset} + "

        def cell(row: str) -> str:
            rows = loop.transpose or loop.compressed  # products stored as rows
            return f"_out[_j, {row}]" if rows else f"_out[{row}, _j]"
        if slot.kind == "scalar":
            lines.append(f"{cell(offset)} = {part}")
            continue
        flat = part if slot.kind == "flat" else f"np.ascontiguousarray({part}).reshape(-1)"
        lines += [f"_p = {flat}", f"for _i in range({results[k]}):",
                  f"    {cell(at + '_i')} = _p[_i]"]
    return lines
