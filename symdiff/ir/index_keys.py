"""Index keys: the normalized, hashable payload of ``index`` and ``embed`` nodes.

A key has one entry per leading axis: ``("i", k)`` picks position k (the axis goes away;
on an open dimension k may be negative, counted from its run-time end), ``("s", start,
stop, step)`` keeps a slice of a static axis as range() bounds, and ``("o", start, stop,
step)`` a slice of an open axis as written (step 1 or -1), whose length is N + k
(``symdiff/dims.py``).
"""

from __future__ import annotations

from symdiff.errors import ShapeError
from symdiff.ir.dims import has_open, is_open, open_position, open_slice, slice_text


def _slice(start, stop, step) -> slice:
    # Keys hold range() bounds: a negative step running past 0 stops at -1, which a slice
    # would read as "one before the end".
    return slice(start, None if stop is not None and stop < 0 else stop, step)


def key_to_python(key) -> tuple:
    """An index key as Python index objects (ints and slices).  Entries on an open
    dimension (``("o", ...)`` slices, negative ints) hold the bounds as written, which
    NumPy resolves against the length it is given."""
    return tuple(k[1] if k[0] == "i" else slice(*k[1:]) if k[0] == "o" else _slice(*k[1:])
                 for k in key)


def _bound(value) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def _check_entry(entry, dim, key, shape) -> None:
    """A key entry as symdiff builds it, within a static axis: what a pickle could forge
    (positions past the end would have compiled code read or write outside the array)."""
    kinds = {"i": 2, "s": 4, "o": 4}
    if (not isinstance(entry, tuple) or not entry or entry[0] not in kinds
            or len(entry) != kinds[entry[0]] or not all(_bound(b) for b in entry[1:])):
        raise ShapeError(f"malformed index key {key}")
    if is_open(dim):
        return
    if entry[0] == "i" and not (entry[1] is not None and 0 <= entry[1] < dim):
        raise ShapeError(f"index key {key} picks a position outside an axis of {dim}")
    if entry[0] == "s" and entry[1:] != (None, None, None):
        if None in entry[1:] or entry[3] == 0:
            raise ShapeError(f"malformed index key {key}")
        positions = range(*entry[1:])
        if positions and not (0 <= min(positions[0], positions[-1])
                              and max(positions[0], positions[-1]) < dim):
            raise ShapeError(f"index key {key} reaches outside an axis of {dim} (shape "
                             f"{shape})")
    if entry[0] == "o":
        raise ShapeError(f"index key {key}: a slice of an open axis on a static one")


def index_shape(shapes, key):
    (shape,) = shapes
    if not isinstance(key, tuple) or len(key) > len(shape):
        raise ShapeError(f"index key {key} has more entries than shape {shape} has axes")
    out = []
    for k, dim in enumerate(shape):
        entry = key[k] if k < len(key) else ("s", None, None, None)
        _check_entry(entry, dim, key, shape)
        if entry[0] == "o":
            out.append(open_slice(dim, *entry[1:])[0])
        elif entry[0] == "s":
            out.append(dim if entry[1:] == (None, None, None) else len(range(*entry[1:])))
    return tuple(out)


def least_open_length(node) -> int:
    """The least open length N at which an index (or embed) node reads (writes) its
    positions as NumPy would: slices and integers of an open dimension need it at least
    this long."""
    key, shape = (node.value, node.args[0].shape) if node.op == "index" else node.value
    least = 0
    for entry, dim in zip(key, shape, strict=False):
        if is_open(dim):
            least = max(least, open_slice(dim, *entry[1:])[1] if entry[0] == "o" else
                        open_position(dim, entry[1]) if entry[0] == "i" else 0)
    return least


def part_key(node, i):
    """The key of part i in the joined result: static positions before an open part,
    positions from the end after it."""
    axis = node.value
    lengths = [a.shape[axis] for a in node.args]
    full = ("s", None, None, None)
    if not has_open(lengths[:i + 1]):
        start = sum(lengths[:i])
        entry = ("s", start, start + lengths[i], 1)
        if is_open(node.shape[axis]):
            entry = ("o", *entry[1:])
    else:
        after = sum(lengths[i + 1:])  # all static
        before = None if is_open(lengths[i]) else -(after + lengths[i])
        entry = ("o", sum(lengths[:i]) if is_open(lengths[i]) else before,
                 -after if after else None, 1)
        entry = full if entry == ("o", 0, None, 1) else entry
    return (full,) * axis + (entry,)


def key_text(key) -> str:
    """NumPy's notation of an index key: ``0``, ``1:``, ``::-1``, ``:, 0``."""
    parts = []
    for kind, *bounds in key:
        if kind == "i":
            parts.append(str(bounds[0]))
        else:  # "o" as written; "s" as the slice its range() bounds stand for
            python = slice(*bounds) if kind == "o" else _slice(*bounds)
            parts.append(slice_text(python.start, python.stop, python.step))
    return ", ".join(parts)


def step_one_ranges(key, shape, positions: bool = False) -> list[tuple[int, int]] | None:
    """The [start, stop) that an index key of a static ``shape`` keeps on each axis (a
    whole axis, a step-1 slice; with ``positions``, a position as a range of one), or
    None where it holds anything else (another step, an open axis)."""
    if not all(isinstance(d, int) for d in shape):
        return None
    ranges = []
    for axis, dim in enumerate(shape):
        entry = key[axis] if axis < len(key) else ("s", None, None, None)
        if positions and entry[0] == "i" and 0 <= entry[1] < dim:
            ranges.append((entry[1], entry[1] + 1))
        elif entry == ("s", None, None, None):
            ranges.append((0, dim))
        elif entry[0] == "s" and entry[3] == 1:
            ranges.append((entry[1], entry[2]))
        else:
            return None
    return ranges


def least_open_length_of(nodes) -> int:
    """The least open length at which every index and embed among ``nodes`` reads and
    writes as NumPy would (0: any length)."""
    return max((least_open_length(n) for n in nodes if n.op in ("index", "embed")),
               default=0)
