"""Derivatives of Python functions called on expressions: ``sd.grad(f)(w - 0.1)`` inside a
traced function, a scan or while body, a custom_root residual.  As JAX's transformations
nest inside ``jit``, these return expressions, so they nest to any depth (grad of grad,
jacobian of grad) and what they build is traced, derived and compiled with the rest.

``f`` is called on fresh symbols shaped like the arguments; the derivative is taken by
those symbols; then the symbols are replaced by the arguments themselves.  Each call
makes symbols of its own (a counter in their names), so an inner derivative taken while
an outer one's symbols are in play never confuses the two.
"""

from __future__ import annotations

import inspect
import itertools
import math
import numbers

from symdiff.autodiff.modes import forward_mode, grad, hessian, jacobian, reverse_mode
from symdiff.errors import ShapeError, SymdiffError
from symdiff.ir import trees
from symdiff.ir.nodes import Expr, as_expr, internal_symbol
from symdiff.ops.arrays import concatenate, reshape
from symdiff.passes.pipeline import optimize, substitute

_CALLS = itertools.count()
METHODS = ("grad", "value_and_grad", "jacobian", "hessian")


def involves_expressions(arguments) -> bool:
    """Whether any argument is an expression, or a pytree holding one (else the
    compiled path applies)."""
    return any(isinstance(leaf, Expr) for a in arguments
               for leaf in (trees.flatten(a)[0] if trees.is_tree(a) else [a]))


def _required(fn, count: int) -> list[int]:
    """The positions, among ``count`` arguments, of ``fn``'s parameters without a
    default: what the derivatives are taken by when no argnums is given (as for numbers:
    a parameter with a default is a constant unless asked for)."""
    try:
        params = list(inspect.signature(fn).parameters.values())[:count]
    except (TypeError, ValueError):
        return list(range(count))
    found = [k for k, p in enumerate(params) if p.default is p.empty]
    return found + list(range(len(params), count)) or list(range(count))


def _positions(argnums, count: int, fn=None) -> tuple[list[int], bool]:
    """(the argument positions to differentiate by, whether one was asked for alone)."""
    if argnums is None:
        chosen = _required(fn, count) if fn is not None else list(range(count))
        return chosen, len(chosen) == 1
    if isinstance(argnums, numbers.Integral):
        chosen, single = [int(argnums)], True
    else:
        chosen, single = [int(a) for a in argnums], False
    for a in chosen:
        if not -count <= a < count:
            raise SymdiffError(f"argnums {a} is out of range for {count} arguments")
    return [a % count for a in chosen], single


