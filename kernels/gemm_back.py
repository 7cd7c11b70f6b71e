"""A hidden layer's input gradient and its weights' product in one pass over its weights, for a
batch of a few rows or a small layer: kernels/gemm.py's DGRAD_SGD (plain SGD's step folded in)
and DGRAD_GRAD (the gradient, for the other rules' step after it):

    dH (N, I) <- dZ (N, O) @ WT (O, I)                        (WT before the step)
    WT        <- (1 - 2 eta lam) WT - eta dZ^T @ H (N, I)     (DGRAD_SGD)
    dWT       <- dZ^T @ H + 2 lam WT                          (DGRAD_GRAD)

Why: at a few rows a wide layer's products are bound by moving WT, not by multiplying, and a
narrow layer's (the study nets' 50 -> 50 and 50 -> 10 at batch 100) by the fixed costs of two
products. Apart, DGRAD packs and reads all of WT and SGD_STEP reads and writes it again; here
each vector of WT is read once, serves every row's input gradient, takes its step and is
written back (the packing of both products goes too). A part is a run of columns of both dH and
WT, so the two halves of one layer's backward never meet across threads.

Loop order: a strip of V columns, then its rows of dH in chunks of CH (CH accumulators), then
every unit o in order: the chunk's input gradients are the packed kernel's chains over k = o;
during the strip's last chunk each block of OB units then takes its step: per unit the chain
over k = n of dZ[n, o] H[n, strip] from 0 (OB chains side by side), then the store arithmetic
of gemm_packed._store_rows.  So every element gets the bits the two products give apart
(DGRAD, then SGD_STEP or GRAD), whichever kernel those would have taken: K = O is one run here
(O <= KP), and so is K = N (N <= KP).
A batch of at most CH rows is one pass, down WT's strip where it lies (O cache lines a stride
of I apart).  More rows take several passes over the strip: there a block of SB strips is
first copied row by row into P (O x SB V values, in L2), every pass and the step work on the
copy, and it is copied back; read down WT itself again, a power-of-two I put the strip's lines
in a few of L1's and L2's sets (16 x 1024 x 1024 0.78x the two products apart, against 1.39x
at 16 x 1000 x 1000, measured).
"""
import numpy as np

from ._config import internal_kernel
from .gemm_packed import KP
from .simd import (VECTOR_BYTES, lanes, vfma, vload, vload_part, vmul, vsplat, vsplat_at, vstore,
                   vstore_part, vtranspose, vzero)

CH = 8      # rows of dH per chunk (accumulators)
OB = 8      # units of WT per step block (accumulators): with CH, 16 of AVX-512's 32 registers
SB = 4      # strips per copied block: O x 4V values, 256 KB at O = 1024 in float32 on 16 lanes
# Which layers fuse: measured on 2 threads (znver4, float32, 16 lanes; N x I x O, the two
# products apart -> fused, interleaved): 1 x 1000 x 1000 0.76x (kernels/gemm_thin.py streams
# WT by rows there), 2 x 1000 x 1000 1.05x (0.90x on one thread), 3 x 1000 x 1000 1.40x,
# 8 x 1000 x 1000 1.76x, 16 x 1000 x 1000 1.27x, 16 x 1024 x 1024 1.20x, 16 x 4096 x 1000
# 1.34x, 32 x 1000 x 1000 1.20x, 64 x 1000 x 1000 1.06x, 64 x 1024 x 1024 1.09x, 64 x 512 x
# 256 1.13x; and at more rows where the product is small (on one thread, where the step runs
# it): 100 x 50 x 50 1.24x, 100 x 50 x 10 1.48x, 500 x 50 x 50 1.25x, 1024 x 50 x 50 1.19x,
# 512 x 100 x 100 1.11x, 256 x 128 x 128 1.06x, 100 x 256 x 256 1.04x, 256 x 256 x 256 1.00x.
# Where multiplying bounds it, the packed kernel's 12 accumulators win: 100 x 1000 x 1000
# 0.93x, 500 x 512 x 256 0.94x, 1024 x 1000 x 1000 0.84x (2 threads).  With 32-byte vectors
# (AVX2's 16 registers; FASTMLP_VECTOR_BYTES=32 on this machine) a pass's CH chains and the
# step's OB do not fit the registers together: 8 x 1000 x 1000 2.01x, but 16 x 1000 x 1000
# 0.99x and 64 x 1000 x 1000 0.72x, so there only one pass (at most CH rows) fuses
BACK_ROWS = 64 if VECTOR_BYTES >= 64 else CH
BACK_MACS = 1 << 23 if VECTOR_BYTES >= 64 else 0
# A layer of fewer than 16 units (an output layer) has short blocks for the step (10 units:
# 16 chains for 10) and a strip's fixed costs over little work: 64 x 4096 x 10 0.89x and 64 x
# 2048 x 10 0.87x (one thread), while 64 x 1000 x 10 1.08x, 16 x 4096 x 10 1.10x and the study's
# 100 x 50 x 10 1.37-1.54x: there it fuses up to SHORT_MACS multiply-adds
SHORT_UNITS = 16
SHORT_MACS = 1 << 20
# With 32-byte vectors, a layer of more than FEW_WEIGHTS weights takes its two products apart
# at any rows: a pass below CH rows still runs CH chains (a short chunk repeats its last row),
# and on a real AVX2 host (znver3, 2 threads, float32; the figures above came from an AVX-512
# host building 32-byte vectors) whole steps lost even at CH rows.  Whole SGD steps, apart ->
# fused, interleaved in one process, medians of 9-15 rounds: 784-1000-1000-10 at batch 3 / 4 /
# 7 / 8 0.50 / 0.80 / 0.62-0.79 / 0.59-0.68x, 784-1024-1024-10 0.73 / 0.65 / 0.81 / 0.78x,
# 784-768-768-10 at 3 / 4 0.75 / 0.73x, 784-512-256-10 at 3 / 4 / 7 / 8 0.91 / 0.99 / 0.92 /
# 0.93-1.02x, 784-200-200-10 at 7 / 8 0.96x.  A layer of up to FEW_WEIGHTS weights still gains
# at any rows (the products alone: 4 x 100 x 100 1.16x, 8 x 50 x 50 1.57x).
FEW_WEIGHTS = 1 << 14


