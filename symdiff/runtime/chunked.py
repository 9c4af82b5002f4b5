"""Dask arrays as inputs: compiled functions evaluated chunk by chunk in Dask's workers.

Two cases, chosen by where the Dask arrays go:

- **A loss over an open (None) dimension** (``sd.matrix("X", None, 10)``), its data
  chunked along that dimension.  The function is split at its *sums over the open
  dimension* (``sum`` over that axis, products contracting it, ``batch_size``): each is
  a sum of per-chunk partial sums, so every chunk computes those sums and their
  Jacobian with respect to ``wrt``; the chunks' results are added up in a tree; the rest
  of the function (a mean's division, a regularizer, a log of a sum: anything) runs once
  on the totals, and the chain rule gives the gradient.  The value and gradient are
  returned computed, like NumPy ones (an optimizer's step needs them).  A function that
  reads the open dimension any other way (a maximum over it, one row of it, a scan
  along it) is refused with the node at fault.
- **Points** (a function of scalars at many points, or ``fn.vmap``): each block of points
  is one task; the results are lazy Dask arrays, blocks as the points'.

Workers rebuild a compiled function from its pickled graph (copies of one function are
one object: symdiff.runtime.compiled._unpickle_compiled) and load its machine code from the
disk cache (``SYMDIFF_CACHE_DIR``, shared by processes of one machine) instead of
compiling again.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

from symdiff.errors import ArgumentError, ShapeError, SymdiffError
from symdiff.ir.nodes import OPS, Expr, internal_symbol, topological_order
from symdiff.ops.arrays import concatenate, reshape
from symdiff.passes.pipeline import substitute
from symdiff.runtime.inputs import is_dask

# Ops whose result keeps the open dimension's rows independent (one chunk's rows of the
# result depend on that chunk's rows of the operands only), given a result with the
# open dimension: elementwise ops and these.
_ROWWISE = {"broadcast_to", "matmul", "transpose", "sum", "amax", "index", "stop_gradient",
            "concatenate", "sum_to"}
# Ops that turn chunk-local operands into a sum over the open dimension.
_ADDITIVE = {"sum", "matmul", "batch_size"}


def _open(node: Expr) -> bool:
    # exactly the open length: a slice such as x[1:] (N - 1) mixes rows of neighbouring
    # chunks, so it is not row-wise and ends up refused below
    return None in node.shape


def _rowwise(node: Expr) -> bool:
    if node.op == "index":  # x[::-1] keeps the open length but not the rows
        return all(entry[0] != "o" for entry in node.value)
    return OPS[node.op].elementwise or node.op in _ROWWISE


def split_at_sums(outputs: list[Expr]) -> list[Expr]:
    """The sums over the open dimension the outputs read it through (topological order),
    or SymdiffError naming the node that reads the open dimension another way."""
    local, sums, reduced = set(), [], set()  # reduced: the sums and what reads them
    for node in topological_order(outputs):
        if node.op == "symbol" and _open(node):
            local.add(node)
            continue
        reads = [a for a in node.args if a in local]
        if any(a in reduced for a in node.args):
            reduced.add(node)
            if reads:  # x - mean(x): each chunk would use its own mean
                raise SymdiffError(f"chunked evaluation: {OPS[node.op].name} combines rows "
                                   "of the open dimension with a sum over all of them, so "
                                   "per-chunk results cannot be added up (pass NumPy arrays)")
        if not reads:
            continue
        if _open(node) and _rowwise(node):
            local.add(node)
        elif not _open(node) and node.op in _ADDITIVE:
            sums.append(node)
            reduced.add(node)
        else:
            raise SymdiffError(f"chunked evaluation: {OPS[node.op].name} reads the open "
                               "dimension other than by a sum over it, so per-chunk results "
                               "cannot be added up (pass NumPy arrays instead)")
    if any(o in local for o in outputs):
        raise SymdiffError("chunked evaluation reduces over the open dimension: the "
                           "function's value has that dimension (use fn.vmap for maps)")
    return sums


class ChunkedLoss:
    """A compiled function split into per-chunk sums and the rest (see the module)."""

    def __init__(self, compiled):
        if not compiled.is_scalar:
            raise SymdiffError("chunked evaluation needs a scalar function (a loss)")
        if any(_open(v) for v in compiled.wrt):
            names = ", ".join(v.value for v in compiled.wrt if _open(v))
            raise SymdiffError(f"chunked evaluation: the derivatives are with respect to {names}"
                               ", which has the open dimension (per row, not a sum); give "
                               "the others as wrt (sd.compile(loss, wrt=0), argnums=0)")
        self.derivation = compiled.derivation  # not the function: _LOSSES holds it weakly
        outputs = list(compiled.derivation.given_outputs)
        sums = split_at_sums(outputs)
        self.totals = [internal_symbol(f"total{k}", s.shape) for k, s in enumerate(sums)]
        self.sizes = [int(np.prod(s.shape)) for s in sums]
        rest = substitute(outputs, dict(zip(sums, self.totals, strict=True)))[0]
        free = [a for a in compiled.args if not _open(a)]
        self.free = [k for k, a in enumerate(compiled.args) if not _open(a)]
        self.chunked = [k for k, a in enumerate(compiled.args) if _open(a)]
        parts = concatenate([reshape(s, (-1,)) for s in sums])
        self.per_chunk = compiled.derived(parts, list(compiled.wrt), list(compiled.args))
        self.rest = compiled.derived(rest, list(compiled.wrt) + self.totals,
                                     free + self.totals)

    def evaluate(self, method: str, x):
        """``method`` (forward, grad or value_and_grad) of the loss at ``x``."""
        import dask

        if method not in ("forward", "grad", "value_and_grad"):
            raise SymdiffError(f"{method} of Dask data: only the value and the gradient are "
                               "computed chunk by chunk")
        want_jacobian = method != "forward"
        # Compiled here first, so the workers of this machine load it from the disk cache
        # instead of each compiling it at once.
        for needed in ("forward", "jacobian") if want_jacobian else ("forward",):
            self.per_chunk.loader.compiled(needed)
        tasks = [dask.delayed(_chunk_sums)(self.per_chunk, want_jacobian, *chunk)
                 for chunk in self._chunks(x)]
        (total, jacobian), = dask.compute(_tree_sum(tasks))
        free = [np.asarray(x[k]) if is_dask(x[k]) else x[k] for k in self.free]
        totals = self._split(total)
        value = self.rest(*free, *totals)
        if not want_jacobian:
            return value
        parts = self.rest.grad(*free, *totals)
        flat = np.concatenate([np.ravel(p) for p in parts]) if isinstance(
            parts, tuple) else np.ravel(parts)
        direct = sum(int(np.prod(v.shape)) for v in self.derivation.wrt)
        gradient = self._shaped(flat[:direct] + flat[direct:] @ jacobian)
        return gradient if method == "grad" else (value, gradient)

    def _split(self, total: np.ndarray) -> list:
        out, at = [], 0
        for symbol, size in zip(self.totals, self.sizes, strict=True):
            part = total[at:at + size]
            out.append(part.reshape(symbol.shape) if symbol.shape else float(part[0]))
            at += size
        return out

    def _shaped(self, flat: np.ndarray):
        """The gradient laid out as the compiled function's ``grad`` gives it."""
        derivation = self.derivation
        if derivation.flat_wrt:  # scalars: one 1-D array, as the compiled grad
            return flat
        ends = np.cumsum([int(np.prod(v.shape)) for v in derivation.wrt])[:-1]
        parts = [p.reshape(v.shape) for p, v in zip(np.split(flat, ends), derivation.wrt,
                                                    strict=True)]
        return derivation.gradient_structure(parts)

    def _chunks(self, x) -> list[list]:
        """Per chunk, the arguments: chunked ones cut along their open axis (aligned to
        the first Dask array's chunks), the others whole."""
        import dask.array as da

        args = self.derivation.args
        if len(x) != len(args):
            raise ArgumentError(f"expected the {len(args)} arguments of the function, got "
                                f"{len(x)}")
        first = next((x[k] for k in self.chunked if is_dask(x[k])), None)
        if first is None:
            raise ArgumentError("Dask arrays go to arguments with the open dimension")
        reference = self.chunked[[x[k] is first for k in self.chunked].index(True)]
        rows = first.chunks[args[reference].shape.index(None)]
        pieces = []
        for k in self.chunked:
            axis = args[k].shape.index(None)
            value = x[k] if is_dask(x[k]) else da.from_array(np.asarray(x[k], dtype=float))
            if value.ndim != len(args[k].shape):
                raise ShapeError(f"argument {args[k].value} must have {len(args[k].shape)} "
                                 f"dimensions, got {value.ndim}")
            value = value.astype(np.float64).rechunk(
                {d: (rows if d == axis else -1) for d in range(value.ndim)})
            pieces.append(value.to_delayed().reshape(-1))
        shared = [x[k] for k in range(len(args)) if k not in self.chunked]
        out = []
        for b in range(len(rows)):
            chunk, cut, whole = [], iter(p[b] for p in pieces), iter(shared)
            for k in range(len(args)):
                chunk.append(next(cut) if k in self.chunked else next(whole))
            out.append(chunk)
        return out


