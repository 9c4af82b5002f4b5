"""Derivative matrices as a loop over directions through one compiled kernel: what such a
loop is (``DirectionLoop``, its ``Slot``s), independently of the backend that writes it,
and what it computes, run on Python callables (``run_direction_loop``).

A dense Hessian is ``H[:, j] = hvp(x, e_j)``, a Jacobian ``J[:, j] = jvp(x, e_j)`` or
``J[i, :] = vjp(x, e_i)``; a compressed (sparse) one evaluates the kernel once per seed
direction and gathers the nonzeros from the (seeds x results) products: at a gather
position below their size, or past it a copy of the nonzero it names
(symdiff.autodiff.coloring).  The kernel is an ordinary generated function (``hvp``,
``jvp``, ``vjp``) and the driver a loop around it, so the generated code has the same
size for every array size: the number of directions is a loop bound.

A kernel's directions and results are *slots*: an array (a wrt symbol, or the output),
a 1-D array of scalar items (``_tangent``, ``_cotangent``), or one float.  A slot's shape
is read from an argument, fixed, or taken from the value (``forward``) when the output
has an open dimension.  The Numba lowering writes the driver (codegen.numba.directions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .spec import FunctionSpec

# What a compressed loop raises for seeds or gather positions that do not fit, in every
# lowering.
SEEDS_MESSAGE = "_seeds must have one row per direction of the direction size"
GATHER_MESSAGE = ("_gather positions must lie among the products (seeds x results), or past "
                  "them name a nonzero read there")


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
    elements) and ``_gather`` (see the module and ``gathered``; a native driver that
    works in tiles of rows takes them in its tiles, codegen.native.compressed) and
    returns the gathered values: the nonzeros of a sparse matrix, recovered in the
    loop.
    ``block``, where set, is the kernel over ``block_size`` directions at once: each
    direction with a trailing axis of that length, each result part likewise
    (symdiff.autodiff.batch_axis); the native driver runs it block by block.
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
    block: FunctionSpec | None = None

    @property
    def block_size(self) -> int:
        """How many directions ``block`` takes at once (1 without one)."""
        return self.block.inputs[-1].shape[-1] if self.block is not None else 1

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
            raise ValueError(SEEDS_MESSAGE)
        products = np.array([product(seed) for seed in seeds]).reshape(len(seeds), m)
        return gathered(products, gather)
    out = np.empty((m, n))
    for j in range(n):
        out[:, j] = product(np.eye(1, n, j)[0])
    return out.T.copy() if loop.transpose else out


def gathered(products: np.ndarray, gather) -> np.ndarray:
    """The nonzeros a compressed loop returns from its (seeds x results) ``products``:
    flat element p for a position p below their size, else the nonzero ``p -
    products.size``, which must be one read there (symdiff.autodiff.coloring)."""
    places = np.asarray(gather).astype(np.int64)  # (any integer type, as the drivers)
    flat = products.reshape(-1)
    direct = places < flat.size
    read, others = places[direct], places[~direct] - flat.size
    if (read.size and read.min() < 0) or (
            others.size and (others.max() >= places.size or not direct[others].all())):
        raise ValueError(GATHER_MESSAGE)
    out = np.empty(places.size)
    out[direct] = flat[read]
    out[~direct] = out[others]
    return out
