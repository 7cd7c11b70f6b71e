"""ReLU. Legend: N batch rows, D features.  X, Y, dY, dX all (N, D).

The derivative at exactly 0 is taken as 0 (the mask is Y > 0), as in PyTorch.
"""
from numba import prange

from ._config import parallel_kernel


@parallel_kernel
def relu_forward(Y, X):
    """Y <- max(X, 0).  Y may be X (in place).  prange over rows."""
    N, D = X.shape
    for n in prange(N):
        for d in range(D):
            x = X[n, d]
            Y[n, d] = x if x > 0 else 0
    return


@parallel_kernel
def relu_backward(dX, dY, Y):
    """dX <- dY where Y > 0, else 0.  Y is the forward output.  dX may be dY (in place)."""
    N, D = Y.shape
    for n in prange(N):
        for d in range(D):
            dX[n, d] = dY[n, d] if Y[n, d] > 0 else 0
    return
