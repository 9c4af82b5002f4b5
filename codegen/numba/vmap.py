"""A generated function that maps a one-point function over a batch axis (``fn.vmap``).

The driver takes the point function's parameters, some of them with one more (leading)
dimension: the batch.  It calls the point function on the batch's first point to learn
the shapes of the results, allocates one stacked array per result, and then fills them in
a ``prange`` over the points.  The source depends on which parameters are batched and on
how many dimensions each result has, never on sizes: one driver serves every batch size
and every point shape of the same rank.
"""

from __future__ import annotations

from ..spec import SCALAR_RESULT
from .helpers import PARALLEL_DECORATOR


def _leaves(layout, at: str) -> list[tuple[str, int]]:
    """(where in the result, rank) of every leaf."""
    if isinstance(layout, tuple):
        return [leaf for k, part in enumerate(layout) for leaf in _leaves(part, f"{at}[{k}]")]
    return [(at, layout)]


def _returned(layout, leaves: iter) -> str:
    if isinstance(layout, tuple):
        parts = [_returned(part, leaves) for part in layout]
        return f"({', '.join(parts)}{',' if len(parts) == 1 else ''})"
    return next(leaves)


def emit_vmap(name: str, point: str, params: list[str], batched: list[bool], layout) -> str:
    """Source of a driver ``name`` calling ``point`` at every point of the batch.

    ``params`` are the point function's parameter names, ``batched`` which of them carry
    the batch on their first axis; the caller checks that those agree in length and that
    the batch is not empty.
    """
    first = params[batched.index(True)]

    def arguments(p: str) -> str:
        return ", ".join(f"{q}[{p}]" if b else q for q, b in zip(params, batched, strict=True))

    leaves = _leaves(layout, "_r")
    lines = [f"_n = {first}.shape[0]", f"_r = {point}({arguments('0')})"]
    stores = []
    for k, (at, rank) in enumerate(leaves):
        if rank == SCALAR_RESULT:
            lines.append(f"_o{k} = np.empty(_n)")
            stores.append(f"_o{k}[_p] = {at}")
        else:
            # Element loops, not row assignment: Numba compiles a row assignment's
            # shape-mismatch machinery for seconds.
            lines += [f"_o{k} = np.empty((_n,) + {at}.shape)", f"_f{k} = _o{k}.reshape(_n, -1)"]
            stores += [f"_a{k} = {at}.ravel()", f"for _k in range(_a{k}.size):",
                       f"    _f{k}[_p, _k] = _a{k}[_k]"]
    lines.append("for _p in numba.prange(_n):")
    lines.append(f"    _r = {point}({arguments('_p')})")
    lines += ["    " + line for line in stores]
    lines.append("return " + _returned(layout, iter(f"_o{k}" for k in range(len(leaves)))))
    doc = f'    """{point} at every point of a batch, in parallel."""\n'
    return (f"{PARALLEL_DECORATOR}\ndef {name}({', '.join(params)}):\n{doc}"
            + "".join(f"    {line}\n" for line in lines))
