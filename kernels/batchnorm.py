"""Batch normalisation over the batch axis, optionally fused with the ReLU that follows it.

Legend: N batch rows, D features.  X, Xhat, Y, dY, dX (N, D); gamma, beta, mean, inv_std,
run_mean, run_var, dgamma, dbeta (D,).
Training: mean and biased variance of the batch; Xhat = (X - mean) * inv_std with
inv_std = 1 / sqrt(var + eps); Y = gamma * Xhat + beta (then ReLU if `relu`).
Every loop runs over features in parallel: each thread owns whole columns, so the batch
reductions are serial per column and independent of the thread count.
"""
import numpy as np
from numba import prange

from ._config import internal_kernel, parallel_kernel
from .simd import fma


@parallel_kernel
def bn_forward_train(Y, Xhat, mean, inv_std, run_mean, run_var,
                     X, gamma, beta, eps, alpha, update_running, relu):
    """Normalise X with its own batch statistics; optionally update the running ones as
    run = alpha * run + (1 - alpha) * batch (biased batch variance, as in the study).
    Two passes (mean, then squared deviations) avoid the cancellation of E[x^2] - E[x]^2.
    """
    N, D = X.shape
    for d in prange(D):
        s = 0.0
        for n in range(N):
            s += X[n, d]
        mu = s / N
        v = 0.0
        for n in range(N):
            t = X[n, d] - mu
            v += t * t
        var = v / N
        inv = 1.0 / np.sqrt(var + eps)
        mean[d] = mu
        inv_std[d] = inv
        g = gamma[d]
        bt = beta[d]
        for n in range(N):
            xh = (X[n, d] - mu) * inv
            Xhat[n, d] = xh
            out = g * xh + bt
            if relu and out < 0:
                out = 0
            Y[n, d] = out
        if update_running:     # one rounding (see bn_forward_train_cols)
            run_mean[d] = fma(np.float64(alpha), np.float64(run_mean[d]), (1 - alpha) * mu)
            run_var[d] = fma(np.float64(alpha), np.float64(run_var[d]), (1 - alpha) * var)
    return


@parallel_kernel
def bn_forward_infer(Y, X, gamma, beta, run_mean, run_var, eps, relu):
    """Normalise X with the running statistics (evaluation mode).  prange over rows."""
    N, D = X.shape
    for n in prange(N):
        for d in range(D):
            out = gamma[d] * (X[n, d] - run_mean[d]) / np.sqrt(run_var[d] + eps) + beta[d]
            if relu and out < 0:
                out = 0
            Y[n, d] = out
    return


@parallel_kernel
def bn_backward(dX, dgamma, dbeta, dY, Xhat, inv_std, gamma, Y, relu):
    """Backward through the batch statistics (mean and variance depend on every row):

        dX = gamma * inv_std / N * (N * dY' - sum_n dY' - Xhat * sum_n(dY' * Xhat))

    where dY' is dY masked by the ReLU (Y > 0) when `relu`, else dY.  Y is the forward output.
    dgamma = sum_n dY' * Xhat, dbeta = sum_n dY'.  prange over features.
    """
    N, D = dY.shape
    for d in prange(D):
        sb = 0.0
        sg = 0.0
        for n in range(N):
            g = dY[n, d]
            if relu and not Y[n, d] > 0:
                g = 0
            sb += g
            sg += g * Xhat[n, d]
        dbeta[d] = sb
        dgamma[d] = sg
        k = gamma[d] * inv_std[d] / N
        for n in range(N):
            g = dY[n, d]
            if relu and not Y[n, d] > 0:
                g = 0
            dX[n, d] = k * (N * g - sb - Xhat[n, d] * sg)
    return


# ---- the step's builds: a run of columns, row loops outside -------------------------------
# The kernels above loop over rows inside a column: each column's sums are one chain of
# dependent additions (no `reassoc`, so no reordering), ~4 cycles each, which made them ~19 us
# (forward) and ~15 us (backward) at 100 x 50 on one thread (measured).  These do the same
# arithmetic in the same order per column, but with the row loop outside, so the inner loop
# runs over features, whose chains are independent: it vectorises.  Same bits as the column
# kernels (tested), and each runs on columns [d0, d1) only, so the step cuts a wide layer's
# batch norm into runs of columns, one per thread (gemm's BN_FORWARD and BN_BACKWARD), with the
# same bits however it is cut.  They also take the layer's bias (Z <- Z + b first, as
# linear.bias_forward) and its gradient (db, the column sums of dX, as linear.bias_backward):
# one call instead of two on the same columns.
# Their multiply-adds are written out (simd.fma, each as LLVM had fused it: the same bits):
# these kernels are compiled twice, inlined in the step for one part and in gemm._bn_run for
# more, on a first run in another process, and a fusion left to LLVM could differ between the
# copies, so between thread counts.
# Columns are indexed as unsigned integers: indexed from d0 with a signed index, each access
# kept Numba's negative-index test and the loops did not vectorise (5-10x slower, measured),
# and row slices (views) cost their reference counts on every row (100 x 50: 0.8x).


