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
The last strip of C's columns and the last block of rows may be short: the strip is padded in
P (zeros or copies of its last column) and stored with masked vector stores, the block repeats
its last row's scalars and stores only its own.
Every element of C is one chain of fused multiply-adds over each run of k, in order, the runs
added in order: the bits kernels/gemm_thin.py reproduces for a batch of a few rows.
Legend: V lanes per vector; flat views Af, Bf, ... of C-contiguous arrays.
"""
import numpy as np

from ._config import inlined_kernel, internal_kernel
from .native import call
from .pack import MR, QS, pack_a, pack_b
from .simd import (fma, lanes, vfma, vload, vload_part, vmul, vsplat, vsplat_at, vstore,
                   vstore_part, vzero)

KP = 1024   # longest run of k: every run is a pass over C's loads and stores
JS = 64     # strips of B per packed block (at most KP * 2V * JS values: 4 MB in float32 on AVX2)
BAND_AREA = 1 << 20     # values of C in a part from which it is walked in bands (outer)
BAND_COLS = 128         # columns of C per band: 512 bytes of each row in float32
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


@inlined_kernel
def _k6(Cf, Sf, Ap, P, r0, nr, j, w, n, J, va, vb, keep, first):
    """C[r0:r0+nr, j:j+w] (nr <= 6) over the packed run P (n values of k) and the packed rows
    Ap of A (pack.pack_a).  Fewer than 6 rows repeat the last one's scalars and store only theirs:
    each row's lanes are the same chains as in a full block.
    Inlined into outer (LLVM left it a call per tile): whole steps 1.00-1.13x (batch 16-500,
    784-50-50-10 to 3072-1024-512-10, the same bits), for ~0.9 s more compile of _run, which
    a first run spends in its second process (kernels/coldstart.py) beside train_step's."""
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
def outer(Cf, Sf, Af, Bf, K, runs, J, sk, sr, tk, tj, alpha, beta, r0, r1, j0, j1, at_pack_a,
          at_pack_b):
    """C[r0:r1, j0:j1] of C (R, J) <- alpha A B + beta S; A(k, r) = Af[k*sk + r*sr],
    B(k, c) = Bf[k*tk + c*tj]; j0 a multiple of 2V, j1 one too or J.
    Inlined by Numba into gemm._run, its one caller: built as a function of its own it was compiled
    and then optimised again in _run (cold compile of the step 15.0-15.6 -> 14.5-14.9 s with
    forward_dots inlined likewise, six interleaved pairs; inlining _k6 and the packs as well
    made it 18.0-18.4 s, when the products were still compiled into the step; _k6 is now
    inlined, see there)."""
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
                call(pack_b, at_pack_b, P[s * S2:(s + 1) * S2], Q, Bf, k0, k1, j, min(W, b1 - j),
                     tk, tj)
            for m0 in range(r0, r1, MC):
                m1 = min(r1, m0 + MC)
                for r in range(m0, m1, MR):
                    call(pack_a, at_pack_a, Ap[(r - m0) * nk:], Af, k0 * sk + r * sr,
                         min(MR, m1 - r), n, sk, sr, r1 - r)
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
    return
