"""Every matrix product of a training step and of evaluation, register-blocked and cache-blocked
on vectors (kernels/simd.py), with weights stored as the network stores them: WT (O, I), one row
per output unit; and `products`, the one parallel region that runs them.

    FORWARD  Y (N, O)  <- H (N, I) @ WT^T                     dot form     _dot_range
    GRAD     dWT (O, I) <- dZ^T @ H + 2 lam WT (then a step)   outer form   _outer_range
    SGD_STEP WT (O, I) <- (1 - 2 eta lam) WT - eta dZ^T @ H    outer form
    DGRAD    dH (N, I) <- dZ (N, O) @ WT                       outer form
    GATHER   X <- src[rows]

Why no packing: with weights stored (O, I), each product reads its operands along the rows they
are stored in.  The forward takes RN rows of H against RO rows of WT, each a contiguous run
along I, into RN * RO vector accumulators (the dot form: one horizontal sum per element at the
end of a run of KC columns); the two backward products take 2 vectors of a row of H (or of WT)
against MR broadcast scalars of dZ into 2 MR accumulators (the outer form).  12 accumulators
leave room for the operands in AVX2's 16 registers and keep both FMA units busy (4-cycle
latency x 2 units = 8 chains needed).  Cache blocks: the forward goes over KC columns at a
time and OG rows of WT (OG * KC values, held in L2) against every row of H; the outer form over
KO values of k at a time, and RG rows of the output (their scalars) against every column.

Why not BLAS: OpenBLAS's sgemm gives an element other bits depending on where it falls in its
tiles (measured on its Haswell kernel: 1.4 % of the elements of a (500, 784) x (784, 512)
product change when only the first 250 rows are computed), so a product cut into one block
per thread changed with the thread count, and a row's prediction with its place in the batch.
Here every output element is one fixed sequence of fused multiply-adds (lane j of the dot form
sums columns j, j + V, ... of each KC run, then a fixed tree, then the run's tail; runs are
added in order; the outer form sums k = 0, 1, ... in one chain per run of KO, runs added in order), whichever block kernel, cache
block or thread computes it: results do not depend on the thread count, the cut or the row's
place.  The build without SIMD (no AVX2/FMA) runs each product as one BLAS call on the calling
thread, which keeps the thread count out of its results too.
Legend: V lanes per vector; flat views Xf, Wf, ... of C-contiguous arrays.
"""
import numpy as np
from numba import prange

from ._config import internal_kernel, parallel_kernel
from .blas import fgemm, gemm
from .optim import HP_SIZE, update_range
from .simd import SIMD, lanes, vfma, vload, vmul, vsplat, vsplat_at, vstore, vsum, vzero

RN, RO = 3, 4   # dot form: rows of H and of WT per block (12 accumulators)
KC = 512        # dot form: columns per run (a multiple of every lane count)
OG = 64         # dot form: rows of WT per cache block (OG * KC * 4 B = 128 KB in float32)
MR = 6          # outer form: output rows per block, 2 vectors wide (12 accumulators)
RG = 48         # outer form: output rows per cache block
KO = 128        # outer form: k per run (the 2-vector column strip of B, KO * 2V, stays in L1
                # while every row block of the cache block reads it)

FORWARD, GRAD, SGD_STEP, DGRAD, GATHER = 0, 1, 2, 3, 4


# ---- dot form: Y (N, O) <- X (N, K) @ WT (O, K)^T --------------------------------------------
@internal_kernel
def _finish(Xf, Wf, x, w, s, k1, KV):
    """s plus the columns KV..k1 left after the last whole vector, one by one in order."""
    for k in range(KV, k1):
        s += Xf[x + k] * Wf[w + k]
    return s


@internal_kernel
def _dot1(Xf, Wf, x, w, k0, k1):
    """One element's run of columns k0..k1: sum_k Xf[x + k] * Wf[w + k] in the order of
    _dot3x4 (lane sums, the fixed tree, then the columns after the last whole vector)."""
    V = lanes(Xf)
    KV = k1 - (k1 - k0) % V
    a = vzero(Xf)
    for k in range(k0, KV, V):
        a = vfma(vload(Xf, x + k), vload(Wf, w + k), a)
    return _finish(Xf, Wf, x, w, vsum(a), k1, KV)


@internal_kernel
def _put1(Yf, y, s, first):
    if first:
        Yf[y] = s
    else:
        Yf[y] += s


