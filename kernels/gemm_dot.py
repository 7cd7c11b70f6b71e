"""The forward product of a narrow layer as dot products: Y (N, O) <- X (N, I) @ WT^T with both
operands read in place along k, for kernels/gemm.py's FORWARD task.

Why: the packed kernel there copies X into blocks of 6 rows before it multiplies (and WT into
strips of 2V columns), and a layer of O units multiplies each copied value only O times: at
O = 50 the copies cost about as much as a quarter of the multiply-adds, and the last strip
(50 columns on 16 lanes: 64 lanes of work) another fifth.  Here each element Y[n, o] is the
dot product of two contiguous rows, X[n, :] and WT[o, :]: nothing is copied or padded but the
last partial vector of k.  A tile of NR rows of X by 3 rows of WT sits in 12 vector
accumulators (every loaded vector used 2-4 times), summed lane by lane over k; then each
element's lanes are added up in a fixed tree.

The same bits on any vector width: an element is always summed in 32 bytes of lanes (8 in
float32), lane j over k = j, j + 8, ... in order (a short last group of k loaded masked, zeros
in both operands past I), then halves added until one lane is left.  With AVX2 that is one
vector per element (tile 4 rows x 3 units, `_tile_one`); with AVX-512 a vector holds two
units side by side, each row's 8 values of k in both halves against a pair of WT's rows
packed together (tile 4 rows x 6 units, `_tile_pairs`; summing 16 lanes per element on
AVX2 took two vectors per element, and its 2 x 3 tiles made the 3072 -> 50 forward 0.8x the
packed one's, measured).  So results are the same on AVX2 and AVX-512 machines, as the packed
kernel's are, and do not depend on the tile, part or thread that computes them.
They differ in the last bits from the packed kernel's, so which kernel a layer's forward takes
depends on its shape alone (`dot_form`), never on the batch: a row's prediction stays the
same in any batch.
"""
import numpy as np

from ._config import internal_kernel
from .simd import (VECTOR_BYTES, lanes, prefetch, vfma, vload, vload_dup, vload_dup_part,
                   vload_pair, vload_part, vstore, vsum, vsum_half, vzero)

PAIRS = VECTOR_BYTES == 64  # two units per vector (AVX-512), else one (AVX2)
NR, NO = 4, 6 if PAIRS else 3   # rows of X and units of WT per tile: 12 vector accumulators


@internal_kernel
def dot_form(I, O):
    """Whether the forward of a layer of I inputs and O units runs as dot products (else packed,
    gemm_packed.outer): below 128 units, from 224 inputs (from 64 at 16 units or fewer).
    Measured on 2 threads, znver4, float32, against the packed kernel (64-byte / 32-byte vectors):
    O = 50, batch 100, I = 3072 1.54x / 1.48x, I = 784 1.26x / 1.36x; batch 500, I = 3072 1.23x /
    1.18x; O = 10 1.32x / 1.35x; O = 100 1.20x / 1.28x; O = 120 (batch 500) 1.03x / 1.03x; with
    16-lane sums, O = 128 was 0.95x and O = 256-1024 0.81-0.95x: the packed kernel's copies are
    paid for by O multiply-adds each, the dot products' loads and lane sums are not.
    Few inputs turn that round: each element's lane sum and masked last vector of k are paid
    for by only I / 8 multiply-adds.  One thread, znver3, AVX2, batch 500 unless given, 15
    interleaved rounds, packed against dot products: I x O = 50 x 50 1.75x (1024 rows 1.84x,
    100 rows 1.22x, 32 1.10x, 16 0.98x), 100 x 100 1.82x, 64 x 120 1.73x, 50 x 30 1.53x, 100 rows
    of 30 x 20 1.14x and 10 x 10 1.11x, 128 x 50 1.11-1.22x, 160 x 50 1.15x, 192 x 50 1.06x,
    224 x 50 1.01x, 256 x 50 0.88x, 784 x 50 0.82-0.86x; at 10 units (one strip of 16 lanes,
    10 used) 50 x 10 0.98-1.04x, 100 x 10 0.88x, 128 x 10 0.75x.  Shapes alone decide, never
    the batch or the vector width, so a row's prediction is the same in any batch and on any
    machine."""
    return O < 128 and (I >= 224 or (O <= 16 and I >= 64))


@internal_kernel
def _put3(Yf, at, no, s0, s1, s2):
    Yf[at] = s0
    if no > 1:
        Yf[at + 1] = s1
    if no > 2:
        Yf[at + 2] = s2