def _chunk_sums(per_chunk, want_jacobian: bool, *chunk):
    """One task: the chunk's sums over the open dimension (and their Jacobian)."""
    # (ascontiguousarray would make scalars 1-D)
    chunk = [c if np.ndim(c) == 0 else np.ascontiguousarray(c, dtype=np.float64) for c in chunk]
    sums = np.asarray(per_chunk(*chunk), dtype=np.float64)
    return sums, (per_chunk.jacobian(*chunk) if want_jacobian else None)


def _add(a, b):
    return a[0] + b[0], None if a[1] is None else a[1] + b[1]


def _tree_sum(tasks: list):
    import dask

    while len(tasks) > 1:
        tasks = [dask.delayed(_add)(tasks[k], tasks[k + 1]) if k + 1 < len(tasks)
                 else tasks[k] for k in range(0, len(tasks), 2)]
    return tasks[0]


BUILDING = threading.Lock()
# Per compiled function, its ChunkedLoss, for as long as the function lives.
_LOSSES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def chunked_loss(compiled) -> ChunkedLoss:
    """The ChunkedLoss of a compiled function (built once, whichever thread asks)."""
    with BUILDING:
        loss = _LOSSES.get(compiled)
        if loss is None:
            loss = _LOSSES[compiled] = ChunkedLoss(compiled)
        return loss


def call(compiled, method: str, x):
    """``method`` of a compiled function whose arguments include Dask arrays."""
    if any(_open(a) and is_dask(v) for a, v in zip(compiled.args, x, strict=False)):
        return chunked_loss(compiled).evaluate(method, x)
    if compiled.derivation.batches(method):  # a function of scalars at many points: vmap's own
        return getattr(compiled.vmap(tuple(0 if np.ndim(v) else None for v in x)), method)(*x)
    raise ArgumentError("a Dask array goes to an argument with an open dimension "
                        "(sd.matrix('X', None, n)) of a scalar function, or to a function "
                        "of scalars at many points; else use fn.vmap")
