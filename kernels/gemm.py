"""Every matrix product of a training step and of evaluation, register-blocked and cache-blocked
on vectors (kernels/simd.py), with weights stored as the network stores them: WT (O, I), one row
per output unit; and `products`, the one parallel region that runs them.

    FORWARD  Y (N, O)  <- H (N, I) @ WT^T
    GRAD     dWT (O, I) <- dZ^T @ H + 2 lam WT (then a step)
    SGD_STEP WT (O, I) <- (1 - 2 eta lam) WT - eta dZ^T @ H
    DGRAD    dH (N, I) <- dZ (N, O) @ WT
    GATHER   X <- src[rows]

The forward of a layer of fewer than 128 units runs as dot products of rows read in place
(kernels/gemm_dot.py: there the copies below cost more than they save; the 3072 -> 50 forward
at batch 100 1.5x faster, measured).  Every other product is C (R, J) <- alpha A (R, K) B (K, J)
+ beta S, with A and B read through strides, so one micro-kernel serves all of them (_k6): 6
rows of C by 2 vectors of columns in 12 vector accumulators, fed per k by 2 vector loads of B
and 6 broadcast scalars of A (12 accumulators leave room for the operands in AVX2's 16
registers and keep both FMA units busy: 4-cycle latency x 2 units = 8 chains needed).  Both
operands are packed first, as BLIS and OpenBLAS do:
- K is cut into equal runs of at most KP; each run is one pass of loads and stores over C
  (KP 256 -> 1024 made the products 1.1-1.4x faster, measured on one core);
- B: strips of 2V columns, each k's 2V values contiguous and padded (`pack.pack_b`), up to
  JS strips at a time;
- A: groups of MC rows, in blocks of 6 rows with each k's 6 scalars contiguous (`pack.pack_a`;
  a short block repeats its last row), through register transposes of TA rows.  Read in
  place, the 6 rows' addresses made a chain of dependent adds in the loop: ~70 GFLOP/s a core
  with everything in L1, ~99 packed (znver3).
Loop order (BLIS's): for a run, for a block of strips, for a group of rows, for a strip, for a
block of 6 rows: the strip (<= 64 KB) stays in L1/L2 while the group's rows of A stream through
it.  Against the order before (A's 6 rows in L1, strips streamed from L2): products 1.1-1.7x
faster on 2 threads at 32-500 x 784-3072 x 50-1024 (interleaved, /tmp scripts), one shape at
0.95x (100 x 3072 x 1024's weight gradient).
A batch of a few rows takes kernels/gemm_thin.py instead for its weight step (up to 6 rows),
input gradient (up to 2) and forward (up to 2): there the packing and the 6-row blocks are most
of the work, and each row of C is better streamed, or packed a block at a time, with the same
bits.
The last strip of C's columns and the last block of rows may be short: the strip is padded in
P (zeros or copies of its last column) and stored with masked vector stores, the block repeats
its last row's scalars and stores only its own.

Why not BLAS: OpenBLAS's sgemm gives an element other bits depending on where it falls in its
tiles (measured on its Haswell kernel: 1.4 % of the elements of a (500, 784) x (784, 512)
product change when only the first 250 rows are computed), so a product cut into one block per
thread changed with the thread count, and a row's prediction with its place in the batch.
Here every output element is one fixed sequence of fused multiply-adds (a chain over each run
of k, the runs added in order; runs depend on K only), whichever block, strip or thread
computes it: results do not depend on the thread count, the cut or the row's place.  The build
without SIMD (no AVX2/FMA) runs each product as one BLAS call on the calling thread, which
keeps the thread count out of its results too.
Legend: V lanes per vector; flat views Xf, Wf, ... of C-contiguous arrays.
"""
import numpy as np
from numba import from_dtype, prange, types

from ._config import inlined_kernel, internal_kernel, parallel_kernel
from .blas import fgemm, gemm
from .gemm_dot import NO, NR, dot_form, forward_dots
from .gemm_thin import FWD_ROWS, THIN_K, THIN_ROWS, forward_rows, thin
from .native import address, call, callable_at
from .optim import HP_SIZE, update_range
from .pack import MR, QS, pack_a, pack_b
from .simd import (SIMD, lanes, prefetch, vfma, vload, vload_part, vmul, vsplat, vsplat_at,
                   vstore, vstore_part, vzero)

