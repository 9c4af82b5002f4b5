"""Full sums in the order of additions every lowering keeps (codegen.spec.LANES and
SUM_BLOCK), so the native and Numba lowerings agree bit for bit; mixin of
codegen.native.arrays.ArrayBody, used by its reductions and products with vectors."""

from __future__ import annotations

from symdiff.ir.dims import is_open

from ..llvm.elements import ELEMENTS
from ..spec import LANES, SUM_BLOCK

NEG_INF = "0xFFF0000000000000"  # -inf, a double in LLVM's hexadecimal form


class Sums:
    """Mixin: partial sums over index ranges of an element function."""

    def rounded_down(self, n: str) -> str:
        """n - n % LANES for a non-negative i64 n (folded for a number)."""
        if n.isdigit():
            return str(int(n) - int(n) % LANES)
        name = self.code.fresh()
        self.code.lines.append(f"{name} = and i64 {n}, {-LANES}")
        return name

    def arithmetic(self, op: str, a: str, b: str) -> str:
        """``a op b`` on doubles (fadd, fmul)."""
        name = self.code.fresh()
        self.code.lines.append(f"{name} = {op} double {a}, {b}")
        return name

    def pairwise(self, slots: list[str], combine: str = "fadd") -> str:
        """The partial results in ``slots`` combined pairwise: (s0 + s1) + (s2 + s3)."""
        values = [self.code.read(slot) for slot in slots]
        while len(values) > 1:
            values = [self.combined(combine, a, b)
                      for a, b in zip(values[::2], values[1::2], strict=True)]
        return values[0]

    def combined(self, combine: str, a: str, b: str) -> str:
        """``a combine b``: an instruction (fadd), or a helper call template."""
        if "{" not in combine:
            return self.arithmetic(combine, a, b)
        name = self.code.fresh()
        self.code.lines.append(f"{name} = {combine.format(a, b)}")
        return name

    def lanes(self, term, start: str, count: str, rest: str | None = None,
              combine: str = "fadd", first: str | None = None) -> list[str]:
        """LANES partial results (stack slots, from ``first``: 0.0 by default) of
        ``term(i)`` over the first ``count - count % LANES`` indices from ``start``; the
        remaining terms go one by one into the slot ``rest`` (by default the first
        partial result)."""
        code = self.code
        slots = [code.accumulator(first or code.constant(0.0)) for _ in range(LANES)]
        main = code.integer("add", start, self.rounded_down(count))
        with code.loop(main, start=start, step=LANES) as i:
            for lane, slot in enumerate(slots):
                code.add_to(slot, "0", term(code.integer("add", i, str(lane))), combine)
        with code.loop(code.integer("add", start, count), start=main) as i:
            code.add_to(rest or slots[0], "0", term(i), combine)
        return slots

    def full_max(self, term, n) -> str:
        """The largest ``term(i)`` over an axis of length ``n``, in LANES running maxima
        (independent chains, about LANES times the throughput of one), NaN propagated.
        A maximum is exact, so any order gives the same value, but for which of -0.0 and
        0.0 a tie between them returns."""
        code = self.code
        combine = ELEMENTS["maximum"][0]
        total = code.accumulator(NEG_INF)
        slots = self.lanes(term, "0", code.dim(n), total, combine, NEG_INF)
        code.add_to(total, "0", self.pairwise(slots, combine), combine)
        return code.read(total)

    def full_sum(self, term, n, blocked: bool) -> str:
        """The sum of ``term(i)`` over an axis of length ``n``: one running sum below LANES
        terms; else LANES partial sums, the rest into the total, then the partial sums
        pairwise; ``blocked`` (a transcendental map): that for each block of SUM_BLOCK
        terms, computed into a buffer first (as the Numba lowering does)."""
        code = self.code
        count = code.dim(n)
        total = code.accumulator(code.constant(0.0))
        if not blocked and not is_open(n) and n < LANES:
            with code.loop(count) as i:
                code.add_to(total, "0", term(i))
            return code.read(total)
        if not blocked:
            code.add_to(total, "0", self.pairwise(self.lanes(term, "0", count, total)))
            return code.read(total)
        # Each block's terms first into a buffer (a map LLVM vectorizes at full width),
        # then added as above: 4.2x faster than the terms inside the partial sums.
        block = code.allocate(str(SUM_BLOCK))
        with code.loop(count, step=SUM_BLOCK) as b:
            size = code.extreme("smin", str(SUM_BLOCK), code.integer("sub", count, b))
            with code.loop(size) as i:
                code.write(term(code.integer("add", b, i)), block, i)
            code.add_to(total, "0", self.pairwise(self.lanes(lambda i: code.read(block, i),
                                                             "0", size, total)))
        return code.read(total)

    def dot(self, term, n) -> str:
        """The sum of ``term(k)`` over ``range(n)`` as a product with a vector adds it:
        four partial sums, the rest into the first, then pairwise (one sum below LANES
        terms)."""
        code = self.code
        count = code.dim(n)
        if not is_open(n) and n < LANES:
            total = code.accumulator(code.constant(0.0))
            with code.loop(count) as k:
                code.add_to(total, "0", term(k))
            return code.read(total)
        return self.pairwise(self.lanes(term, "0", count))
