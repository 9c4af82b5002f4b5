"""``sd.compile``: derivative graphs to Numba-jitted functions, derived lazily per method."""

from __future__ import annotations

import os
import re

from numba import types

from . import __version__
from .diff import as_variables, forward_mode, grad, hessian, jacobian, reverse_mode
from .errors import SymdiffError
from .ir import Expr, free_symbols, internal_symbol
from .passes import optimize
from .trace import as_outputs, trace

# Generated functions, in module order: (method name, generated name, needs scalar f).
FUNCTIONS = (
    ("forward", "forward", None),
    ("grad", "gradient", True),
    ("value_and_grad", "value_and_grad", True),
    ("hessian", "hessian", True),
    ("jacobian", "jacobian", False),
    ("vjp", "vjp", None),
    ("jvp", "jvp", None),
)
_ARRAY = types.Array(types.float64, 1, "A")


def compile(f, wrt=None, *, fast_math: bool = False) -> CompiledFunction:  # noqa: A001
    """Compile ``f`` to Numba-jitted value and derivative functions.

    ``f`` is an expression, a list of expressions (vector-valued), a string, a SymPy
    expression, or a Python function (traced on symbols named after its parameters).
    ``wrt`` (symbols or names) fixes the positional arguments of every compiled
    function; it defaults to the function's parameters or the sorted free symbols.
    """
    params = None
    if callable(f) and not isinstance(f, Expr) and not hasattr(f, "free_symbols"):
        f, params = trace(f)
    outputs, scalar = as_outputs(f)
    variables = as_variables(wrt if wrt is not None else params, outputs)
    missing = [s.value for s in free_symbols(outputs) if s not in set(variables)]
    if missing:
        raise SymdiffError(f"the function depends on {', '.join(missing)}, which "
                           "wrt does not list: every input must be an argument")
    return CompiledFunction(optimize(outputs, fast_math), variables, scalar, fast_math)


