"""The products of a batch of a few rows, streamed: kernels/gemm.py's weight step (GRAD,
SGD_STEP) for a batch of at most THIN_K rows, and its input gradient (DGRAD) for at most
THIN_ROWS, with B's rows read in place and C written one row at a time (`thin`); and its
forward for at most FWD_ROWS, packed a block of k at a time into L1 (`forward_rows`).

Why: at such a batch the packed kernel (gemm_packed.outer) has almost nothing to multiply. The
weight step C = WT (O, I) <- beta WT + alpha dY^T X does K = N multiply-adds per weight, so all it
does is read and write every weight once; the packed walk goes down 48 rows of C a strip of 2V
columns at a time, each row a page of its own, which the prefetchers do not follow, and pays a pack
of A and a micro-kernel call per 6 x 2V tile. The input gradient of one row multiplies each weight
once, and the packed kernel copies every weight into its strips first and then runs 6 rows'
multiply-adds for the one row. Here each row of C is a stream: runs of 4 vectors of its columns,
each summed over k from B's rows as they lie (X's for the weight step, WT's for the input gradient)
and stored once.

The same bits as the packed kernel: each element of C is the chain _k6 computes, fused
multiply-adds over k in order from 0, one chain per run of k (gemm_packed.KP; the runs added
into C in order), then C <- acc alpha + S beta, with the same arithmetic (C * 1 where
_store_rows reads C: exact); only the order in which elements are computed differs. So which
kernel a product takes may depend on the batch, and results still do not (tests/test_gemm.py
compares them).

Measured on 2 threads (znver4, float32, microseconds, packed -> streamed, interleaved): weight
step 1 x 1024 x 1024 269 -> 70, 1 x 784 x 4096 515 -> 185, 4 x 1024 x 1024 223 -> 87,
6 x 1024 x 1024 422 -> 166 (8 rows: 475 -> 199 here, but 1760 -> 2251 at 8 x 3072 x 2048,
where each row of W reads X's 8 rows, 96 KB, from L2 again and the packed kernel's reuse of B
wins; 6 rows won on every shape tried: hence 6); input gradient 1 x 1024 x 1024 183 -> 84,
1 x 2048 x 2048 1202 -> 358, 2 x 3072 x 2048 1709 -> 825 (4 rows: 4 x 1024 x 1024 215 -> 353,
each row streaming all of WT: hence 2).  Whole steps (no batch norm) at batch 1: 1.45-1.73x,
batch 2 1.11-1.66x, batch 4 1.07-1.37x on 784-1024-1024-10, 784-4096-10, 3072-2048-10 and
3072-512-512-512-10.
The forward of 1 or 2 rows (forward_rows): the packed kernel packs a run of k of up to 64
strips into memory and reads it back for one row; here each block of KB values of k of a strip
is packed into L1 and used there.  Forward, microseconds, packed -> forward_rows: 1 x 1024 x
1024 295 -> 231 on one thread, 172 -> 125 on two; 1 x 784 x 4096 471 -> 230 and 1 x 2048 x
2048 604 -> 453 on two; 2 x 1024 x 1024 196 -> 144.  At 3 rows level, at 4-12 the packed
kernel is faster (6 x 3072 x 1024 442 against 582 on two threads): hence 2.  Whole steps (no
batch norm) at batch 1-2: 1.24-2.05x on 784-1024-1024-10, 784-4096-10 and 3072-2048-10,
level on 3072-512-512-512-10. (Since the packed kernel packs 4 strips at a time for a part of
one group of rows, gemm_packed.JS_ONE, the two are level at 2 rows and forward_rows is 1.15-1.2x
faster at 1: FWD_ROWS kept.) What is left is the transposes (pack.pack_b): OpenBLAS's gemv reads
rows in place as dot products (55 us at 1 x 1024 x 1024), which sums in another order.
"""
import numpy as np

from ._config import internal_kernel
from .gemm_packed import _store_rows
from .native import call
from .pack import QS, pack_b
from .simd import (lanes, vfma, vload, vload_part, vmul, vsplat, vsplat_at, vstore, vstore_part,
                   vzero)

THIN_K = 6      # a weight step of at most this many rows of batch is streamed
THIN_ROWS = 2   # an input gradient of at most this many rows likewise
FWD_ROWS = 2    # a forward of at most this many rows: forward_rows
KB = 128        # values of k forward_rows packs at a time (2V x KB: 16 KB in float32, in L1)


