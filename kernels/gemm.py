"""The first layer's two products, register-blocked on 64-byte vectors (kernels/simd.py), with
weights stored as the network stores them: WT (O, K), one row per output unit.

    forward   Y (N, O)  <- X (N, K) @ WT^T                  dot_nt
    backward  out (O, K) <- alpha * dY^T @ X + beta * src    outer_update
              (SGD's step: out = src = WT, alpha = -eta, beta = 1 - 2 eta lam;
               the gradient: out = dWT, src = WT, alpha = 1, beta = 2 lam)

Why not BLAS: at these shapes (K = 3072, O = 50, N = 100..500) OpenBLAS reaches 70-80 % of a
core, spending the rest on packing and on edge tiles for O = 50.  Here nothing is packed:
the forward takes 5 rows of X against 5 rows of WT, each a contiguous run along K, into 25
vector accumulators; the backward takes 10 output rows against 2 vectors of one row of X for
each n, into 20 (measured: 1.5x and 1.3x OpenBLAS's single-threaded sgemm on net A's shapes).

Every output element is one chain of fused multiply-adds in a fixed order (lane j of the
forward sums k = j, j + V, ...; then the lanes in a fixed tree, then the k tail), whichever
block kernel or thread computes it, so results do not depend on the thread count.
Legend: V lanes per vector, flat views `Xf` etc. of C-contiguous arrays.
"""
from numba import prange

from ._config import parallel_kernel, serial_kernel
from .simd import lanes, vfma, vload, vmul, vsplat, vsplat_at, vstore, vsum, vzero

RB = 5     # forward: rows of X and of WT per block
KSEG = 2   # the training forward's runs of columns (dot_nt_split)
OB = 10    # backward: output rows per block (2 vectors of K each)


@serial_kernel
def _dot1(Xf, Wf, x, w, k0, k1):
    """One forward element over columns k0..k1: sum_k Xf[x + k] * Wf[w + k], in the lane
    order of _dot5x5."""
    V = lanes(Xf)
    KV = k1 - (k1 - k0) % V
    a = vzero(Xf)
    for k in range(k0, KV, V):
        a = vfma(vload(Xf, x + k), vload(Wf, w + k), a)
    s = vsum(a)
    for k in range(KV, k1):
        s += Xf[x + k] * Wf[w + k]
    return s


@serial_kernel
def _tail(Xf, Wf, x, w, k1, KV):
    """The columns KV..k1 left over after whole vectors, one by one."""
    s = vsum(vzero(Xf))
    for k in range(KV, k1):
        s += Xf[x + k] * Wf[w + k]
    return s


