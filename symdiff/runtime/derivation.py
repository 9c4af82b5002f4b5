"""The first stage of a compiled function: what it computes.  A ``Derivation`` holds the
optimized output graphs, the arguments and the variables, and derives, per method, the
graphs the generated function evaluates (a codegen FunctionSpec, or a DirectionLoop for
Hessians and Jacobians that loop over directions).  Nothing here generates or loads code.

Dense Hessians of functions of arrays (or of more than ``UNROLL_MAX_VARIABLES`` scalars)
are loops of Hessian-vector products, dense Jacobians loops of vector-Jacobian products
(no more outputs than variables) or Jacobian-vector products, so their generated code is
the same for every array size; small functions of scalars keep the unrolled,
entry-by-entry code, which is faster per call.
"""

from __future__ import annotations

from codegen import ArrayParam, DirectionLoop, FunctionSpec, Slot, result_parts
from codegen.bodies import least_open_length_in
from symdiff.autodiff.batch_axis import with_batch_axis
from symdiff.autodiff.modes import forward_mode, grad, hessian, hvp, jacobian, reverse_mode
from symdiff.errors import SymdiffError
from symdiff.ir.dims import elements, has_open
from symdiff.ir.nodes import Expr, internal_symbol, restructure, topological_order
from symdiff.passes.data import data_values, lift_data, lift_rows
from symdiff.passes.pipeline import optimize
from symdiff.runtime.inputs import batch_size

# Generated functions in module order: method -> (generated name, needs scalar f?).
FUNCTIONS = {
    "forward": ("forward", None),
    "grad": ("gradient", True),
    "value_and_grad": ("value_and_grad", True),
    "hessian": ("hessian", True),
    "hvp": ("hvp", True),
    "jacobian": ("jacobian", False),
    "vjp": ("vjp", None),
    "jvp": ("jvp", None),
    # The compressed evaluations behind sparse_hessian / sparse_jacobian (they return the
    # nonzeros, given the seeds and gather positions of a coloring).
    "sparse_hessian_data": ("sparse_hessian", True),
    "sparse_jacobian_data": ("sparse_jacobian", False),
}
# Methods that also exist batched over many points, for functions of scalars (the
# Hessian up to UNROLL_MAX_VARIABLES variables, where it is derived entry by entry).
BATCHED = ("forward", "grad", "value_and_grad", "hessian")
# Functions of at most this many scalar variables keep unrolled Hessians, and Jacobians
# of at most this many entries squared; larger ones loop over directions.
UNROLL_MAX_VARIABLES = 64
# Methods computed by a runtime loop over directions (unless unrolled); the *_data ones
# return the nonzeros of a compressed evaluation.
LOOPS = ("hessian", "jacobian", "sparse_hessian_data", "sparse_jacobian_data")
# Dense loops take up to this many directions at once (a block), as long as no node that
# depends on them holds more than BLOCK_ELEMENTS numbers over the block, where it pays:
# when a matrix product reads the directions (it becomes a product of matrices) or there
# are at most BLOCK_DIRECTIONS of them (one block, one pass), and only where every
# product and transpose the directions reach stays one BLAS call or view over a block.
# Measured otherwise (benchmarks/README.md): elementwise work over many directions 1.2-
# 1.3x slower in blocks (the dense Rosenbrock Hessian, n = 100 and 1,000), an MLP whose
# weight matrices vary (products summed in fused loops, transposes read across strides)
# 1.4x slower.  (BLOCK_ELEMENTS may still split one block's worth into a few.)
BLOCK_DIRECTIONS = 32
BLOCK_ELEMENTS = 1 << 18


