"""Products with a vector as loops (mixin of codegen.numba.arrays.ArrayEmitter): as fast
as BLAS at these sizes, and Numba compiles a loop in milliseconds where its np.dot costs
0.5-1 s per function."""

from __future__ import annotations

from symdiff.ir.dims import is_open
from symdiff.ir.nodes import Expr

from ..naming import extent


def is_matvec(node: Expr) -> bool:
    """Whether ``node`` is a product with a vector (a loop here: a transposed matrix
    operand is read in place, never by its own name)."""
    return node.op == "matmul" and min(a.ndim for a in node.args) == 1


def _for(index: str, count, body) -> list[str]:
    """``body(index)`` (lines) in a loop over ``range(count)``; no loop for a static count
    of 1: ``body("0")``."""
    if count == 1:
        return body("0")
    return [f"for {index} in range({extent(count)}):"] + ["    " + line for line in body(index)]


class Products:
    """Mixin: matrix-vector and vector-vector products."""

    def matvec(self, node: Expr, name: str) -> None:
        """``name = node`` for a matmul with a 1-D operand."""
        a, b = node.args
        if a.ndim == 1 and b.ndim == 1:
            u, v = self.array(a), self.array(b)
            self.lines += self._dot(name, lambda k: f"{u}[{k}] * {v}[{k}]", a.shape[0])
            return
        if a.ndim == 2:  # out[i] = sum_k a[i, k] v[k]
            (m, n), vector, row_major = a.shape, b, a.op != "transpose"

            def element(i, k):
                return self._matrix_element(a, i, k)
        else:  # out[i] = sum_k v[k] b[k, i]
            (n, m), vector, row_major = b.shape, a, b.op == "transpose"

            def element(i, k):
                return self._matrix_element(b, k, i)
        v = self.array(vector)
        if row_major:  # each output a dot product along contiguous memory
            self.lines.append(f"{name} = np.empty(({extent(m)},)){self.comment(node)}")
            self.lines += _for("_i0", m, lambda i: self._dot(
                f"{name}[{i}]", lambda k: f"{element(i, k)} * {v}[{k}]", n))
        else:  # a scaled column added per k, along contiguous memory
            self.lines.append(f"{name} = np.zeros(({extent(m)},)){self.comment(node)}")
            self.lines += _for("_k", n, lambda k: [f"_vk = {v}[{k}]"] + _for(
                "_i0", m, lambda i: [f"{name}[{i}] += _vk * {element(i, k)}"]))

    def _matrix_element(self, matrix: Expr, row: str, column: str) -> str:
        if matrix.op == "transpose":  # read the original in place
            return f"{self.array(matrix.args[0])}[{column}, {row}]"
        return f"{self.array(matrix)}[{row}, {column}]"

    @staticmethod
    def _dot(target: str, term, n) -> list[str]:
        """Lines computing ``target = sum_k term(k)`` with four partial sums: independent
        chains the CPU overlaps, where one running sum waits on every addition (and LLVM
        may not reassociate it without fast-math)."""
        if not is_open(n) and n < 4:  # too short for four sums: one
            return ["_s0 = 0.0"] + _for("_k", n, lambda k: [f"_s0 += {term(k)}"]) + [
                f"{target} = _s0"]
        main = f"{extent(n)} - {extent(n)} % 4" if is_open(n) else str(n - n % 4)
        short = not is_open(n) and n < 8  # loops that would run once: resolved
        if is_open(n) or n % 4 > 1 or n % 4 == 1 and not short:
            rest = [f"for _k in range({main}, {extent(n)}):", f"    _s0 += {term('_k')}"]
        else:  # none left (as before), or one: no loop
            rest = [f"_s0 += {term(main)}"] if n % 4 else []
        if short:  # one step of four: no loop
            four = [f"_s{j} += {term(str(j))}" for j in range(4)]
        else:
            four = [f"for _k in range(0, {main}, 4):"] + [
                f"    _s{j} += {term('_k' if j == 0 else f'_k + {j}')}" for j in range(4)]
        return (["_s0 = 0.0", "_s1 = 0.0", "_s2 = 0.0", "_s3 = 0.0"] + four + rest
                + [f"{target} = (_s0 + _s1) + (_s2 + _s3)"])
