"""NumPy functions that are compositions of symdiff ops, for traced NumPy code.

Each is built from existing ops, so its derivatives of every order come from theirs.
``UFUNCS`` maps a ufunc's name (``np.square``, ``np.log10``, ...) to its composition;
``FUNCTIONS`` maps NumPy functions called on expressions (``np.min``,
``np.linalg.norm``) to theirs.
"""

from __future__ import annotations

import math
import numbers
import string

import numpy as np

from symdiff.control.scan import scan
from symdiff.errors import ShapeError, TraceError
from symdiff.ir.dims import has_open
from symdiff.ir.eager import eager
from symdiff.ir.nodes import Rows, apply, array_constant, as_expr
from symdiff.ops.arrays import amax, reshape, transpose
from symdiff.ops.arrays import sum as total
from symdiff.ops.stacked import contraction
from symdiff.ops.structural import broadcast_to, permute


def _cbrt(x):
    # Real cube root of either sign (x ** (1/3) is nan below 0, as in NumPy's power).
    root = apply("pow", apply("abs", x), 1.0 / 3.0)
    return apply("where", apply("less", x, 0.0), apply("neg", root), root)


def _gamma_sign(x):
    # Gamma is positive for x > 0; below, by the reflection formula, it has the sign of
    # sin(pi x) (gammaln is log|Gamma| there, and its derivative digamma, as SciPy's).
    return apply("where", apply("greater", x, 0.0), 1.0,
                 apply("sign", apply("sin", apply("mul", x, math.pi))))


def _betaln(a, b):
    return apply("sub", apply("add", apply("gammaln", a), apply("gammaln", b)),
                 apply("gammaln", apply("add", a, b)))


def _logaddexp(x, y):
    # log(e^x + e^y) = max + log1p(e^-|x - y|).  Where x == y (±inf included, whose
    # difference is nan) the difference is taken as 0: log 2 is added to x, and the
    # derivative splits evenly between x and y, as maximum's does.
    difference = apply("where", apply("equal", x, y), 0.0, apply("sub", x, y))
    return apply("add", apply("maximum", x, y),
                 apply("log1p", apply("exp", apply("neg", apply("abs", difference)))))


UFUNCS = {
    "logaddexp": _logaddexp,
    "logaddexp2": lambda x, y: apply("div", _logaddexp(apply("mul", x, math.log(2.0)),
                                                       apply("mul", y, math.log(2.0))),
                                     math.log(2.0)),
    "square": lambda x: apply("mul", x, x),
    "reciprocal": lambda x: apply("div", 1.0, x),
    "log10": lambda x: apply("div", apply("log", x), math.log(10.0)),
    "log2": lambda x: apply("div", apply("log", x), math.log(2.0)),
    "exp2": lambda x: apply("exp", apply("mul", x, math.log(2.0))),
    "cbrt": _cbrt,
    # sqrt(x^2 + y^2): overflows where x^2 does (NumPy's hypot rescales).
    "hypot": lambda x, y: apply("sqrt", apply("add", apply("mul", x, x), apply("mul", y, y))),
    # scipy.special ufuncs of losses and likelihoods.
    "ndtr": lambda x: apply("mul", 0.5, apply("erfc", apply("mul", x, -math.sqrt(0.5)))),
    "expit": lambda x: apply("sigmoid", x),
    "log_expit": lambda x: apply("neg", apply("softplus", apply("neg", x))),
    "logit": lambda x: apply("log", apply("div", x, apply("sub", 1.0, x))),
    # x log y, 0 where x == 0 (also for y == 0), as scipy.special.xlogy.
    "xlogy": lambda x, y: apply("where", apply("equal", x, 0.0), 0.0,
                                apply("mul", x, apply("log", y))),
    "xlog1py": lambda x, y: apply("where", apply("equal", x, 0.0), 0.0,
                                  apply("mul", x, apply("log1p", y))),
    "gamma": lambda x: apply("mul", _gamma_sign(x), apply("exp", apply("gammaln", x))),
    # log|B(a, b)| and B(a, b) = Gamma(a) Gamma(b) / Gamma(a + b), through log|Gamma|
    # (no overflow of the Gammas themselves).
    "betaln": lambda a, b: _betaln(a, b),
    "beta": lambda a, b: apply("mul", apply("div", apply("mul", _gamma_sign(a), _gamma_sign(b)),
                                            _gamma_sign(apply("add", a, b))),
                               apply("exp", _betaln(a, b))),
}