@internal_kernel
def _dot3x4(Yf, Xf, Wf, n0, o0, K, O, k0, k1, first):
    """Y[n0:n0+3, o0:o0+4] (+)= the run k0..k1 of rows n0.. of X and o0.. of WT."""
    V = lanes(Xf)
    KV = k1 - (k1 - k0) % V
    a0 = vzero(Xf); a1 = vzero(Xf); a2 = vzero(Xf); a3 = vzero(Xf)  # noqa: E702
    b0 = vzero(Xf); b1 = vzero(Xf); b2 = vzero(Xf); b3 = vzero(Xf)  # noqa: E702
    c0 = vzero(Xf); c1 = vzero(Xf); c2 = vzero(Xf); c3 = vzero(Xf)  # noqa: E702
    x0 = n0 * K
    x1, x2 = x0 + K, x0 + 2 * K
    w0 = o0 * K
    w1, w2, w3 = w0 + K, w0 + 2 * K, w0 + 3 * K
    for k in range(k0, KV, V):
        p = vload(Xf, x0 + k)
        q = vload(Xf, x1 + k)
        r = vload(Xf, x2 + k)
        w = vload(Wf, w0 + k)
        a0 = vfma(p, w, a0); b0 = vfma(q, w, b0); c0 = vfma(r, w, c0)  # noqa: E702
        w = vload(Wf, w1 + k)
        a1 = vfma(p, w, a1); b1 = vfma(q, w, b1); c1 = vfma(r, w, c1)  # noqa: E702
        w = vload(Wf, w2 + k)
        a2 = vfma(p, w, a2); b2 = vfma(q, w, b2); c2 = vfma(r, w, c2)  # noqa: E702
        w = vload(Wf, w3 + k)
        a3 = vfma(p, w, a3); b3 = vfma(q, w, b3); c3 = vfma(r, w, c3)  # noqa: E702
    y = n0 * O + o0             # lane sums, then the run's columns after the last vector
    _put1(Yf, y, _finish(Xf, Wf, x0, w0, vsum(a0), k1, KV), first)
    _put1(Yf, y + 1, _finish(Xf, Wf, x0, w1, vsum(a1), k1, KV), first)
    _put1(Yf, y + 2, _finish(Xf, Wf, x0, w2, vsum(a2), k1, KV), first)
    _put1(Yf, y + 3, _finish(Xf, Wf, x0, w3, vsum(a3), k1, KV), first)
    y += O
    _put1(Yf, y, _finish(Xf, Wf, x1, w0, vsum(b0), k1, KV), first)
    _put1(Yf, y + 1, _finish(Xf, Wf, x1, w1, vsum(b1), k1, KV), first)
    _put1(Yf, y + 2, _finish(Xf, Wf, x1, w2, vsum(b2), k1, KV), first)
    _put1(Yf, y + 3, _finish(Xf, Wf, x1, w3, vsum(b3), k1, KV), first)
    y += O
    _put1(Yf, y, _finish(Xf, Wf, x2, w0, vsum(c0), k1, KV), first)
    _put1(Yf, y + 1, _finish(Xf, Wf, x2, w1, vsum(c1), k1, KV), first)
    _put1(Yf, y + 2, _finish(Xf, Wf, x2, w2, vsum(c2), k1, KV), first)
    _put1(Yf, y + 3, _finish(Xf, Wf, x2, w3, vsum(c3), k1, KV), first)


@internal_kernel
def _dot_range(Yf, Xf, Wf, N, K, O, n0, n1, o0, o1):
    """Y[n0:n1, o0:o1] of Y (N, O) <- X (N, K) @ WT (O, K)^T, on flat views."""
    for k0 in range(0, K, KC):
        k1 = min(K, k0 + KC)
        first = k0 == 0
        for g0 in range(o0, o1, OG):
            g1 = min(o1, g0 + OG)
            gF = g1 - (g1 - g0) % RO
            for n in range(n0, n1, RN):
                if n + RN <= n1:
                    for o in range(g0, gF, RO):
                        _dot3x4(Yf, Xf, Wf, n, o, K, O, k0, k1, first)
                    for r in range(n, n + RN):
                        for o in range(gF, g1):
                            _put1(Yf, r * O + o, _dot1(Xf, Wf, r * K, o * K, k0, k1), first)
                else:
                    for r in range(n, n1):
                        for o in range(g0, g1):
                            _put1(Yf, r * O + o, _dot1(Xf, Wf, r * K, o * K, k0, k1), first)
    return


