"""Parameter updates over the flat parameter buffer.  Legend: P parameters.

theta, dtheta (P,).  prange over blocks of the buffer: every element is one thread's.
"""
from numba import prange

from ._config import parallel_kernel

BLOCK = 4096


@parallel_kernel
def sgd_update(theta, dtheta, eta):
    """theta <- theta - eta * dtheta."""
    P = theta.shape[0]
    for blk in prange((P + BLOCK - 1) // BLOCK):
        for p in range(blk * BLOCK, min(P, (blk + 1) * BLOCK)):
            theta[p] -= eta * dtheta[p]
    return
