"""Packing the operands of kernels/gemm.py's products, as BLIS and OpenBLAS do: B into strips of 2V
columns with each k's 2V values together (`pack_b`), A into blocks of MR rows with each k's MR
scalars together (`pack_a`), so that the micro-kernel (gemm_packed._k6) reads both from one place.
Where an operand is stored the other way round (the forward's WT for B, X for A), V x V or TA x TA
blocks are transposed in registers (simd.vtranspose).
"""
from ._config import internal_kernel
from .simd import lanes, prefetch, vload, vload_part, vstore, vstore_part, vtranspose

MR = 6      # rows of C per block (12 accumulators: 6 rows x 2 vectors)
# rows of A transposed at a time into a block of MR: the least power of two >= MR.  A block
# takes MR of them, so 16 (AVX-512's lanes) transposed 2.7 rows for each one used; with 8, the
# forward at batch 100 of 784 -> 50 105 -> 114 GFLOP/s and of 3072 -> 50 101 -> 108 (2 threads,
# znver4, interleaved)
TA = 8
QK = 128        # values of k per column copied at a time where pack_b copies first
QS = QK + 16    # their stride in the copy: 576 bytes in float32, far from a multiple of 4 KB
# B stored by rows (tj == 1: the input gradient's WT, the weight gradient's X): a run of more than
# LONG_K values of k is packed CK of them at a time across the block's whole strips (a short last
# strip after them).  Strip by strip, each strip read one 64-byte piece of each of the run's rows,
# a row apart (4-12 KB), and each next strip the next piece of the same rows: from beyond L2, ~6
# GB/s (a 1024 x 1024 block of a 2048 x 2048 WT, one core, znver3: 620-690 us; CK = 8 rows at a
# time 209 us, a copy of 4 MB 163 us; CK 32 or 128 ~410 us, 1 370 us).  Products on 2 threads,
# znver3 (GFLOP/s, 9 interleaved rounds): input gradient 16 x 1024 x 1024 60 -> 88, 32 x 2048 x
# 2048 65 -> 86, 64 x 1024 x 1024 113 -> 129, 100 x 1024 x 1024 126 -> 132; weight step 100 x 1024
# x 1024 95 -> 119, 100 x 3072 x 50 96 -> 102; at 500 rows level.  A short run (the weight gradient
# of a batch of <= 64 rows, X in L2) keeps the strip order: chunks there measured 0.80-1.16x
CK = 8
LONG_K = 64


@internal_kernel
def pack_b(P, Q, Bf, k0, k1, j, w, tk, tj):
    """P[(k - k0) * 2V + c] <- B(k, j + c) = Bf[k * tk + (j + c) * tj] for c < w; the lanes
    c >= w of a short strip hold 0 or copies of column w - 1 (gemm_packed._store_rows never
    stores them).  With tj == 1, w may span several strips of 2V: they follow one another in
    P, len(P) / strips values apart; otherwise w <= 2V.
    Q: scratch of 2V * QS values."""
    V2 = 2 * lanes(P)
    V = V2 // 2
    n = k1 - k0
    if tj == 1:
        strips = (w + V2 - 1) // V2
        S2 = P.shape[0] // strips
        full = w // V2
        ck = CK if n > LONG_K else max(n, 1)     # CK rows at a time, or each strip whole
        for c0 in range(0, n, ck):
            c1 = min(n, c0 + ck)
            for s in range(full):
                for k in range(c0, c1):
                    b = (k0 + k) * tk + j + s * V2
                    vstore(P, s * S2 + k * V2, vload(Bf, b))
                    vstore(P, s * S2 + k * V2 + V, vload(Bf, b + V))
        if full < strips:       # the last strip: masked loads, 0 past column w - 1
            e, o = w - full * V2, full * S2
            for k in range(n):
                b = (k0 + k) * tk + j + full * V2
                vstore(P, o + k * V2, vload_part(Bf, b, min(e, V)))
                vstore(P, o + k * V2 + V, vload_part(Bf, b + V, max(e - V, 0)))
        return
    if tk == 1:
        # B is stored by columns here (the forward's WT): V x V blocks transposed in
        # registers (scalar moves made net A's forward 25 % slower at batch 100, measured;
        # on a short last strip too: a 50-unit layer's 18 columns of 32 with 16-lane
        # vectors took ~20 % of its forward at batch 100 in scalar moves)
        nV = n - n % V
        # Columns a multiple of 4 KB apart (1024, 2048, 3072 float32 inputs) all map to one
        # set of the 8-way L1, and a transpose reads V of them at once: there each column's
        # next QK values are first copied into Q, one after the other (the pack of 1024 x 1024
        # 372 -> 170 us, 3072 x 1024 1051 -> 567, 3072 x 256 259 -> 127 on one core; the
        # copy made 784 and 1000 inputs 1.4-1.7x slower, 1536 level: hence 4 KB)
        copy = (tj * Bf.itemsize) % 4096 == 0
        step = QK if copy else max(nV, 1)
        for c0 in range(0, nV, step):
            m = min(nV - c0, step)
            S, at, stride = Bf, k0 + c0 + j * tj, tj
            if copy:
                for c in range(w):
                    b = k0 + c0 + (j + c) * tj
                    for k in range(0, m, V):
                        prefetch(Bf, b + k + QK)    # the column's next chunk: a short stream
                        vstore(Q, c * QS + k, vload(Bf, b + k))
                S, at, stride = Q, 0, QS
            for k in range(0, m, V):
                # read in place, each of the strip's w columns is a stream of its own (a row
                # of WT), too many for the prefetchers: ask for each one's line 8 blocks on
                # (forward at batch 16, 3072 -> 2048 80 -> 88 GFLOP/s, 784 -> 4096 91 -> 115
                # on 2 threads, znver4; batch 100 1.04x, batch 500 level)
                if not copy and k + 8 * V < n:
                    for c in range(w):
                        prefetch(Bf, at + k + 8 * V + c * tj)
                vtranspose(P, (c0 + k) * V2, V2, S, at + k, stride, min(w, V), 64)
                if w > V:
                    vtranspose(P, (c0 + k) * V2 + V, V2, S, at + k + V * stride, stride, w - V, 64)
        for k in range(nV, n):
            for c in range(V2):
                P[k * V2 + c] = Bf[k0 + k + (j + min(c, w - 1)) * tj]
        return
    for k in range(n):
        for c in range(V2):
            P[k * V2 + c] = 0
    for c in range(w):
        col = (j + c) * tj
        for k in range(n):
            P[k * V2 + c] = Bf[(k0 + k) * tk + col]


