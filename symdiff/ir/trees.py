"""Which values are pytrees (JAX's containers of arrays), one rule for every layer: a
dict, or a tuple or list holding an array or another container.  A tuple or list of
numbers stays what it always was in symdiff, a vector.  Flattening is optree's."""

from __future__ import annotations

import numbers

import numpy as np
import optree

NONE_IS_LEAF = False  # None is an empty subtree, as in JAX


def is_tree(value) -> bool:
    """Whether ``value`` is a pytree container of arrays (see the module)."""
    if isinstance(value, dict):
        return True
    if isinstance(value, (list, tuple)) and not isinstance(value, np.ndarray):
        return any(not isinstance(item, numbers.Number) for item in value)
    return False


def flatten(value) -> tuple[list, object]:
    """(the leaves of a tree, its structure)."""
    return optree.tree_flatten(value, none_is_leaf=NONE_IS_LEAF)


def unflatten(structure, leaves):
    """``leaves`` in ``structure``."""
    return optree.tree_unflatten(structure, list(leaves))


def cut(vector, shapes) -> list:
    """``vector`` (a NumPy vector, or an expression) cut into consecutive pieces of
    ``shapes``, each reshaped to its shape; a piece of shape () is the element itself
    (a float from NumPy)."""
    pieces, start = [], 0
    for shape in shapes:
        shape = tuple(shape)
        size = int(np.prod(shape))
        if shape:
            pieces.append(vector[start:start + size].reshape(shape))
        else:
            element = vector[start]
            pieces.append(float(element) if isinstance(vector, np.ndarray) else element)
        start += size
    return pieces
