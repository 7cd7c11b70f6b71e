"""The first layer's two products, register-blocked on 64-byte vectors (kernels/simd.py), with
weights stored as the network stores them: WT (O, K), one row per output unit; and
first_layer, the one parallel region that runs them (or their BLAS builds) in the step.

    forward   Y (N, O)  <- X (N, K) @ WT^T                  _dot_rows
    backward  out (O, K) <- alpha * dY^T @ X + beta * src    _outer_cols
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
import numpy as np
from numba import prange

from ._config import internal_kernel, parallel_kernel
from .blas import fgemm, gemm
from .optim import HP_SIZE, update_range
from .simd import AVX512, lanes, vfma, vload, vmul, vsplat, vsplat_at, vstore, vsum, vzero

RB = 5     # forward: rows of X and of WT per block
KSEG = 2   # the training forward's runs of columns (first_layer's FORWARD_SPLIT)
OB = 10    # backward: output rows per block (2 vectors of K each)
# Register-blocked products where the CPU Numba compiles for has AVX-512, BLAS elsewhere.  A
# constant, so each build compiles only its own code (0.9 s of the first run's compile,
# measured); Numba's cache is kept per CPU name and features, so the builds never mix.  The
# BLAS build can be run here with NUMBA_CPU_NAME=haswell (tests/test_blas_build.py).
SIMD = AVX512


@internal_kernel
def _tail(Xf, Wf, x, w, k1, KV):
    """The columns KV..k1 left over after whole vectors, one by one."""
    s = vsum(vzero(Xf))
    for k in range(KV, k1):
        s += Xf[x + k] * Wf[w + k]
    return s


@internal_kernel
def _dot1(Xf, Wf, x, w, k0, k1):
    """One forward element over columns k0..k1: sum_k Xf[x + k] * Wf[w + k], in the lane
    order of _dot5x5 and with the same tail."""
    V = lanes(Xf)
    KV = k1 - (k1 - k0) % V
    a = vzero(Xf)
    for k in range(k0, KV, V):
        a = vfma(vload(Xf, x + k), vload(Wf, w + k), a)
    return vsum(a) + _tail(Xf, Wf, x, w, k1, KV)


@internal_kernel
def _dot5x5(Yf, Xf, Wf, n0, o0, K, O, k0, k1):
    """Y[n0:n0+5, o0:o0+5] (Yf flat, rows of O) from rows n0.. of X and o0.. of WT, over
    the whole vectors of columns k0..k1 (rows of X and WT are K long); _dot_rows adds the
    columns left over, as _dot1 does."""
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
    Yf[y] = vsum(a0); Yf[y + 1] = vsum(a1); Yf[y + 2] = vsum(a2); Yf[y + 3] = vsum(a3); Yf[y + 4] = vsum(a4)  # noqa: E702,E501
    y += O
    Yf[y] = vsum(b0); Yf[y + 1] = vsum(b1); Yf[y + 2] = vsum(b2); Yf[y + 3] = vsum(b3); Yf[y + 4] = vsum(b4)  # noqa: E702,E501
    y += O
    Yf[y] = vsum(c0); Yf[y + 1] = vsum(c1); Yf[y + 2] = vsum(c2); Yf[y + 3] = vsum(c3); Yf[y + 4] = vsum(c4)  # noqa: E702,E501
    y += O
    Yf[y] = vsum(d0); Yf[y + 1] = vsum(d1); Yf[y + 2] = vsum(d2); Yf[y + 3] = vsum(d3); Yf[y + 4] = vsum(d4)  # noqa: E702,E501
    y += O
    Yf[y] = vsum(e0); Yf[y + 1] = vsum(e1); Yf[y + 2] = vsum(e2); Yf[y + 3] = vsum(e3); Yf[y + 4] = vsum(e4)  # noqa: E702,E501


@internal_kernel
def _dot_rows(Yf, Xf, Wf, N, K, O, b0, b1, k0, k1):
    """Rows 5 b0 .. 5 b1 (cut at N) of Y (N, O) <- X (N, K) @ WT (O, K)^T over columns
    k0..k1, on flat views."""
    V = lanes(Xf)
    KV = k1 - (k1 - k0) % V
    OF = O - O % RB
    for bn in range(b0, b1):
        n = RB * bn
        if n + RB <= N:
            for o in range(0, OF, RB):
                _dot5x5(Yf, Xf, Wf, n, o, K, O, k0, k1)
            if KV < k1:
                for r in range(n, n + RB):
                    for o in range(OF):
                        Yf[r * O + o] += _tail(Xf, Wf, r * K, o * K, k1, KV)
        else:
            for r in range(n, N):
                for o in range(OF):
                    Yf[r * O + o] = _dot1(Xf, Wf, r * K, o * K, k0, k1)
        for r in range(n, min(N, n + RB)):
            for o in range(OF, O):
                Yf[r * O + o] = _dot1(Xf, Wf, r * K, o * K, k0, k1)
    return


@internal_kernel
def _segment(K, V, s, S):
    """Columns [k0, k1) of run s of S: whole vector pairs, the last run ending at K.  The
    forward's runs of columns and the weight tasks' runs are both cut here, so with KSEG
    threads each keeps to its own columns."""
    pairs = (K + 2 * V - 1) // (2 * V)
    return min(K, 2 * V * (pairs * s // S)), min(K, 2 * V * (pairs * (s + 1) // S))


@internal_kernel
def _put(outf, srcf, at, acc, va, vb):
    """outf[at:at+V] <- acc * alpha + beta * srcf[at:at+V] (va, vb: alpha, beta splatted)."""
    vstore(outf, at, vfma(acc, va, vmul(vload(srcf, at), vb)))


@internal_kernel
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


@internal_kernel
def _outer1(outf, srcf, Xf, dYf, i, o, N, K, O, va, vb):
    """out[o, i:i+V]: one vector of one output row, in the lane order of _outer10."""
    a = vzero(Xf)
    for n in range(N):
        a = vfma(vload(Xf, n * K + i), vsplat_at(dYf, n * O + o), a)
    _put(outf, srcf, o * K + i, a, va, vb)


@internal_kernel
def _outer_cols(outf, srcf, Xf, dYf, N, K, O, alpha, beta, i0, i1):
    """Columns i0..i1 of out (O, K) <- alpha * dY (N, O)^T @ X (N, K) + beta * src (O, K), on
    flat views; i0 is a multiple of 2V and i1 one too or K.  out may be src (in place)."""
    V = lanes(Xf)
    va, vb = vsplat(Xf, alpha), vsplat(Xf, beta)
    OF = O - O % OB
    for i in range(i0, i1, 2 * V):
        if i + 2 * V <= i1:
            for o in range(0, OF, OB):
                _outer10(outf, srcf, Xf, dYf, i, o, N, K, O, va, vb)
            for o in range(OF, O):
                _outer1(outf, srcf, Xf, dYf, i, o, N, K, O, va, vb)
                _outer1(outf, srcf, Xf, dYf, i + V, o, N, K, O, va, vb)
            continue
        for j in range(i, i1 - V + 1, V):      # what is left of the last pair: whole vectors
            for o in range(O):
                _outer1(outf, srcf, Xf, dYf, j, o, N, K, O, va, vb)
        for j in range(i1 - (i1 - i) % V, i1):  # and single columns
            for o in range(O):
                s = vsum(vzero(Xf))
                for n in range(N):
                    s += Xf[n * K + j] * dYf[n * O + o]
                outf[o * K + j] = s * alpha + beta * srcf[o * K + j]
    return


FORWARD, FORWARD_SPLIT, GRAD, SGD_STEP, GATHER = 0, 1, 2, 3, 4


@parallel_kernel
def first_layer(task, Y, parts, X, WT, dY, dWT, lam, eta, update, mW, vW, kind, hp, nb, src,
                idx):
    """The big products of a step (the first layer's), all in this one parallel region: every
    `prange` kernel costs 1-2.4 s of the first run's compile (measured; the 15 s budget), so
    the tasks share one.  X (N, K), WT (O, K) as stored, Y and dY (N, O).

      FORWARD        Y <- X WT^T, rows cut into nb runs (evaluation: X read-only, WT idle)
      FORWARD_SPLIT  the same summed over KSEG fixed runs of columns into parts (KSEG N, O),
                     then added in order (training; see below)
      GRAD           dWT <- dY^T X + 2 lam WT, columns cut into nb runs; with `update`, each
                     run then takes its optimiser step (kernels/optim.py: rule `kind`,
                     learning rate eta, WT's slices mW, vW of the memory, hyperparameters hp)
      SGD_STEP       WT <- (1 - 2 eta lam) WT - eta dY^T X: plain SGD folded into the product,
                     no gradient stored (saves two passes over WT and dWT: 25-30 us a step)
      GATHER         X <- src[idx] (idx (N,) row numbers), in KSEG runs of columns: a batch of
                     shuffled rows copied where the step needs it, instead of shuffling the
                     whole training set each epoch (a 553 MB copy at the study's size)

    The products are register-blocked (this file) where SIMD, else single-threaded BLAS calls
    per run (kernels/blas.py).  Why the split forward: with 2 threads, each then reads only
    the columns of X and WT that it gathered (GATHER) and updated itself; reading
    all of WT after the other core wrote half of it cost 135 us a step of net A, 40 % of its
    products (measured).  KSEG is fixed, not the thread count, so every result is the same
    bits on any number of threads."""
    N = X.shape[0]
    R = max(1, nb // KSEG) if task == FORWARD_SPLIT else nb
    tasks = KSEG * R if task == FORWARD_SPLIT else (KSEG if task == GATHER else nb)
    for t in prange(tasks):
        # int64: the parallel loop index is unsigned, and a second build for it costs ~2 s
        _run(np.int64(t), R, task, Y, parts, X, WT, dY, dWT, lam, eta, update, mW, vW, kind, hp,
             nb, src, idx)
    if task == FORWARD_SPLIT:
        O = WT.shape[0]
        Yf = Y.reshape(-1)
        for n in range(N * O):
            v = parts[n // O, n % O]
            for s in range(1, KSEG):
                v += parts[s * N + n // O, n % O]
            Yf[n] = v
    return


@internal_kernel
def _run(t, R, task, Y, parts, X, WT, dY, dWT, lam, eta, update, mW, vW, kind, hp, nb, src,
         idx):
    """Run t of first_layer's parallel region (a function of its own: the region's body is
    compiled by the parallel pipeline, which costs seconds more on a big body)."""
    N, K = X.shape
    O = WT.shape[0]
    Xf, Wf, Yf, dYf, dWf = X.reshape(-1), WT.reshape(-1), Y.reshape(-1), dY.reshape(-1), dWT.reshape(-1)
    V = lanes(Xf)
    if task == GATHER:
        k0, k1 = _segment(K, V, t, KSEG)
        Sf = src.reshape(-1)
        L = k1 - k0
        for n in range(N):
            # 1-D views indexed from 0: the copy vectorises (2-D indexing from k0 kept Numba's
            # negative-index test in the loop: 5x slower), and it compiles in a fraction of
            # the time of a slice assignment (~2.5 s of the first run, measured)
            dst = Xf[n * K + k0:n * K + k1]
            row = Sf[idx[n] * K + k0:idx[n] * K + k1]
            for j in range(L):
                dst[j] = row[j]
        return
    if task == FORWARD or task == FORWARD_SPLIT:
        s, r = (t // R, t % R) if task == FORWARD_SPLIT else (0, t)
        k0, k1 = _segment(K, V, s, KSEG) if task == FORWARD_SPLIT else (0, K)
        out = parts.reshape(-1)[s * N * O:] if task == FORWARD_SPLIT else Yf
        if SIMD:
            blocks = (N + RB - 1) // RB
            _dot_rows(out, Xf, Wf, N, K, O, blocks * r // R, blocks * (r + 1) // R, k0, k1)
        else:       # runs of rows at least 16 tall: OpenBLAS rounds a row the same in any
            n0, n1 = N * r // R, N * (r + 1) // R
            if n1 > n0 and k1 > k0:
                gemm(84, 78, O, n1 - n0, k1 - k0, Wf[k0:], K, Xf[n0 * K + k0:], K, 0.0,
                     out[n0 * O:], O)
            elif n1 > n0:           # an empty run of columns (K < 2V) adds nothing
                out[n0 * O:n1 * O] = 0
        return
    i0, i1 = _segment(K, V, t, nb)
    if i1 <= i0:
        return
    if task == SGD_STEP:
        alpha, beta = -eta, 1.0 - 2.0 * eta * lam     # eta, lam: float64
        if SIMD:
            _outer_cols(Wf, Wf, Xf, dYf, N, K, O, alpha, beta, i0, i1)
        else:
            fgemm(78, 84, i1 - i0, O, N, alpha, Xf[i0:], K, dYf, O, beta, Wf[i0:], K)
        return
    if SIMD:
        _outer_cols(dWf, Wf, Xf, dYf, N, K, O, 1.0, 2.0 * lam, i0, i1)
    else:
        for o in range(O):
            for i in range(i0, i1):
                dWf[o * K + i] = 2 * lam * Wf[o * K + i]
        gemm(78, 84, i1 - i0, O, N, Xf[i0:], K, dYf, O, 1.0, dWf[i0:], K)
    if update:
        for o in range(O):
            update_range(Wf, dWf, mW, vW, o * K + i0, o * K + i1, kind, eta, hp)
    return


# ---- the tasks one by one, from Python (tests, benchmarks) --------------------------------
_NO_ROWS = np.empty(0, np.int64)


def gather(out, X, rows):
    """out (N, K) <- X[rows] (task GATHER)."""
    rows = np.asarray(rows, np.int64)
    if out.shape != (len(rows), X.shape[1]) or out.dtype != X.dtype or not X.flags.c_contiguous:
        raise ValueError(f"out must be (len(rows), K) = {(len(rows), X.shape[1])} in X's dtype, and X "
                         f"C-contiguous; got out {out.shape} {out.dtype}")
    first_layer(GATHER, _none(out), _none(out), out, _none(out), _none(out), _none(out), 0.0,
                0.0, False, *_no_state(out), KSEG, X, rows)


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


def dot_nt(Y, X, WT, nb):
    """Y (N, O) <- X (N, K) @ WT (O, K)^T (task FORWARD)."""
    _check(X, WT, (Y, (X.shape[0], WT.shape[0])))
    first_layer(FORWARD, Y, _none(X), X, WT, _none(X), _none(X), 0.0, 0.0, False,
                *_no_state(X), nb, X, _NO_ROWS)


def dot_nt_split(Y, parts, X, WT, nb):
    """dot_nt summed over KSEG runs of columns in parts (KSEG N, O) (task FORWARD_SPLIT)."""
    _check(X, WT, (Y, (X.shape[0], WT.shape[0])), (parts, (KSEG * X.shape[0], WT.shape[0])))
    first_layer(FORWARD_SPLIT, Y, parts, X, WT, _none(X), _none(X), 0.0, 0.0, False,
                *_no_state(X), nb, X, _NO_ROWS)


def weight_grad(dWT, X, dY, WT, lam, eta, update, nb, mW, vW, kind, hp):
    """dWT (O, K) <- dY (N, O)^T X (N, K) + 2 lam WT, then with `update` the optimiser's step
    (task GRAD)."""
    _check(X, WT, (dY, (X.shape[0], WT.shape[0])), (dWT, WT.shape))
    first_layer(GRAD, _none(X), _none(X), X, WT, dY, dWT, float(lam), float(eta), update,
                mW, vW, kind, hp, nb, X, _NO_ROWS)


def weight_sgd_step(WT, X, dY, lam, eta, nb):
    """WT (O, K) <- (1 - 2 eta lam) WT - eta dY^T X in place (task SGD_STEP)."""
    _check(X, WT, (dY, (X.shape[0], WT.shape[0])))
    first_layer(SGD_STEP, _none(X), _none(X), X, WT, dY, _none(X), float(lam), float(eta),
                True, *_no_state(X), nb, X, _NO_ROWS)