def ufunc(name: str, inputs):
    """The composition for ufunc ``name``, or None."""
    build = UFUNCS.get(name)
    if build is None:
        return None
    return build(*(as_expr(x) for x in inputs))


def amin(x, axis=None, keepdims=False):
    """Minimum over ``axis``: -max(-x) (ties split evenly in the derivative, as amax)."""
    return apply("neg", amax(apply("neg", as_expr(x)), axis, keepdims))


def norm(x, ord=None, axis=None, keepdims=False):  # noqa: A002 - NumPy's name
    """The 2-norm (vectors; Frobenius for matrices) as sqrt(sum(x * x))."""
    if ord not in (None, 2, "fro"):
        raise ShapeError(f"np.linalg.norm on an expression supports ord=None, 2 or 'fro', "
                         f"not {ord!r}")
    x = as_expr(x)
    if ord == 2 and x.ndim == 2 and axis is None:
        raise ShapeError("np.linalg.norm(ord=2) of a matrix (its largest singular value) "
                         "is not supported; ord=None or 'fro' gives the Frobenius norm")
    return apply("sqrt", total(apply("mul", x, x), axis, keepdims))


def _flat(x):
    return apply("reshape", x, payload=(-1,) if has_open(x.shape) else (x.size,))


def _running(x, axis, name: str, combine, identity: float):
    """A cumulative ``combine`` along ``axis`` as a scan over that axis: its derivatives
    are loops too, and the code does not grow with the length."""
    x = as_expr(x)
    if axis is None:
        x, axis = (_flat(x) if x.ndim != 1 else x), 0
    if not x.shape or x.ndim > 2 or not -x.ndim <= axis < x.ndim:
        raise ShapeError(f"np.{name} on an expression supports vectors and matrices (any "
                         f"axis, or None), not axis={axis} of shape {x.shape}")
    moved = transpose(x) if axis % x.ndim == 1 else x

    def step(carry, row):
        new = combine(carry, row)
        return new, new

    _, running = scan(step, broadcast_to(as_expr(identity), moved.shape[1:]), moved)
    return transpose(running) if axis % x.ndim == 1 else running


@eager
def cumsum(x, axis=None):
    """Running sums (``axis=None`` flattens first, as NumPy does): the cumsum op for
    vectors, a scan along the axis of a matrix."""
    x = as_expr(x)
    if axis is None or (x.ndim == 1 and axis in (0, -1)):
        return apply("cumsum", _flat(x) if x.ndim != 1 else x)
    return _running(x, axis, "cumsum", lambda c, r: apply("add", c, r), 0.0)


@eager
def cumprod(x, axis=None):
    """Running products, as a scan (exact derivatives where elements are zero, unlike
    exp(cumsum(log x)))."""
    return _running(x, axis, "cumprod", lambda c, r: apply("mul", c, r), 1.0)


def differences(x, n=1, axis=-1):
    """``np.diff``: differences of neighbours along ``axis``, ``n`` times, as slices (so
    along an open dimension too: N values give N - 1 differences)."""
    x = as_expr(x)
    if not isinstance(n, int) or n < 0:
        raise ShapeError(f"np.diff: n must be a non-negative int, got {n!r}")
    if not x.ndim or not -x.ndim <= axis < x.ndim:
        raise ShapeError(f"np.diff: axis {axis} is out of range for shape {x.shape}")
    for _ in range(n):
        later, earlier = [slice(None)] * x.ndim, [slice(None)] * x.ndim
        later[axis], earlier[axis] = slice(1, None), slice(None, -1)
        x = apply("sub", x[tuple(later)], x[tuple(earlier)])
    return x


@eager
def tril(m, k=0):
    """The lower triangle of a matrix (``np.tril``): a product with a constant mask."""
    return _triangle(m, k, np.tril, "tril")


@eager
def triu(m, k=0):
    """The upper triangle of a matrix (``np.triu``)."""
    return _triangle(m, k, np.triu, "triu")


def _triangle(m, k, mask, name):
    m = as_expr(m)
    if m.ndim != 2 or has_open(m.shape):
        raise ShapeError(f"np.{name} on an expression needs a matrix of static shape, got "
                         f"{m.shape}")
    return apply("mul", m, array_constant(mask(np.ones(m.shape), k)))


_SPARE = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # letters for the axes of '...'