@internal_kernel
def fused_shape(N, I, O):
    """Whether a layer of I inputs and O units at batch N can take DGRAD_SGD or DGRAD_GRAD
    (gemm.fuses_back):
    from 3 rows, at most KP units and KP rows (each of the two products' k in one run: SGD_STEP
    cuts a longer batch into runs, whose sums this kernel's one chain would not reproduce), and
    BACK_ROWS rows or BACK_MACS multiply-adds (under SHORT_UNITS units, at most SHORT_MACS;
    with 32-byte vectors, at most FEW_WEIGHTS weights)."""
    if O < SHORT_UNITS and N * I * O > SHORT_MACS:
        return False
    if VECTOR_BYTES < 64 and O >= SHORT_UNITS and I * O > FEW_WEIGHTS:
        return False
    return 3 <= N <= KP and 1 <= O <= KP and (N <= BACK_ROWS or N * I * O <= BACK_MACS)


@internal_kernel
def dz_rows(N, itemsize):
    """NT, the row length of dZ transposed (O, NT): N padded to an odd number of cache lines,
    so that its rows spread over every set of L1 (1024 rows of 50 units, 4 KB apart: 0.38x
    the products apart)."""
    line = 64 // itemsize
    lines = (N + line - 1) // line
    return (lines + 1 - lines % 2) * line


@internal_kernel
def transpose_dz(dZT, dZf, N, O, NT):
    """dZT[o NT + n] <- dZ[n, o]: a unit's scalars for a chunk's rows, and a row's for a block
    of units, then lie together (read down dZ's columns, a power-of-two O put them in one of
    L1's sets).  Done once per product by its caller, not by each part: every part needs all
    of it.  In V x V blocks through register transposes (simd.vtranspose); a block of fewer
    than V rows repeats its last row into dZT's padding (NT is whole vectors); the last units
    short of a block one by one (a block there would read past dZ's end)."""
    V = lanes(dZT)
    full = O - O % V
    for o0 in range(0, full, V):
        for n0 in range(0, N, V):
            vtranspose(dZT, o0 * NT + n0, NT, dZf, n0 * O + o0, O, min(V, N - n0), 64)
    for o in range(full, O):
        for n in range(N):
            dZT[o * NT + n] = dZf[n * O + o]