@internal_kernel
def _rows4(n0, nr, I):
    """Where a tile's 4 rows of X start (a short tile repeats its last row)."""
    return (n0 * I, (n0 + min(1, nr - 1)) * I, (n0 + min(2, nr - 1)) * I,
            (n0 + min(3, nr - 1)) * I)


@internal_kernel
def _tile_one(Yf, Xf, Wf, Wp, I, O, n0, nr, o0, no, j0):
    """Y[n0:n0+nr, o0:o0+no] (nr <= 4, no <= 3), one vector per element (32-byte vectors; Wp,
    j0 unused); a short tile repeats its last row of X or of WT (the same chains, stored once)."""
    V = lanes(Xf)
    x0, x1, x2, x3 = _rows4(n0, nr, I)
    w0 = o0 * I
    w1 = (o0 + min(1, no - 1)) * I
    w2 = (o0 + min(2, no - 1)) * I
    a0 = vzero(Xf); a1 = vzero(Xf); a2 = vzero(Xf)  # noqa: E702
    b0 = vzero(Xf); b1 = vzero(Xf); b2 = vzero(Xf)  # noqa: E702
    c0 = vzero(Xf); c1 = vzero(Xf); c2 = vzero(Xf)  # noqa: E702
    d0 = vzero(Xf); d1 = vzero(Xf); d2 = vzero(Xf)  # noqa: E702
    full = I - I % V
    for k in range(0, full, V):
        p = vload(Wf, w0 + k); q = vload(Wf, w1 + k); r = vload(Wf, w2 + k)  # noqa: E702
        x = vload(Xf, x0 + k); a0 = vfma(x, p, a0); a1 = vfma(x, q, a1); a2 = vfma(x, r, a2)  # noqa: E702
        x = vload(Xf, x1 + k); b0 = vfma(x, p, b0); b1 = vfma(x, q, b1); b2 = vfma(x, r, b2)  # noqa: E702
        x = vload(Xf, x2 + k); c0 = vfma(x, p, c0); c1 = vfma(x, q, c1); c2 = vfma(x, r, c2)  # noqa: E702
        x = vload(Xf, x3 + k); d0 = vfma(x, p, d0); d1 = vfma(x, q, d1); d2 = vfma(x, r, d2)  # noqa: E702
    for k in range(full, I, V):     # at most once: the last I % V values of k, masked
        m = I - full
        p = vload_part(Wf, w0 + k, m); q = vload_part(Wf, w1 + k, m); r = vload_part(Wf, w2 + k, m)  # noqa: E702
        x = vload_part(Xf, x0 + k, m); a0 = vfma(x, p, a0); a1 = vfma(x, q, a1); a2 = vfma(x, r, a2)  # noqa: E702
        x = vload_part(Xf, x1 + k, m); b0 = vfma(x, p, b0); b1 = vfma(x, q, b1); b2 = vfma(x, r, b2)  # noqa: E702
        x = vload_part(Xf, x2 + k, m); c0 = vfma(x, p, c0); c1 = vfma(x, q, c1); c2 = vfma(x, r, c2)  # noqa: E702
        x = vload_part(Xf, x3 + k, m); d0 = vfma(x, p, d0); d1 = vfma(x, q, d1); d2 = vfma(x, r, d2)  # noqa: E702
    _put3(Yf, n0 * O + o0, no, vsum(a0), vsum(a1), vsum(a2))
    if nr > 1:
        _put3(Yf, (n0 + 1) * O + o0, no, vsum(b0), vsum(b1), vsum(b2))
    if nr > 2:
        _put3(Yf, (n0 + 2) * O + o0, no, vsum(c0), vsum(c1), vsum(c2))
    if nr > 3:
        _put3(Yf, (n0 + 3) * O + o0, no, vsum(d0), vsum(d1), vsum(d2))


