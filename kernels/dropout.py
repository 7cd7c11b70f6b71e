"""Inverted dropout.  Legend: N batch rows, O units.

Forward: each unit is dropped (set to 0) with probability `rate` and the kept ones are scaled by
1 / (1 - rate), so evaluation needs no rescaling (PyTorch's and Keras' convention; "keep
probability 0.9" is rate 0.1).  The mask is not stored: unit (n, o) is kept when 32-bit draw
n*O + o of stream `key` (kernels/rng.py bits32) is >= rate * 2**32, and the backward draws it
again, so a step, a resumed step or a gradient check with the same key sees the same mask.
prange over rows.
"""
import numpy as np
from numba import prange

from ._config import parallel_kernel
from .rng import below32, bits32


@parallel_kernel
def dropout_forward(H, rate, key):
    """H (N, O) <- H * mask / (1 - rate), in place."""
    N, O = H.shape
    scale = H.dtype.type(1.0 / (1.0 - rate))   # in H's precision, as PyTorch scales
    drop = below32(rate)    # dropped: bits32(key, i) < rate * 2**32
    k = np.uint64(key)
    for n in prange(N):
        row = H[n]
        base = np.int64(n * O)
        for o in range(O):
            # a select, not a branch, so that the loop runs on vectors
            row[o] = 0 if bits32(k, base + o) < drop else row[o] * scale
    return


# The gradient through dropout_forward is the same elementwise map, dH * mask / (1 - rate) with
# the same rate and key, so the backward is the forward kernel itself.
dropout_backward = dropout_forward


@parallel_kernel
def dropout_backward_gated(dH, rate):
    """dH (N, O) <- dH / (1 - rate), in place: dropout's backward where the gradient then goes
    through a gate that is 0 wherever the layer's output after dropout is 0 (ReLU's `Y > 0` in
    relu_backward and bn_backward, given that output): a dropped unit's gradient is zeroed
    there, so its mask need not be drawn again.  The fused step uses it (drawing the mask a
    second time was half of dropout's cost); the result is the same bits as dropout_backward
    followed by the gate.  prange over rows."""
    N, O = dH.shape
    scale = dH.dtype.type(1.0 / (1.0 - rate))      # as dropout_forward's
    for n in prange(N):
        row = dH[n]
        for o in range(O):
            row[o] = row[o] * scale
    return