def derivative_at(method: str, fn, argnums, arguments) -> object:
    """``method`` ("grad", "value_and_grad", "jacobian", "hessian") of ``fn`` by the
    arguments at ``argnums`` (all by default), at ``arguments`` (expressions or numbers),
    as expressions, shaped as the compiled methods give them on numbers: a gradient like
    its argument (a tuple where several are asked for, a tree for a pytree), a Jacobian
    (output size, argument size) and a Hessian (size, size), both over the leaves of
    every argument asked for in order where there are several or pytrees (the order of
    sd.ravel_pytree); by default the parameters without a default."""
    positions, single = _positions(argnums, len(arguments), fn)
    flat = [trees.flatten(a) if trees.is_tree(a) else ([a], None) for a in arguments]
    # Fresh symbols: one per leaf, or for a Jacobian or Hessian by several arguments or
    # by a pytree, one vector of every leaf asked for, cut into them (matrices over it).
    raveled = method in ("jacobian", "hessian") and (not single or any(
        flat[k][1] is not None for k in positions))
    call = next(_CALLS)
    leaves = [[as_expr(leaf) for leaf in found] for found, _ in flat]
    symbols = [[internal_symbol(f"at{call}_{k}_{j}", v.shape) for j, v in enumerate(row)]
               for k, row in enumerate(leaves)]
    replaced = {s: v for k, row in enumerate(leaves) for s, v in zip(symbols[k], row,
                                                                      strict=True)}
    if raveled:
        chosen = [v for k in positions for v in leaves[k]]
        if any(None in v.shape for v in chosen):
            raise ShapeError(f"sd.{method} by several or pytree arguments needs static shapes")
        if not sum(v.size for v in chosen):
            raise SymdiffError(f"sd.{method}: the arguments asked for have no elements")
        vector = internal_symbol(f"at{call}", (sum(v.size for v in chosen),))
        pieces = iter(trees.cut(vector, [v.shape for v in chosen]))
        for k in positions:
            for j in range(len(leaves[k])):
                del replaced[symbols[k][j]]
                symbols[k][j] = next(pieces)
        replaced[vector] = concatenate([reshape(v, (v.size,)) for v in chosen])
    grouped = [row[0] if structure is None else trees.unflatten(structure, row)
               for row, (_, structure) in zip(symbols, flat, strict=True)]
    output = fn(*grouped)
    try:
        output = as_expr(output)
    except TypeError:
        raise SymdiffError(f"sd.{method} of a function called on expressions needs it to "
                           f"return one expression or number, got {type(output).__name__}") \
            from None
    wrt = [vector] if raveled else [s for k in positions for s in symbols[k]]
    if method in ("grad", "value_and_grad"):
        if output.shape:
            raise ShapeError(f"sd.{method} needs a scalar function; this one gives shape "
                             f"{output.shape} (use sd.jacobian)")
        parts = grad(output, wrt)
    elif method == "jacobian":
        parts = [_jacobian(output, v) for v in wrt]
    elif method == "hessian":
        parts = [_hessian(output, v) for v in wrt]
    else:  # pragma: no cover - the callers pass METHODS
        raise SymdiffError(f"no derivative method {method!r}")
    result = [output] + parts if method == "value_and_grad" else parts
    placed = iter(optimize(substitute(result, replaced)))
    value = next(placed) if method == "value_and_grad" else None
    derivatives = list(placed)
    if raveled:
        return derivatives[0]
    regrouped = []
    for k in positions:  # each argument's derivatives, a tree where it is one
        part, derivatives = derivatives[:len(symbols[k])], derivatives[len(symbols[k]):]
        regrouped.append(part[0] if flat[k][1] is None else trees.unflatten(flat[k][1], part))
    shaped = regrouped[0] if single else tuple(regrouped)
    return (value, shaped) if method == "value_and_grad" else shaped


def _size(shape) -> int:
    return math.prod(shape) if shape else 1


def _jacobian(output: Expr, var: Expr) -> Expr:
    """d output / d var as the compiled methods give it: (output size, var size)."""
    if not output.shape:
        raise SymdiffError("sd.jacobian needs a vector- or array-valued function (its value "
                           "is a scalar); use sd.grad")
    if not var.shape:
        return reshape(forward_mode([output], {var: as_expr(1.0)})[0], (output.size, 1))
    matrix = jacobian(output, [var])
    matrix = matrix[0][0] if isinstance(matrix, list) else matrix
    return reshape(matrix, (_size(output.shape), _size(var.shape)))


def _hessian(output: Expr, var: Expr) -> Expr:
    """d2 output / d var2 as the compiled methods give it: (var size, var size)."""
    if output.shape:
        raise ShapeError(f"sd.hessian needs a scalar function; this one gives shape "
                         f"{output.shape}")
    matrix = hessian(output, [var])
    matrix = matrix[0][0] if isinstance(matrix, list) else matrix
    return reshape(matrix, (_size(var.shape), _size(var.shape)))


