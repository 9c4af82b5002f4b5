"""Arrays as the native lowering reads them: a pointer, an offset and a stride per axis
(in doubles), so that transposes, reshapes of contiguous data, slices and broadcasts are
index arithmetic on their operand's memory, never copies."""

from __future__ import annotations

from dataclasses import dataclass

from .code import Code

# Elementwise ops the lowering emits as the view of their operand (no loop of their own):
# nothing may be fused into them.
ALIASES = ("stop_gradient", "root")


@dataclass(frozen=True)
class View:
    """Element (i0, i1, ...) of an array lies at ``base[offset + sum(i_k * strides[k])]``;
    ``contiguous``: its elements fill ``base[offset:offset + size]`` in C order."""

    base: str
    offset: str
    strides: tuple[str, ...]
    contiguous: bool


def c_strides(code: Code, shape) -> tuple[str, ...]:
    """The strides of a C-ordered array of ``shape``."""
    strides, step = [], "1"
    for d in reversed(shape):
        strides.append(step)
        step = code.integer("mul", step, code.dim(d))
    return tuple(reversed(strides))


def whole(code: Code, base: str, shape) -> View:
    """A C-ordered array of ``shape`` starting at ``base``."""
    return View(base, "0", c_strides(code, shape), True)


def position(code: Code, view: View, shape, loop_shape, indices) -> str:
    """The index into ``view.base`` of the element an array of ``shape`` contributes at
    ``indices`` of a loop over ``loop_shape`` (NumPy broadcasting: shapes align on the
    right, an axis of length 1 stays at 0)."""
    at = view.offset
    first = len(loop_shape) - len(shape)
    for k, d in enumerate(shape):
        if d == 1:
            continue
        at = code.integer("add", at, code.integer("mul", indices[first + k], view.strides[k]))
    return at


def transposed(view: View) -> View:
    """All axes reversed (the transpose op)."""
    contiguous = view.contiguous and len(view.strides) < 2
    return View(view.base, view.offset, tuple(reversed(view.strides)), contiguous)


def permuted(view: View, axes) -> View:
    """The axes in the order ``axes`` (the permute op)."""
    contiguous = view.contiguous and tuple(axes) == tuple(range(len(axes)))
    return View(view.base, view.offset, tuple(view.strides[k] for k in axes), contiguous)


def broadcast(code: Code, view: View, shape, target) -> View:
    """``view`` (of ``shape``) broadcast to ``target``: stride 0 on new and stretched axes."""
    new = len(target) - len(shape)
    strides = ["0"] * new + [("0" if d == 1 and t != 1 else s) for d, t, s in
                             zip(shape, target[new:], view.strides, strict=True)]
    return View(view.base, view.offset, tuple(strides), view.contiguous and
                tuple(target) == tuple(shape))


def reshaped(code: Code, view: View, shape) -> View | None:
    """``view`` with another shape of the same size, if its data is contiguous (else
    None: the caller copies it first)."""
    if not view.contiguous:
        return None
    return View(view.base, view.offset, c_strides(code, shape), True)


def _from_end(code: Code, position: int, d) -> str:
    return str(position) if position >= 0 else code.integer("add", code.dim(d), str(position))


def indexed(code: Code, view: View, key, shape) -> View:
    """``view`` (of ``shape``) seen through an index key (symdiff.ir.index_keys): an int
    entry fixes its axis, a slice moves the start and scales the stride."""
    at, strides, contiguous = view.offset, [], view.contiguous
    for k, d in enumerate(shape):
        entry = key[k] if k < len(key) else ("s", None, None, None)
        stride = view.strides[k]
        # C order survives fixed leading axes, then one slice with step 1, then whole axes.
        leading = all(e[0] == "i" for e in key[:k])
        if entry[0] == "i":
            at = code.integer("add", at, code.integer("mul", _from_end(code, entry[1], d),
                                                      stride))
            contiguous = contiguous and leading
            continue
        if entry[0] == "o":
            step = entry[3]
            start = (("0" if step > 0 else _from_end(code, -1, d)) if entry[1] is None
                     else _from_end(code, entry[1], d))
            full = entry[1] is None and entry[2] is None and step == 1
        else:
            start, step = str(entry[1] or 0), entry[3] or 1
            full = entry[1:] == (None, None, None) or (
                entry[1] in (0, None) and step == 1 and entry[2] == d)
        at = code.integer("add", at, code.integer("mul", start, stride))
        strides.append(code.integer("mul", str(step), stride))
        if not full:
            contiguous = contiguous and leading and step == 1
    return View(view.base, at, tuple(strides), contiguous)
