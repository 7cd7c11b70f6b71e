"""The fused training step: forward, loss, backward and SGD update of a whole network in one
compiled call, and the evaluation pass likewise.

Why one call: a Python-level loop over layers pays ~1-3 us per kernel call and a
`numba.typed.List` ~150 us per call; here the network arrives as flat buffers plus integer
tables of offsets, so one call takes it whole.

Parameters: `theta` (P,) holds every parameter; row l of `layout` (L, 8) gives for layer l
  0 I, 1 O, 2 W offset (I*O values, row-major (I, O)), 3 b offset, 4 gamma offset, 5 beta
  offset, 6 running-mean offset, 7 running-variance offset (4-7 are -1 without batch norm;
  6-7 index `stats`).  `dtheta` mirrors `theta`.
Workspace: `ws` holds one batch's activations; row l of `wsl` (L, 9) gives the offsets of
  0 Z (N, O) scores before BN/ReLU, 1 H (N, O) hidden output, 2 Xhat (N, O), 3 dZ (N, O),
  4 dH (N, O), 5 mean (O,), 6 inv_std (O,), 7 P (N, C) and 8 losses (N,) (the last two on the
  last row; -1 where a buffer is not needed).
Threads: products of at least PAR_FLOPS multiply-adds are cut into blocks of rows, each a
  single-threaded BLAS call (kernels/blas.py), run on the `nt` threads; element-wise work runs
  in the parallel kernels when a layer has at least PAR_ELEMENTS values and in their serial
  twins otherwise, so a batch of 100 wakes the thread pool only for the first layer's
  products.  How a product is cut depends on its shape only, and the parallel kernels equal
  their serial twins bit for bit, so the result does not depend on the number of threads.
"""
import numpy as np

from ._config import serial_kernel, serial_twin
from .batchnorm import bn_backward, bn_forward_infer, bn_forward_train
from .blas import matmul, matmul_nt, par_matmul
from .linear import bias_backward, bias_forward, weight_grad
from .optim import sgd_update
from .relu import relu_backward
from .softmax_xent import softmax_xent_backward, softmax_xent_forward

FORWARD, BACKWARD, UPDATE, UPDATE_STATS = 1, 2, 4, 8
PAR_FLOPS = 1 << 21      # multiply-adds from which a product is cut into blocks
BLOCK_ROWS = 25          # rows of the output per block, at least (tuned in bench/)
MAX_BLOCKS = 16
PAR_ELEMENTS = 1 << 15   # values from which element-wise work is split across threads

bn_forward_train_s = serial_twin(bn_forward_train)
bn_forward_infer_s = serial_twin(bn_forward_infer)
bn_backward_s = serial_twin(bn_backward)
bias_forward_s = serial_twin(bias_forward)
bias_backward_s = serial_twin(bias_backward)
relu_backward_s = serial_twin(relu_backward)
softmax_xent_forward_s = serial_twin(softmax_xent_forward)
softmax_xent_backward_s = serial_twin(softmax_xent_backward)
weight_grad_s = serial_twin(weight_grad)
sgd_update_s = serial_twin(sgd_update)
par_matmul_s = serial_twin(par_matmul)