KP = 1024   # longest run of k: every run is a pass over C's loads and stores
JS = 64     # strips of B per packed block (at most KP * 2V * JS values: 4 MB in float32 on AVX2)
BAND_AREA = 1 << 20     # values of C in a part from which it is walked in bands (_outer)
BAND_COLS = 128         # columns of C per band: 512 bytes of each row in float32
MC = 48     # rows of A packed per group (at most MC * KP values: 192 KB, in L2)
GATHER_AHEAD = 4    # rows a gather asks for before it copies them

FORWARD, GRAD, SGD_STEP, DGRAD, GATHER, GATHER_FORWARD = 0, 1, 2, 3, 4, 5


@internal_kernel
def _put(Cf, Sf, at, w, acc, va, vb, keep, first):
    """C[at:at+w] from one vector acc: acc*alpha + beta*S (first run; keep) or acc*alpha, or
    C + acc*alpha after the first run (small, so that LLVM inlines it).  w < V lanes are
    loaded and stored masked, with the same arithmetic (lane by lane through a scratch vector
    before: ~250 cycles a row, which made a 10-unit output layer's forward 3x slower per row
    than a 16-unit one's, measured)."""
    V = lanes(Sf)
    if w >= V:
        if not first:
            vstore(Cf, at, vfma(acc, va, vload(Cf, at)))
        elif keep:
            vstore(Cf, at, vfma(acc, va, vmul(vload(Sf, at), vb)))
        else:
            vstore(Cf, at, vmul(acc, va))
    elif w > 0:
        if not first:
            vstore_part(Cf, at, vfma(acc, va, vload_part(Cf, at, w)), w)
        elif keep:
            vstore_part(Cf, at, vfma(acc, va, vmul(vload_part(Sf, at, w), vb)), w)
        else:
            vstore_part(Cf, at, vmul(acc, va), w)


@internal_kernel
def _row(Cf, Sf, at, w, acc0, acc1, va, vb, keep, first):
    V = lanes(Sf)
    _put(Cf, Sf, at, min(w, V), acc0, va, vb, keep, first)
    _put(Cf, Sf, at + V, w - V, acc1, va, vb, keep, first)


