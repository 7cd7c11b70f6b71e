"""The packed kernel of kernels/gemm.py's products: C (R, J) <- alpha A (R, K) B (K, J) + beta S
for a part [r0, r1) x [j0, j1) of C, with A and B read through strides, so that one
micro-kernel serves the forward, the weight gradient (or folded SGD step) and the input
gradient (_k6): 6 rows of C by 2 vectors of columns in 12 vector accumulators, fed per k by 2
vector loads of B and 6 broadcast scalars of A (12 accumulators leave room for the operands in
AVX2's 16 registers and keep both FMA units busy: 4-cycle latency x 2 units = 8 chains
needed).  Both operands are packed first, as BLIS and OpenBLAS do:
- K is cut into equal runs of at most KP; each run is one pass of loads and stores over C
  (KP 256 -> 1024 made the products 1.1-1.4x faster, measured on one core);
- B: strips of 2V columns, each k's 2V values contiguous and padded (`pack.pack_b`), up to
  JS strips (at most JS_BYTES) at a time (JS_ONE where a part's rows are up to GROUPS_FEW
  groups and B is packed transposed, JS_ROWS where they are one group and B is stored by rows);
- A: groups of at most MC rows (as even as whole blocks allow), in blocks of 6 rows with each
  k's 6 scalars contiguous (`pack.pack_a`; a short block repeats its last row), through
  register transposes of TA rows.  Read in
  place, the 6 rows' addresses made a chain of dependent adds in the loop: ~70 GFLOP/s a core
  with everything in L1, ~99 packed (znver3).
Loop order (BLIS's): for a run, for a block of strips, for a group of rows, for a strip, for a
piece of at most KC values of k, for a block of 6 rows: the strip's piece (16 KB) stays in L1
while the group's rows of A stream through it (outer, where the pieces are, says why).  Against
the order before (A's 6 rows in L1, strips streamed from L2): products 1.1-1.7x faster on 2
threads at 32-500 x 784-3072 x 50-1024 (interleaved, /tmp scripts), one shape at 0.95x (100 x
3072 x 1024's weight gradient).
The last strip of C's columns and the last block of rows may be short: the strip is padded in
P (zeros or copies of its last column) and stored with masked vector stores, the block repeats
its last row's scalars and stores only its own (a block of at most 4 rows multiplies 4).
Every element of C is one chain of fused multiply-adds over each run of k, in order, the runs
added in order: the bits kernels/gemm_thin.py reproduces for a batch of a few rows.
Legend: V lanes per vector; flat views Af, Bf, ... of C-contiguous arrays.
"""
import numpy as np

from ._config import inlined_kernel, internal_kernel
from .native import call
from .optim import NESTEROV
from .pack import MR, QS, pack_a, pack_a_rows, pack_b
from .simd import (VECTOR_BYTES, fma, lanes, vfma, vload, vload_part, vmul, vsplat, vsplat_at,
                   vstore, vstore_part)