def _diagonal_axes(x, term: str):
    """``x`` with each letter repeated in ``term`` reduced to one axis (its diagonal: a
    gather of the elements whose positions agree), and the term without repeats."""
    while len(set(term)) != len(term):
        letter = next(c for c in term if term.count(c) > 1)
        first, second = term.index(letter), term.index(letter, term.index(letter) + 1)
        if has_open(x.shape) or x.shape[first] != x.shape[second]:
            raise ShapeError(f"np.einsum: the repeated letter {letter!r} needs equal static "
                             f"axes, got {x.shape}")
        kept = [d for k, d in enumerate(x.shape) if k != second]
        grids = list(np.indices(kept))
        grids.insert(second, grids[first])
        positions = np.ravel_multi_index(tuple(g.ravel() for g in grids), x.shape)
        x = reshape(apply("take", reshape(x, (x.size,)), payload=Rows(positions)),
                    tuple(kept))
        term = term[:second] + term[second + 1:]
    return x, term


def _ellipses(terms: list[str], output: str | None, operands):
    """(the terms, the output, the letters standing for '...'): '...' written as letters
    of their own, right-aligned across operands as NumPy broadcasts them."""
    rank = 0
    for term, x in zip(terms, operands, strict=True):
        if "..." in term:
            rank = max(rank, x.ndim - len(term.replace("...", "")))
    spare = [c for c in _SPARE if all(c not in t for t in terms)][:rank]
    if rank > len(spare):
        raise ShapeError("np.einsum: '...' stands for more axes than there are letters")
    written = []
    for term, x in zip(terms, operands, strict=True):
        count = x.ndim - len(term.replace("...", ""))
        written.append(term.replace("...", "".join(spare[rank - count:]) if count else ""))
    if output is not None:
        output = output.replace("...", "".join(spare))
    return written, output, "".join(spare)


@eager
def einsum(subscripts: str, *operands, optimize=False):
    """``np.einsum`` for explicit or implicit subscripts, with '...' and repeated letters
    (a diagonal: ``"ii->i"``, a trace: ``"ii->"``): operands broadcast against each other
    over all letters, multiplied, summed over the letters missing from the output, and
    put in the output's order.  The emitter fuses such products into their sums (no
    large intermediate when possible); two operands contracted over 8 or more elements
    are one matrix product instead (symdiff.ops.stacked.contraction), as JAX's
    dot_general.  ``optimize`` is accepted and has no effect: the order of contractions
    is symdiff's own."""
    del optimize
    if not isinstance(subscripts, str):
        raise ShapeError("np.einsum on expressions takes its subscripts as a string")
    inputs, arrow, output = subscripts.replace(" ", "").partition("->")
    terms = inputs.split(",")
    operands = [as_expr(x) for x in operands]
    if len(terms) != len(operands):
        raise ShapeError(f"np.einsum: {len(terms)} subscripts for {len(operands)} operands")
    terms, written, broadcast = _ellipses(terms, output if arrow else None, operands)
    if not arrow:  # implicit: '...' first, then the letters seen once, in order
        letters_once = sorted(c for c in set("".join(terms)) if "".join(terms).count(c) == 1
                              and c not in broadcast)
        written = broadcast + "".join(letters_once)
    output = written
    reduced = []
    for term, x in zip(terms, operands, strict=True):
        if len(term) != x.ndim:
            raise ShapeError(f"np.einsum: subscripts {term!r} do not fit an operand of shape "
                             f"{x.shape} (one letter per axis)")
        reduced.append(_diagonal_axes(x, term))
    operands, terms = [x for x, _ in reduced], [t for _, t in reduced]
    letters = list(dict.fromkeys(c for term in terms for c in term))
    sizes: dict[str, object] = {}
    for term, x in zip(terms, operands, strict=True):
        for c, d in zip(term, x.shape, strict=True):
            known = sizes.setdefault(c, d)
            if known != d and not (c in broadcast and 1 in (known, d)):
                raise ShapeError(f"np.einsum: letter {c!r} has sizes {known} and {d}")
            if known == 1:
                sizes[c] = d
    if set(output) - set(letters) or len(set(output)) != len(output):
        raise ShapeError(f"np.einsum: output subscripts {output!r} must be distinct input letters")
    if len(operands) == 2 and not broadcast:  # one matrix product, where it is one
        product = contraction(terms[0], operands[0], terms[1], operands[1], output)
        if product is not None:
            return product
    product = None
    for term, x in zip(terms, operands, strict=True):
        order = sorted(range(len(term)), key=lambda k: letters.index(term[k]))
        aligned = permute(x, order)
        placed = [x.shape[term.index(c)] if c in term else 1 for c in letters]
        aligned = reshape(aligned, placed) if aligned.shape != tuple(placed) else aligned
        product = aligned if product is None else apply("mul", product, aligned)
    summed = [k for k, c in enumerate(letters) if c not in output]
    kept = [c for c in letters if c in output]
    result = total(product, tuple(summed)) if summed else product
    if result.shape and result.shape != tuple(sizes[c] for c in kept):
        result = broadcast_to(result, tuple(sizes[c] for c in kept))
    return permute(result, [kept.index(c) for c in output]) if result.shape else result