def _called_on_fresh(method: str, fn, primals, tree_result: bool = False):
    """(the primals as expressions, fresh symbols of their shapes, fn called on those:
    one expression, or where ``tree_result`` allows, a pytree of them as returned)."""
    values = []
    for k, p in enumerate(primals):
        if trees.is_tree(p):
            raise SymdiffError(f"sd.{method}: primal {k} is a pytree; flatten it with "
                               "sd.ravel_pytree")
        values.append(as_expr(p))
    call = next(_CALLS)
    fresh = [internal_symbol(f"at{call}_{k}", v.shape) for k, v in enumerate(values)]
    output = fn(*fresh)
    if tree_result and trees.is_tree(output):
        return values, fresh, output
    try:
        return values, fresh, as_expr(output)
    except TypeError:
        raise SymdiffError(f"sd.{method} needs the function to return one expression or "
                           f"number, got {type(output).__name__}") from None


def _directions(method: str, values: list[Expr], tangents, what: str) -> list[Expr]:
    """One tangent per primal, each of its primal's shape."""
    directions = [as_expr(t) for t in tangents]
    if len(values) != len(directions):
        raise SymdiffError(f"{method} takes one {what} per primal: {len(values)} primals, "
                           f"{len(directions)} {what}s")
    for k, (value, direction) in enumerate(zip(values, directions, strict=True)):
        if value.shape != direction.shape:
            raise ShapeError(f"{method}: {what} {k} has shape {direction.shape}, its primal "
                             f"{value.shape}")
    return directions


def jvp_at(fn, primals, tangents) -> tuple[Expr, Expr]:
    """(fn(*primals), its derivative along ``tangents``) as expressions, by forward mode
    (``jax.jvp``): one tangent per primal, of its shape."""
    values, fresh, output = _called_on_fresh("jvp", fn, primals)
    directions = _directions("jvp", values, tangents, "tangent")
    tangent = forward_mode([output], dict(zip(fresh, directions, strict=True)))[0]
    placed = optimize(substitute([output, tangent], dict(zip(fresh, values, strict=True))))
    return placed[0], placed[1]


def vjp_at(fn, primals) -> tuple[Expr, object]:
    """(fn(*primals), pullback) as ``jax.vjp``: ``pullback(cotangent)`` (of the value's
    shape) is the tuple of cotangent @ d fn / d primal_k, one per primal, by reverse mode,
    as expressions."""
    values, fresh, output = _called_on_fresh("vjp", fn, primals, tree_result=True)
    at_primals = dict(zip(fresh, values, strict=True))
    # A pytree value (a tuple of arrays, a dict): one seed per leaf, a cotangent of its
    # structure.
    leaves, spec = (trees.flatten(output) if trees.is_tree(output) else ([output], None))
    leaves = [as_expr(leaf) for leaf in leaves]
    placed = optimize(substitute(leaves, at_primals))
    value = placed[0] if spec is None else trees.unflatten(spec, placed)

    def pullback(cotangent) -> tuple[Expr, ...]:
        given, given_spec = (trees.flatten(cotangent) if trees.is_tree(cotangent)
                             else ([cotangent], None))
        if given_spec != spec:
            raise ShapeError(f"vjp: the cotangent has the structure {given_spec}, the "
                             f"function's value {spec}")
        seeds = [as_expr(c) for c in given]
        for seed, leaf in zip(seeds, leaves, strict=True):
            if seed.shape != leaf.shape:
                raise ShapeError(f"vjp: the cotangent has shape {seed.shape}, the "
                                 f"function's value {leaf.shape}")
        parts = reverse_mode(list(zip(leaves, seeds, strict=True)), fresh)
        return tuple(optimize(substitute(parts, at_primals)))

    return value, pullback


def hvp_at(fn, primals, tangents) -> tuple[Expr, ...]:
    """H @ tangents of a scalar ``fn`` at ``primals``, by forward over reverse mode, as
    expressions: one part per primal, of its shape (the Hessian by all primals at once)."""
    values, fresh, output = _called_on_fresh("hvp", fn, primals)
    if output.shape:
        raise ShapeError(f"sd.hvp needs a scalar function; this one gives shape {output.shape}")
    directions = _directions("hvp", values, tangents, "tangent")
    products = forward_mode(grad(output, fresh), dict(zip(fresh, directions, strict=True)))
    return tuple(optimize(substitute(products, dict(zip(fresh, values, strict=True)))))