# ---- outer form: C (R, J) <- alpha * A (R, K) @ B (K, J) + beta * S --------------------------
# A is read as scalars Af[k * sk + r * sr] (dZ^T: sk = O, sr = 1; dZ: sk = 1, sr = O) and B as
# rows of J values, Bf[k * J + j] (H or WT); C and S are (R, J).
@internal_kernel
def _store(Cf, Sf, at, acc, va, vb, keep, first):
    """Cf[at:at+V] <- acc * alpha + beta * Sf[at:at+V] (keep) or acc * alpha, for the first
    run of k; after it, Cf[at:at+V] + acc * alpha."""
    if not first:
        vstore(Cf, at, vfma(acc, va, vload(Cf, at)))
    elif keep:
        vstore(Cf, at, vfma(acc, va, vmul(vload(Sf, at), vb)))
    else:
        vstore(Cf, at, vmul(acc, va))


@internal_kernel
def _outer6(Cf, Sf, Af, Bf, r0, j, k0, k1, J, sk, sr, va, vb, keep, first):
    """C[r0:r0+6, j:j+2V] from 2 vectors of each row of B and 6 scalars of A per k."""
    V = lanes(Bf)
    a0 = vzero(Bf); a1 = vzero(Bf); b0 = vzero(Bf); b1 = vzero(Bf)  # noqa: E702
    c0 = vzero(Bf); c1 = vzero(Bf); d0 = vzero(Bf); d1 = vzero(Bf)  # noqa: E702
    e0 = vzero(Bf); e1 = vzero(Bf); f0 = vzero(Bf); f1 = vzero(Bf)  # noqa: E702
    s = r0 * sr
    for k in range(k0, k1):
        b = k * J + j
        p = vload(Bf, b)
        q = vload(Bf, b + V)
        g = k * sk + s
        w = vsplat_at(Af, g); a0 = vfma(p, w, a0); a1 = vfma(q, w, a1)  # noqa: E702
        w = vsplat_at(Af, g + sr); b0 = vfma(p, w, b0); b1 = vfma(q, w, b1)  # noqa: E702
        w = vsplat_at(Af, g + 2 * sr); c0 = vfma(p, w, c0); c1 = vfma(q, w, c1)  # noqa: E702
        w = vsplat_at(Af, g + 3 * sr); d0 = vfma(p, w, d0); d1 = vfma(q, w, d1)  # noqa: E702
        w = vsplat_at(Af, g + 4 * sr); e0 = vfma(p, w, e0); e1 = vfma(q, w, e1)  # noqa: E702
        w = vsplat_at(Af, g + 5 * sr); f0 = vfma(p, w, f0); f1 = vfma(q, w, f1)  # noqa: E702
    at = r0 * J + j
    _store(Cf, Sf, at, a0, va, vb, keep, first); _store(Cf, Sf, at + V, a1, va, vb, keep, first); at += J  # noqa: E702
    _store(Cf, Sf, at, b0, va, vb, keep, first); _store(Cf, Sf, at + V, b1, va, vb, keep, first); at += J  # noqa: E702
    _store(Cf, Sf, at, c0, va, vb, keep, first); _store(Cf, Sf, at + V, c1, va, vb, keep, first); at += J  # noqa: E702
    _store(Cf, Sf, at, d0, va, vb, keep, first); _store(Cf, Sf, at + V, d1, va, vb, keep, first); at += J  # noqa: E702
    _store(Cf, Sf, at, e0, va, vb, keep, first); _store(Cf, Sf, at + V, e1, va, vb, keep, first); at += J  # noqa: E702
    _store(Cf, Sf, at, f0, va, vb, keep, first); _store(Cf, Sf, at + V, f1, va, vb, keep, first)  # noqa: E702


@internal_kernel
def _outer1(Cf, Sf, Af, Bf, r, j, k0, k1, J, sk, sr, va, vb, keep, first):
    """C[r, j:j+V]: one vector of one output row, in the order of _outer6."""
    a = vzero(Bf)
    for k in range(k0, k1):
        a = vfma(vload(Bf, k * J + j), vsplat_at(Af, k * sk + r * sr), a)
    _store(Cf, Sf, r * J + j, a, va, vb, keep, first)


