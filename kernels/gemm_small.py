"""The small products of kernels/gemm.py, read in place: the input gradient (DGRAD) and weight
step (GRAD, SGD_STEP) of a layer whose product is too small for packing to pay
(`small_product`), e.g. the study nets' 50 -> 50 and 50 -> 10 layers.

Why: the packed kernel (gemm_packed.outer) copies both operands into blocks before it multiplies,
allocates its three scratch arrays and calls the packs once per block of 6 rows and per strip;
against a product of 100 x 50 x 50 (250K multiply-adds, ~5 us on one core) those fixed costs
were half of its time. Here the same micro-kernel, 6 rows of C by 2 vectors of columns in 12
accumulators, reads its operands where they lie: B's rows are contiguous in both tasks (WT's for
the input gradient, X's for the weight step) and A's 6 scalars per k are 6 loads at fixed
distances. Strips of B go outermost, so a strip (K x 2V values: 12.8 KB at K = 100 in float32
on 16 lanes) stays in L1 while every block of rows passes it.

The same bits as the packed kernel: each element of C is one chain of fused multiply-adds over k
in order from 0 (K is one run here, K <= gemm_packed.KP), then C <- acc alpha + beta S (or
acc alpha), the arithmetic of _store_rows; a short block of rows computes its rows' own chains.
So which kernel a product takes may depend on its size, and results still do not.
"""
from ._config import inlined_kernel, internal_kernel
from .gemm_packed import KP
from .pack import MR
from .simd import (lanes, vfma, vload, vload_part, vmul, vsplat, vsplat_at, vstore,
                   vstore_part, vzero)

# Which parts are read in place: at most SMALL_COLS columns of C and SMALL_MACS multiply-adds.
# Measured on one thread (znver4, float32, 16 lanes, microseconds, packed -> in place, nine
# interleaved rounds; weight step C (O, I) over K = N, input gradient C (N, I) over K = O):
#   N x I x O       weight step          input gradient
#   100 x 50 x 50   10.3 -> 9.6  1.07x   10.7 -> 9.3  1.15x
#   32 x 50 x 50    4.7 -> 4.1   1.15x   4.1 -> 3.2   1.30x
#   100 x 30 x 20   3.0 -> 2.3   1.34x   4.9 -> 2.7   1.84x
#   500 x 50 x 10   11.4 -> 7.7  1.48x   22.0 -> 18.1 1.22x
#   100 x 64 x 64   11.2 -> 10.6 1.06x   10.2 -> 10.6 0.97x
# and with wider rows of C, where it is left packed: 100 x 128 x 10's input gradient 0.66x,
# 32 x 128 x 128's weight step 0.76x, 100 x 100 x 100 and 256 x 50 x 50 (640K) level.
SMALL_COLS = 64
SMALL_MACS = 1 << 19
# And, at any width, a part of one block of rows (at most MR: a layer of up to 6 units' weight
# step, an input gradient of up to 6 rows), whose B the packed kernel copies into strips to read
# each strip once; or of two blocks (7-12 rows: a 10-class output layer's weight step, an input
# gradient of 7-12 rows where gemm_back does not fuse it) where B's rows are shorter than
# SMALL_ROW_BYTES.  2 threads, znver5 (AVX-512), 9 interleaved rounds, GFLOP/s packed -> in
# place: weight step 1024 x 784 x 1 17 -> 32, 1024 x 784 x 6 109 -> 188, 1024 x 3072 x 3 50 ->
# 62, 1024 x 4096 x 2 33 -> 51, 500 x 4096 x 6 133 -> 129 (level); input gradient 3 x 784 x 512
# 56 -> 100, 6 x 2048 x 1000 138 -> 189, 6 x 4096 x 1024 87 -> 100, 6 x 1000 x 10 1.04x.  Two
# blocks: 500 x 256 x 10 1.24x, 500 x 512 x 10 1.55x, 500 x 784 x 10 1.33x, 1024 x 784 x 10
# 1.62x, 1024 x 1000 x 12 1.65x, 100 x 512 x 10 1.06x; but rows of 4 KB and more: 500 x 1024 x 10
# 0.91x, 1024 x 2048 x 10 0.71x, 1024 x 4096 x 10 0.80x (each row a page of its own: the second
# block's pass finds the strip's lines gone).  Input gradients of two blocks (11 rounds): 8 x 512
# x 256 1.27x, 10 x 784 x 512 1.42x, 12 x 1000 x 1000 1.61x, 7 x 256 x 128 1.14x, 10 x 1000 x 10
# 1.01x
SMALL_ROW_BYTES = 4096


@internal_kernel
def small_product(R, J, K, row_bytes):
    """Whether a part of C (R, J) over K values of k, B's rows row_bytes apart, is read in place
    (small) or packed; never with no k (the packed kernel then writes nothing), nor with more
    than one run of it."""
    if K < 1 or K > KP:
        return False
    if R <= MR or (R <= 2 * MR and row_bytes < SMALL_ROW_BYTES):
        return True
    return J <= SMALL_COLS and R * J * K <= SMALL_MACS


