"""L2 penalty: cost term lam * sum(W**2) over weight matrices.  Its gradient, 2 lam W, is
folded into `linear_backward` so the training step makes no extra pass over W."""
import numpy as np

from ._config import serial_kernel


@serial_kernel
def sum_squares(W):
    """sum(W**2) of a 2-D array, accumulated in float64 whatever W's dtype.

    Serial: it is reported once per evaluation, not per training step, and a serial sum gives
    the same bits for any thread count.
    """
    I, O = W.shape
    s = 0.0
    for i in range(I):
        for o in range(O):
            w = np.float64(W[i, o])
            s += w * w
    return s