@internal_kernel
def pack_a(Ap, Af, a0, nr, n, sk, sr, avail):
    """Ap[k * MR + i] <- A(k, i) = Af[a0 + k*sk + i*sr] for the MR rows of a block (a short block
    repeats its last row, or holds other rows' values: gemm_packed._store_rows stores only nr
    rows), so that gemm_packed._k6 reads its 6 scalars of each k from one place. avail: rows of
    A that may be read from a0 on."""
    last = nr - 1
    V = lanes(Ap)
    if sk == 1:     # rows of A are contiguous (forward, input gradient)
        done = 0
        T = min(V, TA)
        if T >= MR:
            # T rows x T values of k transposed in registers (2x faster than scalar moves),
            # rows past the block's nr read as its last: each k's T lanes land at Ap[k * MR],
            # and the next k overwrites the T - MR lanes past its MR (the tail below, or the
            # next block: Ap has V values of slack).  Every block, the last ones of a part
            # included (with 16 lanes, scalar moves for the blocks within 16 rows of a
            # part's end were 3 of a batch-100 part's 9 blocks)
            done = n - n % T
            for k in range(0, done, T):
                vtranspose(Ap, k * MR, MR, Af, a0 + k, sr, nr, TA)
        for i in range(MR):
            row = Af[a0 + min(i, last) * sr:a0 + min(i, last) * sr + n]
            for k in range(done, n):
                Ap[k * MR + i] = row[k]
    else:
        # each k's scalars are contiguous (weight gradient): where a vector holds a block's
        # MR rows, gemm_packed packs a group of blocks at a time instead (pack_a_rows); here
        # the scalar moves of vectors of fewer lanes (float64 on AVX2)
        for k in range(n):
            col = a0 + k * sk
            for i in range(MR):
                Ap[k * MR + i] = Af[col + min(i, last) * sr]


@internal_kernel
def pack_a_rows(Ap, Af, a0, m0, m1, k0, n, nk, sk, avail):
    """pack_a of every block of rows m0:m1 of A (the block of row r at Ap[(r - a0) nk]) where
    each k's scalars are contiguous (sr = 1, sk > 1: the weight gradient's dZ, read k by k
    down its rows), in one pass over k rather than one per block: a group's 8 blocks read each
    row of dZ's 48 values from beyond L1 once, not 8 times (at 1024 units, rows 4 KB apart that
    all map to one set of L1, each block's pass evicted the lines the next block would have
    read).  avail: rows of A that may be read from m0 on; a block's rows past them are 0, the
    rows past a short last block other rows' values (gemm_packed._store_rows stores only the
    block's own).  One vector per k and block, masked to the rows there are (scalar moves were
    ~10 % of a batch-100 weight gradient): it spills past its MR values into the next ks'
    (overwritten there); those that would spill past the block's n values (into the next
    block, packed before them) are stored masked.  Vectors of at least MR lanes only (float64
    on AVX2 has 4: pack_a's scalar moves)."""
    V = lanes(Ap)
    for k in range(n):
        base = (k0 + k) * sk
        for r in range(m0, m1, MR):
            at = (r - a0) * nk + k * MR
            left = avail - (r - m0)
            v = vload(Af, base + r) if left >= V else vload_part(Af, base + r, left)
            if k * MR + V <= n * MR:
                vstore(Ap, at, v)
            else:
                vstore_part(Ap, at, v, MR)
