"""The systems compared: symdiff, hand-written Numba, and the peers that are installed.

Each ``prepare(problem, args)`` returns a callable giving (value, gradients) at the
problem's arguments, and a zero-argument function counting ops where the system exposes
them (None otherwise).  A system that answers first calls before its compiled code is in
place also has ``ready(problem, args)``: it waits for the compiled code (setting
``compiled_at``) and returns the call to time from then on and a callable giving the value
alone.  Preparation time
(tracing, symbolic differentiation, code generation, compilation) is measured by the
runner from the start of ``prepare`` to the first result; the op count is taken after the
clock stops.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import tempfile
import time

import numpy as np

import symdiff as sd
import symdiff.runtime.transforms  # the runtime loads on first use: here, before any clock

from . import handwritten
from .problems import flat_size, flatten_args


class Skip(Exception):
    """The system does not run this problem (the message says why)."""


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


class Symdiff:
    libraries = ()
    name = "symdiff"

    def available(self):
        return True

    def prepare(self, problem, args):
        expr, symbols = problem.symdiff()
        wrt = [symbols[i] for i in problem.wrt]
        # The first call answers from the evaluator while Numba compiles in the background.
        self.fn = fn = sd.compile(expr, wrt=wrt, args=symbols, background=True)

        def ops():
            return sd.count_ops([expr] + sd.grad(expr, wrt))

        return self._wrap(problem, fn.value_and_grad), ops

    def ready(self, problem, args):
        """Wait for the compiled code (``compiled_at``: when it was in place); the call to
        time from then on, and the compiled value alone (for the <= 3x value target)."""
        fn = self.fn.wait()
        self.compiled_at = time.perf_counter()
        fn(*args)  # starts compiling the value function
        fn.wait()
        return self._wrap(problem, fn.value_and_grad), fn

    @staticmethod
    def _wrap(problem, vg):
        if problem.key == "P5":  # gradients of all points come as one (points, 3) array
            def batch(*a):
                value, grad = vg(*a)
                return value, list(grad.T)
            return batch
        return vg  # gradients: an array for scalar variables, a tuple for arrays


class HandNumba:
    libraries = ()
    name = "numba (hand-written)"

    def available(self):
        return True

    def prepare(self, problem, args):
        kernel = handwritten.KERNELS.get(problem.key)
        if kernel is None:
            raise Skip("no hand-written kernel (written for P1-P3 and P5)")
        kernel(*args)
        return kernel, None


class Jax:
    libraries = ("jax",)
    name = "JAX jit"

    def available(self):
        return _have("jax")

    def prepare(self, problem, args):
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)
        fn = lambda *a: problem.array_fn(jnp, *a)  # noqa: E731
        if problem.batch_points:
            vg = jax.jit(jax.vmap(jax.value_and_grad(fn, argnums=problem.wrt)))
        else:
            vg = jax.jit(jax.value_and_grad(fn, argnums=problem.wrt))
        def ops():
            return len(jax.make_jaxpr(jax.value_and_grad(fn, argnums=problem.wrt))(
                *[a[0] if problem.batch_points else a for a in args]).eqns)


        def call(*a):
            value, grads = vg(*a)
            return value.block_until_ready(), grads
        return call, ops


class Torch:
    libraries = ("torch",)
    name = "PyTorch"

    def available(self):
        return _have("torch")

    def prepare(self, problem, args):
        import torch

        torch.set_num_threads(1)

        class NS:
            tanh, exp, log, sin, reshape = torch.tanh, torch.exp, torch.log, torch.sin, \
                torch.reshape

            @staticmethod
            def sum(x, axis=None, keepdims=False):
                return torch.sum(x) if axis is None else torch.sum(x, dim=axis, keepdim=keepdims)

            @staticmethod
            def max(x, axis=None, keepdims=False):
                return torch.amax(x, dim=axis, keepdim=keepdims).detach()

            @staticmethod
            def asarray(x):
                return torch.as_tensor(x, dtype=torch.float64)

        def call(*a):
            tensors = [torch.as_tensor(np.asarray(v, dtype=float)) for v in a]
            for i in problem.wrt:
                tensors[i].requires_grad_(True)
            value = problem.array_fn(NS, *tensors)
            # Per point, the gradient of the sum is the gradient of each point's value.
            total = value.sum() if problem.batch_points else value
            grads = torch.autograd.grad(total, [tensors[i] for i in problem.wrt])
            return value.detach().numpy(), [g.numpy() for g in grads]
        return call, None


class Autograd:
    libraries = ("autograd",)
    name = "autograd"

    def available(self):
        return _have("autograd")

    def prepare(self, problem, args):
        import autograd
        import autograd.numpy as anp

        if problem.batch_points:
            raise Skip("no vectorizing map; a Python loop over 10^6 points is not meaningful")
        vg = autograd.value_and_grad(lambda *a: problem.array_fn(anp, *a), problem.wrt)
        return vg, None


def _scalar_inputs(problem, args):
    if problem.scalar_fn is None:
        raise Skip("no scalar form (minibatch)")
    return len(args) if problem.batch_points else flat_size(args)


def _wrt_slices(problem, args):
    """Where each wrt argument lies in the flat vector of all (per-point) arguments."""
    offsets = np.cumsum([0] + [1 if problem.batch_points else np.size(a) for a in args])
    return [(offsets[i], offsets[i + 1], np.shape(args[i])) for i in problem.wrt]


def _split(problem, args, flat_grad):
    return [np.reshape(flat_grad[lo:hi], shape) for lo, hi, shape in _wrt_slices(problem, args)]


class SymPy:
    libraries = ()
    name = "SymPy lambdify(cse)"
    limit = 2_000  # scalar inputs beyond which diff + cse takes minutes (P3: 97 s, P4: >1 h)

    def __init__(self, njit=False):
        self.njit = njit
        if njit:
            self.name = "SymPy + numba.njit"

    def available(self):
        return True

    def prepare(self, problem, args):
        import sympy

        n = _scalar_inputs(problem, args)
        if problem.key in ("P3", "P4") and not os.environ.get("BENCH_FULL"):
            raise Skip("minutes to derive (measured on this machine: 97 s for P3, gave up on P4); "
                       "BENCH_FULL=1 runs it")
        if self.njit and problem.batch_points:
            raise Skip("lambdify's NumPy form already vectorizes P5")
        xs = sympy.symbols(f"v0:{n}", real=True)
        f = problem.scalar_fn(sympy, list(xs))
        wrt = [xs[k] for lo, hi, _ in _wrt_slices(problem, args) for k in range(lo, hi)]
        grads = [sympy.diff(f, x) for x in wrt]
        fn = sympy.lambdify(xs, [f] + grads, modules="numpy" if problem.batch_points else
                            "math", cse=True)
        if self.njit:
            import numba

            fn = numba.njit(fn)
        if problem.batch_points:
            def call(*a):
                out = fn(*a)
                return out[0], out[1:]
        elif all(np.ndim(v) == 0 for v in args):
            def call(*a):
                out = fn(*a)
                return out[0], out[1:]
        else:
            def call(*a):
                out = fn(*flatten_args(a))
                return out[0], _split(problem, a, np.asarray(out[1:], dtype=float))
        return call, lambda: sympy.count_ops([f] + grads)


class SymEngine:
    libraries = ("symengine",)
    name = "SymEngine Lambdify"

    def available(self):
        return _have("symengine")

    def prepare(self, problem, args):
        import symengine as se

        n = _scalar_inputs(problem, args)
        if problem.key == "P4" and not os.environ.get("BENCH_FULL"):
            raise Skip("27 s to prepare (measured on this machine); BENCH_FULL=1 runs it")
        xs = se.symbols(f"v0:{n}")
        f = problem.scalar_fn(se, list(xs))
        wrt = [xs[k] for lo, hi, _ in _wrt_slices(problem, args) for k in range(lo, hi)]
        fn = se.Lambdify(list(xs), [f] + [f.diff(x) for x in wrt], backend="llvm", cse=True)
        if problem.batch_points:
            def call(*a):
                out = fn(np.stack(a, axis=1))
                return out[:, 0], [out[:, k] for k in range(1, out.shape[1])]
        else:
            def call(*a):
                out = fn(flatten_args(a))
                return out[0], _split(problem, a, out[1:])
        return call, None


class CasADi:
    libraries = ("casadi",)
    name = "CasADi SX Function"

    def __init__(self, generated_c=False):
        self.generated_c = generated_c
        if generated_c:
            self.name = "CasADi generated C (gcc -O3)"

    def available(self):
        return _have("casadi") and (not self.generated_c or _which("gcc"))

    def prepare(self, problem, args):
        import casadi as ca

        n = _scalar_inputs(problem, args)
        v = ca.SX.sym("v", n)
        f = problem.scalar_fn(ca, [v[k] for k in range(n)])
        wrt = ca.vertcat(*[v[k] for lo, hi, _ in _wrt_slices(problem, args)
                           for k in range(lo, hi)])
        function = ca.Function("f", [v], [f, ca.gradient(f, wrt)])
        ops = function.n_instructions
        if self.generated_c:
            function = _compile_c(ca, function)
        if problem.batch_points:
            mapped = function.map(problem.batch_points, "thread", 2)

            def call(*a):
                value, grad = mapped(np.stack(a))
                return np.asarray(value).ravel(), list(np.asarray(grad))
            return call, ops

        def call(*a):
            value, grad = function(flatten_args(a))
            return float(value), _split(problem, a, np.asarray(grad).ravel())
        return call, ops


def _which(program):
    return any(os.access(os.path.join(d, program), os.X_OK)
               for d in os.environ.get("PATH", "").split(os.pathsep))


def _compile_c(ca, function):
    directory = tempfile.mkdtemp(prefix="casadi-")
    source = os.path.join(directory, "f.c")
    function.generate("f.c", {"with_header": False})
    os.replace("f.c", source)
    library = os.path.join(directory, "f.so")
    subprocess.run(["gcc", "-O3", "-fPIC", "-shared", source, "-o", library], check=True)
    return ca.external("f", library)


SYSTEMS = [Symdiff(), HandNumba(), Jax(), SymPy(), SymPy(njit=True), SymEngine(), CasADi(),
           CasADi(generated_c=True), Autograd(), Torch()]
