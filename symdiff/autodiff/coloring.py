"""Graph colorings that compress sparse Jacobians and Hessians, and their recovery maps.

Jacobians: a *column coloring* (distance-2 coloring of the bipartite row/column graph):
columns of one color share no row, so ``J @ seed_c`` (seed_c the indicator of color c)
holds each nonzero of those columns alone in its row: ``J[i, j] = (J @ seed_c(j))[i]``.

Hessians: a *star coloring* of the adjacency graph (Coleman and More 1984; Gebremedhin,
Manne and Pothen, "What color is your Jacobian?", SIAM Review 2005): a distance-1
coloring in which every path on four vertices uses at least three colors.  It exploits
symmetry: for every nonzero H[i, j], either j is the only column of its color in row i
(read it from ``(H @ seed_c(j))[i]``) or i is the only one of its color in row j (read
``(H @ seed_c(i))[j]``).  A tridiagonal Hessian needs 3 colors and a column coloring of
it 3 as well; an arrowhead (one dense row and column) needs 2 instead of n.

Both are greedy (each vertex gets the smallest color the rule allows) over several vertex
orders (natural, largest degree first, reverse Cuthill-McKee, and for Jacobians the
dynamic saturation order of DSATUR), keeping the one with the fewest colors.  The loops
are compiled by Numba (cached on disk), so coloring 10^6 columns takes well under a
second.  ``gather`` says where each stored nonzero of the CSR pattern is found, in the
(seeds x rows) products, each seed's row of products after the other's: at ``c * rows
+ r`` for row r of seed c (a nonzero's own row: recovery is direct), or, past every
product, at ``count * rows + k`` for a Hessian nonzero H[i, j] read by symmetry, which
is nonzero k (H[j, i]) of the same pattern, itself read directly.  The rows of direct
positions never go back along the pattern, so a native driver that computes the
products a tile of 2^TILE_BITS rows at a time (codegen.native.compressed) gathers a
tile's nonzeros while it is in cache; it takes ``tiled_gather``, the same positions in
its tiles.  The positions are uint32 (half the bytes of int64: at 10^6 columns the
gather reads 3 million of them per call), so the products' positions (in either
layout) plus the nonzeros must stay below 2^32; larger ones raise ColoringTooLarge.
"""

from __future__ import annotations

import hashlib
import heapq
from dataclasses import dataclass, replace

import numba
import numpy as np

from symdiff.errors import SymdiffError


@dataclass(frozen=True)
class Coloring:
    """A coloring of a sparse pattern's columns and what compressed evaluation needs.

    ``colors[j]`` is column j's color; ``count`` the number of colors (= the number of
    Jacobian- or Hessian-vector products per evaluation); ``seeds`` the (count x n) 0/1
    directions; ``gather`` where each stored nonzero of ``pattern`` (CSR order) is found
    (uint32; see the module): a row and a seed of the products, or another nonzero;
    ``kind`` "column" or "star".
    """

    pattern: object
    colors: np.ndarray
    count: int
    seeds: np.ndarray
    gather: np.ndarray
    kind: str

    def __repr__(self):
        n = self.pattern.shape[1]
        return (f"<{self.kind} coloring: {self.count} colors for {n} columns, "
                f"{self.pattern.nnz} nonzeros>")


def copied(coloring: Coloring) -> Coloring:
    """``coloring`` with copies of its pattern and arrays (what users are given: the
    cached one's arrays are what every sparse evaluation reads)."""
    return replace(coloring, pattern=coloring.pattern.copy(), colors=coloring.colors.copy(),
                   seeds=coloring.seeds.copy(), gather=coloring.gather.copy())


# Gather positions are uint32: products and nonzeros of more numbers cannot be gathered.
MAX_PRODUCTS = 2 ** 32 - 1


# A native driver that keeps the products in tiles (codegen.native.compressed) takes
# the gather positions in its tiles of 2^TILE_BITS rows (64).
TILE_BITS = 6


def seed_bits(count: int) -> int:
    """The bits of a tiled gather position that hold its seed, for ``count`` seeds."""
    return max(count - 1, 0).bit_length()


def tiles_end(count: int, rows: int) -> int:
    """The first tiled gather position past every tile of the products (those from it on
    name nonzeros)."""
    return (-(-rows >> TILE_BITS)) << (TILE_BITS + seed_bits(count))


