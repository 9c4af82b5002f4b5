"""The benchmark problems P1-P5, each in the forms the systems need.

A problem has natural arguments (floats and arrays), a NumPy reference value and
gradient written by hand (the ground truth for correctness), an ``array_fn(xp, *args)``
form for array libraries (JAX, PyTorch, autograd), a ``scalar_fn(ns, flat)`` form over a
flat list of scalar symbols for the symbolic peers (SymPy, SymEngine, CasADi), and the
symdiff expression.  Gradients are with respect to ``wrt`` (indices into the arguments).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

import symdiff as sd


@dataclass
class Problem:
    key: str
    title: str
    args: Callable[[np.random.Generator], list]       # the point
    reference: Callable[..., tuple[float, list]]      # value, gradients (one per wrt)
    array_fn: Callable                                # (xp, *args) -> scalar
    scalar_fn: Callable | None                        # (ns, flat symbols) -> scalar
    symdiff: Callable[[], tuple]                      # () -> (expression, args symbols)
    wrt: tuple[int, ...] = (0,)
    batch_points: int = 0                             # P5: points per call
    notes: dict = field(default_factory=dict)


# P1: the lecture's seed.
def _p1_ref(a, b, c):
    z = (a + b) * c
    return z * z, [2 * z * c, 2 * z * c, 2 * z * (a + b)]


P1 = Problem(
    "P1", "seed ((a+b)*c)**2",
    args=lambda rng: [1.0, 2.0, 2.0],
    reference=_p1_ref,
    array_fn=lambda xp, a, b, c: ((a + b) * c) ** 2,
    scalar_fn=lambda ns, v: ((v[0] + v[1]) * v[2]) ** 2,
    symdiff=lambda: (sd.parse("((a+b)*c)**2"), list(sd.symbols("a b c"))),
    wrt=(0, 1, 2),
)


# P2: chained Rosenbrock, n = 100.
N2 = 100


def _p2_ref(x):
    value = np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    g = np.zeros_like(x)
    t = x[1:] - x[:-1] ** 2
    g[:-1] += -400 * x[:-1] * t - 2 * (1 - x[:-1])
    g[1:] += 200 * t
    return value, [g]


def _p2_array(xp, x):
    return xp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def _p2_scalar(ns, v):
    return sum(100 * (v[i + 1] - v[i] ** 2) ** 2 + (1 - v[i]) ** 2 for i in range(len(v) - 1))


def _p2_symdiff():
    x = sd.vector("x", N2)
    return _p2_array(SD, x), [x]


P2 = Problem(
    "P2", "rosen100",
    args=lambda rng: [rng.uniform(-1.2, 1.2, N2)],
    reference=_p2_ref, array_fn=_p2_array, scalar_fn=_p2_scalar, symdiff=_p2_symdiff,
    notes={"symdiff form": "a (100,) vector with slices: fused loops"},
)


# P3: Lennard-Jones energy of 38 atoms.
N3 = 38
_UPPER = np.triu(np.ones((N3, N3)), 1)
_EYE = np.eye(N3)
_PAIRS_I, _PAIRS_J = np.triu_indices(N3, 1)


def _p3_ref(x):
    d = x[:, None, :] - x[None, :, :]
    r2 = np.sum(d * d, axis=2) + _EYE
    inv6 = 1.0 / r2**3
    value = 4.0 * np.sum(_UPPER * (inv6 * inv6 - inv6))
    # dE/dr2 for each pair, symmetric; force on atom i sums over j.
    de = 4.0 * (-6.0 * inv6 * inv6 / r2 + 3.0 * inv6 / r2) * (_UPPER + _UPPER.T)
    g = 2.0 * np.sum(de[:, :, None] * d, axis=1)
    return value, [g]


def _p3_array(xp, x):
    # The pair list: every system gathers the 703 pairs i < j, as a hand-written loop visits.
    d = x[_PAIRS_I] - x[_PAIRS_J]
    r2 = xp.sum(d * d, axis=1)
    inv6 = 1.0 / r2**3
    return 4.0 * xp.sum(inv6 * inv6 - inv6)


def _p3_scalar(ns, v):
    energy = 0
    for i in range(N3):
        for j in range(i + 1, N3):
            r2 = sum((v[3 * i + k] - v[3 * j + k]) ** 2 for k in range(3))
            inv6 = 1 / r2**3
            energy = energy + 4 * (inv6 * inv6 - inv6)
    return energy


class SD:
    """The NumPy-like names the array forms use, for symdiff expressions."""

    reshape, sum, amax = staticmethod(sd.reshape), staticmethod(sd.sum), staticmethod(sd.amax)
    tanh, exp, log, sin = (staticmethod(f) for f in (sd.tanh, sd.exp, sd.log, sd.sin))
    max, asarray = staticmethod(sd.amax), staticmethod(sd.const)


def _p3_symdiff():
    x = sd.matrix("x", N3, 3)
    return _p3_array(SD, x), [x]


def _p3_start(rng):
    # A compact random cluster: atoms on a jittered grid, spacing near the LJ minimum.
    grid = np.array([(i, j, k) for i in range(4) for j in range(4) for k in range(3)], float)
    return [grid[:N3] * 1.12 + rng.normal(scale=0.05, size=(N3, 3))]


P3 = Problem(
    "P3", "lj38", args=_p3_start, reference=_p3_ref, array_fn=_p3_array,
    scalar_fn=_p3_scalar, symdiff=_p3_symdiff,
    notes={"symdiff form": "(38, 3) array, x[I] - x[J] over the 703 pairs i < j"},
)


# P4: MLP 64-32-10, tanh hidden, log-softmax cross-entropy.
SIZES = (64, 32, 10)


def _p4_args(batch):
    def make(rng):
        n0, n1, n2 = SIZES
        x = rng.normal(size=(batch, n0)) if batch else rng.normal(size=n0)
        labels = rng.integers(0, n2, batch or 1)
        y = np.eye(n2)[labels] if batch else np.eye(n2)[labels[0]]
        return [rng.normal(size=(n1, n0)) * 0.1, rng.normal(size=n1) * 0.1,
                rng.normal(size=(n2, n1)) * 0.1, rng.normal(size=n2) * 0.1, x, y]
    return make


def _p4_ref(w1, b1, w2, b2, x, y):
    x2, y2 = np.atleast_2d(x), np.atleast_2d(y)
    h = np.tanh(x2 @ w1.T + b1)
    z = h @ w2.T + b2
    m = z.max(axis=1, keepdims=True)
    lse = m + np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    value = -np.sum(y2 * (z - lse))
    dz = np.exp(z - lse) * y2.sum(axis=1, keepdims=True) - y2
    dh = (dz @ w2) * (1 - h * h)
    return value, [dh.T @ x2, dh.sum(axis=0), dz.T @ h, dz.sum(axis=0)]


def _p4_array(xp, w1, b1, w2, b2, x, y):
    h = xp.tanh(x @ w1.T + b1)
    z = h @ w2.T + b2
    axis = -1
    m = xp.max(z, axis=axis, keepdims=True)  # a constant shift: its gradient cancels
    lse = m + xp.log(xp.sum(xp.exp(z - m), axis=axis, keepdims=True))
    return -xp.sum(y * (z - lse))


def _p4_symdiff(batch):
    def build():
        n0, n1, n2 = SIZES
        w1, b1 = sd.matrix("W1", n1, n0), sd.vector("b1", n1)
        w2, b2 = sd.matrix("W2", n2, n1), sd.vector("b2", n2)
        x = sd.matrix("X", None, n0) if batch else sd.vector("x", n0)
        y = sd.matrix("Y", None, n2) if batch else sd.vector("y", n2)
        return _p4_array(SD, w1, b1, w2, b2, x, y), [w1, b1, w2, b2, x, y]
    return build


def _p4_scalar(ns, v):
    n0, n1, n2 = SIZES
    w1 = [v[i * n0:(i + 1) * n0] for i in range(n1)]
    b1 = v[n1 * n0:n1 * n0 + n1]
    off = n1 * n0 + n1
    w2 = [v[off + i * n1:off + (i + 1) * n1] for i in range(n2)]
    b2 = v[off + n2 * n1:off + n2 * n1 + n2]
    x = v[off + n2 * n1 + n2:off + n2 * n1 + n2 + n0]
    y = v[off + n2 * n1 + n2 + n0:]
    h = [ns.tanh(sum(w * xi for w, xi in zip(row, x, strict=True)) + b)
         for row, b in zip(w1, b1, strict=True)]
    z = [sum(w * hi for w, hi in zip(row, h, strict=True)) + b for row, b in zip(w2, b2,
                                                                                 strict=True)]
    lse = ns.log(sum(ns.exp(zi) for zi in z))
    return -sum(yi * (zi - lse) for yi, zi in zip(y, z, strict=True))


P4 = Problem(
    "P4", "mlp 64-32-10, one sample", args=_p4_args(0), reference=_p4_ref,
    array_fn=_p4_array, scalar_fn=_p4_scalar, symdiff=_p4_symdiff(False), wrt=(0, 1, 2, 3),
)
P4B = Problem(
    "P4b", "mlp 64-32-10, minibatch 256", args=_p4_args(256), reference=_p4_ref,
    array_fn=_p4_array, scalar_fn=None, symdiff=_p4_symdiff(True), wrt=(0, 1, 2, 3),
)


# P5: gradient of ((a+b)*c)**2 + sin(a*b)*exp(-c*c) at 10^6 points.
N5 = 1_000_000


def _p5_ref(a, b, c):
    e = np.exp(-c * c)
    z = (a + b) * c
    value = z * z + np.sin(a * b) * e
    cos = np.cos(a * b) * e
    return value, [2 * z * c + b * cos, 2 * z * c + a * cos,
                   2 * z * (a + b) - 2 * c * np.sin(a * b) * e]


P5 = Problem(
    "P5", "batch of 10^6 points",
    args=lambda rng: list(rng.normal(size=(3, N5))),
    reference=_p5_ref,
    array_fn=lambda xp, a, b, c: ((a + b) * c) ** 2 + xp.sin(a * b) * xp.exp(-c * c),
    scalar_fn=lambda ns, v: ((v[0] + v[1]) * v[2]) ** 2 + ns.sin(v[0] * v[1]) * ns.exp(
        -v[2] * v[2]),
    symdiff=lambda: (sd.parse("((a+b)*c)**2 + sin(a*b)*exp(-c*c)"),
                     list(sd.symbols("a b c"))),
    wrt=(0, 1, 2), batch_points=N5,
)

PROBLEMS = {p.key: p for p in (P1, P2, P3, P4, P4B, P5)}


def flatten_args(args) -> np.ndarray:
    """All arguments as one flat float vector (for the scalar-symbolic systems)."""
    return np.concatenate([np.ravel(np.asarray(a, dtype=float)) for a in args])


def flat_size(args) -> int:
    """Number of scalars in the arguments."""
    return sum(np.size(a) for a in args)