KP = 1024   # longest run of k: every run is a pass over C's loads and stores
JS = 64     # strips of B per packed block (at most KP * 2V * JS values: 4 MB in float32 on AVX2)
# and at most JS_BYTES of them: with 64-byte vectors JS strips of a run of 1024 k are 8 MB, each
# read back from L3 by every group of rows, where the AVX2 build that JS was measured on (4 MB)
# and the parts of other threads (or of other processes: the L3 is shared) compete for it.
# 2 threads, znver5 (AVX-512), 9 interleaved rounds, GFLOP/s, JS -> 4 MB: 1024 x 4096 x 4096
# forward 304 -> 358, input gradient 315 -> 366, weight step 332 -> 360 (OpenBLAS 391 / 413 /
# 370), 1024 x 784 x 4096 1.01-1.03x, 100 x 3072 x 4096 1.01-1.07x, 256 x 2048 x 2048 0.95-
# 1.03x; whole SGD steps (11 rounds) 784-4096-4096-10 at 256 1.14x, 784-4096-10 at 1024 1.04x,
# 784-2048-2048-10 at 1024 1.02x, 3072-1024-512-10 at 500 1.00x (unchanged by it: its runs of
# 1024 k are over parts of at most 16 strips; JS = 32 for runs of any length, which cut its
# first weight step's 48 strips of 500 k in two, read 0.93x).  Runs of up to 512 k keep JS (a
# block of 4 MB or less), and so does every AVX2 build
JS_BYTES = 1 << 22
# strips per block where a part's rows are one group (at most MC) and B is packed transposed (the
# forward's WT): JS strips went through L3 (4 MB) to serve that one group; 4 (256 KB at a run of
# 1024, float32 on AVX2; 512 KB with 64-byte vectors) stay in L2.  Forward on 2 threads, znver3, 9
# interleaved rounds (GFLOP/s, JS -> 4, A packed once per run): 32 x 2048 x 2048 78 -> 106, 32 x
# 2000 x 2000 75 -> 108, 16 x 3072 x 1024 75 -> 89, 16 x 784 x 4096 57 -> 64, 8 x 2048 x 2048 31 ->
# 40; 1024 and 1000 inputs 0.95-1.06x, 512 level (8 and 16 strips: within 5 % of 4)
JS_ONE = 4
# and where a part's rows are up to GROUPS_FEW groups (144 rows), with A packed whole (at most
# 3 MC KP values: 576 KB in float32): with JS, each group read every strip of the block back
# from L3.  Forward on 2 threads, znver3, 9 interleaved rounds (GFLOP/s, JS -> JS_ONE): 64 x
# 2048 x 2048 135 -> 151, 96 x 2048 x 2048 142 -> 157, 100 x 2048 x 2048 139 -> 147, 64 x 784 x
# 2048 134 -> 151, 64 x 3072 x 4096 125 -> 138, 64 x 1024 x 1024 1.06x, 128 x 2048 x 2048
# 1.03x; one thread, 64 x 2048 x 2048 1.05x.  With up to 8 groups: 384 x 1024 x 1024 0.96x,
# 300 x 784 x 1000 0.95x (A packed whole no longer in L2), so not beyond 3
GROUPS_FEW = 3
# strips per block where a part's rows are one group and B is stored by rows (the input
# gradient's WT, a narrow layer's weight step's X): JS strips (8 MB at a run of 1024 with 64-byte
# vectors) were packed to L3 and read back for at most 8 row blocks; 8 strips (1 MB; 512 KB on
# AVX2, not measured there) read 1 KB of each row of B, the pack's rows still long.  Input
# gradient on 2 threads, znver5 (AVX-512), 7-9 interleaved rounds (GFLOP/s, JS -> 8): 8 x 2048 x
# 2048 63 -> 76-83, 4 x 2048 x 2048 46 -> 52, 16 x 2048 x 2048 92-117 -> 97-138, 32 x 4096 x
# 1024 103 -> 124, 48 x 3072 x 1024 189-198 -> 219-242; 1000-1024 inputs level (0.99-1.02x);
# output layers' weight steps (100 x 2048 x 10, 500 x 512 x 10) level.  Whole SGD steps
# (15 rounds): 784-2048-2048-10 at batch 16 / 32 1.11 / 1.09x, 3072-2048-2048-10 at 16 1.03x,
# 784-4096-1024-10 at 32 1.02x (4 and 16 strips: within 10 % of 8)
JS_ROWS = 8
BAND_AREA = 1 << 20     # values of C in a part from which it is walked in bands (outer)
BAND_COLS = 128         # columns of C per band: 512 bytes of each row in float32
KEEP_BAND_AREA = 1 << 16    # the same where each tile's store reads C or S (outer)
# values of k per piece of a strip over a group's row blocks: 16 KB of B, in L1 (outer); 256 on
# AVX2 (measured there), 128 on AVX-512 (not measured)
KC = 16384 // (2 * VECTOR_BYTES)
MC = 48     # rows of A packed per group (at most MC * KP values: 192 KB, in L2)


