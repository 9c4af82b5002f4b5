"""Conversion to and from SymPy, both iterative.

``to_sympy`` gives real SymPy symbols (so SymPy differentiates ``Abs`` to ``sign``);
ops SymPy lacks become their formulas (sigmoid -> 1/(1 + exp(-x))), so that SymPy's
derivative can serve as a reference.  ``from_sympy`` accepts what ``to_sympy`` produces
and the usual SymPy forms of the supported functions.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import sympy

from symdiff.errors import SymdiffError
from symdiff.frontend.parser import parse
from symdiff.ir.dims import has_open
from symdiff.ir.index_keys import key_to_python
from symdiff.ir.nodes import (
    OPS,
    Expr,
    apply,
    const,
    flatten,
    fold,
    restructure,
    symbol,
    topological_order,
)


def is_sympy(value) -> bool:
    """Whether ``value`` is a SymPy object (an expression, a number, a matrix)."""
    return (type(value).__module__ or "").startswith("sympy")


def to_sympy(exprs):
    """SymPy expression(s) for an expression or a (nested) list of them.

    Array expressions become SymPy matrices (a vector: a column; more dimensions: an
    Array) element by element, an array symbol ``x`` standing for ``x[i]`` (SymPy's
    Indexed, LaTeX ``x_{i}``), so ``sd.to_latex`` shows them as the user wrote them."""
    single = isinstance(exprs, Expr)
    roots = [exprs] if single else flatten(exprs)
    done: dict[Expr, object] = {}  # arrays: NumPy object arrays of SymPy expressions
    for node in topological_order(roots):
        if has_open(node.shape):
            raise SymdiffError(f"to_sympy: {node} has an open (None) dimension; give it a "
                               "length to see its elements")
        args = [done[a] for a in node.args]
        if node.op == "const":
            done[node] = _number_to_sympy(node.value)
        elif node.op == "symbol":
            done[node] = _symbol_to_sympy(node)
        elif node.op == "array":
            done[node] = np.vectorize(lambda v: _number_to_sympy(float(v)), otypes=[object])(
                node.value.array)
        elif node.op in _ARRAY_RULES and (node.shape or any(a.shape for a in node.args)):
            done[node] = _scalar(_ARRAY_RULES[node.op](node, *args))
        elif OPS[node.op].elementwise and any(isinstance(a, np.ndarray) for a in args):
            done[node] = np.vectorize(OPS[node.op].to_sympy, otypes=[object])(*args)
        elif node.op in _LOOP_RULES or OPS[node.op].to_sympy is not None:
            convert = _LOOP_RULES.get(node.op) or OPS[node.op].to_sympy
            operands = [_as_sympy_array(a) for a in args]
            made = convert(node, *operands) if OPS[node.op].shape_rule is not None else (
                convert(*operands))
            done[node] = _from_sympy_array(made)
        elif OPS[node.op].shape_rule is not None:  # structural: NumPy does it on objects
            try:
                done[node] = _scalar(OPS[node.op].evaluate(node.shape, node.value, *args))
            except (TypeError, ValueError) as error:
                raise SymdiffError(f"to_sympy: {node.op} of arrays has no SymPy form "
                                   f"({error})") from None
        else:
            raise SymdiffError(f"to_sympy: {node.op} has no SymPy form yet")
    converted = [_presented(done[r]) for r in roots]
    if single:
        return converted[0]
    return restructure(exprs, iter(converted))


def _scan_to_sympy(node: Expr, *operands):
    """The loop unrolled in SymPy: meaningful for scalar carries over arrays of static
    length (a fori_loop with int bounds, a recurrence over data or over x[i])."""
    body, (kind, j) = node.value
    c, x = len(body.carries), len(body.xs)
    if any(a.shape for a in node.args[:c]) or not all(
            isinstance(a, sympy.NDimArray) for a in operands[c:c + x]):
        raise SymdiffError("to_sympy: a scan has a SymPy form only with scalar carries "
                           "over arrays of static length (its steps are unrolled)")
    steps = node.args[c].shape[0]
    exprs = to_sympy(list(body.new_carries) + list(body.ys))
    placeholders = [sympy.Symbol(p.value, real=True) for p in body.carries + body.xs
                    + body.invariants]
    carry, collected = list(operands[:c]), {}
    for t in (range(steps - 1, -1, -1) if body.reverse else range(steps)):
        values = carry + [operands[c + k][t] for k in range(x)] + list(operands[c + x:])
        mapping = dict(zip(placeholders, values, strict=True))
        if kind == "carries":
            collected[t] = carry[j]
        step = [e.xreplace(mapping) for e in exprs]
        if kind == "ys":
            collected[t] = step[c + j]
        carry = step[:c]
        if kind == "nexts":
            collected[t] = carry[j]
    if kind == "carry":
        return carry[j]
    return sympy.Array([collected[t] for t in range(steps)])


# Loops have no SymPy function: the bridge unrolls them itself (loop ops hold no SymPy rule).
_LOOP_RULES = {"scan": _scan_to_sympy}


def _symbol_to_sympy(node: Expr):
    if not node.shape:
        return sympy.Symbol(node.value, real=True)
    base = sympy.IndexedBase(node.value.lstrip("$"), real=True)
    cells = np.empty(node.shape, dtype=object)
    for position in np.ndindex(*node.shape):
        cells[position] = base[position]
    return cells


def _scalar(value):
    value = np.asarray(value, dtype=object)
    return value.item() if value.ndim == 0 else value


def _as_sympy_array(value):
    return sympy.Array(value.tolist(), value.shape) if isinstance(value, np.ndarray) else value


def _from_sympy_array(value):
    if isinstance(value, sympy.NDimArray):
        return np.array(value.tolist(), dtype=object).reshape(value.shape)
    return value


def _presented(value):
    """A SymPy form of a converted node: matrices for vectors (columns) and matrices."""
    if not isinstance(value, np.ndarray):
        return value
    if value.ndim == 1:
        return sympy.Matrix(list(value))
    if value.ndim == 2:
        return sympy.Matrix(value.tolist())
    return sympy.Array(value.tolist(), value.shape)


def _embed(node, y):
    out = np.full(node.shape, sympy.Integer(0), dtype=object)
    out[key_to_python(node.value[0])] = y
    return out


def _scatter_add(node, y):
    out = np.full(node.shape, sympy.Integer(0), dtype=object)
    np.add.at(out, node.value[0].array, y)
    return out


def _max_over(x, axis):
    axes = tuple(range(x.ndim)) if axis is None else tuple(a % x.ndim for a in axis)
    moved = np.moveaxis(x, axes, tuple(range(len(axes))))
    flat = moved.reshape((-1,) + moved.shape[len(axes):])
    if flat.ndim == 1:
        return sympy.Max(*flat)
    out = np.empty(flat.shape[1:], dtype=object)
    for position in np.ndindex(*out.shape):
        out[position] = sympy.Max(*flat[(slice(None),) + position])
    return out


# Array ops on NumPy object arrays of SymPy expressions (the others' evaluate does it).
_ARRAY_RULES = {
    "index": lambda node, x: x[key_to_python(node.value)],
    "embed": _embed,
    "scatter_add": _scatter_add,
    "broadcast_to": lambda node, x: np.broadcast_to(np.asarray(x, dtype=object), node.shape),
    "matmul": lambda node, a, b: np.matmul(a, b),
    "amax": lambda node, x: _max_over(x, node.value[0]) if not node.value[1] else (
        np.reshape(_max_over(x, node.value[0]), node.shape)),
}


def to_latex(exprs) -> str:
    """LaTeX of an expression (or the list of them, as a column), through SymPy.

    Shared subexpressions are written out in full, as SymPy prints them."""
    if isinstance(exprs, str):
        exprs = parse(exprs)
    converted = to_sympy(exprs)
    if isinstance(converted, list):
        return sympy.latex(sympy.Matrix(converted))
    return sympy.latex(converted)


def _number_to_sympy(value: float):
    if math.isnan(value):
        return sympy.nan
    if math.isinf(value):
        return sympy.oo if value > 0 else -sympy.oo
    if value == int(value):
        return sympy.Integer(int(value))
    return sympy.Float(value, 17)


@functools.cache
def _functions() -> dict:
    """SymPy's function classes back to ops, from the records' own ``to_sympy`` (sympy.sin
    for sin, ...), so a new op converts both ways without a line here.  Built on first use,
    when every op is registered; n-ary and special forms are read before it (_convert)."""
    return {op.to_sympy: name for name, op in OPS.items()
            if op.elementwise and isinstance(op.to_sympy, sympy.FunctionClass)}


def from_sympy(e) -> Expr:
    """The symdiff expression of a SymPy expression (real symbols, supported functions).

    Text is read by symdiff's own parser: SymPy's ``sympify`` would evaluate it."""
    if isinstance(e, str):
        return parse(e)
    e = sympy.sympify(e, strict=True)  # numbers and SymPy objects only, never text
    done: dict[sympy.Basic, Expr] = {}
    stack = [(e, False)]
    while stack:
        node, expanded = stack.pop()
        if node in done:
            continue
        if not expanded and node.args and not node.is_Number:
            _check_convertible(node)  # before its parts: name the form, not a piece of it
            stack.append((node, True))
            stack.extend((arg, False) for arg in node.args if arg not in done)
            continue
        done[node] = _convert(node, [done[a] for a in node.args] if expanded else [])
    return done[e]


def _convert(e, args: list[Expr]) -> Expr:
    if e.is_Symbol:
        return symbol(e.name)
    if e.is_Number or e.is_NumberSymbol or e in (sympy.zoo, sympy.nan):
        if e.is_real is False:
            raise SymdiffError(f"SymPy number {e} is not real")
        return const(float(e)) if e is not sympy.zoo else const(math.nan)
    if e.is_Add:
        return fold("add", args)
    if e.is_Mul:
        return _mul(e, args)
    if e.is_Pow:
        return _pow(e, *args)
    special = _SPECIAL_FORMS.get(e.func)
    if special is not None:
        return special(e, args)
    if e.func in _functions():
        return apply(_functions()[e.func], *args)
    raise SymdiffError(f"unsupported SymPy expression {e.func.__name__}: {_short(e)}")


def _polygamma(e, args: list[Expr]) -> Expr:
    order = e.args[0]  # SymPy writes digamma(x) as polygamma(0, x)
    if not (order.is_Integer and order >= 0):
        raise SymdiffError(f"polygamma of order {order}: the order must be an integer")
    return apply("digamma", args[1]) if order == 0 else apply("polygamma", args[0], args[1])


def _log(e, args: list[Expr]) -> Expr:
    return apply("log", args[0]) if len(args) == 1 else (
        apply("div", apply("log", args[0]), apply("log", args[1])))


def _heaviside(e, args: list[Expr]) -> Expr:
    at_zero = e.args[1] if len(e.args) > 1 else sympy.Rational(1, 2)
    if at_zero == 0:
        return apply("step", args[0])
    if at_zero == sympy.Rational(1, 2):  # (1 + sign(x)) / 2
        return apply("mul", 0.5, apply("add", 1.0, apply("sign", args[0])))
    raise SymdiffError(f"unsupported Heaviside value at 0 in {e}")


# SymPy forms that are not one op of the same arity: read before the records' own map.
_SPECIAL_FORMS = {
    sympy.polygamma: _polygamma, sympy.log: _log, sympy.Heaviside: _heaviside,
    sympy.Max: lambda e, args: fold("maximum", args),
    sympy.Min: lambda e, args: fold("minimum", args),
}


# SymPy forms people meet, and what to write instead.
_UNSUPPORTED_HINTS = {
    "Integral": "call .doit() for a closed form first (symdiff differentiates formulas)",
    "Sum": "call .doit() for a closed form, or write the terms out",
    "Product": "call .doit() for a closed form, or write the factors out",
    "Derivative": "call .doit() to evaluate it first, or differentiate with sd.diff",
    "Limit": "call .doit() first",
    "Piecewise": "write sd.where(condition, a, b) (nested for more pieces)",
}


def _check_convertible(e) -> None:
    """Raise, naming the form, for a SymPy expression that has no symdiff counterpart."""
    if (e.is_Add or e.is_Mul or e.is_Pow or e.func in _SPECIAL_FORMS
            or e.func in _functions()):
        return
    name = e.func.__name__
    hint = _UNSUPPORTED_HINTS.get(name, "supported: +, -, *, /, **, and the functions "
                                        "sd.parse knows")
    raise SymdiffError(f"unsupported SymPy expression {name}: {_short(e)}; {hint}")


def _short(e) -> str:
    text = str(e)
    return text if len(text) <= 80 else text[:77] + "..."


def _mul(e, args: list[Expr]) -> Expr:
    # x * y**-1 reads better as x / y: split factors with a negative exponent off.
    numerator, denominator = [], []
    for factor, converted in zip(e.args, args, strict=True):
        if factor.is_Pow and factor.exp.is_Number and factor.exp < 0:
            denominator.append(_pow(factor, from_sympy(factor.base), const(-float(factor.exp))))
        elif factor.is_Rational and factor.p == 1 and factor.q != 1:
            denominator.append(const(float(factor.q)))
        else:
            numerator.append(converted)
    top = fold("mul", numerator) if numerator else const(1.0)
    return apply("div", top, fold("mul", denominator)) if denominator else top


def _pow(e, base: Expr, exponent: Expr) -> Expr:
    if exponent.op == "const":
        if exponent.value == 0.5:
            return apply("sqrt", base)
        if exponent.value == 1.0:
            return base
        if exponent.value == -1.0:
            return apply("div", 1.0, base)
    return apply("pow", base, exponent)