@internal_kernel
def thin(Cf, Sf, Af, Bf, K, runs, J, sk, sr, tk, alpha, beta, r0, r1, j0, j1):
    """C[r0:r1, j0:j1] of C (R, J) <- alpha A B + beta S, A(k, r) = Af[k*sk + r*sr],
    B(k, c) = Bf[k*tk + c] (B's rows contiguous), K in `runs` runs, as gemm_packed.outer cuts
    it."""
    V = lanes(Bf)
    va, vb, one = vsplat(Bf, alpha), vsplat(Bf, beta), vsplat(Bf, 1.0)
    keep = beta != 0
    for r in range(r0, r1):
        at = r * J
        for u in range(runs):
            k0, k1 = K * u // runs, K * (u + 1) // runs
            # the first run: C <- acc alpha + beta S (or acc alpha); then C <- acc alpha + C * 1,
            # which is gemm_packed._store_rows' acc alpha + C (C * 1 is exact)
            S, m = (Sf, vb) if u == 0 else (Cf, one)
            scale = u == 0 and not keep
            j = j0
            # 4 vectors a run: 4 chains for each load of A's scalar, written here rather than
            # through gemm_packed's stores, whose array arguments cost a reference count each
            # call (a call per vector made this loop 10x slower, measured)
            while j + 4 * V <= j1:
                a0 = vzero(Bf); a1 = vzero(Bf); a2 = vzero(Bf); a3 = vzero(Bf)  # noqa: E702
                for k in range(k0, k1):
                    x = vsplat_at(Af, k * sk + r * sr)
                    b = k * tk + j
                    a0 = vfma(vload(Bf, b), x, a0)
                    a1 = vfma(vload(Bf, b + V), x, a1)
                    a2 = vfma(vload(Bf, b + 2 * V), x, a2)
                    a3 = vfma(vload(Bf, b + 3 * V), x, a3)
                c = at + j
                if scale:
                    vstore(Cf, c, vmul(a0, va)); vstore(Cf, c + V, vmul(a1, va))  # noqa: E702
                    vstore(Cf, c + 2 * V, vmul(a2, va)); vstore(Cf, c + 3 * V, vmul(a3, va))  # noqa: E702
                else:
                    vstore(Cf, c, vfma(a0, va, vmul(vload(S, c), m)))
                    vstore(Cf, c + V, vfma(a1, va, vmul(vload(S, c + V), m)))
                    vstore(Cf, c + 2 * V, vfma(a2, va, vmul(vload(S, c + 2 * V), m)))
                    vstore(Cf, c + 3 * V, vfma(a3, va, vmul(vload(S, c + 3 * V), m)))
                j += 4 * V
            while j < j1:       # the last columns, a vector at a time, the last one masked
                w = min(V, j1 - j)
                a0 = vzero(Bf)
                for k in range(k0, k1):
                    a0 = vfma(vload_part(Bf, k * tk + j, w), vsplat_at(Af, k * sk + r * sr), a0)
                c = at + j
                if scale:
                    vstore_part(Cf, c, vmul(a0, va), w)
                else:
                    vstore_part(Cf, c, vfma(a0, va, vmul(vload_part(S, c, w), m)), w)
                j += V


@internal_kernel
def forward_rows(Yf, Xf, Wf, I, J, runs, r0, r1, j0, j1, at_pack_b):
    """Y[r0:r1, j0:j1] of Y (N, J) <- X WT^T for a few rows (X (N, I), WT (J, I)): each strip of
    2V columns is packed KB values of k at a time into a block that stays in L1 (pack.pack_b,
    as the packed kernel packs it), and each row multiplied there in turn, its accumulators
    kept in Acc between blocks.  The same chains as gemm_packed._k6 (k in order within each run, the
    runs added in order), so the same bits; what it saves is the packed strips' trip through
    memory: the packed kernel packs a whole run of k for up to 4 strips (gemm_packed.JS_ONE;
    at batch 1 as many bytes as the weights, written and read back) for a row it multiplies once."""
    V = lanes(Xf)
    W2 = 2 * V
    P = np.empty(KB * W2, Xf.dtype)
    Q = np.empty(W2 * QS, Xf.dtype)
    Acc = np.empty((r1 - r0) * W2, Xf.dtype)
    one = vsplat(Xf, 1.0)
    for j in range(j0, j1, W2):
        w = min(W2, j1 - j)
        for u in range(runs):
            k0, k1 = I * u // runs, I * (u + 1) // runs
            for a in range(0, (r1 - r0) * W2, V):
                vstore(Acc, a, vzero(Xf))
            for c0 in range(k0, k1, KB):
                c1 = min(k1, c0 + KB)
                call(pack_b, at_pack_b, P, Q, Wf, c0, c1, j, w, np.int64(1), I)
                for r in range(r0, r1):
                    a = (r - r0) * W2
                    a0, a1 = vload(Acc, a), vload(Acc, a + V)
                    for k in range(c1 - c0):
                        x = vsplat_at(Xf, r * I + c0 + k)
                        a0 = vfma(vload(P, k * W2), x, a0)
                        a1 = vfma(vload(P, k * W2 + V), x, a1)
                    vstore(Acc, a, a0)
                    vstore(Acc, a + V, a1)
            # C <- acc * 1 in the first run, then acc * 1 + C, stored as the packed kernel stores
            # its tiles (Acc holds the rows as its scratch does; once per strip and run)
            _store_rows(Yf, Yf, Acc, 0, r0 * J + j, J, r1 - r0, w, one, one, False, u == 0)