@internal_kernel
def _outer_range(Cf, Sf, Af, Bf, K, J, sk, sr, alpha, beta, r0, r1, j0, j1):
    """Rows r0..r1, columns j0..j1 of C (R, J) <- alpha A B + beta S (beta = 0: S unread), on
    flat views; j0 is a multiple of 2V and j1 one too or J.  C may be S (in place)."""
    V = lanes(Bf)
    va, vb = vsplat(Bf, alpha), vsplat(Bf, beta)
    keep = beta != 0
    # one cache block when two would leave the second short (its columns would be read again
    # for a few rows)
    rg = RG if r1 - r0 > 2 * RG else r1 - r0
    for k0 in range(0, K, KO):
        k1 = min(K, k0 + KO)
        first = k0 == 0
        for g0 in range(r0, r1, rg):
            g1 = min(r1, g0 + rg)
            gF = g1 - (g1 - g0) % MR
            for j in range(j0, j1, 2 * V):
                if j + 2 * V <= j1:
                    for r in range(g0, gF, MR):
                        _outer6(Cf, Sf, Af, Bf, r, j, k0, k1, J, sk, sr, va, vb, keep, first)
                    for r in range(gF, g1):
                        _outer1(Cf, Sf, Af, Bf, r, j, k0, k1, J, sk, sr, va, vb, keep, first)
                        _outer1(Cf, Sf, Af, Bf, r, j + V, k0, k1, J, sk, sr, va, vb, keep, first)
                    continue
                for jj in range(j, j1 - V + 1, V):      # what is left of the last pair: vectors
                    for r in range(g0, g1):
                        _outer1(Cf, Sf, Af, Bf, r, jj, k0, k1, J, sk, sr, va, vb, keep, first)
                for jj in range(j1 - (j1 - j) % V, j1):  # and single columns
                    for r in range(g0, g1):
                        s = vsum(vzero(Bf))
                        for k in range(k0, k1):
                            s += Bf[k * J + jj] * Af[k * sk + r * sr]
                        at = r * J + jj
                        if not first:
                            Cf[at] += s * alpha
                        elif keep:
                            Cf[at] = s * alpha + beta * Sf[at]
                        else:
                            Cf[at] = s * alpha
    return


# ---- the parallel region -------------------------------------------------------------------
@internal_kernel
def _cut(units, t, nb):
    """Units [u0, u1) of part t of nb (contiguous, sizes differing by at most one)."""
    return units * t // nb, units * (t + 1) // nb


@internal_kernel
def _rect(R, J, step_r, step_j, t, nb):
    """Part t of nb of an (R, J) output cut into blocks of step_r rows or step_j columns, along
    whichever side has more blocks (each part then reads the smaller operand whole)."""
    br, bj = (R + step_r - 1) // step_r, (J + step_j - 1) // step_j
    if bj >= br:
        u0, u1 = _cut(bj, t, nb)
        return 0, R, min(J, u0 * step_j), min(J, u1 * step_j)
    u0, u1 = _cut(br, t, nb)
    return min(R, u0 * step_r), min(R, u1 * step_r), 0, J


@parallel_kernel
def products(task, Y, X, WT, dY, dWT, lam, eta, update, mW, vW, kind, hp, nb, src, idx):
    """One product (or the gather) cut into nb parts, one per thread; nb = 1 runs it whole on
    the calling thread, without waking the pool.  X (N, I), WT (O, I) as stored, Y and dY (N, O):

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

    One parallel region for all of them: every `prange` kernel costs 1-2.4 s of the first
    run's compile (measured; the budget is 15 s)."""
    if nb == 1:
        _run(np.int64(0), task, Y, X, WT, dY, dWT, lam, eta, update, mW, vW, kind, hp, nb, src,
             idx)
        return
    for t in prange(nb):
        # int64: the parallel loop index is unsigned, and a second build for it costs ~2 s
        _run(np.int64(t), task, Y, X, WT, dY, dWT, lam, eta, update, mW, vW, kind, hp, nb,
            src, idx)
    return