def tiled_gather(coloring: Coloring) -> np.ndarray:
    """``coloring.gather`` as positions in tiles of rows: row r of seed c at ``((r >>
    TILE_BITS) << (TILE_BITS + bits)) | (c << TILE_BITS) | (r mod 2^TILE_BITS)`` (each
    tile holds all seeds' rows of it, room for ``2^bits`` seeds), past every tile the
    nonzero to copy."""
    rows, count = coloring.pattern.shape[0], coloring.count
    places = coloring.gather.astype(np.int64)
    direct = places < count * rows
    row, seed = places % max(rows, 1), places // max(rows, 1)
    bits, low = seed_bits(count), (1 << TILE_BITS) - 1
    tiled = ((row >> TILE_BITS) << (TILE_BITS + bits)) | (seed << TILE_BITS) | (row & low)
    places = np.where(direct, tiled, places - count * rows + tiles_end(count, rows))
    return places.astype(np.uint32)  # (in range: see _positions)


class ColoringTooLarge(SymdiffError, ValueError):
    """The products of a coloring have more numbers than uint32 gather positions reach."""


def _positions(gather: np.ndarray, count: int, rows: int) -> np.ndarray:
    """``gather`` (positions in the (count x rows) products, then of nonzeros) as
    uint32."""
    end = max(count * rows, tiles_end(count, rows))  # (by seed, or in tiles)
    if end + len(gather) > MAX_PRODUCTS:
        raise ColoringTooLarge(
            f"{count} colors x {rows} rows and {len(gather)} nonzeros: more than the "
            f"{MAX_PRODUCTS} positions of a sparse evaluation's gather (uint32); use the "
            "matrix-free products (hvp, jvp, vjp) instead")
    return gather.astype(np.uint32)


@numba.njit  # (cached beside this file by the runtime: codegen.numba_cache)
def _smallest_free(forbidden, mark):  # pragma: no cover - njit
    """The smallest color not marked as forbidden for the vertex ``mark``."""
    c = 0
    while forbidden[c] == mark:
        c += 1
    return c


@numba.njit  # (cached beside this file by the runtime: codegen.numba_cache)
def _column_coloring(indptr, indices, t_indptr, t_indices, order):  # pragma: no cover - njit
    n = len(t_indptr) - 1
    color = np.full(n, -1, dtype=np.int64)
    forbidden = np.full(n + 1, -1, dtype=np.int64)
    for j in order:
        for p in range(t_indptr[j], t_indptr[j + 1]):
            i = t_indices[p]
            for q in range(indptr[i], indptr[i + 1]):
                k = indices[q]
                if color[k] >= 0:
                    forbidden[color[k]] = j
        color[j] = _smallest_free(forbidden, j)
    return color


@numba.njit  # (cached beside this file by the runtime: codegen.numba_cache)
def _saturation_coloring(indptr, indices):  # pragma: no cover - njit
    # DSATUR (Brelaz 1979) on a graph given by its adjacency: color next the vertex whose
    # neighbors show the most distinct colors (ties: the most neighbors), from a heap of
    # (-saturation, -degree, vertex) with stale entries skipped.  On the columns of a
    # five-point stencil it finds 5 colors where the static orders stop at 7.
    n = len(indptr) - 1
    color = np.full(n, -1, dtype=np.int64)
    saturation = np.zeros(n, dtype=np.int64)
    forbidden = np.full(n + 1, -1, dtype=np.int64)
    heap = [(np.int64(0), -(indptr[v + 1] - indptr[v]), np.int64(v)) for v in range(n)]
    heapq.heapify(heap)
    while heap:
        key, _, v = heapq.heappop(heap)
        if color[v] >= 0 or -key != saturation[v]:
            continue
        for p in range(indptr[v], indptr[v + 1]):
            if color[indices[p]] >= 0:
                forbidden[color[indices[p]]] = v
        c = _smallest_free(forbidden, v)
        color[v] = c
        for p in range(indptr[v], indptr[v + 1]):
            u = indices[p]
            if color[u] >= 0:
                continue
            seen = False  # does u already see color c on another neighbor?
            for q in range(indptr[u], indptr[u + 1]):
                w = indices[q]
                if w != v and color[w] == c:
                    seen = True
                    break
            if not seen:
                saturation[u] += 1
                heapq.heappush(heap, (-saturation[u], -(indptr[u + 1] - indptr[u]),
                                      np.int64(u)))
    return color