class CompiledFunction:
    """Numba-backed value and derivative functions of one compiled expression.

    Arguments are positional float64 values in ``wrt`` order.  Each method derives and
    compiles its function on first use; after that the method *is* the Numba dispatcher,
    so a call costs what a Numba call costs.
    """

    def __init__(self, outputs: list[Expr], wrt: list[Expr], scalar: bool, fast_math: bool):
        self.outputs = outputs
        self.wrt = wrt
        self.is_scalar = scalar
        self.fast_math = fast_math
        self._specs: dict[str, object] = {}

    def __repr__(self):
        args = ", ".join(s.value for s in self.wrt)
        shown = self.outputs[0] if self.is_scalar else f"[{len(self.outputs)} outputs]"
        text = str(shown)
        return f"<symdiff compiled f({args}) = {text if len(text) < 80 else text[:77] + '...'}>"

    def __call__(self, *x):
        """The value: a float for scalar f, a 1-D array for vector-valued f."""
        return self.forward(*x)

    def forward(self, *x):
        """The value (same as calling the object)."""
        return self._load("forward")(*x)

    def grad(self, *x):
        """Gradient of scalar f: ndarray of shape (n,)."""
        return self._load("grad")(*x)

    def value_and_grad(self, *x):
        """(value, gradient) from one fused pass."""
        return self._load("value_and_grad")(*x)

    def hessian(self, *x):
        """Hessian of scalar f: ndarray of shape (n, n)."""
        return self._load("hessian")(*x)

    def jacobian(self, *x):
        """Jacobian of vector-valued f: ndarray of shape (m, n)."""
        return self._load("jacobian")(*x)

    def vjp(self, *x_and_cotangent):
        """Vector-Jacobian product: sum_k cotangent[k] * grad f_k, shape (n,).

        The cotangent is a float for scalar f, a 1-D float64 array of shape (m,) otherwise.
        """
        return self._load("vjp")(*x_and_cotangent)

    def jvp(self, *x_and_tangent):
        """Jacobian-vector product J @ tangent (tangent: 1-D float64 array of shape (n,))."""
        return self._load("jvp")(*x_and_tangent)

    @property
    def source(self) -> str:
        """The complete generated module (every function that applies to f), as text."""
        methods = [m for m, _, needs in FUNCTIONS if needs in (None, self.is_scalar)]
        return self._module_source([self._spec(m) for m in methods])

    def save(self, path) -> str:
        """Write the generated module to ``path``; it imports only math, numpy and numba."""
        path = os.fspath(path)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(self.source)
        return path

    # Derivation and loading.
    def _module_source(self, specs) -> str:
        from codegen import emit_module

        return emit_module(specs, self._module_doc(specs))

    def _module_doc(self, specs) -> str:
        from codegen.naming import parameter_names

        names = [s.value for s in self.wrt]
        params = parameter_names(names)
        text = str(self.outputs[0]) if self.is_scalar else f"{len(self.outputs)} outputs"
        lines = [f"Generated by symdiff {__version__}; import needs only math, numpy, numba.", ""]
        if len(text) <= 300:
            lines += [f"f = {text}", ""]
        lines.append("Arguments, in order (float64): " + ", ".join(
            p if p == n else f"{p} (symbol {n})" for p, n in zip(params, names, strict=True)))
        lines += ["", "Functions (all @numba.njit):"]
        lines += [f"  {spec.name}: {spec.doc}" for spec in specs]
        return "\n".join(lines)

    def _spec(self, method: str):
        spec = self._specs.get(method)
        if spec is None:
            spec = self._specs[method] = self._derive(method)
        return spec

    def _derive(self, method: str):
        from codegen import ArrayParam, FunctionSpec

        name, needs_scalar = {m: (g, s) for m, g, s in FUNCTIONS}[method]
        if needs_scalar is not None and needs_scalar != self.is_scalar:
            kind = "a scalar" if needs_scalar else "a vector-valued"
            raise SymdiffError(f"{method} needs {kind} function; use "
                               f"{'jacobian or vjp' if needs_scalar else 'grad'}")
        wrt, outs, n, m = self.wrt, self.outputs, len(self.wrt), len(self.outputs)
        value = outs[0] if self.is_scalar else list(outs)
        fm = self.fast_math
        arrays = ()
        if method == "forward":
            result, doc = value, "value f(x)"
        elif method == "grad":
            result, doc = grad(outs[0], wrt, simplify=False), f"gradient, shape ({n},)"
        elif method == "value_and_grad":
            result = (outs[0], grad(outs[0], wrt, simplify=False))
            doc = f"(value, gradient of shape ({n},)) in one pass"
        elif method == "hessian":
            result, doc = hessian(outs[0], wrt, simplify=False), f"Hessian, shape ({n}, {n})"
        elif method == "jacobian":
            result, doc = jacobian(outs, wrt, simplify=False), f"Jacobian, shape ({m}, {n})"
        elif method == "vjp":
            cts = tuple(internal_symbol(f"ct{k}") for k in range(m))
            result = reverse_mode(list(zip(outs, cts, strict=True)), wrt)
            doc = f"cotangent-weighted gradient sum_k cotangent[k] * grad f_k, shape ({n},)"
            arrays = (ArrayParam("_cotangent", cts),)
        else:
            tangents = tuple(internal_symbol(f"tan{j}") for j in range(n))
            result = forward_mode(outs, dict(zip(wrt, tangents, strict=True)))
            result = result[0] if self.is_scalar else result
            doc = "directional derivative J @ tangent"
            arrays = (ArrayParam("_tangent", tangents),)
        inputs = tuple(wrt)
        if method == "vjp" and self.is_scalar:
            # For scalar f the cotangent is one float: a scalar argument, not an array.
            inputs, arrays = inputs + cts, ()
        return FunctionSpec(name, inputs, optimize(result, fm), doc, arrays)

    def _load(self, method: str):
        spec = self._spec(method)
        module = load_module_for(self._module_source([spec]), f"symdiff_{spec.name}")
        dispatcher = getattr(module, spec.name)
        signature = (types.float64,) * len(spec.inputs) + (_ARRAY,) * len(spec.arrays)
        dispatcher.compile(signature)
        dispatcher.disable_compile()
        self.__dict__[method] = dispatcher  # later calls go straight to Numba
        return dispatcher


def load_module_for(source: str, name: str):
    """Load generated source (see codegen.load_module)."""
    from codegen import load_module

    return load_module(source, re.sub(r"\W", "_", name))