@internal_kernel
def _k6(Cf, Sf, Ap, P, r0, nr, j, w, n, J, va, vb, keep, first):
    """C[r0:r0+nr, j:j+w] (nr <= 6) over the packed run P (n values of k) and the packed rows
    Ap of A (pack.pack_a).  Fewer than 6 rows repeat the last one's scalars and store only theirs:
    each row's lanes are the same chains as in a full block."""
    V = lanes(P)
    a0 = vzero(P); a1 = vzero(P); b0 = vzero(P); b1 = vzero(P)  # noqa: E702
    c0 = vzero(P); c1 = vzero(P); d0 = vzero(P); d1 = vzero(P)  # noqa: E702
    e0 = vzero(P); e1 = vzero(P); f0 = vzero(P); f1 = vzero(P)  # noqa: E702
    # a strip of at most V columns (the last of a 50-unit layer's: 2 of 16) takes one vector:
    # half the multiply-adds, the same chain for each of its columns (a 50-column forward
    # 6-8 % faster, measured)
    for k in range(n if w <= V else 0):
        p = vload(P, 2 * V * k)
        d = k * MR
        a0 = vfma(p, vsplat_at(Ap, d), a0)
        b0 = vfma(p, vsplat_at(Ap, d + 1), b0)
        c0 = vfma(p, vsplat_at(Ap, d + 2), c0)
        d0 = vfma(p, vsplat_at(Ap, d + 3), d0)
        e0 = vfma(p, vsplat_at(Ap, d + 4), e0)
        f0 = vfma(p, vsplat_at(Ap, d + 5), f0)
    for k in range(n if w > V else 0):
        p = vload(P, 2 * V * k)
        q = vload(P, 2 * V * k + V)
        d = k * MR
        x = vsplat_at(Ap, d); a0 = vfma(p, x, a0); a1 = vfma(q, x, a1)  # noqa: E702
        x = vsplat_at(Ap, d + 1); b0 = vfma(p, x, b0); b1 = vfma(q, x, b1)  # noqa: E702
        x = vsplat_at(Ap, d + 2); c0 = vfma(p, x, c0); c1 = vfma(q, x, c1)  # noqa: E702
        x = vsplat_at(Ap, d + 3); d0 = vfma(p, x, d0); d1 = vfma(q, x, d1)  # noqa: E702
        x = vsplat_at(Ap, d + 4); e0 = vfma(p, x, e0); e1 = vfma(q, x, e1)  # noqa: E702
        x = vsplat_at(Ap, d + 5); f0 = vfma(p, x, f0); f1 = vfma(q, x, f1)  # noqa: E702
    at = r0 * J + j
    if w < 2 * V:               # the last strip of C's columns, masked
        _row(Cf, Sf, at, w, a0, a1, va, vb, keep, first)
        if nr > 1:
            _row(Cf, Sf, at + J, w, b0, b1, va, vb, keep, first)
        if nr > 2:
            _row(Cf, Sf, at + 2 * J, w, c0, c1, va, vb, keep, first)
        if nr > 3:
            _row(Cf, Sf, at + 3 * J, w, d0, d1, va, vb, keep, first)
        if nr > 4:
            _row(Cf, Sf, at + 4 * J, w, e0, e1, va, vb, keep, first)
        if nr > 5:
            _row(Cf, Sf, at + 5 * J, w, f0, f1, va, vb, keep, first)
        return
    # whole strips: written here, not through _row (its calls cost as much as the k loop:
    # 1.5-2x slower products, measured); the same arithmetic as _put (C * 1 is exact)
    if first and not keep:
        vstore(Cf, at, vmul(a0, va)); vstore(Cf, at + V, vmul(a1, va))  # noqa: E702
        if nr > 1:
            vstore(Cf, at + J, vmul(b0, va)); vstore(Cf, at + J + V, vmul(b1, va))  # noqa: E702
        if nr > 2:
            vstore(Cf, at + 2 * J, vmul(c0, va)); vstore(Cf, at + 2 * J + V, vmul(c1, va))  # noqa: E702
        if nr > 3:
            vstore(Cf, at + 3 * J, vmul(d0, va)); vstore(Cf, at + 3 * J + V, vmul(d1, va))  # noqa: E702
        if nr > 4:
            vstore(Cf, at + 4 * J, vmul(e0, va)); vstore(Cf, at + 4 * J + V, vmul(e1, va))  # noqa: E702
        if nr > 5:
            vstore(Cf, at + 5 * J, vmul(f0, va)); vstore(Cf, at + 5 * J + V, vmul(f1, va))  # noqa: E702
        return
    Src = Sf if first else Cf
    m = vb if first else vsplat(P, 1.0)
    vstore(Cf, at, vfma(a0, va, vmul(vload(Src, at), m)))
    vstore(Cf, at + V, vfma(a1, va, vmul(vload(Src, at + V), m)))
    if nr > 1:
        vstore(Cf, at + J, vfma(b0, va, vmul(vload(Src, at + J), m)))
        vstore(Cf, at + J + V, vfma(b1, va, vmul(vload(Src, at + J + V), m)))
    if nr > 2:
        vstore(Cf, at + 2 * J, vfma(c0, va, vmul(vload(Src, at + 2 * J), m)))
        vstore(Cf, at + 2 * J + V, vfma(c1, va, vmul(vload(Src, at + 2 * J + V), m)))
    if nr > 3:
        vstore(Cf, at + 3 * J, vfma(d0, va, vmul(vload(Src, at + 3 * J), m)))
        vstore(Cf, at + 3 * J + V, vfma(d1, va, vmul(vload(Src, at + 3 * J + V), m)))
    if nr > 4:
        vstore(Cf, at + 4 * J, vfma(e0, va, vmul(vload(Src, at + 4 * J), m)))
        vstore(Cf, at + 4 * J + V, vfma(e1, va, vmul(vload(Src, at + 4 * J + V), m)))
    if nr > 5:
        vstore(Cf, at + 5 * J, vfma(f0, va, vmul(vload(Src, at + 5 * J), m)))
        vstore(Cf, at + 5 * J + V, vfma(f1, va, vmul(vload(Src, at + 5 * J + V), m)))


