"""Matrix products of the native lowering (mixin of codegen.native.arrays.ArrayBody):
products with a vector as loops, in the Numba lowering's order of additions (so the two
agree bit for bit), and matrix-matrix products (and stacks of them) through BLAS's dgemm
(SciPy's, the one NumPy and Numba call), by its C entry point: no per-layout
specialization to compile."""

from __future__ import annotations

from symdiff.ir.nodes import Expr

from .views import position, whole


class Products:
    """Mixin: ``product(node)`` for a matmul or batch_matmul node."""

    def product(self, node: Expr) -> None:
        a, b = node.args
        if a.ndim == 2 and b.ndim == 2:
            self.gemm(node)
        else:
            self.matvec(node)

    def _at(self, node: Expr, *indices: str) -> str:
        """The element of an operand (a matrix or vector) at ``indices``."""
        return self.element(node, node.shape, list(indices), {})

    def matvec(self, node: Expr) -> None:
        """A product with a vector operand: dot products along contiguous rows, or
        scaled columns added (a transposed matrix read in place)."""
        a, b = node.args
        code = self.code
        if a.ndim == 1 and b.ndim == 1:
            self.scalars[node] = self.dot(lambda k: self.arithmetic("fmul", self._at(a, k),
                                                                     self._at(b, k)),
                                          a.shape[0])
            return
        if a.ndim == 2:  # out[i] = sum_k a[i, k] v[k]
            (m, n), vector, row_major = a.shape, b, a.op != "transpose"

            def element(i, k):
                return self._at(a, i, k)
        else:  # out[i] = sum_k v[k] b[k, i]
            (n, m), vector, row_major = b.shape, a, b.op == "transpose"

            def element(i, k):
                return self._at(b, k, i)
        out = self.buffer(node)
        self.views[node] = whole(code, out, node.shape)
        if row_major:  # each output a dot product along contiguous memory
            with code.nest((m,)) as (i,):
                # Across rows LLVM would vectorize by gathers of stride n (slower on this
                # machine than the dot products' scalar lanes: P4's MLP 1.66 -> 1.82 us).
                code.scalar_loops |= code.depth > 0
                code.write(self.dot(lambda k: self.arithmetic(
                    "fmul", element(i, k), self._at(vector, k)), n), out, i)
            return
        with code.nest((m,)) as (i,):  # a scaled column added per k
            code.write(code.constant(0.0), out, i)
        with code.nest((n,)) as (k,):
            scale = self._at(vector, k)
            with code.nest((m,)) as (i,):
                code.add_to(out, i, self.arithmetic("fmul", scale, element(i, k)))

    def _layout(self, node: Expr) -> tuple[str, str] | None:
        """(ld, 'N' or 'T') of the matrices (last two axes) of an operand's view, seen
        from C order as dgemm takes them: 'N' where a row's elements are adjacent (ld:
        the row stride), 'T' where a column's are (ld: the column stride); None where
        neither holds, or a stride could be below what BLAS accepts (a broadcast's 0)."""
        view = self.views.get(node)
        if view is None:
            return None
        rows, columns = node.shape[-2:]
        row_stride, column_stride = view.strides[-2:]
        for unit, ld, least, trans in ((column_stride, row_stride, columns, "N"),
                                       (row_stride, column_stride, rows, "T")):
            # BLAS takes 1 <= ld and least <= ld: a stride known to be so, a number or
            # the extent itself (a negative or other run-time stride: copied instead).
            known = ld.isdigit() and isinstance(least, int) and int(ld) >= max(1, least)
            if unit == "1" and (known or ld == self.code.dim(least)):
                return ld, trans
        return None

    def gemm(self, node: Expr) -> None:
        """C = A @ B by dgemm on the transposed problem: BLAS is column-major, and a
        C-ordered matrix is its transpose there, so C^T = B^T A^T.  Operands are read
        in place where their matrices' rows or columns are adjacent (else copied
        C-ordered first); a stack of products (batch_matmul) is one dgemm per matrix,
        in a loop over the stack."""
        a, b = node.args
        code = self.code
        self.blas = True
        layouts = {}
        for operand in (a, b):  # (one node as both operands: copied once)
            if self._layout(operand) is None:
                self.copy(operand)
            layouts[operand] = self._layout(operand)
        (m, k), n = a.shape[-2:], b.shape[-1]
        out = self.buffer(node)
        self.views[node] = whole(code, out, node.shape)
        sizes = [self._blas_int(code.dim(d), "size") for d in (n, m, k)]
        one, zero = (self._blas_value("double", code.constant(v)) for v in (1.0, 0.0))
        stack = node.shape[:-2]
        with code.nest(stack) as at:
            pointers = {}
            for operand in (a, b):
                view, (ld, trans) = self.views[operand], layouts[operand]
                start = position(code, view, operand.shape[:-2], stack, at)
                pointers[operand] = (code.at(view.base, start), ld, trans)
            (a_data, a_ld, a_trans), (b_data, b_ld, b_trans) = pointers[a], pointers[b]
            target = code.at(out, position(code, self.views[node], stack, stack, at))
            slots = [self._blas_value("i8", f"{ord(b_trans)}"),
                     self._blas_value("i8", f"{ord(a_trans)}"), *sizes, one, b_data,
                     self._blas_int(b_ld, "ld"), a_data, self._blas_int(a_ld, "ld"), zero,
                     target, self._blas_int(code.dim(n), "ld")]
            code.lines.append("call void @_sd_dgemm(" + ", ".join(f"ptr {s}" for s in slots)
                              + ")")

    def _blas_value(self, kind: str, value: str) -> str:
        """A stack slot holding ``value`` (BLAS takes every argument by pointer)."""
        slot = self.code.slot(kind)
        self.code.lines.append(f"store {kind} {value}, ptr {slot}")
        return slot

    def _blas_int(self, value: str, kind: str) -> str:
        """A slot of BLAS's int (LP64, 32 bits) holding a size or, at least 1 even for an
        empty matrix, a leading dimension."""
        code = self.code
        if kind == "ld":
            value = code.extreme("smax", value, "1")
        narrow = code.fresh()
        code.lines.append(f"{narrow} = trunc i64 {value} to i32")
        return self._blas_value("i32", narrow)