@serial_kernel
def blocks(rows, flops):
    """How many blocks of rows a product is cut into: from its shape alone."""
    if flops < PAR_FLOPS:
        return 1
    return max(1, min(MAX_BLOCKS, rows // BLOCK_ROWS))


@serial_kernel
def _view(buf, off, rows, cols):
    return buf[off:off + rows * cols].reshape((rows, cols))


@serial_kernel
def _product(C, A, B, nt):
    """C <- A @ B, in blocks of rows on the threads when it is big enough."""
    nb = blocks(A.shape[0], A.shape[0] * A.shape[1] * B.shape[1])
    if nb == 1:
        matmul(C, A, B, 0.0)
    elif nt > 1:
        par_matmul(C, A, B, 0.0, nb)
    else:
        par_matmul_s(C, A, B, 0.0, nb)


@serial_kernel
def _forward_layer(theta, stats, layout, ws, wsl, l, h, train, update_stats, eps, alpha, nt):
    """Layer l on input h (N, I); returns its output (H for a hidden layer, Z for the last)."""
    N = h.shape[0]
    I, O = layout[l, 0], layout[l, 1]
    W = _view(theta, layout[l, 2], I, O)
    b = theta[layout[l, 3]:layout[l, 3] + O]
    par = nt > 1 and N * O >= PAR_ELEMENTS
    last = l == layout.shape[0] - 1
    if last or layout[l, 4] < 0:          # no batch norm: product, bias (and ReLU) in place
        out = _view(ws, wsl[l, 0 if last else 1], N, O)
        _product(out, h, W, nt)
        if par:
            bias_forward(out, b, not last)
        else:
            bias_forward_s(out, b, not last)
        return out
    Z = _view(ws, wsl[l, 0], N, O)
    _product(Z, h, W, nt)
    H = _view(ws, wsl[l, 1], N, O)
    gamma = theta[layout[l, 4]:layout[l, 4] + O]
    beta = theta[layout[l, 5]:layout[l, 5] + O]
    run_mean = stats[layout[l, 6]:layout[l, 6] + O]
    run_var = stats[layout[l, 7]:layout[l, 7] + O]
    if par:
        bias_forward(Z, b, False)
    else:
        bias_forward_s(Z, b, False)
    if train:
        Xhat = _view(ws, wsl[l, 2], N, O)
        mean = ws[wsl[l, 5]:wsl[l, 5] + O]
        inv_std = ws[wsl[l, 6]:wsl[l, 6] + O]
        if par:
            bn_forward_train(H, Xhat, mean, inv_std, run_mean, run_var, Z, gamma, beta,
                             eps, alpha, update_stats, True)
        else:
            bn_forward_train_s(H, Xhat, mean, inv_std, run_mean, run_var, Z, gamma, beta,
                               eps, alpha, update_stats, True)
    elif par:
        bn_forward_infer(H, Z, gamma, beta, run_mean, run_var, eps, True)
    else:
        bn_forward_infer_s(H, Z, gamma, beta, run_mean, run_var, eps, True)
    return H


@serial_kernel
def train_step(theta, dtheta, stats, layout, ws, wsl, X, y, lam, eta, eps, alpha, flags, nt):
    """One training step on the batch X (N, I0), y (N,); what runs is chosen by `flags`:
    FORWARD (batch statistics; UPDATE_STATS also moves the running ones), BACKWARD (fills
    dtheta with the gradient of mean loss + lam * sum ||W||^2, from the last forward's
    workspace) and UPDATE (theta -= eta * dtheta).  Returns the mean loss of the forward
    (0.0 without FORWARD)."""
    L = layout.shape[0]
    N = X.shape[0]
    C = layout[L - 1, 1]
    P = _view(ws, wsl[L - 1, 7], N, C)
    losses = ws[wsl[L - 1, 8]:wsl[L - 1, 8] + N]
    loss = 0.0
    if flags & FORWARD:
        h = X
        for l in range(L):
            h = _forward_layer(theta, stats, layout, ws, wsl, l, h, True,
                               (flags & UPDATE_STATS) != 0, eps, alpha, nt)
        loss = softmax_xent_forward_s(P, losses, h, y)
    if flags & BACKWARD:
        _backward(theta, dtheta, layout, ws, wsl, X, y, lam, nt)
    if flags & UPDATE:
        if nt > 1 and theta.shape[0] >= PAR_ELEMENTS:
            sgd_update(theta, dtheta, eta)
        else:
            sgd_update_s(theta, dtheta, eta)
    return loss


@serial_kernel
def _backward(theta, dtheta, layout, ws, wsl, X, y, lam, nt):
    L = layout.shape[0]
    N = X.shape[0]
    C = layout[L - 1, 1]
    dZ = _view(ws, wsl[L - 1, 3], N, C)
    softmax_xent_backward_s(dZ, _view(ws, wsl[L - 1, 7], N, C), y)
    for l in range(L - 1, -1, -1):
        I, O = layout[l, 0], layout[l, 1]
        par = nt > 1 and N * O >= PAR_ELEMENTS
        dZ = _view(ws, wsl[l, 3], N, O)
        if l < L - 1:                      # back through ReLU (and BN) of hidden layer l
            dH = _view(ws, wsl[l, 4], N, O)
            H = _view(ws, wsl[l, 1], N, O)
            if layout[l, 4] >= 0:
                dgamma = dtheta[layout[l, 4]:layout[l, 4] + O]
                dbeta = dtheta[layout[l, 5]:layout[l, 5] + O]
                gamma = theta[layout[l, 4]:layout[l, 4] + O]
                Xhat = _view(ws, wsl[l, 2], N, O)
                inv_std = ws[wsl[l, 6]:wsl[l, 6] + O]
                if par:
                    bn_backward(dZ, dgamma, dbeta, dH, Xhat, inv_std, gamma, H, True)
                else:
                    bn_backward_s(dZ, dgamma, dbeta, dH, Xhat, inv_std, gamma, H, True)
            elif par:
                relu_backward(dZ, dH, H)
            else:
                relu_backward_s(dZ, dH, H)
        h_in = X if l == 0 else _view(ws, wsl[l - 1, 1], N, I)
        W = _view(theta, layout[l, 2], I, O)
        dW = _view(dtheta, layout[l, 2], I, O)
        nb = blocks(I, N * I * O)
        if nt > 1 and nb > 1:
            weight_grad(dW, h_in, dZ, W, lam, nb)
        else:
            weight_grad_s(dW, h_in, dZ, W, lam, nb)
        db = dtheta[layout[l, 3]:layout[l, 3] + O]
        if par:
            bias_backward(db, dZ)
        else:
            bias_backward_s(db, dZ)
        if l > 0:                          # the first layer needs no input gradient
            matmul_nt(_view(ws, wsl[l - 1, 4], N, I), dZ, W, 0.0)


@serial_kernel
def eval_forward(theta, stats, layout, ws, wsl, X, y, eps, nt):
    """Evaluation-mode forward (running BN statistics) of X (N, I0).  Fills P (and, when y has
    N labels, the per-row losses) in the workspace; returns (sum of losses, correct count),
    (0.0, 0) without labels."""
    L = layout.shape[0]
    N = X.shape[0]
    C = layout[L - 1, 1]
    h = X
    for l in range(L):
        h = _forward_layer(theta, stats, layout, ws, wsl, l, h, False, False, eps, 0.0, nt)
    P = _view(ws, wsl[L - 1, 7], N, C)
    losses = ws[wsl[L - 1, 8]:wsl[L - 1, 8] + N]
    if y.shape[0] != N:
        softmax_xent_forward_s(P, losses, h, np.zeros(N, np.int64))
        return 0.0, 0
    mean = softmax_xent_forward_s(P, losses, h, y)
    correct = 0
    for n in range(N):
        best = 0
        for c in range(1, C):
            if h[n, c] > h[n, best]:
                best = c
        if best == y[n]:
            correct += 1
    return mean * N, correct