@serial_kernel
def _dot5x5(Yf, Xf, Wf, n0, o0, K, O, k0, k1):
    """Y[n0:n0+5, o0:o0+5] (Yf flat, rows of O) from rows n0.. of X and o0.. of WT, over
    columns k0..k1 (rows of X and WT are K long)."""
    V = lanes(Xf)
    KV = k1 - (k1 - k0) % V
    a0 = vzero(Xf); a1 = vzero(Xf); a2 = vzero(Xf); a3 = vzero(Xf); a4 = vzero(Xf)  # noqa: E702
    b0 = vzero(Xf); b1 = vzero(Xf); b2 = vzero(Xf); b3 = vzero(Xf); b4 = vzero(Xf)  # noqa: E702
    c0 = vzero(Xf); c1 = vzero(Xf); c2 = vzero(Xf); c3 = vzero(Xf); c4 = vzero(Xf)  # noqa: E702
    d0 = vzero(Xf); d1 = vzero(Xf); d2 = vzero(Xf); d3 = vzero(Xf); d4 = vzero(Xf)  # noqa: E702
    e0 = vzero(Xf); e1 = vzero(Xf); e2 = vzero(Xf); e3 = vzero(Xf); e4 = vzero(Xf)  # noqa: E702
    x0 = n0 * K
    x1, x2, x3, x4 = x0 + K, x0 + 2 * K, x0 + 3 * K, x0 + 4 * K
    w0 = o0 * K
    w1, w2, w3, w4 = w0 + K, w0 + 2 * K, w0 + 3 * K, w0 + 4 * K
    for k in range(k0, KV, V):
        p = vload(Xf, x0 + k)
        q = vload(Xf, x1 + k)
        r = vload(Xf, x2 + k)
        s = vload(Xf, x3 + k)
        t = vload(Xf, x4 + k)
        w = vload(Wf, w0 + k)
        a0 = vfma(p, w, a0); b0 = vfma(q, w, b0); c0 = vfma(r, w, c0); d0 = vfma(s, w, d0); e0 = vfma(t, w, e0)  # noqa: E702,E501
        w = vload(Wf, w1 + k)
        a1 = vfma(p, w, a1); b1 = vfma(q, w, b1); c1 = vfma(r, w, c1); d1 = vfma(s, w, d1); e1 = vfma(t, w, e1)  # noqa: E702,E501
        w = vload(Wf, w2 + k)
        a2 = vfma(p, w, a2); b2 = vfma(q, w, b2); c2 = vfma(r, w, c2); d2 = vfma(s, w, d2); e2 = vfma(t, w, e2)  # noqa: E702,E501
        w = vload(Wf, w3 + k)
        a3 = vfma(p, w, a3); b3 = vfma(q, w, b3); c3 = vfma(r, w, c3); d3 = vfma(s, w, d3); e3 = vfma(t, w, e3)  # noqa: E702,E501
        w = vload(Wf, w4 + k)
        a4 = vfma(p, w, a4); b4 = vfma(q, w, b4); c4 = vfma(r, w, c4); d4 = vfma(s, w, d4); e4 = vfma(t, w, e4)  # noqa: E702,E501
    y = n0 * O + o0
    Yf[y] = vsum(a0) + _tail(Xf, Wf, x0, w0, k1, KV)
    Yf[y + 1] = vsum(a1) + _tail(Xf, Wf, x0, w1, k1, KV)
    Yf[y + 2] = vsum(a2) + _tail(Xf, Wf, x0, w2, k1, KV)
    Yf[y + 3] = vsum(a3) + _tail(Xf, Wf, x0, w3, k1, KV)
    Yf[y + 4] = vsum(a4) + _tail(Xf, Wf, x0, w4, k1, KV)
    y += O
    Yf[y] = vsum(b0) + _tail(Xf, Wf, x1, w0, k1, KV)
    Yf[y + 1] = vsum(b1) + _tail(Xf, Wf, x1, w1, k1, KV)
    Yf[y + 2] = vsum(b2) + _tail(Xf, Wf, x1, w2, k1, KV)
    Yf[y + 3] = vsum(b3) + _tail(Xf, Wf, x1, w3, k1, KV)
    Yf[y + 4] = vsum(b4) + _tail(Xf, Wf, x1, w4, k1, KV)
    y += O
    Yf[y] = vsum(c0) + _tail(Xf, Wf, x2, w0, k1, KV)
    Yf[y + 1] = vsum(c1) + _tail(Xf, Wf, x2, w1, k1, KV)
    Yf[y + 2] = vsum(c2) + _tail(Xf, Wf, x2, w2, k1, KV)
    Yf[y + 3] = vsum(c3) + _tail(Xf, Wf, x2, w3, k1, KV)
    Yf[y + 4] = vsum(c4) + _tail(Xf, Wf, x2, w4, k1, KV)
    y += O
    Yf[y] = vsum(d0) + _tail(Xf, Wf, x3, w0, k1, KV)
    Yf[y + 1] = vsum(d1) + _tail(Xf, Wf, x3, w1, k1, KV)
    Yf[y + 2] = vsum(d2) + _tail(Xf, Wf, x3, w2, k1, KV)
    Yf[y + 3] = vsum(d3) + _tail(Xf, Wf, x3, w3, k1, KV)
    Yf[y + 4] = vsum(d4) + _tail(Xf, Wf, x3, w4, k1, KV)
    y += O
    Yf[y] = vsum(e0) + _tail(Xf, Wf, x4, w0, k1, KV)
    Yf[y + 1] = vsum(e1) + _tail(Xf, Wf, x4, w1, k1, KV)
    Yf[y + 2] = vsum(e2) + _tail(Xf, Wf, x4, w2, k1, KV)
    Yf[y + 3] = vsum(e3) + _tail(Xf, Wf, x4, w3, k1, KV)
    Yf[y + 4] = vsum(e4) + _tail(Xf, Wf, x4, w4, k1, KV)


@serial_kernel
def dot_rows(Y, X, WT, b0, b1, k0, k1):
    """Y[5 b0 : 5 b1] <- X[5 b0 : 5 b1, k0:k1] @ WT[:, k0:k1]^T, rows cut at the end of X."""
    N, K = X.shape
    O = WT.shape[0]
    Yf, Xf, Wf = Y.reshape(-1), X.reshape(-1), WT.reshape(-1)
    OF = O - O % RB
    for bn in range(b0, b1):
        n = RB * bn
        if n + RB <= N:
            for o in range(0, OF, RB):
                _dot5x5(Yf, Xf, Wf, n, o, K, O, k0, k1)
            rows = RB
        else:
            rows = N - n
            for r in range(rows):
                for o in range(OF):
                    Yf[(n + r) * O + o] = _dot1(Xf, Wf, (n + r) * K, o * K, k0, k1)
        for r in range(rows):
            for o in range(OF, O):
                Yf[(n + r) * O + o] = _dot1(Xf, Wf, (n + r) * K, o * K, k0, k1)
    return