def _axis_list(axes, ndim: int, which: str) -> list[int]:
    """``axes`` (an int or a sequence of them) as distinct axes of ``ndim``."""
    listed = [axes] if isinstance(axes, numbers.Integral) else list(axes)
    found = []
    for a in listed:
        if not isinstance(a, numbers.Integral) or not -ndim <= a < ndim:
            raise ShapeError(f"np.tensordot: axis {a!r} of {which} is out of range for "
                             f"{ndim} axes")
        found.append(int(a) % ndim)
    if len(set(found)) != len(found):
        raise ShapeError(f"np.tensordot: repeated axis of {which} in {axes!r}")
    return found


def tensordot(a, b, axes=2):
    """``np.tensordot``: ``a`` and ``b`` contracted over ``axes`` (an int n: the last n
    axes of ``a`` with the first n of ``b``; or a pair of axis sequences), the axes left
    over in order (``a``'s, then ``b``'s), as one ``einsum``."""
    a, b = as_expr(a), as_expr(b)
    if isinstance(axes, numbers.Integral):
        if not 0 <= axes <= min(a.ndim, b.ndim):
            raise ShapeError(f"np.tensordot: axes={axes} for operands of {a.ndim} and "
                             f"{b.ndim} axes")
        left, right = list(range(a.ndim - axes, a.ndim)), list(range(axes))
    else:
        if len(axes) != 2:
            raise ShapeError(f"np.tensordot: axes must be an int or a pair, got {axes!r}")
        left, right = _axis_list(axes[0], a.ndim, "a"), _axis_list(axes[1], b.ndim, "b")
        if len(left) != len(right):
            raise ShapeError(f"np.tensordot: {len(left)} axes of a against {len(right)} of b")
    for i, j in zip(left, right, strict=True):
        if isinstance(a.shape[i], int) and isinstance(b.shape[j], int) and (
                a.shape[i] != b.shape[j]):
            raise ShapeError(f"np.tensordot: axis {i} of a has length {a.shape[i]}, axis "
                             f"{j} of b {b.shape[j]}")
    if a.ndim + b.ndim > len(string.ascii_letters):
        raise ShapeError("np.tensordot: more axes than einsum has letters")
    letters = string.ascii_letters
    of_a, of_b = list(letters[:a.ndim]), list(letters[a.ndim:a.ndim + b.ndim])
    for i, j in zip(left, right, strict=True):
        of_b[j] = of_a[i]
    kept = ([of_a[k] for k in range(a.ndim) if k not in left]
            + [of_b[k] for k in range(b.ndim) if k not in right])
    return einsum(f"{''.join(of_a)},{''.join(of_b)}->{''.join(kept)}", a, b)


def inner(a, b):
    """``np.inner``: the sum of products over the last axes of ``a`` and ``b`` (the
    product where one is a scalar)."""
    a, b = as_expr(a), as_expr(b)
    if not a.ndim or not b.ndim:
        return a * b
    return tensordot(a, b, axes=([-1], [-1]))


def astype(x, dtype, *args, **kwargs):
    """``x.astype(float)``: ``x`` itself (symdiff computes in float64); another type has
    no derivative to carry, and raises."""
    if np.dtype(dtype) != np.float64:
        raise TraceError(f"astype({np.dtype(dtype)}): symdiff's arrays are float64 "
                         "throughout (a derivative through a cast to another type is not "
                         "defined); astype(float) is the one cast they take")
    return x


FUNCTIONS = {np.min: amin, np.amin: amin, np.linalg.norm: norm, np.cumsum: cumsum,
             np.cumprod: cumprod, np.tril: tril, np.triu: triu, np.einsum: einsum,
             np.diff: differences, np.tensordot: tensordot, np.inner: inner}
