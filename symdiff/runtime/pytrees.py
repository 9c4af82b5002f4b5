"""Pytrees: parameters as dicts, tuples and lists of arrays (what Flax, Equinox, optax and
SciPy wrappers pass), flattened with optree (JAX's pytree rules, kept by a maintained
library rather than our own walk).

An argument is a tree when it is a dict, or a tuple or list holding an array or another
container; a tuple or list of numbers stays what it always was in symdiff, a vector.
Each leaf of a tree argument becomes a symbol of the leaf's shape, named after the
parameter and the leaf's path (``params_w1``, ``layers_0_b``); gradients come back with
the argument's structure (symdiff.runtime.transforms.ByShape).  ``ravel_pytree`` flattens
a tree into one vector and back, for SciPy's optimizers.
"""

from __future__ import annotations

import keyword
import re

import numpy as np
import optree

from symdiff.errors import ArgumentError
from symdiff.ir import trees
from symdiff.ir.dims import has_open as dims_open
from symdiff.ir.nodes import Expr, as_expr, symbol
from symdiff.ir.trees import is_tree  # noqa: F401 - re-exported for the runtime
from symdiff.ops.arrays import concatenate, reshape


def _leaf_shape(leaf) -> tuple:
    if isinstance(leaf, Expr):
        return leaf.shape
    return np.shape(leaf)


def tree_key(value) -> tuple:
    """What a compile for a tree argument depends on: its structure and leaf shapes."""
    leaves, spec = trees.flatten(value)
    return ("tree", spec, tuple(_leaf_shape(leaf) for leaf in leaves))


def _identifier(text: str) -> str:
    name = re.sub(r"\W", "_", text)
    return name if name.isidentifier() and not keyword.iskeyword(name) else f"_{name}"


def leaf_symbols(name: str, key: tuple, taken: set[str]) -> tuple[object, list[Expr]]:
    """(the tree of symbols for parameter ``name`` of ``key``'s structure, its leaves in
    order), each named after the parameter and its path, unique among ``taken``."""
    _, spec, shapes = key
    paths = optree.treespec_paths(spec)
    leaves = []
    for path, shape in zip(paths, shapes, strict=True):
        base = _identifier("_".join([name, *(str(p) for p in path)]))
        label, k = base, 1
        while label in taken:
            label, k = f"{base}_{k}", k + 1
        taken.add(label)
        leaves.append(symbol(label, shape))
    return trees.unflatten(spec, leaves), leaves


def flatten_argument(name: str, value, key: tuple) -> list:
    """The leaves of a tree argument, which must have the structure of ``key``."""
    leaves, spec = trees.flatten(value)
    if spec != key[1]:
        raise ArgumentError(f"argument {name} has the structure {spec}, not the {key[1]} "
                            "it was compiled for")
    return leaves


def unflatten(key: tuple, leaves: list):
    """``leaves`` (one per leaf of ``key``'s structure) in that structure."""
    return trees.unflatten(key[1], leaves)


def ravel_pytree(tree):
    """(one float64 vector of every leaf of ``tree``, ``unravel``): ``unravel(v)`` gives
    a tree of the same structure and leaf shapes from such a vector (NumPy arrays, or
    expressions while tracing), as ``jax.flatten_util.ravel_pytree``."""
    leaves, spec = trees.flatten(tree)
    shapes = [np.shape(leaf) for leaf in leaves]
    if any(isinstance(leaf, Expr) for leaf in leaves):  # inside a traced function
        flat = concatenate([reshape(as_expr(leaf), (-1,)) for leaf in leaves])
    else:
        flat = (np.concatenate([np.ravel(np.asarray(leaf, dtype=float)) for leaf in leaves])
                if leaves else np.zeros(0))

    def unravel(vector):
        if len(vector) != len(flat):
            raise ArgumentError(f"unravel takes a vector of {len(flat)} elements, "
                                f"got {len(vector)}")
        return trees.unflatten(spec, trees.cut(vector, shapes))
    return flat, unravel


def is_output_tree(result) -> bool:
    """Whether a traced function's result is a pytree to give back as one: a dict, or a
    tuple or list holding an array or a container (a list of scalars is a vector)."""
    if isinstance(result, dict):
        return True
    if not isinstance(result, (list, tuple)):
        return False
    return any(isinstance(item, (dict, list, tuple)) or bool(_leaf_shape(item))
               for item in result)


class OutputTree:
    """A result that is a pytree, compiled as one vector (its leaves raveled, in order)
    and given back in its structure: values and jvps as the tree, Jacobians as a tree of
    (leaf size, n) blocks of rows, vjp cotangents taken as the tree."""

    def __init__(self, result):
        leaves, self.spec = trees.flatten(result)
        if not leaves:
            raise ArgumentError("the function returns an empty container")
        exprs = [as_expr(leaf) for leaf in leaves]
        if any(dims_open(e.shape) for e in exprs):
            raise ArgumentError("a pytree result needs static shapes (an open dimension "
                                "in a leaf)")
        self.shapes = [e.shape for e in exprs]
        self.bounds = np.cumsum([0, *[e.size for e in exprs]])
        self.output = concatenate([reshape(e, (e.size,)) for e in exprs])

    def _parts(self, rows, axis: int = 0):
        """Each leaf's slice of ``rows`` along ``axis``."""
        before = (slice(None),) * axis
        return [rows[before + (slice(a, b),)]
                for a, b in zip(self.bounds[:-1], self.bounds[1:], strict=True)]

    def value(self, flat: np.ndarray):
        """The flat result in the tree's structure (scalar leaves as floats)."""
        return trees.unflatten(self.spec, trees.cut(flat, self.shapes))

    def stacked(self, flat: np.ndarray):
        """Flat results of many points (one row each) in the tree's structure, each leaf
        with the points' axis first."""
        parts = [flat[:, a:b].reshape((len(flat),) + s)
                 for a, b, s in zip(self.bounds[:-1], self.bounds[1:], self.shapes, strict=True)]
        return trees.unflatten(self.spec, parts)

    def rows(self, matrix: np.ndarray):
        """A Jacobian's rows, one block per leaf."""
        return trees.unflatten(self.spec, self._parts(matrix))

    def restructure(self, method: str, result):
        """A compiled method's result for the flat vector, in the tree's structure."""
        if method in ("forward", "jvp"):
            return self.value(result)
        if method == "jacobian":
            return self.rows(result)
        return result  # vjp: shaped like the arguments

    def restructure_stacked(self, method: str, result):
        """``restructure`` of many points' results (the points' axis first): each leaf,
        or each leaf's block of Jacobian rows, with the points' axis first."""
        if method in ("forward", "jvp"):
            return self.stacked(result)
        if method == "jacobian":
            return trees.unflatten(self.spec, self._parts(result, axis=1))
        return result

    def cotangent(self, tree) -> np.ndarray:
        """A cotangent of the tree's structure as the flat vector."""
        leaves, spec = trees.flatten(tree)
        if spec != self.spec:
            raise ArgumentError(f"the cotangent has the structure {spec}, the value "
                                f"{self.spec}")
        for leaf, shape in zip(leaves, self.shapes, strict=True):
            if np.shape(leaf) != shape:
                raise ArgumentError(f"a cotangent leaf has shape {np.shape(leaf)}, its "
                                    f"value's leaf {shape}")
        return np.concatenate([np.ravel(np.asarray(leaf, dtype=np.float64))
                               for leaf in leaves])
