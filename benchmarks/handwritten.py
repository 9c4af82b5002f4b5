"""Hand-written Numba value-and-gradient kernels: the reference for the limit."""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=False)
def p1(a, b, c):
    # Same interface as every system: the value and a gradient array.
    s = a + b
    z = s * c
    t = 2.0 * z
    g = np.empty(3)
    g[0] = t * c
    g[1] = t * c
    g[2] = t * s
    return z * z, g


@numba.njit(cache=False)
def _p2(x):
    n = x.shape[0]
    g = np.zeros(n)
    value = 0.0
    for i in range(n - 1):
        t = x[i + 1] - x[i] * x[i]
        u = 1.0 - x[i]
        value += 100.0 * t * t + u * u
        g[i] += -400.0 * x[i] * t - 2.0 * u
        g[i + 1] += 200.0 * t
    return value, g


def p2(x):
    value, g = _p2(x)
    return value, [g]


@numba.njit(cache=False)
def _p3(x):
    n = x.shape[0]
    g = np.zeros((n, 3))
    energy = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            dx = x[i, 0] - x[j, 0]
            dy = x[i, 1] - x[j, 1]
            dz = x[i, 2] - x[j, 2]
            r2 = dx * dx + dy * dy + dz * dz
            inv2 = 1.0 / r2
            inv6 = inv2 * inv2 * inv2
            energy += 4.0 * (inv6 * inv6 - inv6)
            de = (-48.0 * inv6 * inv6 + 24.0 * inv6) * inv2  # (dE/dr) / r
            g[i, 0] += de * dx
            g[i, 1] += de * dy
            g[i, 2] += de * dz
            g[j, 0] -= de * dx
            g[j, 1] -= de * dy
            g[j, 2] -= de * dz
    return energy, g


def p3(x):
    value, g = _p3(x)
    return value, [g]


@numba.njit(parallel=True, cache=False)
def _p5(a, b, c):
    n = a.shape[0]
    value = np.empty(n)
    ga, gb, gc = np.empty(n), np.empty(n), np.empty(n)
    for k in numba.prange(n):
        s = a[k] + b[k]
        z = s * c[k]
        e = math.exp(-c[k] * c[k])
        ab = a[k] * b[k]
        sn, cs = math.sin(ab), math.cos(ab) * e
        value[k] = z * z + sn * e
        t = 2.0 * z
        ga[k] = t * c[k] + b[k] * cs
        gb[k] = t * c[k] + a[k] * cs
        gc[k] = t * s - 2.0 * c[k] * sn * e
    return value, ga, gb, gc


def p5(a, b, c):
    value, ga, gb, gc = _p5(a, b, c)
    return value, [ga, gb, gc]


KERNELS = {"P1": p1, "P2": p2, "P3": p3, "P5": p5}


# Sparse second derivatives (benchmarks.hessians): the nonzeros in CSR order of the known
# pattern, straight from the hand-derived formulas.
@numba.njit(cache=False)
def rosenbrock_hessian_values(x):
    n = x.shape[0]
    data = np.empty(3 * n - 2)
    k = 0
    for i in range(n):
        if i > 0:
            data[k] = -400.0 * x[i - 1]
            k += 1
        d = 200.0 if i > 0 else 0.0
        if i < n - 1:
            d += 1200.0 * x[i] * x[i] - 400.0 * x[i + 1] + 2.0
        data[k] = d
        k += 1
        if i < n - 1:
            data[k] = -400.0 * x[i]
            k += 1
    return data


@numba.njit(cache=False)
def bratu_jacobian_values(x, m, lam):
    h2 = float((m + 1) * (m + 1))
    data = np.empty(5 * m * m - 4 * m)
    k = 0
    for i in range(m):
        for j in range(m):
            if i > 0:
                data[k] = h2
                k += 1
            if j > 0:
                data[k] = h2
                k += 1
            data[k] = -4.0 * h2 + lam * math.exp(x[i * m + j])
            k += 1
            if j < m - 1:
                data[k] = h2
                k += 1
            if i < m - 1:
                data[k] = h2
                k += 1
    return data
