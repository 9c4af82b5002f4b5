"""Derivative matrices as a runtime loop over directions through one compiled kernel.

A dense Hessian is ``H[:, j] = hvp(x, e_j)``, a Jacobian ``J[:, j] = jvp(x, e_j)`` or
``J[i, :] = vjp(x, e_i)``; a compressed (sparse) one evaluates the kernel once per seed
direction and gathers the nonzeros from the products.  The kernel is an ordinary generated
function (``hvp``, ``jvp``, ``vjp``) and the driver a loop around it, so the generated
code has the same size for every array size: the number of directions is a loop bound.

A kernel's directions and results are *slots*: an array (a wrt symbol, or the output),
a 1-D array of scalar items (``_tangent``, ``_cotangent``), or one float.  A slot's shape
is read from an argument, fixed, or taken from the value (``forward``) when the output
has an open dimension.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..naming import parameter_names
from ..spec import FunctionSpec
from .helpers import DECORATOR


@dataclass(frozen=True)
class Slot:
    """One direction or result part of a kernel.

    ``kind``: "array" (shaped like ``source``), "flat" (1-D, ``source`` its static
    shape) or "scalar".  ``source``: ("arg", k) the k-th argument's shape, ("static",
    shape), or ("output",) the value's shape.
    """

    kind: str
    source: tuple = ("static", ())


@dataclass(frozen=True)
class DirectionLoop:
    """A generated function that loops over directions through ``kernel``.

    ``kernel`` is called as ``kernel(*arguments, *directions)``.  Dense: returns the
    (results x directions) matrix, or its transpose with ``transpose`` (rows from a
    vjp).  ``compressed``: takes ``_seeds`` (one row per direction, over all direction
    elements) and ``_gather`` (positions in the C-ordered (seeds x results) products) and
    returns the gathered values: the nonzeros of a sparse matrix, recovered in the loop.
    """

    name: str
    inputs: tuple
    kernel: FunctionSpec
    directions: tuple[Slot, ...]
    results: tuple[Slot, ...]
    tuple_result: bool
    doc: str
    transpose: bool = False
    compressed: bool = False
    forward: FunctionSpec | None = None
    arrays: tuple = field(default=())

    @property
    def specs(self) -> list[FunctionSpec]:
        """The generated functions the driver calls."""
        return [s for s in (self.forward, self.kernel) if s is not None]

    @property
    def extra_arguments(self) -> tuple[str, ...]:
        """Trailing parameters after the arguments: seeds and gather positions."""
        return ("_seeds", "_gather") if self.compressed else ()

    def needs_forward(self) -> bool:
        return any(s.source == ("output",) for s in self.directions + self.results)


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
                  '    raise ValueError("_seeds must have one row per direction of the '
                  'direction size")',
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
        lines += ["_flat = _out.reshape(-1)",
                  "_data = np.empty(_gather.size)",
                  "for _q in range(_gather.size):",
                  "    _data[_q] = _flat[_gather[_q]]",
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


# The same loop on the reference evaluator (the first, interpreted call of a method).
def slot_shape(slot: Slot, args, value) -> tuple:
    """The runtime shape of a slot, given the call's arguments and (if needed) the value."""
    where = slot.source
    if slot.kind == "scalar":
        return ()
    if where[0] == "arg":
        return np.shape(args[where[1]])
    if where[0] == "output":
        return np.shape(value)
    return tuple(where[1])


def run_direction_loop(loop: DirectionLoop, kernel, forward, args, extra=()):
    """What the generated driver computes, with Python callables for its kernel and
    forward function."""
    value = forward(*args) if loop.needs_forward() else None
    d_shapes = [slot_shape(s, args, value) for s in loop.directions]
    d_sizes = [math.prod(s) for s in d_shapes]
    r_sizes = [math.prod(slot_shape(s, args, value)) for s in loop.results]
    n, m = sum(d_sizes), sum(r_sizes)
    bounds = np.cumsum([0] + d_sizes)

    def product(u):
        parts = [float(u[bounds[k]]) if s.kind == "scalar" else
                 np.array(u[bounds[k]:bounds[k + 1]]).reshape(d_shapes[k])
                 for k, s in enumerate(loop.directions)]
        r = kernel(*args, *parts)
        parts = r if loop.tuple_result else (r,)
        return np.concatenate([np.ravel(p) for p in parts]) if parts else np.empty(0)

    if loop.compressed:
        seeds, gather = (np.asarray(a) for a in extra)
        if seeds.ndim != 2 or seeds.shape[1] != n:
            raise ValueError("_seeds must have one row per direction of the direction size")
        out = np.array([product(seed) for seed in seeds]).reshape(-1)
        return out[np.asarray(gather, dtype=np.int64)]
    out = np.empty((m, n))
    for j in range(n):
        out[:, j] = product(np.eye(1, n, j)[0])
    return out.T.copy() if loop.transpose else out