@numba.njit  # (cached beside this file by the runtime: codegen.numba_cache)
def _star_coloring(indptr, indices, order):  # pragma: no cover - njit
    # indptr/indices: the adjacency graph (off-diagonal nonzeros, symmetric).  Coloring v
    # must not create a two-colored path on four colored vertices: with v at an end
    # (v-w-x-y: color(v) = color(x), color(w) = color(y)) or inside (u-v-w-x: color(u) =
    # color(w), color(v) = color(x)), and no neighbor may share v's color.
    n = len(indptr) - 1
    color = np.full(n, -1, dtype=np.int64)
    forbidden = np.full(n + 1, -1, dtype=np.int64)
    seen = np.full(n + 1, -1, dtype=np.int64)  # seen[c] == v: a neighbor of v has color c
    twice = np.full(n + 1, -1, dtype=np.int64)  # twice[c] == v: two neighbors have it
    for v in order:
        for p in range(indptr[v], indptr[v + 1]):
            w = indices[p]
            c = color[w]
            if c >= 0:
                forbidden[c] = v
                if seen[c] == v:
                    twice[c] = v
                seen[c] = v
        for p in range(indptr[v], indptr[v + 1]):
            w = indices[p]
            cw = color[w]
            if cw < 0:
                continue
            for q in range(indptr[w], indptr[w + 1]):
                x = indices[q]
                cx = color[x]
                if x == v or cx < 0:
                    continue
                if twice[cw] == v:  # u-v-w-x with color(u) = color(w)
                    forbidden[cx] = v
                    continue
                for r in range(indptr[x], indptr[x + 1]):  # v-w-x-y, color(y) = color(w)
                    y = indices[r]
                    if y != w and color[y] == cw:
                        forbidden[cx] = v
                        break
        color[v] = _smallest_free(forbidden, v)
    return color


@numba.njit  # (cached beside this file by the runtime: codegen.numba_cache)
def _star_recovery(indptr, indices, color, count):  # pragma: no cover - njit
    # For each nonzero p = (i, j): row i of the product with seed color(j) when j is
    # alone with its color in row i, else the nonzero (j, i), read that way (i alone
    # with its color in row j).  -1 marks a nonzero neither recovers.
    n = len(indptr) - 1
    gather = np.empty(len(indices), dtype=np.int64)
    hits = np.zeros(count, dtype=np.int64)
    for i in range(n):
        for p in range(indptr[i], indptr[i + 1]):
            hits[color[indices[p]]] += 1
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if hits[color[j]] == 1:
                gather[p] = color[j] * n + i
            else:
                gather[p] = -1
        for p in range(indptr[i], indptr[i + 1]):
            hits[color[indices[p]]] = 0
    for i in range(n):
        for p in range(indptr[i], indptr[i + 1]):
            if gather[p] >= 0:
                continue
            j = indices[p]
            mirror = -1
            for q in range(indptr[j], indptr[j + 1]):
                if indices[q] == i:
                    mirror = q
            # H[i, j] = H[j, i], read directly in row j when i is alone with its color.
            if mirror >= 0 and gather[mirror] == color[i] * n + j:
                gather[p] = count * n + mirror
    return gather


def _orders(graph) -> list[np.ndarray]:
    """Vertex orders to try: natural, largest degree first, and reverse Cuthill-McKee
    (bandwidth-reducing: banded structures in any numbering color like a band)."""
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    degrees = np.diff(graph.indptr)
    natural = np.arange(len(degrees), dtype=np.int64)
    largest_first = np.argsort(-degrees, kind="stable").astype(np.int64)
    banded = reverse_cuthill_mckee(scipy_csr(graph), symmetric_mode=True).astype(np.int64)
    return [natural, largest_first, banded]


def scipy_csr(pattern):
    """``pattern`` as a scipy csr_matrix (what csgraph takes)."""
    import scipy.sparse

    return scipy.sparse.csr_matrix(pattern)


def _arrays(csr):
    """A CSR pattern's index arrays as int64 (what the compiled loops take)."""
    return csr.indptr.astype(np.int64), csr.indices.astype(np.int64)


def _fewest(colorings: list[np.ndarray]) -> np.ndarray:
    """The coloring with the fewest colors (the first of equals)."""
    return min(colorings, key=lambda colors: colors.max(initial=-1))


def _seeds(colors: np.ndarray, count: int) -> np.ndarray:
    seeds = np.zeros((count, len(colors)))
    seeds[colors, np.arange(len(colors))] = 1.0
    return seeds