class Derivation:
    """The graphs of a compiled function and of each of its methods (derived on first
    use, once).  Large captured constants and row positions become hidden trailing
    arguments (symdiff.passes.data): ``inputs`` are the arguments, then those
    ``data_symbols`` (the float arrays, then the int64 positions)."""

    def __init__(self, outputs, args, wrt, scalar: bool, single_wrt: bool, fast_math: bool,
                 lowering: str):
        self.given_outputs = list(outputs)
        lifted, data_symbols, constants = lift_data(list(outputs))
        lifted, rows_symbols, positions = lift_rows(lifted)
        self.data_symbols = data_symbols + rows_symbols
        self.data_values = data_values(constants) + tuple(positions)
        self.outputs, self.args, self.wrt = lifted, list(args), list(wrt)
        self.inputs = tuple(args) + tuple(self.data_symbols)
        self.is_scalar, self.single_wrt = scalar, single_wrt
        self.fast_math, self.lowering = fast_math, lowering
        self.has_arrays = any(a.shape for a in args)
        self.flat_wrt = not single_wrt and not any(v.shape for v in wrt)
        # The least open length the graph reads as written (x[5], x[2:]); its derivatives
        # read the same positions.  Checked with the arguments: symdiff.runtime.inputs.
        self.least_open = (least_open_length_in(self.outputs)
                           if any(has_open(a.shape) for a in self.args) else 0)
        self._specs: dict[tuple, object] = {}

    def spec(self, method: str, batched: bool = False):
        """The FunctionSpec (or DirectionLoop) of ``method``, derived once."""
        key = (method, batched)
        found = self._specs.get(key)
        if found is None:
            found = self._specs[key] = self._derive(method, batched)
        return found

    def applies(self, method: str) -> bool:
        """Whether ``method`` exists for this function's kind of value."""
        return FUNCTIONS[method][1] in (None, self.is_scalar)

    def batches(self, method: str) -> bool:
        """Whether ``method`` has a batched version, at many points of a function of
        scalars (the Hessian: entry by entry only).  Functions with loops are batched
        too: a prange over calls of the one-point code."""
        return (method in BATCHED and bool(self.args) and not self.has_arrays
                and not self.data_symbols and all(not o.shape for o in self.outputs)
                and (method != "hessian" or self.unrolled("hessian")))

    def unrolled(self, method: str) -> bool:
        """Whether a Hessian / Jacobian is derived entry by entry (few scalars only)."""
        if method.startswith("sparse_") or not self.flat_wrt:
            return False
        n = len(self.wrt)
        if method == "hessian":
            return n <= UNROLL_MAX_VARIABLES
        return not any(o.shape for o in self.outputs) and \
            n * len(self.outputs) <= UNROLL_MAX_VARIABLES ** 2

    def loops_over_directions(self, method: str) -> bool:
        """Whether ``method`` is a runtime loop over directions (a DirectionLoop)."""
        return method in LOOPS and not self.unrolled(method)

    def gradient_structure(self, gradients):
        """Per-variable parts laid out as ``grad`` returns them: the part alone for one
        wrt symbol, a list for scalars (one 1-D array), else a tuple."""
        if self.single_wrt:
            return gradients[0]
        return list(gradients) if self.flat_wrt else tuple(gradients)

    def direction_count(self, x) -> int:
        """The products a direction loop makes for the caller's arguments ``x``: one per
        row of the seeds given after them (sparse), else one per element of wrt."""
        extra = x[len(self.args):]
        if extra:
            return len(extra[0])
        return elements(self.wrt, batch_size(self.args, x) or 0)

    def _derive(self, method: str, batched: bool):
        name, needs_scalar = FUNCTIONS[method]
        if not self.applies(method):
            raise SymdiffError(self._not_applicable(method, needs_scalar))
        if self.loops_over_directions(method):
            return self._direction_loop(method)
        result, doc, extra, arrays = _DERIVERS[method](self)
        if batched:
            name, doc = name + "_batch", doc + ", at many points (1-D arrays of points)"
        return FunctionSpec(name, self.inputs + extra, optimize(result, self.fast_math), doc,
                            arrays, batched, self.lowering)

    def _not_applicable(self, method: str, needs_scalar: bool) -> str:
        kind = "a scalar" if needs_scalar else "a vector- or array-valued"
        value = (f"its value has shape {self.outputs[0].shape}" if self.outputs[0].shape
                 else f"it has {len(self.outputs)} outputs" if needs_scalar
                 else "its value is a scalar")
        hint = ("; for one value per point, map it with fn.vmap or declare scalar args"
                if needs_scalar and self.has_arrays else "")
        return (f"{method} needs {kind} function ({value}); use "
                f"{'jacobian or vjp' if needs_scalar else 'grad'}{hint}")

    def value(self):
        """The value as ``forward`` returns it: one expression, or a list of outputs."""
        outs = self.outputs
        return outs[0] if len(outs) == 1 and (self.is_scalar or outs[0].shape) else list(outs)

    def per_variable(self, stem: str, flat_name: str):
        """One symbol per variable, for a direction (``stem``): scalars in one 1-D array
        argument ``flat_name``, arrays as extra arguments.  (symbols, extra, arrays)"""
        if self.flat_wrt:
            symbols = tuple(internal_symbol(f"{stem[:3]}{j}") for j in range(len(self.wrt)))
            return symbols, (), (ArrayParam(flat_name, symbols),)
        symbols = tuple(internal_symbol(f"{stem}{k}", v.shape) for k, v in enumerate(self.wrt))
        return symbols, symbols, ()

    # Dense Hessians and Jacobians, and the compressed sparse ones, as loops over
    # directions through one compiled kernel (hvp, jvp or vjp).
    def _wrt_slots(self):
        if self.flat_wrt:
            return (Slot("flat", ("static", (len(self.wrt),))),)
        return tuple(Slot("array", ("arg", self.args.index(v))) if v.shape else Slot("scalar")
                     for v in self.wrt)

    def _output_slot(self, direction: bool):
        """The output as a vjp direction (``direction``) or as a jvp result."""
        outs = self.outputs
        if outs[0].shape and len(outs) == 1:
            shape = outs[0].shape
            return Slot("array", ("output",) if has_open(shape) else ("static", shape))
        if self.is_scalar or (direction and len(outs) == 1):
            return Slot("scalar")
        return Slot("flat", ("static", (len(outs),)))

    def _direction_loop(self, method: str):
        name = method.removesuffix("_data")
        compressed = method.startswith("sparse_")
        wrt, structured = self._wrt_slots(), not self.single_wrt and not self.flat_wrt
        m = n = count = None
        if not has_open(sum((o.shape for o in self.outputs), ())):
            m = elements(self.outputs, None)
        if not has_open(sum((v.shape for v in self.wrt), ())):
            n = elements(self.wrt, None)
        transpose = False
        if "hessian" in method:
            kernel, directions, results, tupled = "hvp", wrt, wrt, structured
            doc, count = "Hessian-vector products H @ d", n
        elif compressed or m is None or n is None or m > n:
            kernel, directions, results, tupled = "jvp", wrt, (self._output_slot(False),), False
            doc, count = "Jacobian-vector products J @ d", n
        else:
            kernel, directions, results = "vjp", (self._output_slot(True),), wrt
            tupled, transpose, count = structured, True, m
            doc = "vector-Jacobian products d @ J"
        doc = ("nonzeros of a sparse matrix from " + doc + " at the seeds of a coloring, "
               "gathered at positions _gather" if compressed else
               f"dense {name.capitalize()}: a loop over unit directions d of " + doc)
        # A slot shaped like the value (an open dimension) takes its shape from forward().
        shaped_by_value = any(s.source == ("output",) for s in directions + results)
        kernel = self.spec(kernel)
        return DirectionLoop(name, self.inputs, kernel, directions, results,
                             tupled, doc, transpose, compressed,
                             self.spec("forward") if shaped_by_value else None,
                             block=None if compressed else self._block(kernel, count))

    def _block(self, kernel: FunctionSpec, count: int | None) -> FunctionSpec | None:
        """``kernel`` over a block of directions at once, for drivers that run blocks
        (codegen.native.driver): blocks of equal size, at most BLOCK_DIRECTIONS, within
        BLOCK_ELEMENTS per node, where they pay (see BLOCK_DIRECTIONS).  None for open
        counts or shapes, results that are lists, kernels with array parameters, and
        graphs with a node that has no batching rule."""
        parts = result_parts(kernel.result)
        if count is None or count < 2 or kernel.arrays or parts is None:
            return None
        directions = kernel.inputs[len(self.inputs):]
        varying, largest, products = set(directions), 1, False
        for node in topological_order(parts):
            if node in varying or any(a in varying for a in node.args):
                if has_open(node.shape) or not _one_call_per_block(node, varying):
                    return None
                varying.add(node)
                largest = max(largest, elements([node], None))
                products = products or node.op in ("matmul", "batch_matmul")
        size = min(count, BLOCK_DIRECTIONS, BLOCK_ELEMENTS // largest)
        if size < 2 or (count > BLOCK_DIRECTIONS and not products):
            return None
        size = -(-count // -(-count // size))  # equal blocks: ceil(count / blocks)
        stand_ins = tuple(internal_symbol(f"block{k}", d.shape + (size,))
                          for k, d in enumerate(directions))
        batched = with_batch_axis(parts, dict(zip(directions, stand_ins, strict=True)), size)
        if batched is None:
            return None
        return FunctionSpec(kernel.name + "_block", self.inputs + stand_ins,
                            optimize(restructure(kernel.result, iter(batched)),
                                     self.fast_math),
                            f"{kernel.doc}, {size} directions at once", (), False,
                            self.lowering)


def _one_call_per_block(node: Expr, varying: set) -> bool:
    """Whether ``node``, which reads the directions, stays one BLAS call or a view read
    in order over a block (symdiff.ops.structural's batching rules): a fixed matrix or
    vector times varying vectors or matrices, or varying vectors times a fixed matrix; a
    transpose of a varying vector.  Other products become fused loops, and permuted
    matrices are read across strides."""
    if node.op in ("transpose", "permute"):
        return node.ndim <= 1
    if node.op != "matmul":
        return True
    a, b = node.args
    if a not in varying:
        return True
    return b not in varying and a.ndim == 1 and b.ndim == 2


# Per method: (result graphs, doc, extra scalar/array arguments, flat array parameters).
def _forward(d: Derivation):
    return d.value(), "value f(x)", (), ()


def _grad(d: Derivation):
    g = d.gradient_structure(grad(d.outputs[0], d.wrt, simplify=False))
    return g, "gradient", (), ()


def _value_and_grad(d: Derivation):
    g = d.gradient_structure(grad(d.outputs[0], d.wrt, simplify=False))
    return (d.outputs[0], g), "(value, gradient) in one pass", (), ()


def _hessian(d: Derivation):
    return hessian(d.outputs[0], d.wrt, simplify=False), "Hessian", (), ()


def _hvp(d: Derivation):
    directions, extra, arrays = d.per_variable("direction", "_direction")
    result = d.gradient_structure(hvp(d.outputs[0], d.wrt, list(directions), simplify=False))
    return result, "Hessian-vector product H @ direction", extra, arrays


def _jacobian(d: Derivation):
    return jacobian(list(d.outputs), d.wrt, simplify=False), "Jacobian", (), ()


def _vjp(d: Derivation):
    outs, extra, arrays = d.outputs, (), ()
    if len(outs) > 1:
        cts = tuple(internal_symbol(f"ct{k}") for k in range(len(outs)))
        arrays = (ArrayParam("_cotangent", cts),)
    else:
        cts = extra = (internal_symbol("cotangent", outs[0].shape),)
    gradients = reverse_mode(list(zip(outs, cts, strict=True)), d.wrt)
    return d.gradient_structure(gradients), "cotangent @ Jacobian", extra, arrays


def _jvp(d: Derivation):
    tangents, extra, arrays = d.per_variable("tangent", "_tangent")
    result = forward_mode(d.outputs, dict(zip(d.wrt, tangents, strict=True)))
    if not isinstance(d.value(), list):
        result = result[0]
    return result, "J @ tangent", extra, arrays


_DERIVERS = {"forward": _forward, "grad": _grad, "value_and_grad": _value_and_grad,
             "hessian": _hessian, "hvp": _hvp, "jacobian": _jacobian, "vjp": _vjp,
             "jvp": _jvp}
