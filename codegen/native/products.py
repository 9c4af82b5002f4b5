"""Matrix products of the native lowering (mixin of codegen.native.arrays.ArrayBody):
products with a vector as loops, in the Numba lowering's order of additions (so the two
agree bit for bit), and matrix-matrix products through BLAS's dgemm (SciPy's, the one
NumPy and Numba call), by its C entry point: no per-layout specialization to compile."""

from __future__ import annotations

from symdiff.ir.nodes import Expr

from .views import whole


class Products:
    """Mixin: ``product(node)`` for a matmul node."""

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
                code.write(self.dot(lambda k: self.arithmetic(
                    "fmul", element(i, k), self._at(vector, k)), n), out, i)
            return
        with code.nest((m,)) as (i,):  # a scaled column added per k
            code.write(code.constant(0.0), out, i)
        with code.nest((n,)) as (k,):
            scale = self._at(vector, k)
            with code.nest((m,)) as (i,):
                code.add_to(out, i, self.arithmetic("fmul", scale, element(i, k)))

    def _blas_operand(self, node: Expr) -> tuple[str, str, str]:
        """(data pointer, ld, 'N' or 'T') of a matrix operand for dgemm seen from C order:
        'N' for a C-ordered matrix (ld: its row length), 'T' for the transpose of one
        (ld: its column count); anything else is copied C-ordered first."""
        view, code = self.views.get(node), self.code
        if view is not None and view.contiguous:
            return code.at(view.base, view.offset), view.strides[0], "N"
        # Column-major contiguous (a transposed C-ordered matrix): read from this view's
        # own strides, never from the operand's view, which a copy may have replaced.
        rows = code.dim(node.shape[0])
        if view is not None and view.strides[0] == "1" and view.strides[1] == rows:
            return code.at(view.base, view.offset), rows, "T"
        self.copy(node)
        view = self.views[node]
        return view.base, view.strides[0], "N"

    def gemm(self, node: Expr) -> None:
        """C = A @ B by dgemm on the transposed problem: BLAS is column-major, and a
        C-ordered matrix is its transpose there, so C^T = B^T A^T."""
        a, b = node.args
        code = self.code
        self.blas = True
        (m, k), n = a.shape, b.shape[1]
        a_data, a_ld, a_trans = self._blas_operand(a)
        b_data, b_ld, b_trans = self._blas_operand(b)
        out = self.buffer(node)
        self.views[node] = whole(code, out, node.shape)
        slots = []
        for kind, value in [("i8", f"{ord(b_trans)}"), ("i8", f"{ord(a_trans)}"),
                            ("size", code.dim(n)), ("size", code.dim(m)),
                            ("size", code.dim(k)), ("double", code.constant(1.0)),
                            ("ptr", b_data), ("ld", b_ld), ("ptr", a_data), ("ld", a_ld),
                            ("double", code.constant(0.0)), ("ptr", out), ("ld", code.dim(n))]:
            if kind == "ptr":
                slots.append(value)
                continue
            if kind == "ld":  # a leading dimension is at least 1, even of an empty matrix
                value = code.extreme("smax", value, "1")
            if kind in ("ld", "size"):  # BLAS's ints (LP64)
                narrow = code.fresh()
                code.lines.append(f"{narrow} = trunc i64 {value} to i32")
                value, kind = narrow, "i32"
            slot = code.slot(kind)
            code.lines.append(f"store {kind} {value}, ptr {slot}")
            slots.append(slot)
        code.lines.append("call void @_sd_dgemm(" + ", ".join(f"ptr {s}" for s in slots)
                          + ")")