@internal_kernel
def small(Cf, Sf, Af, Bf, K, J, sk, sr, tk, alpha, beta, r0, r1, j0, j1):
    """C[r0:r1, j0:j1] of C (R, J) <- alpha A B + beta S, A(k, r) = Af[k*sk + r*sr],
    B(k, c) = Bf[k*tk + c] (rows contiguous), K <= KP."""
    V = lanes(Bf)
    W = 2 * V
    va, vb = vsplat(Bf, alpha), vsplat(Bf, beta)
    keep = beta != 0
    for j in range(j0, j1, W):
        w = min(W, j1 - j)
        for r in range(r0, r1, MR):
            nr = min(MR, r1 - r)
            # a short block repeats its last row's scalars (as pack.pack_a) and stores its own
            q0, q1, q2 = r * sr, (r + min(1, nr - 1)) * sr, (r + min(2, nr - 1)) * sr
            q3 = (r + min(3, nr - 1)) * sr
            q4, q5 = (r + min(4, nr - 1)) * sr, (r + min(5, nr - 1)) * sr
            a0 = vzero(Bf); a1 = vzero(Bf); b0 = vzero(Bf); b1 = vzero(Bf)  # noqa: E702
            c0 = vzero(Bf); c1 = vzero(Bf); d0 = vzero(Bf); d1 = vzero(Bf)  # noqa: E702
            e0 = vzero(Bf); e1 = vzero(Bf); f0 = vzero(Bf); f1 = vzero(Bf)  # noqa: E702
            # at most V columns: one vector, half the multiply-adds (as _k6); the second
            # vector of a short strip is loaded masked
            for k in range(K if w <= V else 0):
                p = vload_part(Bf, k * tk + j, w)
                ka = k * sk
                a0 = vfma(p, vsplat_at(Af, ka + q0), a0)
                b0 = vfma(p, vsplat_at(Af, ka + q1), b0)
                c0 = vfma(p, vsplat_at(Af, ka + q2), c0)
                d0 = vfma(p, vsplat_at(Af, ka + q3), d0)
                e0 = vfma(p, vsplat_at(Af, ka + q4), e0)
                f0 = vfma(p, vsplat_at(Af, ka + q5), f0)
            for k in range(K if w > V else 0):
                p = vload(Bf, k * tk + j)
                q = vload(Bf, k * tk + j + V) if w == W else vload_part(Bf, k * tk + j + V, w - V)
                ka = k * sk
                x = vsplat_at(Af, ka + q0); a0 = vfma(p, x, a0); a1 = vfma(q, x, a1)  # noqa: E702
                x = vsplat_at(Af, ka + q1); b0 = vfma(p, x, b0); b1 = vfma(q, x, b1)  # noqa: E702
                x = vsplat_at(Af, ka + q2); c0 = vfma(p, x, c0); c1 = vfma(q, x, c1)  # noqa: E702
                x = vsplat_at(Af, ka + q3); d0 = vfma(p, x, d0); d1 = vfma(q, x, d1)  # noqa: E702
                x = vsplat_at(Af, ka + q4); e0 = vfma(p, x, e0); e1 = vfma(q, x, e1)  # noqa: E702
                x = vsplat_at(Af, ka + q5); f0 = vfma(p, x, f0); f1 = vfma(q, x, f1)  # noqa: E702
            at = r * J + j
            _store(Cf, Sf, at, w, a0, a1, va, vb, keep)
            if nr > 1:
                _store(Cf, Sf, at + J, w, b0, b1, va, vb, keep)
            if nr > 2:
                _store(Cf, Sf, at + 2 * J, w, c0, c1, va, vb, keep)
            if nr > 3:
                _store(Cf, Sf, at + 3 * J, w, d0, d1, va, vb, keep)
            if nr > 4:
                _store(Cf, Sf, at + 4 * J, w, e0, e1, va, vb, keep)
            if nr > 5:
                _store(Cf, Sf, at + 5 * J, w, f0, f1, va, vb, keep)


@inlined_kernel
def _store(Cf, Sf, at, w, acc0, acc1, va, vb, keep):
    """C[at:at+w] (w <= 2V) from acc0, acc1 as gemm_packed._store_rows stores a row in its
    first run, written out here: inlined, where calls per row, each counting its arrays'
    references, were a fifth of a 100 x 50 x 10 input gradient (4.6 -> 3.7 us)."""
    V = lanes(Sf)
    if w >= V:
        if keep:
            vstore(Cf, at, vfma(acc0, va, vmul(vload(Sf, at), vb)))
        else:
            vstore(Cf, at, vmul(acc0, va))
    else:
        if keep:
            vstore_part(Cf, at, vfma(acc0, va, vmul(vload_part(Sf, at, w), vb)), w)
        else:
            vstore_part(Cf, at, vmul(acc0, va), w)
    u = w - V
    if u >= V:
        if keep:
            vstore(Cf, at + V, vfma(acc1, va, vmul(vload(Sf, at + V), vb)))
        else:
            vstore(Cf, at + V, vmul(acc1, va))
    elif u > 0:
        if keep:
            vstore_part(Cf, at + V, vfma(acc1, va, vmul(vload_part(Sf, at + V, u), vb)), u)
        else:
            vstore_part(Cf, at + V, vmul(acc1, va), u)