@internal_kernel
def sgd_decay(eta, lam):
    """1 - 2 eta lam, plain SGD's weight decay (SGD_STEP's beta), with one rounding written out
    (simd.fma).  gemm._run computes it for SGD_STEP and for DGRAD_SGD (gemm_back.dgrad_weights),
    whose steps must agree bit for bit; as `1.0 - 2.0 * eta * lam` each compiled copy was
    LLVM's to fuse or not (both did: 27 of 400 random eta, lam where it matters, float64), as
    the running statistics' update once fused in a fresh compile and not in the cached one
    (kernels/batchnorm.py)."""
    return fma(-2.0 * eta, lam, 1.0)


@internal_kernel
def _store_rows(Cf, Sf, T, tb, at, J, nr, w, va, vb, keep, first):
    """nr rows of a strip of w <= 2V columns of C from their accumulators in T (row i at
    T[tb + 2V i:tb + 2V i + 2V]), C[at + i J:at + i J + w] <- acc alpha + beta S (first run;
    keep) or acc alpha, or acc alpha + C after the first run.  A last vector of fewer than V
    lanes is loaded and stored masked (lanes past w neither read nor written), with the same
    arithmetic (lane by lane through a scratch vector before: ~250 cycles a row, which made a
    10-unit output layer's forward 3x slower per row than a 16-unit one's, measured).
    Where the packed kernel's tiles and gemm_thin.forward_rows' strips reach C (thin, small and
    gemm_back write the same arithmetic out in their own loops).  A call of its own: written
    into outer's tile loop through an inlined helper, its branches had Numba count every array
    of the loop up and down around each tile (six atomic NRT_incref/decref calls, each
    clobbering the vector registers)."""
    V = lanes(T)
    for i in range(2 * nr):             # row i // 2, vector i % 2
        c = at + i // 2 * J + i % 2 * V
        nl = min(V, w - i % 2 * V)      # its lanes (<= 0: none)
        acc = vload(T, tb + i * V)
        if nl == V:
            if not first:
                vstore(Cf, c, vfma(acc, va, vload(Cf, c)))
            elif keep:
                vstore(Cf, c, vfma(acc, va, vmul(vload(Sf, c), vb)))
            else:
                vstore(Cf, c, vmul(acc, va))
        elif nl > 0:
            if not first:
                vstore_part(Cf, c, vfma(acc, va, vload_part(Cf, c, nl)), nl)
            elif keep:
                vstore_part(Cf, c, vfma(acc, va, vmul(vload_part(Sf, c, nl), vb)), nl)
            else:
                vstore_part(Cf, c, vmul(acc, va), nl)


@internal_kernel
def _store_rule(Sf, T, tb, at, J, nr, w, va, vb, Mf, ve, vmu, nesterov):
    """_store_rows' rows for a weight gradient (C = dWT, S = WT, one run of k) whose optimiser
    step, momentum or Nesterov, is folded in (gemm.py's GRAD_STEP): each vector's gradient
    g = acc alpha + beta S is not stored; instead
    buf = mu m + g goes to Mf (m) and WT takes its step, WT - eta buf or, Nesterov,
    WT - eta (g + mu buf), each multiply-add rounded once: the bits optim.update_range gives
    after the gradient.  ve = -eta, vmu = mu, splat.  WT and m are read and written once, and
    dWT not at all: the gradient then the step apart moved WT three times, dWT twice and m
    twice (weight gradient and step of 1000 x 1000 at batch 16 / 100 / 500 1.6 / 1.3 / 1.15x,
    2 threads, znver3).  One run only: a branch between the first run's g and a later one's
    made it 12 % slower (1000 x 1000 at batch 16, 784 x 512 at 16)."""
    V = lanes(T)
    for i in range(2 * nr):             # row i // 2, vector i % 2
        c = at + i // 2 * J + i % 2 * V
        nl = min(V, w - i % 2 * V)      # its lanes (<= 0: none)
        acc = vload(T, tb + i * V)
        if nl == V:     # whole vectors unmasked, as in _store_rows
            wv = vload(Sf, c)
            g = vfma(acc, va, vmul(wv, vb))
            buf = vfma(vmu, vload(Mf, c), g)
            vstore(Mf, c, buf)
            if nesterov:
                vstore(Sf, c, vfma(ve, vfma(vmu, buf, g), wv))
            else:
                vstore(Sf, c, vfma(ve, buf, wv))
        elif nl > 0:
            wv = vload_part(Sf, c, nl)
            g = vfma(acc, va, vmul(wv, vb))
            buf = vfma(vmu, vload_part(Mf, c, nl), g)
            vstore_part(Mf, c, buf, nl)
            if nesterov:
                vstore_part(Sf, c, vfma(ve, vfma(vmu, buf, g), wv), nl)
            else:
                vstore_part(Sf, c, vfma(ve, buf, wv), nl)


