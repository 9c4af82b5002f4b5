"""Roots with implicit derivatives: ``sd.custom_root(f, x0, solve)``, like
``jax.lax.custom_root``.

``solve`` may be any computation (a Newton while loop, a fixed number of iterations, a
closed form); the result is the root x of ``f(x) = 0`` and its derivatives come from the
implicit function theorem, never from the solver's steps: with F(x, θ) = f(x) and the
parameters θ the free symbols of f,

    dx = -F_x⁻¹ F_θ dθ          (forward mode)
    θ̄ = -F_θᵀ F_x⁻ᵀ x̄          (reverse mode).

So an unbounded while loop inside ``solve`` (no reverse mode of its own) gets every
derivative, and the cost does not depend on the number of iterations.  F_x is built by a
scan over unit directions (one forward-mode body for every column), so the graph does not
grow with the size of x.  The derivative graphs read the root node itself, so higher
orders are implicit derivatives again.

A ``root`` node's operands are the solver's result and the parameters; its value is the
solver's result (``root`` is an identity for evaluation and emission).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from symdiff.autodiff.modes import forward_mode, reverse_mode
from symdiff.control.scan import TRACING, ScanBody, scan_node
from symdiff.errors import ShapeError, SymdiffError
from symdiff.ir.dims import has_open
from symdiff.ir.eager import eager
from symdiff.ir.nodes import Expr, Op, apply, as_expr, free_symbols, internal_symbol, register
from symdiff.ir.printer import summary
from symdiff.ops.arrays import transpose
from symdiff.ops.linalg import solve
from symdiff.ops.structural import broadcast_to, dense_sparsity
from symdiff.passes.pipeline import substitute


@dataclass(frozen=True)
class RootBody:
    """``residual`` as an expression of the placeholder ``x`` and the parameters (free
    symbols of the residual, the root node's operands after the solution)."""

    x: Expr
    parameters: tuple[Expr, ...]
    residual: Expr

    def __repr__(self):
        return f"root(parameters={len(self.parameters)})"


def _at_root(node: Expr, exprs) -> list[Expr]:
    """Expressions of the placeholders, evaluated at this root and its parameters."""
    body = node.value
    mapping = {body.x: node}
    mapping.update(zip(body.parameters, node.args[1:], strict=True))
    return substitute(list(exprs), mapping)


def _jacobian(node: Expr) -> Expr:
    """F_x at the root: a scalar, or for a vector x the matrix built by a scan over the
    rows of the identity (row k of the stacked outputs is F_x e_k, a column)."""
    body = node.value
    x = body.x
    if not x.shape:
        (slope,) = forward_mode([body.residual], {x: as_expr(1.0)})
        return _at_root(node, [slope])[0]
    n = x.shape[0]
    direction = internal_symbol(f"root_e{_level()}", x.shape)
    (column,) = forward_mode([body.residual], {x: direction})
    invariants = tuple(s for s in free_symbols([column]) if s is not direction)
    loop = ScanBody((), (direction,), invariants, (), (column,))
    operands = (as_expr(np.eye(n)),) + tuple(_at_root(node, invariants))
    return transpose(scan_node(loop, ("ys", 0), operands))


def _level() -> int:
    return getattr(TRACING, "depth", 0) + 200


def _root_jvp(node: Expr, tangents) -> Expr | None:
    body = node.value
    seeds = {p: t for p, t in zip(body.parameters, tangents[1:], strict=True) if t is not None}
    if not seeds:  # the solver's own tangent is not used: the root's is implicit
        return None
    (moved,) = forward_mode([body.residual], seeds)
    (moved,) = _at_root(node, [moved])
    slope = _jacobian(node)
    if not body.x.shape:
        return apply("neg", apply("div", moved, slope))
    return apply("neg", solve(slope, moved))


def _root_vjp(i: int, node: Expr, adjoint: Expr) -> Expr | None:
    if i == 0:
        return None
    body = node.value
    slope = _jacobian(node)
    adjoint = broadcast_to(adjoint, node.shape)
    weight = (apply("div", adjoint, slope) if not body.x.shape
              else solve(transpose(slope), adjoint))
    seed = internal_symbol(f"root_w{_level()}", node.shape)
    (part,) = reverse_mode([(body.residual, seed)], [body.parameters[i - 1]])
    (part,) = substitute(_at_root(node, [part]), {seed: weight})
    return apply("neg", part)


def _describe_root(node: Expr) -> str:
    body = node.value
    return f"{body.x.value} with {summary(body.residual)} = 0"


def _root_to_sympy(node: Expr, solution, *parameters):
    return solution  # the solver's result, when it has a SymPy form


register(Op("root", None, lambda shape, payload, solution, *parameters: solution, None,
            _root_to_sympy, shape_rule=lambda shapes, payload: shapes[0],
            vjp=_root_vjp, jvp=_root_jvp, sparsity=dense_sparsity, describe=_describe_root))


@eager
def custom_root(f, x0, solve):
    """The root x of ``f(x) = 0`` computed by ``solve(f, x0)``, whose derivatives with
    respect to the parameters of ``f`` (the symbols it reads) come from the implicit
    function theorem, not from the solver's steps (like ``jax.lax.custom_root``).

    ``x0`` is a scalar or a vector expression (the initial guess, of the root's shape);
    ``solve`` any function returning the root: an ``sd.while_loop`` Newton iteration
    (reverse mode then works without ``max_steps``), fixed iterations, a closed form.
    """
    x0 = as_expr(x0)
    if len(x0.shape) > 1 or has_open(x0.shape):
        raise ShapeError(f"custom_root: the root must be a scalar or a vector of static "
                         f"size, got shape {x0.shape}")
    x = internal_symbol(f"root_x{_level()}", x0.shape)
    residual = as_expr(f(x))
    if residual.shape != x0.shape:
        raise ShapeError(f"custom_root: f(x) must have x's shape {x0.shape}, got "
                         f"{residual.shape}")
    solution = as_expr(solve(f, x0))
    if solution.shape != x0.shape:
        raise SymdiffError(f"custom_root: solve returned shape {solution.shape}, not "
                           f"x0's {x0.shape}")
    parameters = tuple(s for s in free_symbols([residual]) if s is not x)
    return apply("root", solution, *parameters, payload=RootBody(x, parameters, residual))