@internal_kernel
def dgrad_weights(dHf, Wf, Df, dZT, Hf, N, I, O, NT, alpha, beta, in_place, j0, j1):
    """Columns [j0, j1) of dH and of D (j0 a multiple of V): the input gradient from WT, then
    D <- alpha dZ^T H + beta WT (gemm_packed._store_rows' arithmetic), D (O, I) being WT itself
    (`in_place`: SGD_STEP's alpha = -eta, beta = 1 - 2 eta lam) or the gradient dWT (GRAD's
    1, 2 lam); flat views of C-contiguous dH (N, I), WT, D, H (N, I) and dZ transposed
    (transpose_dz)."""
    V = lanes(Wf)
    vs, vb, keep = vsplat(Wf, alpha), vsplat(Wf, beta), beta != 0
    Hs = np.empty(N * V, Wf.dtype)
    if N <= CH:     # one pass, on WT where it lies
        for j in range(j0, j1, V):
            _strip(Wf, j, I, Df, j, I, dHf, dZT, NT, Hf, Hs, N, I, O, j, min(V, j1 - j), vs, vb,
                   keep)
        return
    # several passes, on a copy of each block of SB strips
    P = np.empty(SB * O * V, Wf.dtype)
    for b in range(j0, j1, SB * V):
        ns = min(SB, (j1 - b + V - 1) // V)
        for o in range(O):
            for s in range(ns):
                j = b + s * V
                vstore(P, (s * O + o) * V, vload_part(Wf, o * I + j, min(V, j1 - j)))
        for s in range(ns):
            j = b + s * V
            t0 = s * O * V
            # in place: the step goes to the copy, copied back below
            _strip(P, t0, V, P if in_place else Df, t0 if in_place else j, V if in_place else I,
                   dHf, dZT, NT, Hf, Hs, N, I, O, j, min(V, j1 - j), vs, vb, keep)
        if not in_place:
            continue
        for o in range(O):
            for s in range(ns):
                j = b + s * V
                vstore_part(Wf, o * I + j, vload(P, (s * O + o) * V), min(V, j1 - j))


@internal_kernel
def _strip(T, t0, ts, D, d0, ds, dHf, dZT, NT, Hf, Hs, N, I, O, j, w, vs, vb, keep):
    """Columns j:j+w (w <= V) of dH, and of D, whose unit o's vectors are T[t0 + o ts] (WT
    itself or its copy) and D[d0 + o ds] (D is T for a step in place): every chunk of rows,
    then D's product (dZT: dZ transposed, rows NT apart; Hs: room for the strip's columns of H,
    copied together for the product)."""
    one = vsplat(T, 1.0)
    V = lanes(T)
    for n in range(N):
        vstore(Hs, n * V, vload_part(Hf, n * I + j, w))
    for c in range(0, N, CH):
        nr = min(CH, N - c)
        # a short chunk repeats its last row's scalars and stores only its own rows
        q0, q1, q2, q3 = c, c + min(1, nr - 1), c + min(2, nr - 1), c + min(3, nr - 1)
        q4, q5 = c + min(4, nr - 1), c + min(5, nr - 1)
        q6, q7 = c + min(6, nr - 1), c + min(7, nr - 1)
        a0 = vzero(T); a1 = vzero(T); a2 = vzero(T); a3 = vzero(T)  # noqa: E702
        a4 = vzero(T); a5 = vzero(T); a6 = vzero(T); a7 = vzero(T)  # noqa: E702
        step = c + CH >= N
        for o0 in range(0, O, OB):
            ob = min(OB, O - o0)
            for o in range(o0, o0 + ob):
                p = vload_part(T, t0 + o * ts, w)
                a0 = vfma(p, vsplat_at(dZT, o * NT + q0), a0)
                a1 = vfma(p, vsplat_at(dZT, o * NT + q1), a1)
                a2 = vfma(p, vsplat_at(dZT, o * NT + q2), a2)
                a3 = vfma(p, vsplat_at(dZT, o * NT + q3), a3)
                a4 = vfma(p, vsplat_at(dZT, o * NT + q4), a4)
                a5 = vfma(p, vsplat_at(dZT, o * NT + q5), a5)
                a6 = vfma(p, vsplat_at(dZT, o * NT + q6), a6)
                a7 = vfma(p, vsplat_at(dZT, o * NT + q7), a7)
            if not step:
                continue
            # the block's rows of WT have served every input gradient: D's product, per unit
            # the chain over n of dZ[n, o] H[n, strip] (Hs) from 0 (gemm_packed._k6's), then
            # _store_rows' store from WT's old value, not yet written (a short block repeats its
            # last unit's scalars and stores only its own)
            r0, r1 = o0 * NT, (o0 + min(1, ob - 1)) * NT
            r2, r3 = (o0 + min(2, ob - 1)) * NT, (o0 + min(3, ob - 1)) * NT
            r4, r5 = (o0 + min(4, ob - 1)) * NT, (o0 + min(5, ob - 1)) * NT
            r6, r7 = (o0 + min(6, ob - 1)) * NT, (o0 + min(7, ob - 1)) * NT
            g0 = vzero(T); g1 = vzero(T); g2 = vzero(T); g3 = vzero(T)  # noqa: E702
            g4 = vzero(T); g5 = vzero(T); g6 = vzero(T); g7 = vzero(T)  # noqa: E702
            for n in range(N):
                h = vload(Hs, n * V)
                g0 = vfma(h, vsplat_at(dZT, r0 + n), g0)
                g1 = vfma(h, vsplat_at(dZT, r1 + n), g1)
                g2 = vfma(h, vsplat_at(dZT, r2 + n), g2)
                g3 = vfma(h, vsplat_at(dZT, r3 + n), g3)
                g4 = vfma(h, vsplat_at(dZT, r4 + n), g4)
                g5 = vfma(h, vsplat_at(dZT, r5 + n), g5)
                g6 = vfma(h, vsplat_at(dZT, r6 + n), g6)
                g7 = vfma(h, vsplat_at(dZT, r7 + n), g7)
            # the store arithmetic of gemm_packed._store_rows, written out (as calls, eight
            # inlined copies of one more function were a fifth of this kernel's compile)
            at, dt = t0 + o0 * ts, d0 + o0 * ds
            if keep:
                old = vload_part(T, at, w)
                vstore_part(D, dt, vfma(g0, vs, vmul(old, vb)), w)
                if ob > 1:
                    old = vload_part(T, at + ts, w)
                    vstore_part(D, dt + ds, vfma(g1, vs, vmul(old, vb)), w)
                if ob > 2:
                    old = vload_part(T, at + 2 * ts, w)
                    vstore_part(D, dt + 2 * ds, vfma(g2, vs, vmul(old, vb)), w)
                if ob > 3:
                    old = vload_part(T, at + 3 * ts, w)
                    vstore_part(D, dt + 3 * ds, vfma(g3, vs, vmul(old, vb)), w)
                if ob > 4:
                    old = vload_part(T, at + 4 * ts, w)
                    vstore_part(D, dt + 4 * ds, vfma(g4, vs, vmul(old, vb)), w)
                if ob > 5:
                    old = vload_part(T, at + 5 * ts, w)
                    vstore_part(D, dt + 5 * ds, vfma(g5, vs, vmul(old, vb)), w)
                if ob > 6:
                    old = vload_part(T, at + 6 * ts, w)
                    vstore_part(D, dt + 6 * ds, vfma(g6, vs, vmul(old, vb)), w)
                if ob > 7:
                    old = vload_part(T, at + 7 * ts, w)
                    vstore_part(D, dt + 7 * ds, vfma(g7, vs, vmul(old, vb)), w)
            else:       # beta = 0: the old weights are not read (as _store_rows)
                vstore_part(D, dt, vmul(g0, vs), w)
                if ob > 1:
                    vstore_part(D, dt + ds, vmul(g1, vs), w)
                if ob > 2:
                    vstore_part(D, dt + 2 * ds, vmul(g2, vs), w)
                if ob > 3:
                    vstore_part(D, dt + 3 * ds, vmul(g3, vs), w)
                if ob > 4:
                    vstore_part(D, dt + 4 * ds, vmul(g4, vs), w)
                if ob > 5:
                    vstore_part(D, dt + 5 * ds, vmul(g5, vs), w)
                if ob > 6:
                    vstore_part(D, dt + 6 * ds, vmul(g6, vs), w)
                if ob > 7:
                    vstore_part(D, dt + 7 * ds, vmul(g7, vs), w)
        at = c * I + j
        vstore_part(dHf, at, vmul(a0, one), w)
        if nr > 1:
            vstore_part(dHf, at + I, vmul(a1, one), w)
        if nr > 2:
            vstore_part(dHf, at + 2 * I, vmul(a2, one), w)
        if nr > 3:
            vstore_part(dHf, at + 3 * I, vmul(a3, one), w)
        if nr > 4:
            vstore_part(dHf, at + 4 * I, vmul(a4, one), w)
        if nr > 5:
            vstore_part(dHf, at + 5 * I, vmul(a5, one), w)
        if nr > 6:
            vstore_part(dHf, at + 6 * I, vmul(a6, one), w)
        if nr > 7:
            vstore_part(dHf, at + 7 * I, vmul(a7, one), w)
