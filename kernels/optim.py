"""Parameter updates over the flat parameter buffer: SGD, momentum, Nesterov, AdaGrad, Adam.
Legend: P parameters.

theta, dtheta (P,); state (2P,) the optimiser's per-parameter memory in theta's dtype, seen as
m = state[:P] (momentum buffer, AdaGrad sum or Adam's first moment) and v = state[P:] (Adam's
second moment); SGD reads neither, so state may be empty.  hp (HP_SIZE,) float64 holds the hyperparameters
and the 1-based step count t (Adam's bias corrections).  Each rule is written as PyTorch's
optimiser of the same name computes it (torch/optim/*.py, single-tensor path, dampening 0,
no weight decay: the L2 term is already in dtheta), so trajectories match it to rounding.

`update_range` does one slice, so the fused step (kernels/step.py) can update each layer as
soon as its gradient is ready; `update` does the whole buffer, prange over blocks.  Both run
the same per-element code, so the fused and the unfused paths give the same bits.
"""
import math

import numpy as np
from numba import prange

from ._config import inlined_kernel, parallel_kernel, serial_kernel
from .simd import SIMD, fma

SGD, MOMENTUM, NESTEROV, ADAGRAD, ADAM = 0, 1, 2, 3, 4
HP_MOMENTUM, HP_BETA1, HP_BETA2, HP_EPS, HP_T = 0, 1, 2, 3, 4
HP_SIZE = 5
BLOCK = 4096


@inlined_kernel
def _madd(x, y, z):
    """x * y + z rounded once where the products fold the momentum step (simd.SIMD, FMA in
    hardware: gemm_packed._store_rule), else as LLVM compiles it (a CPU without FMA would
    call a library routine per element)."""
    return fma(x, y, z) if SIMD else x * y + z


@serial_kernel
def update_range(theta, dtheta, m, v, lo, hi, kind, eta, hp):
    """One optimiser step on theta[lo:hi] with learning rate eta; m and v are the slices of
    the state that belong to theta (same indices)."""
    # the loops run over slices from 0: an index counting up from 0 is provably >= 0, so
    # Numba's wraparound test for negative indices folds away and the loops vectorise
    # (range(lo, hi) kept them scalar, measured 3-8x slower)
    th, g = theta[lo:hi], dtheta[lo:hi]
    n = hi - lo
    # Arithmetic in the parameters' own precision, as PyTorch's float32 optimisers compute
    # (Python-float hyperparameters become scalars of the tensor's type; step_size and the
    # like are Python floats first, so float64 here).  float64 scalars made every float32
    # element take a round trip through float64 at half the vector width: on 784 x 512
    # float32 parameters, one core, Nesterov 125 -> 87 us and Adam 484 -> 147 us (measured).
    f = theta.dtype.type
    e = f(eta)
    if kind == SGD:
        for p in range(n):
            th[p] -= e * g[p]
        return
    mm = m[lo:hi]
    if kind == MOMENTUM or kind == NESTEROV:
        # torch: buf = g on the first step, then buf = mu * buf + g; with buf starting at 0
        # the first step gives mu * 0 + g = g exactly.  Each multiply-add rounded once, written
        # out (_madd): gemm_packed._store_rule takes this step inside the weights' product
        # and must give the same bits, which LLVM's choice to fuse or not would not promise
        mu, ne = f(hp[HP_MOMENTUM]), -e
        if kind == NESTEROV:
            for p in range(n):
                buf = _madd(mu, mm[p], g[p])
                mm[p] = buf
                th[p] = _madd(ne, _madd(mu, buf, g[p]), th[p])
        else:
            for p in range(n):
                buf = _madd(mu, mm[p], g[p])
                mm[p] = buf
                th[p] = _madd(ne, buf, th[p])
    elif kind == ADAGRAD:
        eps = f(hp[HP_EPS])
        for p in range(n):
            s = mm[p] + g[p] * g[p]
            mm[p] = s
            th[p] -= e * (g[p] / (np.sqrt(s) + eps))
    else:  # ADAM
        vv = v[lo:hi]
        b1, b2, eps, t = hp[HP_BETA1], hp[HP_BETA2], hp[HP_EPS], hp[HP_T]
        c1, c2, b2f, epsf = f(1.0 - b1), f(1.0 - b2), f(b2), f(eps)
        step_size = f(eta / (1.0 - b1 ** t))
        bc2_sqrt = f(math.sqrt(1.0 - b2 ** t))
        for p in range(n):
            gp = g[p]
            mp = mm[p] + c1 * (gp - mm[p])                   # torch: exp_avg.lerp_(g, 1 - b1)
            vp = b2f * vv[p] + c2 * (gp * gp)
            mm[p] = mp
            vv[p] = vp
            th[p] -= step_size * (mp / (np.sqrt(vp) / bc2_sqrt + epsf))
    return


@parallel_kernel
def update(theta, dtheta, state, kind, eta, hp):
    """One optimiser step on all of theta, in blocks of BLOCK parameters on the threads."""
    P = theta.shape[0]
    m, v = state[:P], state[P:]
    for blk in prange((P + BLOCK - 1) // BLOCK):
        update_range(theta, dtheta, m, v, blk * BLOCK, min(P, (blk + 1) * BLOCK), kind, eta, hp)
    return