@inlined_kernel
def _outer(Cf, Sf, Af, Bf, K, runs, J, sk, sr, tk, tj, alpha, beta, r0, r1, j0, j1, update, mW,
           vW, kind, eta, hp):
    """C[r0:r1, j0:j1] of C (R, J) <- alpha A B + beta S; A(k, r) = Af[k*sk + r*sr],
    B(k, c) = Bf[k*tk + c*tj]; j0 a multiple of 2V, j1 one too or J.  With `update` (the
    weight gradient: C = dWT, S = WT), each tile of C, once final, gives its optimiser step
    (kernels/optim.py) while it is still in cache: a pass of its own over the part afterwards
    read dWT, WT and the memory back from L3 or memory (Nesterov's step on 784 x 512 at batch
    100: +0.17 ms over the folded SGD step, measured).
    Inlined by Numba into _run, its one caller: built as a function of its own it was compiled
    and then optimised again in _run (cold compile of the step 15.0-15.6 -> 14.5-14.9 s with
    forward_dots inlined likewise, six interleaved pairs; inlining _k6 and the packs as well
    made it 18.0-18.4 s)."""
    V = lanes(Bf)
    W = 2 * V
    nk = (K + runs - 1) // runs  # the longest of K's runs (counted in _run)
    S2 = W * nk
    # this part's own scratch, allocated per call: microseconds against >= 1M multiply-adds
    P = np.empty(S2 * min(JS, (j1 - j0 + W - 1) // W), Bf.dtype)
    Ap = np.empty(MC * nk + V, Bf.dtype)     # V of slack: pack.pack_a
    Q = np.empty(W * QS, Bf.dtype)           # pack.pack_b's copy of a strip's columns
    va, vb = vsplat(Bf, alpha), vsplat(Bf, beta)
    keep = beta != 0
    # A part's C of BAND_AREA values or more is read and written from beyond the core's L2:
    # walked strip by strip down a group's 48 rows, each _k6 touched 6 new rows on as many
    # pages, which the prefetchers do not follow; in bands of BAND_COLS columns a row block
    # runs along its rows.  Measured on 2 threads (znver4, GFLOP/s, strip order -> bands):
    # weight step 16 x 3072 x 2048 25-30 -> 40-46 on one thread, 57-74 -> 61-102 on two;
    # 100 x 3072 x 1024 72 -> 87 and 165 -> 175-178; 500 x 1024 x 3072 189 -> 198-203; forward and
    # input gradient at 500-1024 rows level.  Under it (C in L2, e.g. 1000 x 1000 cut in
    # two), bands were level on one thread and 0.6x on two: the strip order stays there
    band = max(1, BAND_COLS // W) if (r1 - r0) * (j1 - j0) >= BAND_AREA else 1
    for u in range(runs):
        k0, k1 = K * u // runs, K * (u + 1) // runs
        n = k1 - k0
        first = u == 0
        for b0 in range(j0, j1, W * JS):
            b1 = min(j1, b0 + W * JS)
            for j in range(b0, b1, W):
                s = (j - b0) // W
                pack_b(P[s * S2:(s + 1) * S2], Q, Bf, k0, k1, j, min(W, b1 - j), tk, tj)
            for m0 in range(r0, r1, MC):
                m1 = min(r1, m0 + MC)
                for r in range(m0, m1, MR):
                    pack_a(Ap[(r - m0) * nk:], Af, k0 * sk + r * sr, min(MR, m1 - r), n,
                           sk, sr, r1 - r)
                # strip order (band 1): each strip of B, once loaded, serves every row block
                # of the group; bands: each row block walks a band's strips.  Two loops either
                # way (x, then y), one call site of _k6: each is a copy for LLVM to compile
                nblk = (m1 - m0 + MR - 1) // MR
                nstr = (b1 - b0 + W - 1) // W
                for x in range(nstr if band == 1 else (nstr + band - 1) // band * nblk):
                    if band == 1:   # x a strip, y a row block
                        s0, ds, rr, dr, cnt = x, 0, m0, MR, nblk
                    else:           # x a (band, row block), y a strip of the band
                        s0, ds, rr, dr = x // nblk * band, 1, m0 + x % nblk * MR, 0
                        cnt = min(band, nstr - s0)
                    for y in range(cnt):
                        s = s0 + y * ds
                        r = rr + y * dr
                        j = b0 + s * W
                        _k6(Cf, Sf, Ap[(r - m0) * nk:(r - m0 + MR) * nk],
                            P[s * S2:(s + 1) * S2], r, min(MR, m1 - r), j, min(W, b1 - j),
                            n, J, va, vb, keep, first)
                if update and u == runs - 1:    # the tile C[m0:m1, b0:b1] is final
                    for o in range(m0, m1):
                        update_range(Sf, Cf, mW, vW, o * J + b0, o * J + b1, kind, eta, hp)
    return


# ---- the parallel region -------------------------------------------------------------------
@internal_kernel
def _cut(units, t, nb):
    """Units [u0, u1) of part t of nb (contiguous, sizes differing by at most one)."""
    return units * t // nb, units * (t + 1) // nb


@internal_kernel
def _grid(R, J, step_r, step_j, nb):
    """(pr, pc), pr * pc = nb: how many parts _rect cuts an (R, J) output's rows and its columns
    into.  Each part packs (or reads) its own rows of A and columns of B, ~K (R / pr + J / pc)
    values, while the multiply-adds are shared out whatever the grid, so the grid is the one
    with the least of that among those that give every part a block of both sides.  With 2
    parts that is the longer side cut (net A's forward, 100-500 x 3072 x 50, cut by columns had
    both threads pack all of X: 1.3-1.7x slower than by rows, measured); with more, a cut of
    one side alone has every part pack the whole other operand whatever its own share, so
    there a grid (16 parts of 1024 x 1000: 4 x 4, each packing a quarter of both) keeps the
    packing a part's size.  Measured with 8 parts on 2 cores (the parts' total work, znver4,
    GFLOP/s, one side's cut -> the grid): 100 x 3072 x 50 forward 134 -> 155, 64 x 1024 x 1024
    weight step 114 -> 139, 1024 x 784 x 1000 1.02-1.03x, the rest level; whole steps 1.00-
    1.06x (3072-50-50-10 at batch 100 1.06x, 784-512-256-10 at 500 1.05x).  Where no grid
    gives every part a block of both sides, the side with more blocks is cut alone."""
    br, bj = (R + step_r - 1) // step_r, (J + step_j - 1) // step_j
    best, cost = 0, 0
    for i in range(nb):     # the longer side's cut alone first: it wins ties
        pr = i + 1 if J >= R else nb - i
        pc = nb // pr
        if pr * pc == nb and pr <= br and pc <= bj:
            c = R * pc + J * pr     # nb (R / pr + J / pc), in integers
            if best == 0 or c < cost:
                best, cost = pr, c
    if best > 0:
        return best, nb // best
    return (1, nb) if bj > br or (bj == br and J >= R) else (nb, 1)


@internal_kernel
def gathers_rows(N, O, nb):
    """Whether a layer of O units takes GATHER_FORWARD for a gathered batch of N rows in nb
    parts: its forward runs as dot products (gemm_dot) cut by rows alone, so each part can
    gather the rows it is about to multiply."""
    return SIMD and dot_form(O) and _grid(N, O, np.int64(NR), np.int64(NO), nb)[1] == 1


@internal_kernel
def _rect(R, J, step_r, step_j, t, nb):
    """Part t of nb of an (R, J) output cut into blocks of step_r rows and step_j columns, on
    the grid of parts _grid gives: rows [r0, r1), columns [j0, j1)."""
    br, bj = (R + step_r - 1) // step_r, (J + step_j - 1) // step_j
    pr, pc = _grid(R, J, step_r, step_j, nb)
    u0, u1 = _cut(br, t // pc, pr)
    v0, v1 = _cut(bj, t % pc, pc)
    return min(R, u0 * step_r), min(R, u1 * step_r), min(J, v0 * step_j), min(J, v1 * step_j)


@parallel_kernel
def products(task, Y, X, WT, dY, dWT, lam, eta, update, mW, vW, kind, hp, nb, src, idx, run):
    """One product (or the gather) cut into nb parts, one per thread; nb = 1 runs it whole on
    the calling thread, without waking the pool.  X (N, I), WT (O, I) as stored, Y and dY (N, O),
    `run` _run's address (native_products):

      FORWARD   Y <- X WT^T (training and evaluation)
      GRAD      dWT <- dY^T X + 2 lam WT; with `update`, each part then takes its optimiser
                step (kernels/optim.py: rule `kind`, learning rate eta, WT's slices mW, vW of
                the memory, hyperparameters hp)
      SGD_STEP  WT <- (1 - 2 eta lam) WT - eta dY^T X: plain SGD folded into the product, no
                gradient stored (saves two passes over WT and dWT)
      DGRAD     X <- dY WT: the input gradient (X is the output here)
      GATHER    X <- src[idx] (idx (N,) row numbers), in nb runs of columns: a batch of shuffled
                rows copied where the step needs it, instead of shuffling the whole training
                set each epoch (a 553 MB copy at the study's size)
      GATHER_FORWARD  GATHER, then FORWARD, in one region (where gathers_rows): each part
                gathers the rows of X it then multiplies, so the step wakes the threads once
                for both (the study net's whole step 1.02-1.04x on 2 threads, measured)

    One parallel region for all of them: every `prange` kernel costs 1-2.4 s of the first
    run's compile (measured; the budget is 15 s).  Its parts call _run through its address
    (kernels/native.py), so _run's code is compiled once, not again in this function and in
    its parallel body."""
    if nb == 1:
        call(_run, run, np.int64(0), task, Y, X, WT, dY, dWT, lam, eta, update, mW, vW, kind, hp,
             nb, src, idx)
        return
    for t in prange(nb):
        # int64: the parallel loop index is unsigned
        call(_run, run, np.int64(t), task, Y, X, WT, dY, dWT, lam, eta, update, mW, vW, kind, hp,
             nb, src, idx)
    return


@internal_kernel
def _run(t, task, Y, X, WT, dY, dWT, lam, eta, update, mW, vW, kind, hp, nb, src, idx):
    """Part t of nb of `products` (nb = 1: the whole product, the same code, so the same bits)."""
    N, I = X.shape
    O = WT.shape[0]
    Xf, Wf, Yf, dYf, dWf = X.reshape(-1), WT.reshape(-1), Y.reshape(-1), dY.reshape(-1), dWT.reshape(-1)
    V = lanes(Xf)
    if task == GATHER or task == GATHER_FORWARD:
        n0, n1, k0, k1 = 0, N, 0, I
        if task == GATHER:
            k0, k1 = _cut(I, t, nb)
        else:                                   # the forward's own rows (gathers_rows)
            n0, n1 = _rect(N, O, np.int64(NR), np.int64(NO), t, nb)[:2]
        Sf = src.reshape(-1)
        L = k1 - k0
        line = 64 // Sf.itemsize
        for n in range(n0, n1):
            # the rows are shuffled, so no prefetcher foresees the next one: ask for the part
            # of the row GATHER_AHEAD further on now.  784-value rows (Fashion-MNIST's) from
            # a 188 MB float32 set: the gather alone 43 -> 27 us a batch of 100 on one thread
            # (znver4; prefetching into L1 instead: no faster); the study net's whole step
            # 1.06x on one thread, 1.02-1.04x on two (1, 2, 4 or 8 rows ahead alike)
            if n + GATHER_AHEAD < n1:
                ahead = idx[n + GATHER_AHEAD] * I
                for c in range(k0, k1, line):
                    prefetch(Sf, ahead + c)
            # 1-D views indexed from 0: the copy vectorises (2-D indexing from k0 kept Numba's
            # negative-index test in the loop: 5x slower), and it compiles in a fraction of
            # the time of a slice assignment (~2.5 s of the first run, measured)
            dst = Xf[n * I + k0:n * I + k1]
            row = Sf[idx[n] * I + k0:idx[n] * I + k1]
            for j in range(L):
                dst[j] = row[j]
        if task == GATHER:
            return
    if not SIMD:        # one BLAS call, by the first part only
        if t == 0:
            _blas(task, Yf, Xf, Wf, dYf, dWf, N, I, O, lam, eta)
            if task == GRAD and update:
                update_range(Wf, dWf, mW, vW, 0, O * I, kind, eta, hp)
        return
    # C <- alpha A B + beta S through one call (each call site is a copy of the kernels for
    # LLVM to optimise: seconds of the first run's compile).  The block sizes go to _rect as
    # np.int64: as module constants they are literals, and each set of literal values compiled
    # _rect and _grid again (passed as np.int64, a cold compile of the step was 0.3-0.5 s
    # shorter in 6 of 7 interleaved pairs)
    if (task == FORWARD or task == GATHER_FORWARD) and dot_form(O):   # narrow: gemm_dot.py
        r0, r1, j0, j1 = _rect(N, O, np.int64(NR), np.int64(NO), t, nb)
        if r1 > r0 and j1 > j0:
            forward_dots(Yf, Xf, Wf, I, O, r0, r1, j0, j1)
        return
    # streamed: a batch of a few rows takes gemm_thin.thin, the others the packed _outer
    if task == FORWARD:     # Y (N, O): A(k=i, r=n) = X[n I + i], B(k=i, c=o) = WT[o I + i]
        r0, r1, j0, j1 = _rect(N, O, np.int64(MR), 2 * V, t, nb)
        Cf, Sf, Af, Bf, K, J, sk, sr, tk, tj, alpha, beta = Yf, Yf, Xf, Wf, I, O, 1, I, 1, I, 1.0, 0.0
        streamed = N <= FWD_ROWS
    elif task == DGRAD:     # X (N, I): A(k=o, r=n) = dY[n O + o], B(k=o, c=i) = WT[o I + i]
        r0, r1, j0, j1 = _rect(N, I, np.int64(MR), 2 * V, t, nb)
        Cf, Sf, Af, Bf, K, J, sk, sr, tk, tj, alpha, beta = Xf, Xf, dYf, Wf, O, I, 1, O, I, 1, 1.0, 0.0
        streamed = N <= THIN_ROWS
    else:                   # (O, I): A(k=n, r=o) = dY[n O + o], B(k=n, c=i) = X[n I + i]
        streamed = N <= THIN_K
        if streamed:
            # cut by rows alone: each part a run of whole rows of WT, one stretch of memory
            # (cut by columns, the two parts wrote the two halves of each row at the same time:
            # 1 x 1024 x 1024 on 2 threads 920 against 81 us, one A/B run)
            r0, r1 = _cut(O, t, nb)
            j0, j1 = 0, I
        else:
            r0, r1, j0, j1 = _rect(O, I, np.int64(MR), 2 * V, t, nb)
        Cf, Sf, Af, Bf, K, J, sk, sr, tk, tj = dWf, Wf, dYf, Xf, N, I, O, 1, I, 1
        alpha, beta = 1.0, 2.0 * lam
        if task == SGD_STEP:
            Cf, alpha, beta = Wf, -eta, 1.0 - 2.0 * eta * lam
    if r1 <= r0 or j1 <= j0:
        return
    # K in runs of equal length, at most KP each (a short last run would cost a whole pass of
    # C's loads and stores for little work); one count for both kernels, whose bits depend on it
    runs = (K + KP - 1) // KP
    if streamed and task == FORWARD:
        forward_rows(Yf, Xf, Wf, I, O, runs, r0, r1, j0, j1)
        return
    if streamed:
        thin(Cf, Sf, Af, Bf, K, runs, J, sk, sr, tk, alpha, beta, r0, r1, j0, j1,
             task == GRAD and update, mW, vW, kind, eta, hp)
        return
    _outer(Cf, Sf, Af, Bf, K, runs, J, sk, sr, tk, tj, alpha, beta, r0, r1, j0, j1,
           task == GRAD and update, mW, vW, kind, eta, hp)
    return


@internal_kernel
def _blas(task, Yf, Xf, Wf, dYf, dWf, N, I, O, lam, eta):
    """The build without SIMD: each product as one BLAS call (row-major arrays passed as their
    Fortran transposes, kernels/blas.py)."""
    if task == FORWARD:
        gemm(84, 78, O, N, I, Wf, I, Xf, I, 0.0, Yf, O)
    elif task == DGRAD:
        gemm(78, 78, I, N, O, Wf, I, dYf, O, 0.0, Xf, I)
    elif task == SGD_STEP:
        fgemm(78, 84, I, O, N, -eta, Xf, I, dYf, O, 1.0 - 2.0 * eta * lam, Wf, I)
    else:
        for e in range(O * I):
            dWf[e] = 2 * lam * Wf[e]
        gemm(78, 84, I, O, N, Xf, I, dYf, O, 1.0, dWf, I)


# ---- products for a dtype, as addresses (kernels/native.py) ---------------------------------
def _argtypes(dtype):
    """The argument types of products (without `run`) for arrays of `dtype`."""
    c1, c2 = types.Array(from_dtype(dtype), 1, "C"), types.Array(from_dtype(dtype), 2, "C")
    i, f = types.int64, types.float64
    return (i, c2, c2, c2, c2, c2, f, f, types.boolean, c1, c1, i, types.Array(f, 1, "C"), i,
            c2, types.Array(i, 1, "C"))


DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
callable_at(products, [_argtypes(d) + (types.int64,) for d in DTYPES])
callable_at(_run, [(types.int64,) + _argtypes(d) for d in DTYPES])
_NATIVE = {}


def native_products(dtype):
    """The addresses (products, _run) for arrays of `dtype`, the last two arguments of
    step.train_step: compiled on first use (or loaded from the cache).  Called through them,
    the kernels under products are compiled once, not again inside each caller."""
    if dtype not in _NATIVE:
        d = np.dtype(dtype)
        _NATIVE[dtype] = (address(products, _argtypes(d) + (types.int64,)),
                          address(_run, (types.int64,) + _argtypes(d)))
    return _NATIVE[dtype]


# ---- the tasks one by one, from Python (tests, benchmarks) --------------------------------
_NO_ROWS = np.empty(0, np.int64)


def _products(*args):
    """products(*args) for the wrappers below, with _run's address for X's dtype."""
    products(*args, native_products(args[2].dtype)[1])


def _none(X):
    return np.empty((0, 0), X.dtype)


def _no_state(X):
    return np.empty(0, X.dtype), np.empty(0, X.dtype), 0, np.zeros(HP_SIZE)


def _check(X, WT, *pairs):
    """The tasks trust their shapes; these wrappers, off the step's path, check them."""
    arrays = (X, WT) + tuple(a for a, _ in pairs)
    if len({a.dtype for a in arrays}) != 1 or not all(a.flags.c_contiguous for a in arrays):
        raise ValueError("every array must be C-contiguous with one dtype")
    if WT.shape[1] != X.shape[1]:
        raise ValueError(f"WT must be (O, K) = (units, inputs) for X (N, K) = {X.shape}; got "
                         f"{WT.shape} (weights are stored one row per output unit)")
    for a, shape in pairs:
        if a.shape != shape:
            raise ValueError(f"expected an array of shape {shape}; got {a.shape}")


def gather(out, X, rows, nb=2):
    """out (N, K) <- X[rows] (task GATHER)."""
    rows = np.asarray(rows, np.int64)
    if out.shape != (len(rows), X.shape[1]) or out.dtype != X.dtype or not X.flags.c_contiguous:
        raise ValueError(f"out must be (len(rows), K) = {(len(rows), X.shape[1])} in X's dtype, and X "
                         f"C-contiguous; got out {out.shape} {out.dtype}")
    _products(GATHER, _none(out), out, _none(out), _none(out), _none(out), 0.0, 0.0, False,
             *_no_state(out), nb, X, rows)


def dot_nt(Y, X, WT, nb):
    """Y (N, O) <- X (N, K) @ WT (O, K)^T (task FORWARD)."""
    _check(X, WT, (Y, (X.shape[0], WT.shape[0])))
    _products(FORWARD, Y, X, WT, _none(X), _none(X), 0.0, 0.0, False, *_no_state(X), nb, X,
             _NO_ROWS)


def input_grad(dX, dY, WT, nb):
    """dX (N, K) <- dY (N, O) @ WT (O, K) (task DGRAD)."""
    _check(dX, WT, (dY, (dX.shape[0], WT.shape[0])))
    _products(DGRAD, _none(dX), dX, WT, dY, _none(dX), 0.0, 0.0, False, *_no_state(dX), nb, dX,
             _NO_ROWS)


def weight_grad(dWT, X, dY, WT, lam, eta, update, nb, mW, vW, kind, hp):
    """dWT (O, K) <- dY (N, O)^T X (N, K) + 2 lam WT, then with `update` the optimiser's step
    (task GRAD)."""
    _check(X, WT, (dY, (X.shape[0], WT.shape[0])), (dWT, WT.shape))
    _products(GRAD, _none(X), X, WT, dY, dWT, float(lam), float(eta), update, mW, vW, kind, hp,
             nb, X, _NO_ROWS)


def weight_sgd_step(WT, X, dY, lam, eta, nb):
    """WT (O, K) <- (1 - 2 eta lam) WT - eta dY^T X in place (task SGD_STEP)."""
    _check(X, WT, (dY, (X.shape[0], WT.shape[0])))
    _products(SGD_STEP, _none(X), X, WT, dY, _none(X), float(lam), float(eta), True,
             *_no_state(X), nb, X, _NO_ROWS)
