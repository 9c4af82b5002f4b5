"""The lecture's worked example: f(a, b, c) = ((a + b) c)^2 at (1, 2, 2).

Run: python examples/lecture.py
"""

import symdiff as sd

a, b, c = sd.symbols("a b c")
f = ((a + b) * c) ** 2
point = {"a": 1.0, "b": 2.0, "c": 2.0}

print("f =", f, "=", sd.evaluate(f, point))
for v, g in zip("abc", sd.grad(f, [a, b, c]), strict=True):
    print(f"df/d{v} = {g} = {sd.evaluate(g, point)}")
for wrt in [(a, b), (a, c), (c, b), (c, c)]:
    d = sd.diff(f, *wrt)
    print(f"d2f/d{wrt[0]} d{wrt[1]} = {d} = {sd.evaluate(d, point)}")

fn = sd.compile(f)
print("compiled gradient:", fn.grad(1.0, 2.0, 2.0))
print("compiled Hessian:\n", fn.hessian(1.0, 2.0, 2.0))
print("wrote", fn.save("lecture_generated.py"), "(imports only math, numpy, numba)")
