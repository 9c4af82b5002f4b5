"""Prints a digest of the generated source of several kinds of functions (run by
test_cache in separate processes: the sources must not depend on the process)."""

import hashlib

import numpy as np

import symdiff as sd

x, y, w = sd.matrix("X", None, 3), sd.vector("y", None), sd.vector("w", 3)
functions = [sd.compile(sd.mean((sd.tanh(x @ w) - y) ** 2) + 0.1 * sd.sum(w ** 2), w,
                        args=[w, x, y]),
             sd.compile(sd.sum(sd.exp(w) * sd.tanh(w)) + sd.sum(sd.sigmoid(w * w)))]


def rk4(s):
    def step(c, _):
        k1 = -c ** 3 + sd.sin(c)
        k2 = -(c + 0.05 * k1) ** 3
        return c + 0.1 * (k1 + k2), None

    c, _ = sd.scan(step, s, np.zeros(10))
    return np.sum(c ** 2)


functions.append(sd.compile(rk4, args=[sd.vector("s", 5)]))
v = sd.vector("v", 6)
functions.append(sd.compile(sd.sum((v[1:] - v[:-1] ** 2) ** 2 + (1 - v[:-1]) ** 2)))
functions.append(sd.compile(sd.parse(" + ".join(f"sin(a*{k} + b)*exp(c*{k})"
                                                for k in range(40)))))
for fn in functions:
    source = fn.source
    print(hashlib.sha256(source.encode()).hexdigest()[:16], len(source))
