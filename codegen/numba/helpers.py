"""Source of the small njit functions generated code calls (one definition each per
module, emitted once)."""

DECORATOR = '@numba.njit(error_model="numpy", cache=True)'
PARALLEL_DECORATOR = '@numba.njit(error_model="numpy", parallel=True, cache=True)'


def helper(name: str, params: str, body: list[str]) -> str:
    """``def name(params):`` with ``body`` (lines), as an njit function's source."""
    lines = "\n".join("    " + line for line in body)
    return f"{DECORATOR}\ndef {name}({params}):\n{lines}\n"
