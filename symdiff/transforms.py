"""Shapes from the first call, and function transformations in JAX's style.

``sd.compile(rosen)`` on a function written for arrays cannot trace it on scalar symbols
(``x[1:]`` of a scalar).  It then returns a ``ByShape``: each call traces the function on
symbols shaped like its arguments, compiles once per shape signature (as ``jax.jit``
does) and calls the compiled function's method.  ``sd.jit``, ``sd.grad``,
``sd.value_and_grad``, ``sd.hessian`` and ``sd.jacobian`` given a Python function return
such calls.
"""

from __future__ import annotations

import inspect
import threading

import numpy as np

from .chunked import is_dask
from .errors import ArgumentError, ShapeError, SymdiffError, TraceError
from .ir import symbol


class ByShape:
    """A Python function compiled once per shape signature of its arguments.

    Calling it gives the value; ``grad``, ``value_and_grad``, ``hessian``, ``jacobian``,
    ``jvp``, ``vjp``, ``hvp`` and the other methods of a compiled function are there too,
    each taking the function's arguments (then any direction) like the compiled one.
    """

    def __init__(self, fn, wrt=None, **options):
        self.fn, self.wrt, self.options = fn, wrt, options
        self.names = [p.name for p in inspect.signature(fn).parameters.values()
                      if p.default is p.empty]
        self._compiled: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def compiled_for(self, *arguments):
        """The compiled function for arguments of these shapes (compiling it once)."""
        if len(arguments) < len(self.names):
            count = len(self.names)
            raise ArgumentError(f"{self.fn.__name__} takes {count} argument"
                                f"{'s' * (count != 1)} ({', '.join(self.names)}), got "
                                f"{len(arguments)}")
        # A Dask array's first axis is open: one compile serves every chunk (symdiff.chunked).
        shapes = tuple((None,) + np.shape(a)[1:] if is_dask(a) and np.ndim(a) else np.shape(a)
                       for a in arguments[:len(self.names)])
        with self._lock:
            if shapes not in self._compiled:
                self._compiled[shapes] = self._compile(shapes)
            return self._compiled[shapes]

    def _compile(self, shapes):
        from .api import compile

        symbols = [symbol(name, shape) for name, shape in zip(self.names, shapes, strict=True)]
        wrt = by_position(self.wrt, symbols)
        try:
            return compile(self.fn, wrt, args=symbols, **self.options)
        except (ShapeError, TraceError) as error:
            shown = ", ".join(f"{n}: {s}" for n, s in zip(self.names, shapes, strict=True))
            raise type(error)(f"{error} (tracing {self.fn.__name__} on arguments of shapes "
                              f"{shown}; declare them with args=[sd.vector('x', n), ...] "
                              "if the shapes depend on more than the arguments)") from None

    def __call__(self, *arguments):
        return self.compiled_for(*arguments)(*arguments)

    def vmap(self, in_axes=0):
        """This function over a batch axis of its arguments (``jax.vmap``)."""
        from .vmap import VMapped

        return VMapped(self, in_axes)

    def __getattr__(self, method: str):
        if method.startswith("_"):
            raise AttributeError(method)

        def call(*arguments):
            return getattr(self.compiled_for(*arguments), method)(*arguments)

        call.__name__ = method
        call.__doc__ = f"``{method}`` of the function compiled for these argument shapes."
        return call

    def __repr__(self):
        return f"<symdiff.ByShape of {self.fn.__name__}: {len(self._compiled)} shape(s)>"


def by_position(wrt, params: list):
    """``wrt`` with argument positions (an int, or a list of ints: JAX's argnums)
    replaced by the parameters at those positions."""
    if isinstance(wrt, bool):
        return wrt
    if isinstance(wrt, int):
        return params[wrt]
    if isinstance(wrt, (list, tuple)) and wrt and all(isinstance(w, int) for w in wrt):
        return [params[w] for w in wrt]
    return wrt


def jit(fn, **options) -> ByShape:
    """``fn`` compiled once per shape signature of its arguments (``jax.jit``)."""
    return ByShape(fn, **options)


def _transform(method: str, fn, argnums, options):
    if not callable(fn):
        raise SymdiffError(f"sd.{method} of a function needs a callable, got {fn!r}")
    return getattr(ByShape(fn, argnums, **options), method)


def grad_of(fn, argnums=None, **options):
    """The gradient function of ``fn`` (``jax.grad``): an array for one array argument."""
    return _transform("grad", fn, argnums, options)


def value_and_grad(fn, argnums=None, **options):
    """A function returning (value, gradient) of ``fn`` (``jax.value_and_grad``)."""
    return _transform("value_and_grad", fn, argnums, options)


def hessian_of(fn, argnums=None, **options):
    """The Hessian function of ``fn`` (``jax.hessian``)."""
    return _transform("hessian", fn, argnums, options)


def jacobian_of(fn, argnums=None, **options):
    """The Jacobian function of ``fn`` (``jax.jacobian``)."""
    return _transform("jacobian", fn, argnums, options)