@inlined_kernel
def _k6(T, ti, to, Ap, ao, P, po, n, w, nr):
    """The 12 accumulators of a tile of 6 rows of C by a strip of w <= 2V columns, from T[ti:]
    (zeros, or a chain's part so far) into T[to:] (row i at to + 2V i, for _store_rows), each a
    chain of fused multiply-adds over the packed run at P[po:] (n values of k) and the packed
    rows of A at Ap[ao:] (pack.pack_a); a chain stored and loaded again is the same chain.  Fewer
    than 6 rows (nr, of the block's 6) repeat the last one's scalars: each row's lanes are the
    same chains as in a full block; at most 4 take 8 chains, the slot's last two rows passed
    through from T[ti:].
    Inlined into outer (LLVM left it a call per tile): whole steps 1.00-1.13x (batch 16-500,
    784-50-50-10 to 3072-1024-512-10, the same bits), for ~0.9 s more compile of _run, which
    a first run spends in its second process (kernels/coldstart.py) beside train_step's.  It
    takes offsets, not slices, and holds no branch after its loops: either had Numba count
    each of its arrays up and down around every tile (see _store_rows)."""
    V = lanes(P)
    a0 = vload(T, ti); a1 = vload(T, ti + V)  # noqa: E702
    b0 = vload(T, ti + 2 * V); b1 = vload(T, ti + 3 * V)  # noqa: E702
    c0 = vload(T, ti + 4 * V); c1 = vload(T, ti + 5 * V)  # noqa: E702
    d0 = vload(T, ti + 6 * V); d1 = vload(T, ti + 7 * V)  # noqa: E702
    e0 = vload(T, ti + 8 * V); e1 = vload(T, ti + 9 * V)  # noqa: E702
    f0 = vload(T, ti + 10 * V); f1 = vload(T, ti + 11 * V)  # noqa: E702
    # a strip of at most V columns (the last of a 50-unit layer's: 2 of 16) takes one vector:
    # half the multiply-adds, the same chain for each of its columns (a 50-column forward
    # 6-8 % faster, measured)
    for k in range(n if w <= V else 0):
        p = vload(P, po + 2 * V * k)
        d = ao + k * MR
        a0 = vfma(p, vsplat_at(Ap, d), a0)
        b0 = vfma(p, vsplat_at(Ap, d + 1), b0)
        c0 = vfma(p, vsplat_at(Ap, d + 2), c0)
        d0 = vfma(p, vsplat_at(Ap, d + 3), d0)
        e0 = vfma(p, vsplat_at(Ap, d + 4), e0)
        f0 = vfma(p, vsplat_at(Ap, d + 5), f0)
    # a block of at most 4 rows (32 rows of a batch are 5 blocks and 2; 50 units 8 and 2) takes
    # 8 chains, the same as the full block's for its rows: 4 cycles a k (the FMA's latency)
    # instead of 6.  Alone, interleaved in one process against the code before and an identical
    # copy of it (znver5, 15 rounds): the forward of 32 x 784 x 512 1.037x on one thread (gauge
    # 1.005x), 1.029x on two (1.012x); the study net's first weight step (100 x 3072 x 50) and
    # full blocks (500 x 784 x 512) level
    full = nr > 4       # (a branch that never changes in the loop: as fast as two loops)
    for k in range(n if w > V else 0):
        p = vload(P, po + 2 * V * k)
        q = vload(P, po + 2 * V * k + V)
        d = ao + k * MR
        x = vsplat_at(Ap, d); a0 = vfma(p, x, a0); a1 = vfma(q, x, a1)  # noqa: E702
        x = vsplat_at(Ap, d + 1); b0 = vfma(p, x, b0); b1 = vfma(q, x, b1)  # noqa: E702
        x = vsplat_at(Ap, d + 2); c0 = vfma(p, x, c0); c1 = vfma(q, x, c1)  # noqa: E702
        x = vsplat_at(Ap, d + 3); d0 = vfma(p, x, d0); d1 = vfma(q, x, d1)  # noqa: E702
        if full:
            x = vsplat_at(Ap, d + 4); e0 = vfma(p, x, e0); e1 = vfma(q, x, e1)  # noqa: E702
            x = vsplat_at(Ap, d + 5); f0 = vfma(p, x, f0); f1 = vfma(q, x, f1)  # noqa: E702
    vstore(T, to, a0); vstore(T, to + V, a1)  # noqa: E702
    vstore(T, to + 2 * V, b0); vstore(T, to + 3 * V, b1)  # noqa: E702
    vstore(T, to + 4 * V, c0); vstore(T, to + 5 * V, c1)  # noqa: E702
    vstore(T, to + 6 * V, d0); vstore(T, to + 7 * V, d1)  # noqa: E702
    vstore(T, to + 8 * V, e0); vstore(T, to + 9 * V, e1)  # noqa: E702
    vstore(T, to + 10 * V, f0); vstore(T, to + 11 * V, f1)  # noqa: E702


