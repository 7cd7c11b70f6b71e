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

from ._config import parallel_kernel, serial_kernel
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
        if update_running:     # one rounding (see bn_forward_train_rows)
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


# ---- row-major builds for one thread -------------------------------------------------------
# The kernels above loop over rows inside a column: each column's sums are one chain of
# dependent additions (no `reassoc`, so no reordering), ~4 cycles each, and the fused step runs
# batch norm on one thread, where that made it ~19 us (forward) and ~15 us (backward) at
# 100 x 50 (measured).  These do the same arithmetic in the same order per column, but with
# the row loop outside, so the inner loop runs over features, whose chains are independent:
# it vectorises.  Same bits as the column kernels (tested).

@serial_kernel
def bn_forward_train_rows(Y, Xhat, mean, inv_std, run_mean, run_var,
                          X, gamma, beta, eps, alpha, update_running, relu):
    """bn_forward_train, row-major, on the calling thread."""
    N, D = X.shape
    s = np.zeros(D)
    for n in range(N):
        for d in range(D):
            s[d] += X[n, d]
    mu = np.empty(D)
    for d in range(D):
        mu[d] = s[d] / N
    v = np.zeros(D)
    for n in range(N):
        for d in range(D):
            t = X[n, d] - mu[d]
            v[d] += t * t
    inv = np.empty(D)
    for d in range(D):
        var = v[d] / N
        inv[d] = 1.0 / np.sqrt(var + eps)
        mean[d] = mu[d]
        inv_std[d] = inv[d]
        if update_running:
            # one rounding, written out (simd.fma): left to LLVM to fuse, the copy of this code
            # in the step compiled afresh fused it and the one saved to the cache did not, so
            # a first run's running statistics differed by an ulp from a rerun's
            run_mean[d] = fma(np.float64(alpha), np.float64(run_mean[d]), (1 - alpha) * mu[d])
            run_var[d] = fma(np.float64(alpha), np.float64(run_var[d]), (1 - alpha) * var)
    for n in range(N):
        for d in range(D):
            xh = (X[n, d] - mu[d]) * inv[d]
            Xhat[n, d] = xh
            out = gamma[d] * xh + beta[d]
            if relu and out < 0:
                out = 0
            Y[n, d] = out
    return


@serial_kernel
def bn_backward_rows(dX, dgamma, dbeta, dY, Xhat, inv_std, gamma, Y, relu):
    """bn_backward, row-major, on the calling thread."""
    N, D = dY.shape
    sb = np.zeros(D)
    sg = np.zeros(D)
    for n in range(N):
        for d in range(D):
            g = dY[n, d]
            if relu and not Y[n, d] > 0:
                g = 0
            sb[d] += g
            sg[d] += g * Xhat[n, d]
    k = np.empty(D)
    for d in range(D):
        dbeta[d] = sb[d]
        dgamma[d] = sg[d]
        k[d] = gamma[d] * inv_std[d] / N
    for n in range(N):
        for d in range(D):
            g = dY[n, d]
            if relu and not Y[n, d] > 0:
                g = 0
            dX[n, d] = k[d] * (N * g - sb[d] - Xhat[n, d] * sg[d])
    return
