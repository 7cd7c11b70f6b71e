"""Softmax with cross-entropy, fused.  Legend: N batch rows, C classes.

Z (N, C) scores, P (N, C) probabilities, y (N,) integer labels in [0, C), losses (N,).
"""
import numpy as np
from numba import prange

from ._config import internal_kernel, parallel_kernel, serial_kernel
from .simd import div


@internal_kernel
def _softmax_row(P, Z, n):
    """P[n] <- softmax(Z[n]); returns (max of Z[n], log of the sum of exp(Z[n] - max)).
    Subtracting the row max keeps exp() from overflowing."""
    C = Z.shape[1]
    m = Z[n, 0]
    for c in range(1, C):
        if Z[n, c] > m:
            m = Z[n, c]
    s = 0.0
    for c in range(C):
        e = np.exp(Z[n, c] - m)
        P[n, c] = e
        s += e
    inv = 1.0 / s
    for c in range(C):
        P[n, c] *= inv
    return m, np.log(s)


@parallel_kernel
def softmax_forward(P, Z):
    """P <- softmax(Z) row-wise.  prange over rows."""
    for n in prange(Z.shape[0]):
        _softmax_row(P, Z, n)
    return


@parallel_kernel
def softmax_xent_forward(P, losses, Z, y):
    """P <- softmax(Z); losses[n] <- -log P[n, y[n]]; returns the mean loss.

    The loss is computed as log-sum-exp minus the true score (both shifted by the row max),
    not as -log(P), so a probability that underflows to 0 still gives a finite loss.
    Rows in parallel; the mean is a serial sum over `losses`, the same for any thread count.
    """
    for n in prange(Z.shape[0]):
        m, log_s = _softmax_row(P, Z, n)
        losses[n] = log_s - (Z[n, y[n]] - m)
    return mean_loss(losses)


@parallel_kernel
def softmax_xent_backward(dZ, P, y):
    """dZ <- (P - onehot(y)) / N: the gradient of the mean loss with respect to Z."""
    N, C = P.shape
    inv_n = 1.0 / N
    for n in prange(N):
        for c in range(C):
            dZ[n, c] = P[n, c] * inv_n
        dZ[n, y[n]] -= inv_n
    return


@internal_kernel
def softmax_xent_rows(P, losses, Z, y, dZ, n0, n1, backward):
    """softmax_xent_forward's rows n0 .. n1 - 1 (P and losses; the mean is the caller's) and,
    with `backward`, softmax_xent_backward's for the same rows (dZ, against all N = Z.shape[0]
    rows): the same arithmetic row by row, so the same bits however the rows are cut.  A part
    of gemm.products' SOFTMAX task (there: why), called through its address (gemm.CALLEES).
    Its loops are those kernels' own, written out again: a version that shared them through
    helper functions per row (the kernels above too, which the step inlines on one part) had
    the study net's step at batch 100 at 0.94-0.97x, the cause not isolated further."""
    inv_n = 1.0 / Z.shape[0]
    C = Z.shape[1]
    for n in range(n0, n1):
        m, log_s = _softmax_row(P, Z, n)
        losses[n] = log_s - (Z[n, y[n]] - m)
        if backward:
            for c in range(C):
                dZ[n, c] = P[n, c] * inv_n
            dZ[n, y[n]] -= inv_n
    return


@serial_kernel
def mean_loss(losses):
    """The mean of the per-row losses (softmax_xent_forward's, and the step's for any number of
    parts): a float64 sum in row order, then a division written out (simd.div): as
    `total / N`, fast-math's `arcp` let LLVM multiply by a reciprocal of N where the
    surrounding code held one (in kernels/step.py: 1 ulp off the mean before in 3 of 4 small
    float64 nets)."""
    total = 0.0
    for n in range(losses.shape[0]):
        total += losses[n]
    return div(total, np.float64(losses.shape[0]))
