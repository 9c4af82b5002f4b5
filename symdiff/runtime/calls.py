"""The call path of compiled methods: the Numba dispatcher first, the input contract only
when it refuses the arguments, batches of points, captured data and Dask arrays."""

from __future__ import annotations

import numpy as np

from codegen.naming import parameter_names
from symdiff.runtime.chunked import call as chunked_call
from symdiff.runtime.inputs import Contract, dimensions, is_dask


def shaped(result, shape: tuple):
    """Batched results over flattened points laid out in the points' own shape (as a
    NumPy ufunc does): values take ``shape``, gradients ``shape + (n,)``."""
    if isinstance(result, tuple):
        return tuple(shaped(part, shape) for part in result)
    return result.reshape(shape + result.shape[1:])


def with_conversions(call, compiled, method: str, spec, checked: bool = False):
    """``call`` (a Numba dispatcher, or the interpreter with ``checked``) behind the input
    contract of symdiff.runtime.inputs: the dispatcher runs first and the arguments are checked
    and converted only when it refuses them; the interpreter always gets checked ones.
    For a function of scalars, array arguments select the parallel batched version;
    captured data (symdiff.passes.data) goes in after the caller's arguments; Dask arrays go to
    symdiff.runtime.chunked."""
    derivation = compiled.derivation
    contract = Contract.of(spec, parameter_names([s.value for s in spec.inputs]),
                           derivation.least_open)
    batchable = derivation.batches(method)
    dispatcher = call
    if derivation.data_values:  # the caller's arguments, then the captured data, then the rest
        count, data, inner = len(compiled.args), derivation.data_values, call
        del contract.slots[count:count + len(data)]

        def call(*x):
            return inner(*x[:count], *data, *x[count:])

    def converted(x):
        if any(is_dask(v) for v in x):
            return chunked_call(compiled, method, x)
        if batchable and len(x) == len(compiled.args) and any(dimensions(v)[0] for v in x):
            result = compiled.loader.compiled(method, batched=True)(*contract.points(x))
            shape = np.broadcast_shapes(*(np.shape(v) for v in x))
            return result if len(shape) == 1 else shaped(result, shape)
        return call(*contract.convert(x))

    if checked:
        def run(*x):
            return converted(x)
    else:
        def run(*x):
            try:
                return call(*x)
            except (TypeError, ValueError):  # Numba's "no matching definition", a shape
                pass
            return converted(x)

    run.__doc__ = getattr(type(compiled), method, call).__doc__
    run.dispatcher = dispatcher
    return run