def canonical(pattern):
    """``pattern`` as a boolean csr_array with sorted indices (what the colorings take,
    and what their keys are digests of)."""
    import scipy.sparse

    csr = scipy.sparse.csr_array(pattern, dtype=bool)
    csr.sort_indices()
    return csr


# Part of every coloring's key: bump it when the greedy rules or the recovery change.
RULES_VERSION = 2


def coloring_key(kind: str, csr) -> str:
    """A name for the coloring of the canonical pattern ``csr`` for ``kind`` ("hessian":
    star, "jacobian": column): a digest of the pattern and of these rules."""
    digest = hashlib.sha256(f"{kind} {RULES_VERSION} {csr.shape}".encode())
    digest.update(csr.indptr.astype(np.int64).tobytes())
    digest.update(csr.indices.astype(np.int64).tobytes())
    return "coloring_" + digest.hexdigest()[:32]


def color(kind: str, csr) -> Coloring:
    """The coloring of ``kind`` ("hessian" or "jacobian") of a canonical pattern."""
    return color_hessian(csr) if kind == "hessian" else color_jacobian(csr)


def coloring_bytes(coloring: Coloring) -> bytes:
    """What ``stored_coloring`` reads back: the count, the colors and the gather positions."""
    head = np.array([coloring.count, len(coloring.colors), len(coloring.gather)], np.int64)
    return b"".join(a.astype(np.int64).tobytes()
                    for a in (head, coloring.colors, coloring.gather))


def stored_coloring(kind: str, csr, data: bytes) -> Coloring | None:
    """The coloring of ``csr`` written as ``coloring_bytes``; None where ``data`` does not
    fit the pattern (too short, colors or positions out of range)."""
    values = np.frombuffer(data, np.int64) if len(data) % 8 == 0 else np.empty(0, np.int64)
    rows, n = csr.shape
    if len(values) != 3 + n + csr.nnz or tuple(values[1:3]) != (n, csr.nnz):
        return None
    count = int(values[0])
    colors, gather = values[3:3 + n].copy(), values[3 + n:].copy()
    if (0 <= count <= n and colors.min(initial=0) >= 0 and colors.max(initial=-1) < count
            and _recovers(csr, colors, gather, count)):
        return Coloring(csr, colors, count, _seeds(colors, count),
                        _positions(gather, count, rows),
                        "star" if kind == "hessian" else "column")
    return None