@internal_kernel
def _run(t, task, Y, X, WT, dY, dWT, lam, eta, update, mW, vW, kind, hp, nb, src, idx):
    """Part t of nb of `products` (nb = 1: the whole product, the same code, so the same bits)."""
    N, I = X.shape
    O = WT.shape[0]
    Xf, Wf, Yf, dYf, dWf = X.reshape(-1), WT.reshape(-1), Y.reshape(-1), dY.reshape(-1), dWT.reshape(-1)
    V = lanes(Xf)
    if task == GATHER:
        k0, k1 = _cut(I, t, nb)
        Sf = src.reshape(-1)
        L = k1 - k0
        for n in range(N):
            # 1-D views indexed from 0: the copy vectorises (2-D indexing from k0 kept Numba's
            # negative-index test in the loop: 5x slower), and it compiles in a fraction of
            # the time of a slice assignment (~2.5 s of the first run, measured)
            dst = Xf[n * I + k0:n * I + k1]
            row = Sf[idx[n] * I + k0:idx[n] * I + k1]
            for j in range(L):
                dst[j] = row[j]
        return
    if not SIMD:        # one BLAS call, by the first part only
        if t == 0:
            _blas(task, Yf, Xf, Wf, dYf, dWf, N, I, O, lam, eta)
            if task == GRAD and update:
                update_range(Wf, dWf, mW, vW, 0, O * I, kind, eta, hp)
        return
    if task == FORWARD:
        n0, n1, o0, o1 = _rect(N, O, RN, RO, t, nb)
        if n1 > n0 and o1 > o0:
            _dot_range(Yf, Xf, Wf, N, I, O, n0, n1, o0, o1)
        return
    if task == DGRAD:       # dX (N, I) <- dY (N, O) WT (O, I): A = dY read as (n, o) = k * 1 + r * O
        n0, n1, i0, i1 = _rect(N, I, RG, 2 * V, t, nb)
        if n1 > n0 and i1 > i0:
            _outer_range(Xf, Xf, dYf, Wf, O, I, 1, O, 1.0, 0.0, n0, n1, i0, i1)
        return
    # the weight products: (O, I) <- dY^T X; A = dY read as (o, n) = k * O + r * 1
    o0, o1, i0, i1 = _rect(O, I, RG, 2 * V, t, nb)
    if o1 <= o0 or i1 <= i0:
        return
    if task == SGD_STEP:
        _outer_range(Wf, Wf, dYf, Xf, N, I, O, 1, -eta, 1.0 - 2.0 * eta * lam, o0, o1, i0, i1)
        return
    _outer_range(dWf, Wf, dYf, Xf, N, I, O, 1, 1.0, 2.0 * lam, o0, o1, i0, i1)
    if update:
        for o in range(o0, o1):
            update_range(Wf, dWf, mW, vW, o * I + i0, o * I + i1, kind, eta, hp)
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


# ---- the tasks one by one, from Python (tests, benchmarks) --------------------------------
_NO_ROWS = np.empty(0, np.int64)


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
    products(GATHER, _none(out), out, _none(out), _none(out), _none(out), 0.0, 0.0, False,
             *_no_state(out), nb, X, rows)


def dot_nt(Y, X, WT, nb):
    """Y (N, O) <- X (N, K) @ WT (O, K)^T (task FORWARD)."""
    _check(X, WT, (Y, (X.shape[0], WT.shape[0])))
    products(FORWARD, Y, X, WT, _none(X), _none(X), 0.0, 0.0, False, *_no_state(X), nb, X,
             _NO_ROWS)


def input_grad(dX, dY, WT, nb):
    """dX (N, K) <- dY (N, O) @ WT (O, K) (task DGRAD)."""
    _check(dX, WT, (dY, (dX.shape[0], WT.shape[0])))
    products(DGRAD, _none(dX), dX, WT, dY, _none(dX), 0.0, 0.0, False, *_no_state(dX), nb, dX,
             _NO_ROWS)


def weight_grad(dWT, X, dY, WT, lam, eta, update, nb, mW, vW, kind, hp):
    """dWT (O, K) <- dY (N, O)^T X (N, K) + 2 lam WT, then with `update` the optimiser's step
    (task GRAD)."""
    _check(X, WT, (dY, (X.shape[0], WT.shape[0])), (dWT, WT.shape))
    products(GRAD, _none(X), X, WT, dY, dWT, float(lam), float(eta), update, mW, vW, kind, hp,
             nb, X, _NO_ROWS)


def weight_sgd_step(WT, X, dY, lam, eta, nb):
    """WT (O, K) <- (1 - 2 eta lam) WT - eta dY^T X in place (task SGD_STEP)."""
    _check(X, WT, (dY, (X.shape[0], WT.shape[0])))
    products(SGD_STEP, _none(X), X, WT, dY, _none(X), float(lam), float(eta), True,
             *_no_state(X), nb, X, _NO_ROWS)