@parallel_kernel
def dot_nt(Y, X, WT, nb):
    """Y (N, O) <- X (N, K) @ WT (O, K)^T, blocks of 5 rows cut into `nb` runs, one per thread:
    for evaluation, where X is read-only and WT is not being written."""
    N, K = X.shape
    blocks = (N + RB - 1) // RB
    for t in prange(nb):
        dot_rows(Y, X, WT, blocks * t // nb, blocks * (t + 1) // nb, 0, K)
    return


@serial_kernel
def segment(K, V, s, S):
    """Columns [k0, k1) of run s of S: whole vector pairs, the last run ending at K.  The same
    cut as outer_update's with nb = S, so with S threads each keeps to its own columns."""
    pairs = (K + 2 * V - 1) // (2 * V)
    return min(K, 2 * V * (pairs * s // S)), min(K, 2 * V * (pairs * (s + 1) // S))


@parallel_kernel
def dot_nt_split(Y, parts, X, WT, nb):
    """dot_nt for the training step: each element summed over KSEG runs of columns into
    `parts` (KSEG N, O), then the runs added in order.  With 2 threads, each reads only the
    columns of X and WT that it gathered and updated itself (step.gather_cols,
    outer_update): reading all of WT after the other core wrote half of it was measured to
    cost 135 us a step of net A, 40 % of the products.  KSEG is fixed, not the thread count,
    so the result is the same on any number of threads."""
    N, K = X.shape
    V = lanes(X.reshape(-1))
    blocks = (N + RB - 1) // RB
    R = max(1, nb // KSEG)                    # runs of rows per run of columns
    for t in prange(KSEG * R):
        s, r = t // R, t % R
        k0, k1 = segment(K, V, s, KSEG)
        P = parts[s * N:(s + 1) * N]
        dot_rows(P, X, WT, blocks * r // R, blocks * (r + 1) // R, k0, k1)
    for n in range(N):
        for o in range(Y.shape[1]):
            v = parts[n, o]
            for s in range(1, KSEG):
                v += parts[s * N + n, o]
            Y[n, o] = v
    return


@serial_kernel
def _put(outf, srcf, at, acc, va, vb):
    """outf[at:at+V] <- acc * alpha + beta * srcf[at:at+V] (va, vb: alpha, beta splatted)."""
    vstore(outf, at, vfma(acc, va, vmul(vload(srcf, at), vb)))


@serial_kernel
def _outer10(outf, srcf, Xf, dYf, i, o0, N, K, O, va, vb):
    """out[o0:o0+10, i:i+2V] from 2 vectors of each row of X and 10 columns of dY."""
    V = lanes(Xf)
    a0 = vzero(Xf); a1 = vzero(Xf); b0 = vzero(Xf); b1 = vzero(Xf); c0 = vzero(Xf)  # noqa: E702
    c1 = vzero(Xf); d0 = vzero(Xf); d1 = vzero(Xf); e0 = vzero(Xf); e1 = vzero(Xf)  # noqa: E702
    f0 = vzero(Xf); f1 = vzero(Xf); g0 = vzero(Xf); g1 = vzero(Xf); h0 = vzero(Xf)  # noqa: E702
    h1 = vzero(Xf); j0 = vzero(Xf); j1 = vzero(Xf); k0 = vzero(Xf); k1 = vzero(Xf)  # noqa: E702
    for n in range(N):
        x = n * K + i
        p = vload(Xf, x)
        q = vload(Xf, x + V)
        g = n * O + o0
        w = vsplat_at(dYf, g); a0 = vfma(p, w, a0); a1 = vfma(q, w, a1)  # noqa: E702
        w = vsplat_at(dYf, g + 1); b0 = vfma(p, w, b0); b1 = vfma(q, w, b1)  # noqa: E702
        w = vsplat_at(dYf, g + 2); c0 = vfma(p, w, c0); c1 = vfma(q, w, c1)  # noqa: E702
        w = vsplat_at(dYf, g + 3); d0 = vfma(p, w, d0); d1 = vfma(q, w, d1)  # noqa: E702
        w = vsplat_at(dYf, g + 4); e0 = vfma(p, w, e0); e1 = vfma(q, w, e1)  # noqa: E702
        w = vsplat_at(dYf, g + 5); f0 = vfma(p, w, f0); f1 = vfma(q, w, f1)  # noqa: E702
        w = vsplat_at(dYf, g + 6); g0 = vfma(p, w, g0); g1 = vfma(q, w, g1)  # noqa: E702
        w = vsplat_at(dYf, g + 7); h0 = vfma(p, w, h0); h1 = vfma(q, w, h1)  # noqa: E702
        w = vsplat_at(dYf, g + 8); j0 = vfma(p, w, j0); j1 = vfma(q, w, j1)  # noqa: E702
        w = vsplat_at(dYf, g + 9); k0 = vfma(p, w, k0); k1 = vfma(q, w, k1)  # noqa: E702
    at = o0 * K + i
    _put(outf, srcf, at, a0, va, vb); _put(outf, srcf, at + V, a1, va, vb); at += K  # noqa: E702
    _put(outf, srcf, at, b0, va, vb); _put(outf, srcf, at + V, b1, va, vb); at += K  # noqa: E702
    _put(outf, srcf, at, c0, va, vb); _put(outf, srcf, at + V, c1, va, vb); at += K  # noqa: E702
    _put(outf, srcf, at, d0, va, vb); _put(outf, srcf, at + V, d1, va, vb); at += K  # noqa: E702
    _put(outf, srcf, at, e0, va, vb); _put(outf, srcf, at + V, e1, va, vb); at += K  # noqa: E702
    _put(outf, srcf, at, f0, va, vb); _put(outf, srcf, at + V, f1, va, vb); at += K  # noqa: E702
    _put(outf, srcf, at, g0, va, vb); _put(outf, srcf, at + V, g1, va, vb); at += K  # noqa: E702
    _put(outf, srcf, at, h0, va, vb); _put(outf, srcf, at + V, h1, va, vb); at += K  # noqa: E702
    _put(outf, srcf, at, j0, va, vb); _put(outf, srcf, at + V, j1, va, vb); at += K  # noqa: E702
    _put(outf, srcf, at, k0, va, vb); _put(outf, srcf, at + V, k1, va, vb)  # noqa: E702


@serial_kernel
def _outer1(outf, srcf, Xf, dYf, i, o, N, K, O, va, vb):
    """out[o, i:i+V]: one vector of one output row, in the lane order of _outer10."""
    a = vzero(Xf)
    for n in range(N):
        a = vfma(vload(Xf, n * K + i), vsplat_at(dYf, n * O + o), a)
    _put(outf, srcf, o * K + i, a, va, vb)


@serial_kernel
def outer_cols(out, src, X, dY, alpha, beta, c0, c1):
    """out[:, cols] <- alpha * dY^T @ X[:, cols] + beta * src[:, cols] for the columns of the
    vector pairs c0..c1 (2V columns each; the last run ends at column K, tail included)."""
    N, K = X.shape
    O = dY.shape[1]
    outf, srcf, Xf, dYf = out.reshape(-1), src.reshape(-1), X.reshape(-1), dY.reshape(-1)
    V = lanes(Xf)
    va, vb = vsplat(Xf, alpha), vsplat(Xf, beta)
    OF = O - O % OB
    for c in range(c0, c1):
        i = 2 * V * c
        if i + 2 * V <= K:
            for o in range(0, OF, OB):
                _outer10(outf, srcf, Xf, dYf, i, o, N, K, O, va, vb)
            for o in range(OF, O):
                _outer1(outf, srcf, Xf, dYf, i, o, N, K, O, va, vb)
                _outer1(outf, srcf, Xf, dYf, i + V, o, N, K, O, va, vb)
            continue
        for j in range(i, K - V + 1, V):       # what is left of the last pair: whole vectors
            for o in range(O):
                _outer1(outf, srcf, Xf, dYf, j, o, N, K, O, va, vb)
        for j in range(K - K % V, K):          # and single columns
            for o in range(O):
                s = vsum(vzero(Xf))
                for n in range(N):
                    s += Xf[n * K + j] * dYf[n * O + o]
                outf[o * K + j] = s * alpha + beta * srcf[o * K + j]
    return


@parallel_kernel
def outer_update(out, src, X, dY, alpha, beta, nb):
    """out (O, K) <- alpha * dY (N, O)^T @ X (N, K) + beta * src (O, K), columns cut into `nb`
    runs of vector pairs, one per thread.  out may be src (an in-place step)."""
    K = X.shape[1]
    V = lanes(X.reshape(-1))
    pairs = (K + 2 * V - 1) // (2 * V)
    for t in prange(nb):
        outer_cols(out, src, X, dY, alpha, beta, pairs * t // nb, pairs * (t + 1) // nb)
    return