def _recovers(csr, colors: np.ndarray, gather: np.ndarray, count: int) -> bool:
    """Whether ``gather`` reads each nonzero (i, j) of ``csr`` at row i of the product
    with seed colors[j], j alone with its color in row i, or copies its mirror (j, i)
    read so (the other stays to the compressed evaluation: that the products hold the
    nonzero)."""
    rows = csr.shape[0]
    own = np.repeat(np.arange(rows, dtype=np.int64), np.diff(csr.indptr))
    seen = colors[csr.indices] if csr.nnz else np.zeros(0, np.int64)
    _, where, shared = np.unique(own * max(count, 1) + seen, return_inverse=True,
                                 return_counts=True)
    end = count * rows
    direct = (gather >= 0) & (gather < end)
    read = gather[direct]
    copied = gather[~direct] - end
    if not ((read % max(rows, 1) == own[direct]).all()
            and (read // max(rows, 1) == seen[direct]).all()
            and (shared[where][direct] == 1).all()
            and (copied >= 0).all() and (copied < len(gather)).all()):
        return False
    # (a copy's nonzero is its mirror, itself read directly)
    return bool(direct[copied].all() and (own[copied] == csr.indices[~direct]).all()
                and (csr.indices[copied] == own[~direct]).all())


# Past this density, or this much work for the greedy colorings (their two-hop searches
# visit the sum of squared row degrees: about 0.1 us each on a band, measured; a dense
# pattern of 400 columns took a minute) where it is also past WORK_PER_NONZERO steps per
# nonzero (hubs: an arrowhead's grows as n per nonzero), coloring costs more than it can
# save: every column gets a color of its own, and the sparse evaluation is the dense one,
# one product per column.  A pattern of bounded rows (a stencil, a band) is colored at
# any size: its work grows as its nonzeros, and one product per column would cost n
# times more at every call.  (Colorings are cached on disk: the work is paid once.)
DENSE_FRACTION = 0.25
COLORING_WORK = 10 ** 8
WORK_PER_NONZERO = 64
# The saturation coloring of columns runs only on sharing graphs whose squared degrees
# sum to at most this: its work (each vertex colored checks its neighbors' neighbors).
# The Bratu stencil at 10^6 columns: 1.4e8, 1.4 s, 5 colors where the greedy orders find
# 7; an arrowhead of 2,000 columns: 8e9 (4.5 s, and 18 s at 9 million edges), for no
# fewer colors than the greedy orders.  (A bound on edges, 1e6, gave up 5 colors for 7
# from n = 10^5 on.)
SATURATION_WORK = 2 * 10 ** 8


def _squared_degrees(csr) -> float:
    """The sum of the squared row degrees: the two-hop steps a coloring of ``csr`` takes."""
    degrees = np.diff(csr.indptr).astype(np.float64)
    return float(degrees @ degrees)


def _not_worth_coloring(csr) -> bool:
    rows, columns = csr.shape
    work = _squared_degrees(csr)
    return csr.nnz > DENSE_FRACTION * rows * columns or (
        work > COLORING_WORK and work > WORK_PER_NONZERO * csr.nnz)


def color_jacobian(pattern) -> Coloring:
    """A column coloring of an (m x n) pattern for compressed forward-mode evaluation
    (one color per column where the pattern is too dense to be worth coloring)."""
    csr = canonical(pattern)
    if not csr.nnz:  # nothing to find (no columns, or all zero): one color at most
        return _column_coloring_of(csr, np.zeros(csr.shape[1], dtype=np.int64))
    if _not_worth_coloring(csr):
        return _column_per_color(csr)
    csc = canonical(csr.T)  # the columns' rows
    sharing = canonical(csc @ csr)  # columns that share a row: they need different colors
    sharing.setdiag(False)
    sharing.eliminate_zeros()
    candidates = [_column_coloring(*_arrays(csr), *_arrays(csc), order)
                  for order in _orders(sharing)]
    if _squared_degrees(sharing) <= SATURATION_WORK:  # (it grows faster than the greedy orders)
        candidates.append(_saturation_coloring(*_arrays(sharing)))
    return _column_coloring_of(csr, _fewest(candidates))


def _column_coloring_of(csr, best: np.ndarray) -> Coloring:
    count = int(best.max(initial=-1)) + 1
    rows = np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr))
    gather = best[csr.indices] * csr.shape[0] + rows
    return Coloring(csr, best, count, _seeds(best, count),
                    _positions(gather, count, csr.shape[0]), "column")


def _column_per_color(csr) -> Coloring:
    return _column_coloring_of(csr, np.arange(csr.shape[1], dtype=np.int64))


def color_hessian(pattern) -> Coloring:
    """A star coloring of a symmetric (n x n) pattern for compressed Hessian-vector
    products with direct (symmetric) recovery (one color per column where the pattern is
    too dense to be worth coloring)."""
    import scipy.sparse

    csr = canonical(pattern)
    if csr.shape[0] != csr.shape[1] or (csr != csr.T).nnz:
        raise ValueError("a Hessian pattern must be square and symmetric")
    if not csr.nnz:  # nothing to find (no columns, or all zero): one color at most
        best = np.zeros(csr.shape[0], dtype=np.int64)
    elif _not_worth_coloring(csr):
        best = np.arange(csr.shape[0], dtype=np.int64)  # a star coloring, trivially
    else:
        off = csr - scipy.sparse.diags_array(csr.diagonal(), format="csr", dtype=bool)
        graph = canonical(off)
        graph.eliminate_zeros()
        orders = _orders(graph)
        # Distance-2 colorings (columns that share a row differ) are star colorings
        # whose every nonzero is read directly: first, so that they win ties (a
        # tridiagonal pattern takes 3 colors either way), and no nonzero is a copy.
        best = _fewest([_column_coloring(*_arrays(csr), *_arrays(csr), order)
                        for order in orders]
                       + [_star_coloring(*_arrays(graph), order) for order in orders])
    count = int(best.max(initial=-1)) + 1
    gather = _star_recovery(*_arrays(csr), best, count)
    if len(gather) and gather.min() < 0:  # pragma: no cover - would be a coloring bug
        raise AssertionError("star coloring does not recover every nonzero")
    return Coloring(csr, best, count, _seeds(best, count),
                    _positions(gather, count, csr.shape[0]), "star")
