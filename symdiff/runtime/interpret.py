"""Run a generated function's graph on the reference evaluator, with the calling
convention of the compiled function: the first tier while Numba compiles in the
background (see CompiledFunction).

Same arguments, already checked and converted by the input contract (symdiff.runtime.inputs),
same result structure: floats for scalars, fresh float64 arrays for arrays and lists,
tuples kept.
"""

from __future__ import annotations

import math

import numpy as np

from codegen import run_direction_loop
from symdiff.ir.dims import resolve
from symdiff.ir.evaluate import evaluate
from symdiff.ir.nodes import OPS, Expr, flatten, topological_order

# What a first call costs, measured on the benchmarks' 2-core AMD EPYC (the workloads of
# benchmarks/first_call.py at several sizes).  The evaluator: seconds per scalar
# operation, per array operation, per element of an elementwise one's result (NumPy runs
# the scalar rule element by element) and of another's (a vectorized NumPy call), and per
# step of a loop besides its body's operations (each step evaluates the body afresh).
NODE_SECONDS = 1e-6
ARRAY_NODE_SECONDS = 8e-6
ELEMENT_SECONDS = 1.5e-7
VECTORIZED_ELEMENT_SECONDS = 1e-9
STEP_SECONDS = 1e-5
# Numba from scratch: a floor, per statement of the generated Python code (it types each
# one), per other line (LLVM assembly, which it only links).
COMPILE_SECONDS = 0.25
STATEMENT_SECONDS = 5e-3
LINE_SECONDS = 5e-5


def _structured(result, values):
    """The evaluated leaves of ``result`` (an iterator, in flatten order), shaped as the
    compiled function returns them."""
    if isinstance(result, Expr):
        value = next(values)
        return float(value) if not result.shape else np.array(value, dtype=np.float64)
    if isinstance(result, tuple):
        return tuple(_structured(part, values) for part in result)
    rows = list(result)
    if rows and isinstance(rows[0], list):
        return np.array([[float(next(values)) for _ in row] for row in rows], dtype=np.float64)
    return np.array([float(next(values)) for _ in rows], dtype=np.float64)


def interpreter(spec):
    """A Python callable computing ``spec`` (a codegen FunctionSpec, not batched) with the
    evaluator, from arguments the input contract has converted."""
    inputs, arrays = spec.inputs, spec.arrays
    leaves = flatten(spec.result)

    def call(*x):
        values = {sym.value: given for sym, given in zip(inputs, x, strict=False)}
        for param, given in zip(arrays, x[len(inputs):], strict=True):
            values.update((s.value, float(v)) for s, v in zip(param.symbols, given,
                                                             strict=True))
        with np.errstate(all="ignore"):
            computed = evaluate(leaves, values)
        return _structured(spec.result, iter(computed))

    return call


def loop_interpreter(loop, count: int):
    """A DirectionLoop on the evaluator: the loop in Python over the evaluator's kernel
    (the first tier); ``count`` arguments come before the directions' seeds."""
    kernel, forward = (None if s is None else interpreter(s) for s in (loop.kernel, loop.forward))

    def call(*x):
        return run_direction_loop(loop, kernel, forward, x[:count], x[count:])

    return call


def _evaluator_work(roots, batch: int, bodies: dict) -> float:
    """The evaluator's seconds for the graph under ``roots``: a loop counts its body once
    per step (``bodies`` keeps each body's figure, by id)."""
    seconds = 0.0
    for node in topological_order(roots):
        if not node.args:
            continue
        if node.shape:
            size = math.prod(max(resolve(d, batch), 0) for d in node.shape)
            seconds += ARRAY_NODE_SECONDS + size * (
                ELEMENT_SECONDS if OPS[node.op].elementwise else VECTORIZED_ELEMENT_SECONDS)
        else:
            seconds += NODE_SECONDS
        if node.op not in ("scan", "while"):
            continue
        body = node.value[0]
        if id(body) not in bodies:
            inner = [body.cond] if node.op == "while" else list(body.ys)
            bodies[id(body)] = _evaluator_work(inner + list(body.new_carries), batch, bodies)
        # A while loop's trip count is known only once it has run.
        steps = (math.inf if node.op == "while"
                 else max(resolve(node.args[len(body.carries)].shape[0], batch), 0))
        seconds += steps * (STEP_SECONDS + bodies[id(body)]) if steps else 0.0
    return seconds


def first_call_seconds(spec, source: str, batch: int | None,
                       directions: int = 0) -> tuple[float, float]:
    """(evaluator, compile): the estimated seconds for the evaluator to answer one call of
    ``spec`` (a FunctionSpec, or a DirectionLoop making ``directions`` products) with the
    open dimension ``batch`` long, and for Numba to compile its ``source`` from scratch.

    The evaluator's figure counts what it will do: every operation, array operations by
    the elements of their results, loop bodies once per step (nested loops multiply), a
    dense Hessian or Jacobian as ``directions`` products; a while loop's length is
    unknown before it runs, so with one the figure is infinite.  The compile's counts
    the generated code, whose size does not depend on array sizes or trip counts.  Both
    are rough: within 2x of the measured times on most of those workloads, 3x on all."""
    batch, bodies = batch or 0, {}
    kernel = getattr(spec, "kernel", None)
    if kernel is None:
        evaluating = _evaluator_work(flatten(spec.result), batch, bodies)
    else:  # a loop over directions: the kernel per direction, the value once
        evaluating = directions * _evaluator_work(flatten(kernel.result), batch, bodies)
        if spec.forward is not None:
            evaluating += _evaluator_work(flatten(spec.forward.result), batch, bodies)
    lines = source.splitlines()
    statements = sum(1 for line in lines if line.startswith("    "))
    return evaluating, (COMPILE_SECONDS + STATEMENT_SECONDS * statements
                        + LINE_SECONDS * (len(lines) - statements))
