"""One contract for the arguments of every compiled function, whichever tier runs it.

The first (interpreted) call and the compiled calls accept the same values and reject the
same ones with the same ``ArgumentError``, raised before any generated code runs:

- a scalar parameter takes a real number: int, float, bool, Fraction, Decimal, a NumPy
  real scalar (float32, longdouble: rounded to float64) or a 0-d real array;
- an array parameter takes anything NumPy turns into a real array of its shape (lists,
  integer, float32, strided or read-only arrays: converted to a C-ordered float64 copy);
- complex numbers, strings, None and other objects are rejected, never cast silently.

The compiled tier tries the Numba dispatcher first and runs these checks only when it
refuses the arguments, so exact float64 inputs pay nothing for the contract.
"""

from __future__ import annotations

import decimal
import numbers

import numpy as np

from symdiff.errors import ArgumentError

_REAL_KINDS = "fiub"
_FLOAT64 = np.dtype(np.float64)


def batch_size(args, values) -> int | None:
    """The size of the open (None) dimension in this call, read from the arguments."""
    for sym, value in zip(args, values, strict=False):
        for k, d in enumerate(sym.shape):
            if d is None:
                shape = np.shape(value)
                return shape[k] if k < len(shape) else None
    return None


def _kind_name(value) -> str:
    if isinstance(value, np.ndarray):
        return f"a {value.ndim}-D {value.dtype} array"
    return type(value).__name__


def real_number(name: str, value) -> float:
    """``value`` as a float, or ArgumentError naming ``name``."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in _REAL_KINDS:
        return float(value)
    if isinstance(value, (numbers.Real, decimal.Decimal)) or (
            isinstance(value, np.generic) and value.dtype.kind in _REAL_KINDS):
        return float(value)
    if isinstance(value, (complex, np.complexfloating)):
        raise ArgumentError(f"argument {name} must be a real number, got the complex {value!r}"
                            " (symdiff computes in float64)")
    raise ArgumentError(f"argument {name} must be a real number, got {_kind_name(value)}")


def real_array(name: str, value) -> np.ndarray:
    """``value`` as a C-ordered, writable float64 array, or ArgumentError naming ``name``."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise ArgumentError(f"argument {name} must be a real array: {error}") from None
    if array.dtype.kind == "O":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError) as error:
            raise ArgumentError(f"argument {name} must be a real array: {error}") from None
    elif array.dtype.kind not in _REAL_KINDS:
        kind = "complex" if array.dtype.kind == "c" else str(array.dtype)
        raise ArgumentError(f"argument {name} must be a real array, got a {kind} array"
                            " (symdiff computes in float64)")
    array = np.require(array, np.float64, ("C", "W", "A"))  # aligned: native code reads it
    # An equal but distinct float64 dtype (an unpickled array's) is NumPy's own one after
    # a copy: the native entry points recognize that one.
    return array if array.dtype is _FLOAT64 else array.astype(_FLOAT64)


def is_dask(value) -> bool:
    """Whether ``value`` is a Dask array (without importing Dask)."""
    return type(value).__module__.split(".")[0] == "dask" and hasattr(value, "chunks")


def dimensions(value) -> tuple[int, int]:
    """(ndim, size) of an argument as NumPy sees it; (0, 1) for what NumPy cannot read
    (ragged lists: the contract rejects them with a clear message)."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        return 0, 1
    return array.ndim, array.size


def _shown(shape) -> str:
    return str(tuple(shape)).replace("None", "batch")


class Contract:
    """The accepted arguments of one generated function: ``slots`` are (name, shape)
    for each positional parameter, shape None for a float and an int n for a 1-D array
    of n items (tangents, cotangents, directions of functions of scalars)."""

    def __init__(self, slots: list[tuple[str, object]], least_open: int = 0):
        self.slots = slots
        self.least_open = least_open  # the open dimension's least length (see below)

    @classmethod
    def of(cls, spec, params: list[str], least_open: int = 0) -> Contract:
        """The contract of a codegen FunctionSpec or DirectionLoop; ``least_open``: the
        length an open dimension needs at least (the function reads x[5], x[2:])."""
        slots = [(p, s.shape if s.shape else None)
                 for p, s in zip(params, spec.inputs, strict=True)]
        slots += [(a.name, len(a.symbols)) for a in spec.arrays]
        # Seeds and gather positions of compressed loops: symdiff's own, passed as given.
        slots += [(name, "given") for name in getattr(spec, "extra_arguments", ())]
        return cls(slots, least_open)

    def convert(self, x) -> list:
        """The arguments converted for the generated code, or ArgumentError."""
        if len(x) != len(self.slots):
            raise ArgumentError(f"takes {len(self.slots)} positional arguments "
                                f"({', '.join(n for n, _ in self.slots)}), {len(x)} given")
        converted, batch = [], None
        for (name, shape), value in zip(self.slots, x, strict=True):
            if shape == "given":
                converted.append(value)
                continue
            if shape is None:
                if dimensions(value)[0] and not isinstance(value, (str, bytes)):
                    raise ArgumentError(f"argument {name} must be a float, got "
                                        f"{_kind_name(np.asarray(value))}")
                converted.append(real_number(name, value))
                continue
            array = real_array(name, value)
            if isinstance(shape, int):
                if array.size != shape:
                    raise ArgumentError(f"argument {name} must have {shape} items, got "
                                        f"{array.size}")
                converted.append(array.ravel())
                continue
            if array.ndim != len(shape):
                raise ArgumentError(f"argument {name} must be a {len(shape)}-D array of shape "
                                    f"{_shown(shape)}, got shape {array.shape}")
            for want, got in zip(shape, array.shape, strict=True):
                if want is None:
                    batch = got if batch is None else batch
                    if got != batch:
                        raise ArgumentError(f"argument {name} must have shape "
                                            f"{_shown(shape)} with batch = {batch}, got "
                                            f"{array.shape}")
                    if got < self.least_open:
                        raise ArgumentError(f"argument {name} is too short: its open (None) "
                                            f"dimension has length {got}, and the function "
                                            f"reads positions that need at least "
                                            f"{self.least_open}")
                elif want != got:
                    raise ArgumentError(f"argument {name} must have shape {_shown(shape)}, "
                                        f"got {array.shape}")
            converted.append(array)
        return converted

    def points(self, x) -> list[np.ndarray]:
        """Arguments of a function of scalars given as arrays of points: broadcast,
        flattened float64 arrays (the batched functions' inputs)."""
        if len(x) != len(self.slots):
            self.convert(x)  # raises the count error
        arrays = [real_array(name, value) for (name, _), value in zip(self.slots, x,
                                                                      strict=True)]
        try:
            points = np.broadcast_arrays(*arrays)
        except ValueError:
            shapes = ", ".join(f"{n} {a.shape}" for (n, _), a in zip(self.slots, arrays,
                                                                    strict=True))
            raise ArgumentError(f"arrays of points must broadcast together: {shapes}") from None
        return [np.ascontiguousarray(p.ravel()) for p in points]