@inlined_kernel
def outer(Cf, Sf, Af, Bf, K, runs, J, sk, sr, tk, tj, alpha, beta, r0, r1, j0, j1, at_pack_a,
          at_pack_b, Mf, rule, eta, mu):
    """C[r0:r1, j0:j1] of C (R, J) <- alpha A B + beta S; A(k, r) = Af[k*sk + r*sr],
    B(k, c) = Bf[k*tk + c*tj]; j0 a multiple of 2V, j1 one too or J.  With rule (optim's
    MOMENTUM or NESTEROV; 0: none) and one run of k, C is not stored but folded into S's step
    (and its memory Mf's) with learning rate eta and momentum mu (_store_rule).
    Inlined by Numba into gemm._run, its one caller: built as a function of its own it was compiled
    and then optimised again in _run (cold compile of the step 15.0-15.6 -> 14.5-14.9 s with
    forward_dots inlined likewise, six interleaved pairs; inlining _k6 and the packs as well
    made it 18.0-18.4 s, when the products were still compiled into the step; _k6 is now
    inlined, see there; _run's other kernels, forward_dots among them, are now called through
    their addresses, gemm.CALLEES)."""
    V = lanes(Bf)
    W = 2 * V
    nk = (K + runs - 1) // runs  # the longest of K's runs (counted in _run)
    S2 = W * nk
    # this part's own scratch, allocated per call: microseconds against >= 1M multiply-adds
    groups = (r1 - r0 + MC - 1) // MC      # of rows, below
    # one group of rows, or up to GROUPS_FEW of them with A packed whole once per run: a block
    # of B serves them alone, so a few strips at a time, packed as they are used, stay in L2
    # (JS_ONE); B by rows takes JS_ROWS strips for one group (its pack reads 1 KB of each row)
    # and JS (at most JS_BYTES) for more
    few = tj != 1 and groups <= GROUPS_FEW
    js = JS_ONE if few else (JS_ROWS if groups == 1 else
                             max(1, min(JS, JS_BYTES // (S2 * Bf.itemsize))))
    whole = groups == 1 or few      # A packed whole, once per run
    P = np.empty(S2 * min(js, (j1 - j0 + W - 1) // W), Bf.dtype)
    Ap = np.empty((groups if whole else 1) * MC * nk + V, Bf.dtype)  # V of slack: pack.pack_a
    Q = np.empty(W * QS, Bf.dtype)           # pack.pack_b's copy of a strip's columns
    # tiles' accumulators: one slot per row block of a group (chains part-way, between pieces
    # of k), then a zero slot (a chain's start) and the finished tile's (_store_rows)
    TS = MR * W
    T = np.empty(TS * (MC // MR + 2), Bf.dtype)
    ZERO, OUT = TS * (MC // MR), TS * (MC // MR + 1)
    for i in range(ZERO, OUT):  # (a loop: a slice assignment costs seconds of compile)
        T[i] = 0
    va, vb = vsplat(Bf, alpha), vsplat(Bf, beta)
    keep = beta != 0
    ve, vmu = vsplat(Bf, -eta), vsplat(Bf, mu)
    nesterov = rule == NESTEROV
    # A part's C of BAND_AREA values or more is read and written from beyond the core's L2:
    # walked strip by strip down a group's (up to) 48 rows, each _k6 touched 6 new rows on as
    # many pages, which the prefetchers do not follow; in bands of BAND_COLS columns a row block
    # runs along its rows.  Measured on 2 threads (znver4, GFLOP/s, strip order -> bands):
    # weight step 16 x 3072 x 2048 25-30 -> 40-46 on one thread, 57-74 -> 61-102 on two;
    # 100 x 3072 x 1024 72 -> 87 and 165 -> 175-178; 500 x 1024 x 3072 189 -> 198-203; forward and
    # input gradient at 500-1024 rows level.  Under it (C in L2, e.g. 1000 x 1000 cut in
    # two), bands were level on one thread and 0.6x on two: the strip order stays there
    # With a rule folded in, each tile's store reads and writes S and M as well, from beyond
    # the caches at wide layers: there bands at any size (1000 x 1000 at batch 16, 2 threads,
    # znver3: the fold's gain 1.04x in strip order, 1.6x in bands; at 100 1.0 -> 1.3x)
    # Where the store reads S (the SGD step's W, a gradient's 2 lam W) or C (runs after the
    # first), each tile waits on 12 loads of 6 rows that strip order leaves uncached; bands from
    # KEEP_BAND_AREA values (256 KB of float32, half this L2).  Weight step, znver3 (GFLOP/s,
    # 15 interleaved rounds, strip -> bands), one thread: 500 x 784 x 512 64 -> 72, 256 x 512 x
    # 512 66 -> 71, 500 x 1000 x 1000 64 -> 67, 500 x 256 x 256 1.04x, 100 x 784 x 100 level;
    # two threads (three runs): 500 x 784 x 512 1.05-1.08x, 500 x 1000 x 1000 1.11x, 256 x 1024
    # x 1024 1.11x, 100 x 3072 x 50 1.02-1.06x, parts under it (500 x 256 x 256) level.  Whole
    # SGD steps (batch 100 and 500 in both orders, 16 and 32 once): 784-1000-1000-10 at batch
    # 16 / 32 / 100 / 500 1.21 / 1.13 / 1.05-1.12 / 1.02-1.05x, 3072-256-256-10 at 32 / 100
    # 1.17 / 1.11-1.13x, others 0.98-1.06x; Adam, 784-1000-1000-10 at 100 1.14x.  Same chains,
    # so the same bits
    area = (r1 - r0) * (j1 - j0)
    reads = keep or runs > 1
    band = max(1, BAND_COLS // W) if (area >= BAND_AREA or rule != 0
                                      or (reads and area >= KEEP_BAND_AREA)) else 1
    # the part's rows in groups of at most MC, as even as whole blocks allow (100 rows: 36, 36
    # and 28, not 48, 48 and 4): a group of one block brought each strip of B in from L3 for
    # a single tile.  Input gradient, znver3 (AVX2), one thread: 100 x 1024 x 1024 1.19x,
    # 60 x 1024 x 1024 1.10x, 100 x 3072 x 1024 1.08x; two: 1.05x, 1.27x; whole steps
    # 784-1000-1000-10 at batch 64 / 100 1.07-1.17x, other wide nets level (the same bits:
    # which group computes a tile does not change its chains)
    mc = ((r1 - r0 + groups - 1) // groups + MR - 1) // MR * MR
    for u in range(runs):
        k0, k1 = K * u // runs, K * (u + 1) // runs
        n = k1 - k0
        first = u == 0
        for b0 in range(j0, j1, W * js):
            b1 = min(j1, b0 + W * js)
            if tj == 1:     # B by rows: the block's strips in one call (pack.CK: why)
                call(pack_b, at_pack_b, P[:(b1 - b0 + W - 1) // W * S2], Q, Bf, k0, k1, b0,
                     b1 - b0, tk, tj)
            else:
                for j in range(b0, b1, W):
                    s = (j - b0) // W
                    call(pack_b, at_pack_b, P[s * S2:(s + 1) * S2], Q, Bf, k0, k1, j,
                         min(W, b1 - j), tk, tj)
            for m0 in range(r0, r1, mc):
                m1 = min(r1, m0 + mc)
                a0 = r0 if whole else m0        # the row at Ap's start
                if not whole or b0 == j0:      # the group's A, not packed yet
                    if sr == 1 and sk != 1 and V >= MR:
                        pack_a_rows(Ap, Af, a0, m0, m1, k0, n, nk, sk, r1 - m0)
                    else:
                        for r in range(m0, m1, MR):
                            call(pack_a, at_pack_a, Ap[(r - a0) * nk:], Af, k0 * sk + r * sr,
                                 min(MR, m1 - r), n, sk, sr, r1 - r)
                # strip order (band 1): each strip of B, once loaded, serves every row block
                # of the group; bands: each row block walks a band's strips.  Two loops either
                # way (x, then y), one call site of _k6: each is a copy for LLVM to compile
                nblk = (m1 - m0 + MR - 1) // MR
                nstr = (b1 - b0 + W - 1) // W
                # strip order: each strip's run of k in nkc pieces of at most KC, each piece
                # over all the group's row blocks before the next, the blocks' chains kept in
                # T between pieces (the same chains, so the same bits), so that the piece of B
                # (KC x 2V: 16 KB) stays in L1 beside A's (6 KC) while the blocks stream
                # through it, as BLIS's kc loop; before, each block read a whole strip of up
                # to 1024 k (64 KB) from L2 again.  Products on 2 threads, znver3, 9 interleaved
                # rounds (median GFLOP/s before -> after): 500 x 784 x 512 forward 111 -> 121,
                # weight step 102 -> 116, input gradient 109 -> 117; 1024 x 784 x 1000 weight
                # step 102 -> 114; 500 x 3072 x 1024 forward 127 -> 136 (shapes of one piece,
                # the same loop as before, moved by up to 1.18x: this host's noise).  Whole
                # SGD steps, two A/B runs in both orders: 784-512-256-10, 784-1000-1000-10
                # and 3072-1024-512-10 at batch 100 and 500 0.99-1.14x (median 1.07x),
                # 784-1000-10 at 1024 1.07x.  Bands keep whole strips: a band's row block reads
                # each strip once.  Groups of 96 rows instead of 48 (more blocks per piece):
                # level, not kept
                nkc = (n + KC - 1) // KC if band == 1 else 1
                for x in range(nstr if band == 1 else (nstr + band - 1) // band * nblk):
                    if band == 1:   # x a strip, y a row block
                        s0, ds, rr, dr, cnt = x, 0, m0, MR, nblk
                    else:           # x a (band, row block), y a strip of the band
                        s0, ds, rr, dr = x // nblk * band, 1, m0 + x % nblk * MR, 0
                        cnt = min(band, nstr - s0)
                    for kc in range(nkc):
                        # pieces as even as can be (784: 4 of 196, not 3 of 256 and 1 of 16)
                        c0 = n * kc // nkc
                        cn = n * (kc + 1) // nkc - c0
                        last = kc == nkc - 1
                        for y in range(cnt):
                            s = s0 + y * ds
                            r = rr + y * dr
                            j = b0 + s * W
                            w = min(W, b1 - j)
                            _k6(T, ZERO if kc == 0 else y * TS, OUT if last else y * TS, Ap,
                                (r - a0) * nk + c0 * MR, P, s * S2 + c0 * W, cn, w,
                                min(MR, m1 - r))
                            if not last:
                                continue
                            if rule == 0:
                                _store_rows(Cf, Sf, T, OUT, r * J + j, J, min(MR, m1 - r), w, va,
                                            vb, keep, first)
                            else:
                                _store_rule(Sf, T, OUT, r * J + j, J, min(MR, m1 - r), w, va, vb,
                                            Mf, ve, vmu, nesterov)
    return