@internal_kernel
def _pairs_width(I, U):
    """Values of Wp per pair of units: both units' I values in groups of U, zero-padded."""
    return 2 * ((I + U - 1) // U) * U


@internal_kernel
def _pack_pairs(Wp, Wf, I, j0, j1, U):
    """Wp <- the units j0 .. j1 - 1 of WT in pairs (a lone last unit paired with itself): for
    each group of U values of k, the first unit's U values, then the second's, 0 past I."""
    S = _pairs_width(I, U)
    for q in range((j1 - j0 + 1) // 2):
        first = min(j0 + 2 * q, j1 - 1) * I
        second = min(j0 + 2 * q + 1, j1 - 1) * I
        for k in range(0, I, U):
            vstore(Wp, q * S + 2 * k, vload_pair(Wf, first + k, second + k, min(U, I - k)))


@internal_kernel
def _tile_pairs(Yf, Xf, Wf, Wp, I, O, n0, nr, o0, no, j0):
    """Y[n0:n0+nr, o0:o0+no] (nr <= 4, no <= 6), two units per vector (64-byte vectors): lanes
    of the first half for unit o0 + 2c, of the second for o0 + 2c + 1, against Wp's pairs
    (_pack_pairs, from unit j0); short tiles repeat their last row or pair."""
    U = lanes(Xf) // 2
    S = _pairs_width(I, U)
    last = (no - 1) // 2
    q0 = (o0 - j0) // 2
    w0 = q0 * S
    w1 = (q0 + min(1, last)) * S
    w2 = (q0 + min(2, last)) * S
    x0, x1, x2, x3 = _rows4(n0, nr, I)
    a0 = vzero(Xf); a1 = vzero(Xf); a2 = vzero(Xf)  # noqa: E702
    b0 = vzero(Xf); b1 = vzero(Xf); b2 = vzero(Xf)  # noqa: E702
    c0 = vzero(Xf); c1 = vzero(Xf); c2 = vzero(Xf)  # noqa: E702
    d0 = vzero(Xf); d1 = vzero(Xf); d2 = vzero(Xf)  # noqa: E702
    full = I - I % U
    # a tile of one pair of units (a layer of 1-2 units, a 50-unit layer's last 2): its 4
    # accumulators alone, where the loop below multiplies its pair three times (the same
    # chains).  Forward on 2 threads, znver5, 15 rounds: 1024 x 784 x 1 46 -> 54 GFLOP/s,
    # 1024 x 784 x 2 96 -> 119; 50 units 0.99-1.05x (one tile in 9, and 4 chains wait on
    # their multiply-adds' latency); whole steps within this host's spread
    for k in range(0, full if last == 0 else 0, U):
        p = vload(Wp, w0 + 2 * k)
        a0 = vfma(vload_dup(Xf, x0 + k), p, a0); b0 = vfma(vload_dup(Xf, x1 + k), p, b0)  # noqa: E702
        c0 = vfma(vload_dup(Xf, x2 + k), p, c0); d0 = vfma(vload_dup(Xf, x3 + k), p, d0)  # noqa: E702
    for k in range(0, full if last > 0 else 0, U):
        p = vload(Wp, w0 + 2 * k); q = vload(Wp, w1 + 2 * k); r = vload(Wp, w2 + 2 * k)  # noqa: E702
        x = vload_dup(Xf, x0 + k); a0 = vfma(x, p, a0); a1 = vfma(x, q, a1); a2 = vfma(x, r, a2)  # noqa: E702
        x = vload_dup(Xf, x1 + k); b0 = vfma(x, p, b0); b1 = vfma(x, q, b1); b2 = vfma(x, r, b2)  # noqa: E702
        x = vload_dup(Xf, x2 + k); c0 = vfma(x, p, c0); c1 = vfma(x, q, c1); c2 = vfma(x, r, c2)  # noqa: E702
        x = vload_dup(Xf, x3 + k); d0 = vfma(x, p, d0); d1 = vfma(x, q, d1); d2 = vfma(x, r, d2)  # noqa: E702
    for k in range(full, I, U):     # at most once: the last I % U values of k (Wp holds 0s)
        m = I - full
        p = vload(Wp, w0 + 2 * k); q = vload(Wp, w1 + 2 * k); r = vload(Wp, w2 + 2 * k)  # noqa: E702
        x = vload_dup_part(Xf, x0 + k, m); a0 = vfma(x, p, a0); a1 = vfma(x, q, a1); a2 = vfma(x, r, a2)  # noqa: E702
        x = vload_dup_part(Xf, x1 + k, m); b0 = vfma(x, p, b0); b1 = vfma(x, q, b1); b2 = vfma(x, r, b2)  # noqa: E702
        x = vload_dup_part(Xf, x2 + k, m); c0 = vfma(x, p, c0); c1 = vfma(x, q, c1); c2 = vfma(x, r, c2)  # noqa: E702
        x = vload_dup_part(Xf, x3 + k, m); d0 = vfma(x, p, d0); d1 = vfma(x, q, d1); d2 = vfma(x, r, d2)  # noqa: E702
    _put6(Yf, n0 * O + o0, no, a0, a1, a2)
    if nr > 1:
        _put6(Yf, (n0 + 1) * O + o0, no, b0, b1, b2)
    if nr > 2:
        _put6(Yf, (n0 + 2) * O + o0, no, c0, c1, c2)
    if nr > 3:
        _put6(Yf, (n0 + 3) * O + o0, no, d0, d1, d2)


@internal_kernel
def _put6(Yf, at, no, s0, s1, s2):
    _put3(Yf, at, min(no, 3), vsum_half(s0, 0), vsum_half(s0, 1), vsum_half(s1, 0))
    if no > 3:
        _put3(Yf, at + 3, no - 3, vsum_half(s1, 1), vsum_half(s2, 0), vsum_half(s2, 1))


_tile = _tile_pairs if PAIRS else _tile_one


@internal_kernel
def _copy_rows(Xf, Sf, idx, I, n0, n1):
    """X's rows [n0, n1) <- src's rows idx[n0:n1] (X (N, I), src (M, I) flat)."""
    for n in range(n0, n1):     # on 1-D views from 0, as gemm._run's GATHER (there: why)
        dst = Xf[n * I:n * I + I]
        row = Sf[idx[n] * I:idx[n] * I + I]
        for j in range(I):
            dst[j] = row[j]


@internal_kernel
def _ask_rows(Sf, idx, I, n0, c0, c1):
    """Ask for lines [c0, c1) of src's rows idx[n0], idx[n0 + 1], ... (row by row, each row's
    lines in order), without waiting for them (simd.prefetch)."""
    # lines from a row's start (where rows do not start lines, the last is left to the copy)
    per = (I * Sf.itemsize + 63) // 64
    line = 64 // Sf.itemsize
    r, c = n0 + c0 // per, c0 % per         # one division, not one per line
    at = idx[r] * I
    for _ in range(c0, c1):
        prefetch(Sf, at + c * line)
        c += 1
        if c == per:
            r, c = r + 1, 0
            at = idx[min(r, idx.shape[0] - 1)] * I


@internal_kernel
def forward_dots(Yf, Xf, Wf, I, O, r0, r1, j0, j1, Sf, idx):
    """Y[r0:r1, j0:j1] of Y (N, O) <- X WT^T, in tiles of NR rows by NO units: for each block of
    rows, every block of units (the block's rows of X stay in L1/L2 while WT streams past).
    With pairs, the part's units of WT are packed first (O x I values, each then used for
    every row of the part).  gemm._run calls it through its address (gemm.CALLEES: why).
    With idx (N,) (gemm's GATHER_FORWARD), X's rows [r0, r1) are gathered from src's rows
    idx[r0:r1] (Sf flat) a block of NR rows at a time, just before the block's tiles, which
    ask for the next block's rows, a share of their lines before each tile.  Why: the rows
    are shuffled, so no prefetcher foresees them, and gathered whole before the product
    (asking 4 rows ahead) they came from memory while nothing else ran: on 2 threads (znver5)
    the study's step gathering 100 rows from 60,000 took ~7 us more than on rows in cache
    (~107 us), 3072-value rows ~28 us more (~265).  Interleaved, 11-15 rounds, whole steps
    gathered from 60,000 rows, against the gather first: 784-50-50-10 at 100 1.06x (identical
    code 1.02x), 3072-50-50-10 1.04x (1.00x); the forward alone 1.05-1.07x, and 0.97-0.99x
    where every row is already in cache.  The same products, so the same bits."""
    U = lanes(Xf) // 2
    Wp = Xf[:0]
    if PAIRS:
        Wp = np.empty((j1 - j0 + 1) // 2 * _pairs_width(I, U), Xf.dtype)
        _pack_pairs(Wp, Wf, I, j0, j1, U)
    gather = idx.shape[0] > 0
    per = (I * Xf.itemsize + 63) // 64
    tiles = (j1 - j0 + NO - 1) // NO
    if gather:      # the first block's lines, all at once: nothing to multiply meanwhile
        _ask_rows(Sf, idx, I, r0, 0, min(NR, r1 - r0) * per)
    for n0 in range(r0, r1, NR):
        nr = min(NR, r1 - n0)
        if gather:
            _copy_rows(Xf, Sf, idx, I, n0, n0 + nr)
        # the next block's lines, a share before each tile of this block
        ahead = min(NR, r1 - n0 - nr) * per if gather else 0
        for q in range(tiles):
            o0 = j0 + q * NO
            if ahead > 0:
                _ask_rows(Sf, idx, I, n0 + nr, ahead * q // tiles, ahead * (q + 1) // tiles)
            _tile(Yf, Xf, Wf, Wp, I, O, n0, nr, o0, min(NO, j1 - o0), j0)