@internal_kernel
def bn_forward_train_cols(Y, Xhat, mean, inv_std, run_mean, run_var, X, b, gamma, beta, eps,
                          alpha, update_running, relu, d0, d1):
    """X <- X + b, then bn_forward_train, on columns [d0, d1)."""
    N = X.shape[0]
    u0, u1 = np.uint64(d0), np.uint64(d1)
    w = d1 - d0
    s, v, mu, inv = np.zeros(w), np.zeros(w), np.empty(w), np.empty(w)
    for n in range(N):
        for d in range(u0, u1):
            x = X[n, d] + b[d]      # in X's precision, as linear.bias_forward stores it
            X[n, d] = x
            s[d - u0] += x
    for d in range(w):
        mu[d] = s[d] / N
    for n in range(N):
        for d in range(u0, u1):
            t = X[n, d] - mu[d - u0]
            v[d - u0] = fma(t, t, v[d - u0])
    for d in range(u0, u1):
        var = v[d - u0] / N
        inv[d - u0] = 1.0 / np.sqrt(var + eps)
        mean[d] = mu[d - u0]
        inv_std[d] = inv[d - u0]
        if update_running:
            # one rounding, written out (simd.fma): left to LLVM to fuse, the copy of this code
            # in the step compiled afresh fused it and the one saved to the cache did not, so
            # a first run's running statistics differed by an ulp from a rerun's
            run_mean[d] = fma(np.float64(alpha), np.float64(run_mean[d]), (1 - alpha) * mu[d - u0])
            run_var[d] = fma(np.float64(alpha), np.float64(run_var[d]), (1 - alpha) * var)
    for n in range(N):
        for d in range(u0, u1):
            xh = (X[n, d] - mu[d - u0]) * inv[d - u0]
            Xhat[n, d] = xh
            out = fma(np.float64(gamma[d]), xh, np.float64(beta[d]))
            if relu and out < 0:
                out = 0
            Y[n, d] = out
    return


@internal_kernel
def bn_backward_cols(dX, db, dgamma, dbeta, dY, Xhat, inv_std, gamma, Y, relu, d0, d1):
    """bn_backward on columns [d0, d1), then db <- the column sums of dX (the gradient of the
    bias that bn_forward_train_cols added), each in row order."""
    N = dY.shape[0]
    u0, u1 = np.uint64(d0), np.uint64(d1)
    w = d1 - d0
    sb, sg, k, sd = np.zeros(w), np.zeros(w), np.empty(w), np.zeros(w)
    for n in range(N):
        for d in range(u0, u1):
            g = dY[n, d]
            if relu and not Y[n, d] > 0:
                g = 0
            sb[d - u0] += g
            sg[d - u0] += g * Xhat[n, d]
    for d in range(u0, u1):
        dbeta[d] = sb[d - u0]
        dgamma[d] = sg[d - u0]
        k[d - u0] = gamma[d] * inv_std[d] / N
    for n in range(N):
        for d in range(u0, u1):
            g = dY[n, d]
            if relu and not Y[n, d] > 0:
                g = 0
            dX[n, d] = k[d - u0] * fma(-np.float64(Xhat[n, d]), sg[d - u0],
                                       fma(np.float64(N), np.float64(g), -sb[d - u0]))
    # a pass of its own, as linear.bias_backward's (summed as dX was stored, in the loop
    # above, it was no faster: 500 x 512-1024 0.84-0.94x, measured)
    for n in range(N):
        for d in range(u0, u1):
            sd[d - u0] += dX[n, d]
    for d in range(u0, u1):
        db[d] = sd[d - u0]
    return


@internal_kernel
def bn_forward_infer_rows(Y, X, b, gamma, beta, run_mean, run_var, eps, relu, n0, n1):
    """X <- X + b, then bn_forward_infer, on rows [n0, n1): evaluation's bias and batch norm,
    a run of rows per part (gemm's BN_INFER), each element's arithmetic as there."""
    D = X.shape[1]
    sd = np.empty(D)    # each column's root once, not once per element (the same value)
    for d in range(D):
        sd[d] = np.sqrt(run_var[d] + eps)
    for n in range(n0, n1):
        for d in range(D):
            x = X[n, d] + b[d]      # in X's precision, as linear.bias_forward stores it
            X[n, d] = x
            out = gamma[d] * (x - run_mean[d]) / sd[d] + beta[d]
            if relu and out < 0:
                out = 0
            Y[n, d] = out
    return
