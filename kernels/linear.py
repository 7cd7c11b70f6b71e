"""Linear layer: Y = X W + b, optionally fused with ReLU.

Legend: N batch rows, I inputs, O outputs.  X (N, I), W (I, O), b (O,), Y (N, O).
Every output element is accumulated by one thread in a fixed order (i ascending, then n
ascending), so the result is the same for any thread count and equal to the serial build.
"""
import numpy as np
from numba import prange

from ._config import internal_kernel, parallel_kernel, serial_kernel
from .rng import below32, bits32

ROWS = 4    # rows of X per block: each loaded row of W is reused ROWS times
COLS = 16   # columns of X per dW block: X[n, i:i+16] is one cache line in float32


@parallel_kernel
def linear_forward(Y, X, W, b, relu):
    """Y (N, O) <- X (N, I) @ W (I, O) + b (O,); then max(Y, 0) if `relu`.

    prange over blocks of ROWS rows of Y: threads write disjoint rows.  The inner loop runs
    along a contiguous row of W, which LLVM vectorises.
    """
    N, I = X.shape
    O = W.shape[1]
    n_blocks = (N + ROWS - 1) // ROWS
    for blk in prange(n_blocks):
        n0 = blk * ROWS
        n1 = min(n0 + ROWS, N)
        for n in range(n0, n1):
            for o in range(O):
                Y[n, o] = b[o]
        for i in range(I):
            for n in range(n0, n1):
                x = X[n, i]
                for o in range(O):
                    Y[n, o] += x * W[i, o]
        if relu:
            for n in range(n0, n1):
                for o in range(O):
                    if Y[n, o] < 0:
                        Y[n, o] = 0
    return


@parallel_kernel
def linear_backward(dW, db, dX, WT, dY, X, W, lam, need_dX):
    """Gradients of Y = X W + b, with the L2 term of the cost folded into dW.

    dW (I, O) <- X^T dY + 2 lam W;  db (O,) <- sum_n dY;  dX (N, I) <- dY W^T if `need_dX`
    (the first layer skips it: nothing upstream needs the input gradient).
    WT (O, I) is scratch for W transposed: with it each row of dX is built from contiguous
    axpy updates that vectorise, where a dot product along a row of W would be a serial
    chain of dependent adds (measured 8x slower at I = 3072).
    dW: prange over blocks of COLS rows of dW (disjoint writes).  db: serial, N*O adds.
    dX: prange over rows n.
    """
    N, I = X.shape
    O = W.shape[1]
    n_blocks = (I + COLS - 1) // COLS
    for blk in prange(n_blocks):
        i0 = blk * COLS
        i1 = min(i0 + COLS, I)
        for i in range(i0, i1):
            for o in range(O):
                dW[i, o] = 0
        for n in range(N):
            for i in range(i0, i1):
                x = X[n, i]
                for o in range(O):
                    dW[i, o] += x * dY[n, o]
        if lam != 0:
            for i in range(i0, i1):
                for o in range(O):
                    dW[i, o] += 2 * lam * W[i, o]
        if need_dX:
            for i in range(i0, i1):
                for o in range(O):
                    WT[o, i] = W[i, o]
    for o in range(O):
        db[o] = 0
    for n in range(N):
        for o in range(O):
            db[o] += dY[n, o]
    if need_dX:
        for n in prange(N):
            for i in range(I):
                dX[n, i] = 0
            for o in range(O):
                g = dY[n, o]
                for i in range(I):
                    dX[n, i] += g * WT[o, i]
    return


@parallel_kernel
def bias_forward(Y, b, relu):
    """Y (N, O) <- Y + b, then max(., 0) if `relu`: the rest of a linear layer whose product
    came from BLAS (kernels/blas.py).  prange over rows."""
    N, O = Y.shape
    for n in prange(N):
        for o in range(O):
            v = Y[n, o] + b[o]
            if relu and v < 0:
                v = 0
            Y[n, o] = v
    return


@parallel_kernel
def bias_backward(db, dY):
    """db (O,) <- sum_n dY (N, O).  prange over columns: each sum is one thread's, in row order."""
    N, O = dY.shape
    for o in prange(O):
        s = 0.0
        for n in range(N):
            s += dY[n, o]
        db[o] = s
    return


@serial_kernel
def bias_backward_rows(db, dY):
    """bias_backward on the calling thread, row loop outside: each column's sum is still one
    chain in row order (the same bits), but the chains of all columns advance together, so the
    loop vectorises instead of waiting on each addition (~3 us -> <1 us at 100 x 50)."""
    N, O = dY.shape
    s = np.zeros(O)
    for n in range(N):
        for o in range(O):
            s[o] += dY[n, o]
    for o in range(O):
        db[o] = s[o]
    return


# ---- a hidden layer without batch norm, on threads (gemm's BIAS_FORWARD, BIAS_BACKWARD) ------
@internal_kernel
def bias_relu_drop_rows(Y, b, rate, key, n0, n1):
    """Rows n0:n1 of Y (N, O) <- max(Y + b, 0), then dropout at `rate` with stream `key` (none
    at rate 0): bias_forward (relu) then dropout.dropout_forward on those rows, element by
    element the same operations, so the same bits however the rows are cut."""
    O = Y.shape[1]
    scale = Y.dtype.type(1.0 / (1.0 - rate))
    drop = below32(rate)
    k = np.uint64(key)
    for n in range(n0, n1):
        row = Y[n]
        for o in range(O):
            v = row[o] + b[o]
            if v < 0:
                v = 0
            row[o] = v
        if rate > 0:
            base = np.int64(n * O)
            for o in range(O):
                row[o] = 0 if bits32(k, base + o) < drop else row[o] * scale
    return


@internal_kernel
def relu_drop_back_cols(dZ, db, dH, H, rate, d0, d1):
    """Columns d0:d1 of dZ (N, O) <- dH / (1 - rate) (at rate > 0) where H > 0, else 0, and
    db[d0:d1] <- their column sums: dropout.dropout_backward_gated, relu.relu_backward and
    bias_backward_rows on those columns (each sum one float64 chain in row order), the same
    bits however the columns are cut.  dH is left as it was."""
    N = dH.shape[0]
    scale = dH.dtype.type(1.0 / (1.0 - rate))
    s = np.zeros(d1 - d0)
    for n in range(N):
        # 1-D views from 0: loops that run on vectors (indexed from d0 they did not: 6x slower)
        z, g, h = dZ[n, d0:d1], dH[n, d0:d1], H[n, d0:d1]
        if rate > 0:
            for j in range(d1 - d0):
                v = g[j] * scale
                z[j] = v if h[j] > 0 else 0
        else:
            for j in range(d1 - d0):
                z[j] = g[j] if h[j] > 0 else 0
        for j in range(d1 - d0):
            s[j] += z[j]
    for j in range(d1 - d0):
        db[d0 + j] = s[j]
    return
