"""The fused training step: forward, loss, backward and the optimiser's update of a whole
network in one compiled call, and the evaluation pass likewise.

Why one call: a Python-level loop over layers pays ~1-3 us per kernel call and a
`numba.typed.List` ~150 us per call; here the network arrives as flat buffers plus integer
tables of offsets, so one call takes it whole.

Parameters: `theta` (P,) holds every parameter; row l of `layout` (L, 8) gives for layer l
  0 I, 1 O, 2 W offset (I*O values stored row-major (O, I): one row per output unit, see
  kernels/gemm.py), 3 b offset, 4 gamma offset, 5 beta offset, 6 running-mean offset,
  7 running-variance offset (4-7 are -1 without batch norm; 6-7 index `stats`).  `dtheta`
  mirrors `theta`.
Workspace: `ws` holds one batch's activations; row l of `wsl` (L, 9) gives the offsets of
  0 Z (N, O) scores before BN/ReLU, 1 H (N, O) hidden output, 2 Xhat (N, O), 3 dZ (N, O),
  4 dH (N, O), 5 mean (O,), 6 inv_std (O,), 7 P (N, C) and 8 losses (N,) (the last two on the
  last row) (-1 where a buffer is not needed).
Threads and products: every product is one of kernels/gemm.py's (register-blocked on vectors
  where the CPU has AVX2 and FMA, else one BLAS call), cut into a part per PART_FLOPS
  multiply-adds, PART_WEIGHTS weights or PART_INPUTS inputs, up to one per thread
  (gemm.products); a smaller one runs whole on the calling thread (the same code). Every
  element of a product is the same bits whatever the cut, so results do not depend on the
  number of threads. Plain SGD folds into each layer's weight product (gemm's SGD_STEP), after
  the layer's input gradient has read the old weights, and so do momentum and Nesterov on the
  vector kernels (GRAD_STEP).  The products are called through their addresses (`fns`, the last
  argument: gemm.native_products(dtype)), so their code is compiled once and not again inside
  this step (kernels/native.py: a cold compile of the step 15.5 -> 11 s).
  A hidden layer's bias and batch norm (forward, and backward with the bias's gradient) are
  gemm's BN_FORWARD and BN_BACKWARD tasks in training, cut into runs of columns, and its
  BN_INFER in evaluation, cut into runs of rows (a part per PART_BN values either way).  The
  softmax with its loss (and, training, its gradient) is gemm's SOFTMAX task, cut into runs
  of rows (PART_SOFTMAX), in training and evaluation.  A hidden layer without batch norm takes
  gemm's BIAS_FORWARD (bias, ReLU, dropout; runs of rows) and BIAS_BACKWARD (dropout, the ReLU
  gate, db; runs of columns) on the same cut, PART_BN values a part: alone, 1024 x 1024 on 2
  threads against one, 57 -> 33 us and 160 -> 104 us (znver5); whole steps of 784-1024-1024-10
  at 1024 without batch norm 1.00x, with dropout 0.2 1.02x.  On one part (the study's widths)
  they run here, on the calling thread, as before; so does a batch-norm layer's dropout.
  A run of steps (S > 1) whose steps are short for their threads (kept_threads, POOL_FLOPS)
  keeps its threads from one task to the next instead: each task's parts go to threads that
  wait for them spinning (kernels/pool.py, `words` and `floats`), the same parts, so the same
  bits.
"""
import numpy as np

from ._config import inlined_kernel, internal_kernel, serial_kernel, serial_twin
from . import batchnorm, dropout, linear, optim, relu, softmax_xent
from .gemm import (BIAS_BACKWARD, BIAS_FORWARD, BN_BACKWARD, BN_FORWARD, BN_INFER, BN_RELU,
                   BN_UPDATE, DGRAD, DGRAD_GRAD, DGRAD_SGD, FORWARD as FORWARD_TASK, GATHER,
                   GATHER_FORWARD, GRAD, GRAD_STEP, OPT_STEP, SGD_STEP, SOFTMAX, TAG,
                   UPDATE_RANGE, back_dz, folds_step, fuses_back, gathers_rows)
from .native import call, check_tag
from .parts import (PART_GATHER, bn_parts as _bn_parts, parts as _parts,
                    product_parts as _product_parts, softmax_parts)
from . import pool
from .pool import parallel
from .rng import sub_key

FORWARD, BACKWARD, UPDATE, UPDATE_STATS, EVALUATE = 1, 2, 4, 8, 16

bias_forward_s = serial_twin(linear.bias_forward, internal=True)
bias_backward_s = linear.bias_backward_rows     # row-major: vectorises over units
relu_backward_s = serial_twin(relu.relu_backward, internal=True)
softmax_xent_forward_s = serial_twin(softmax_xent.softmax_xent_forward, internal=True)
softmax_xent_backward_s = serial_twin(softmax_xent.softmax_xent_backward, internal=True)
dropout_forward_s = serial_twin(dropout.dropout_forward, internal=True)
dropout_backward_gated_s = serial_twin(dropout.dropout_backward_gated, internal=True)


@internal_kernel
def _view(buf, off, rows, cols):
    return buf[off:off + rows * cols].reshape((rows, cols))


@internal_kernel
def _out_col(layout, l):
    """The workspace column a layer's product goes to: Z (0) before batch norm and in the last
    layer, else H (1), where bias and ReLU then act in place."""
    return 0 if l == layout.shape[0] - 1 or layout[l, 4] >= 0 else 1


@inlined_kernel
def _forward_layer(theta, stats, layout, ws, wsl, l, h, train, update_stats, eps, alpha, nt,
                   drop, drop_key, hp, src, rows, words, floats, fns):
    """Layer l on its product, already in place (train_step makes that call, through
    gemm.products' address); returns the layer's output (H for a hidden layer, Z for the
    last).  In training, hidden units are then dropped at rate drop[l]
    (kernels/dropout.py)."""
    N = h.shape[0]
    O = layout[l, 1]
    b = theta[layout[l, 3]:layout[l, 3] + O]
    last = l == layout.shape[0] - 1
    out = _view(ws, wsl[l, _out_col(layout, l)], N, O)
    if last or layout[l, 4] < 0:          # no batch norm: bias (and ReLU) in place
        rate = drop[l] if train and not last else 0.0
        nb = 1 if last else _bn_parts(N * O, N, nt)
        if nb == 1:
            bias_forward_s(out, b, not last)
            if rate > 0:
                dropout_forward_s(out, rate, sub_key(drop_key, l))
        else:           # in runs of rows (gemm's BIAS_FORWARD)
            key = np.int64(sub_key(drop_key, l)) if rate > 0 else N * 0
            parallel(words, floats, BIAS_FORWARD + 0 * N, out, out, out, _view(theta,
                     layout[l, 3], 1, O), out, rate, 0.0, b, b, key, hp, nb, src, rows, fns)
        return out
    Z = out
    H = _view(ws, wsl[l, 1], N, O)
    gamma = theta[layout[l, 4]:layout[l, 4] + O]
    beta = theta[layout[l, 5]:layout[l, 5] + O]
    run_mean = stats[layout[l, 6]:layout[l, 6] + O]
    run_var = stats[layout[l, 7]:layout[l, 7] + O]
    if train:       # the bias and batch norm in one task, in runs of columns
        Xhat = _view(ws, wsl[l, 2], N, O)
        mean = ws[wsl[l, 5]:wsl[l, 5] + O]
        inv_std = ws[wsl[l, 6]:wsl[l, 6] + O]
        nb = _bn_parts(N * O, (O * Z.itemsize + 63) // 64, nt)
        if nb == 1:     # inlined here, as the softmax's one part (_softmax: why)
            batchnorm.bn_forward_train_cols(H, Xhat, mean, inv_std, run_mean, run_var, Z, b,
                                            gamma, beta, eps, alpha, update_stats, True, 0, O)
        else:
            bgb = _view(theta, layout[l, 3], 3, O)      # [b; gamma; beta] (network._layout)
            run = _view(stats, layout[l, 6], 2, O)      # [run_mean; run_var]
            kind = BN_RELU | (BN_UPDATE if update_stats else 0)
            parallel(words, floats, BN_FORWARD + 0 * N, H, Z, Xhat, bgb, run, eps, alpha,
                     mean, inv_std, kind + 0 * N, hp, nb, src, rows, fns)
        if drop[l] > 0:
            dropout_forward_s(H, drop[l], sub_key(drop_key, l))
    else:           # evaluation's, in runs of rows
        nb = _bn_parts(N * O, N, nt)
        if nb == 1:
            batchnorm.bn_forward_infer_rows(H, Z, b, gamma, beta, run_mean, run_var, eps, True,
                                            0, N)
        else:
            bgb = _view(theta, layout[l, 3], 3, O)
            run = _view(stats, layout[l, 6], 2, O)
            parallel(words, floats, BN_INFER + 0 * N, H, Z, Z[:0], bgb, run, eps, 0.0,
                     b, b, BN_RELU + 0 * N, hp, nb, src, rows, fns)
    return H


@serial_kernel
def train_step(theta, dtheta, stats, layout, ws, wsl, X, X2, y, lam, etas, eps, alpha, flags,
               nt, kind, state, hps, drop, drop_keys, src, rows, losses_out, words, floats, fns):
    """S = etas.shape[0] training steps, one after the other, in one call (S = 1: one step,
    or an evaluation); what runs is chosen by `flags`: FORWARD (batch statistics;
    UPDATE_STATS also moves the running ones), BACKWARD (fills dtheta with the gradient of
    mean loss + lam * sum ||W||^2, from the last forward's workspace) and, with BACKWARD,
    UPDATE (optimiser `kind` with its memory `state`, kernels/optim.py; UPDATE alone does
    nothing: the whole-buffer update is optim.update).
    Step s uses learning rate etas[s], hyperparameters hps[s] (HP_SIZE,), dropout key
    drop_keys[s] (uint64; drop (L,) float64 holds each layer's rate) and the batch
    y[s N:(s+1) N] on X (N, I0); with rows (S N,) row numbers, its batch is first gathered into
    X from src[rows[s N:(s+1) N]] (gemm's GATHER, here rather than in a call of its own: one
    dispatch and one parallel build fewer; in the first layer's forward region where
    gemm.gathers_rows).  losses_out[s] gets step s's mean loss.  The run
    stops after the first step whose loss is not finite.  Returns (mean loss of the last
    step, steps taken) ((0.0, S) without FORWARD).
    Why S steps in one call: a call from Python costs ~10-30 us (argument checks, the loop
    around it), as much as a whole step of the study's 784-50-50-10 net.
    EVALUATE (alone, S = 1): the evaluation-mode forward (running BN statistics, no
    dropout), filling P (and, when y has N labels, the per-row losses); returns (sum of
    losses, correct count), (0.0, 0) without labels.  Evaluation is a flag here, not a
    function of its own, so that the forward pass is compiled once (seconds of the first run).
    words, floats: the threads kept for the run (kernels/pool.py; pool.IDLE: none), which take
    the parts of every task cut in more than one instead of Numba's pool, and, given X2 (a
    second buffer of X's shape; else X[:0]), gather each next step's batch into it ahead."""
    # the addresses' tag: this step, cached on disk, must call the products it was compiled for
    check_tag(fns[TAG], X)
    S = etas.shape[0]
    N = X.shape[0]
    # with threads kept (and X2 a second buffer), each next batch is gathered ahead, by them,
    # into the buffer the step does not use (pool.ahead: why); the last step's in X, where the
    # step gathers it without (and a single step, an evaluation, always)
    ahead = (S > 1 and words.shape[0] > 0 and X2.shape[0] == N and rows.shape[0] == S * N
             and (flags & FORWARD) != 0 and (flags & EVALUATE) == 0)
    loss = 0.0
    for s in range(S):
        ys = y if S == 1 else y[s * N:(s + 1) * N]
        rs = rows if S == 1 else rows[s * N:(s + 1) * N]
        Xs, Xn = (X2, X) if ahead and (S - 1 - s) % 2 == 1 else (X, X2)
        if ahead and s > 0:     # this step's batch, gathered during the step before
            rs = rows[:0]
        nxt = rows[(s + 1) * N:(s + 2) * N] if ahead else rows[:0]
        loss, correct = _one_step(theta, dtheta, stats, layout, ws, wsl, Xs, ys, lam, etas[s],
                                  eps, alpha, flags, nt, kind, state, hps[s], drop,
                                  drop_keys[s], src, rs, Xn, nxt, words, floats, fns)
        if (flags & EVALUATE) != 0:
            return loss, correct
        losses_out[s] = loss
        if nxt.shape[0] > 0:
            # the next batch, gathered ahead, before the run goes on or ends (the threads do
            # not outlast the call on its arrays); one call site: each is compiled again
            pool.ahead_ended(words, floats, Xn, src, nxt, hps[s], fns)
        if not np.isfinite(loss):
            return loss, s + 1
    return loss, S


@inlined_kernel
def _one_step(theta, dtheta, stats, layout, ws, wsl, X, y, lam, eta, eps, alpha, flags, nt,
              kind, state, hp, drop, drop_key, src, rows, Xn, nxt, words, floats, fns):
    """One step (or evaluation) of train_step on the batch X, y; returns (loss, 0) or, for an
    evaluation, (sum of losses, correct count).  With rows nxt, the next step's batch is
    posted to the threads kept, to gather into Xn, once the first layer's forward is done."""
    L = layout.shape[0]
    N = X.shape[0]
    C = layout[L - 1, 1]
    P = _view(ws, wsl[L - 1, 7], N, C)
    losses = ws[wsl[L - 1, 8]:wsl[L - 1, 8] + N]
    evaluate = (flags & EVALUATE) != 0
    train = (flags & FORWARD) != 0 and not evaluate
    loss = 0.0
    none = np.empty(0, X.dtype)
    none2 = X[:0]
    # Every products call below has the argument types it is compiled for (gemm._argtypes: no
    # literals, hence `+ 0 * N`; native.call refuses any other types at compile time)
    # the batch's gather goes with the first layer's forward where that is cut by rows
    gather = rows.shape[0] == N and N > 0
    fused = gather and (train or evaluate) and gathers_rows(
        N, layout[0, 0], layout[0, 1], _product_parts(N, layout[0, 0], layout[0, 1], nt))
    if gather and not fused:
        nb = _parts(N * X.shape[1], np.int64(PART_GATHER), nt)
        parallel(words, floats, GATHER + 0 * N, none2, X, none2, none2, none2, 0.0, 0.0,
                 none, none, N * 0, hp, nb, src, rows, fns)
    if train or evaluate:
        h = X
        for l in range(L):
            I, O = layout[l, 0], layout[l, 1]
            out = _view(ws, wsl[l, _out_col(layout, l)], N, O)
            WT = _view(theta, layout[l, 2], O, I)
            nb = _product_parts(N, I, O, nt)
            task = GATHER_FORWARD if l == 0 and fused else FORWARD_TASK
            parallel(words, floats, task + 0 * N, out, h, WT, out, out, 0.0, 0.0, none,
                     none, N * 0, hp, nb, src, rows, fns)
            if l == 0 and nxt.shape[0] > 0:
                pool.ahead(words, floats, Xn, src, nxt, hp, fns)
            h = _forward_layer(theta, stats, layout, ws, wsl, l, h, train,
                               train and (flags & UPDATE_STATS) != 0, eps, alpha, nt, drop,
                               drop_key, hp, src, rows, words, floats, fns)
        if evaluate:
            return _score(P, losses, h, y, nt, hp, src, words, floats, fns)
        # with BACKWARD, the scores' gradient too
        back = (flags & BACKWARD) != 0
        dZ = _view(ws, wsl[L - 1, 3], N, C) if back else none2
        loss = _softmax(P, losses, h, y, dZ, back, nt, hp, src, words, floats, fns)
    if not flags & BACKWARD:
        return loss, 0
    # with UPDATE, each layer takes its step as soon as it can
    update = (flags & UPDATE) != 0
    m, v = state[:theta.shape[0]], state[theta.shape[0]:]
    if not train:       # a backward alone, from the last forward's P
        softmax_xent_backward_s(_view(ws, wsl[L - 1, 3], N, C), P, y)
    lam64, eta64 = np.float64(lam), np.float64(eta)
    for l in range(L - 1, -1, -1):
        I, O = layout[l, 0], layout[l, 1]
        dZ, db_done = _backward_gate(theta, dtheta, layout, ws, wsl, l, N, drop, drop_key, nt,
                                     hp, src, rows, words, floats, fns)
        if not db_done:
            bias_backward_s(dtheta[layout[l, 3]:layout[l, 3] + O], dZ)
        h_in = X if l == 0 else _view(ws, wsl[l - 1, 1], N, I)
        WT = _view(theta, layout[l, 2], O, I)
        dWT = _view(dtheta, layout[l, 2], O, I)
        nb = _product_parts(N, I, O, nt)
        sgd = update and kind == optim.SGD
        off = layout[l, 2]
        mW, vW = m[off:off + I * O], v[off:off + I * O]
        folded = False
        if l > 0 and update and fuses_back(N, I, O):
            # a few rows, or a small layer: dH and W's product in one pass over W
            # (gemm_back.py): plain SGD's step, or the gradient for the other rules
            dH = _view(ws, wsl[l - 1, 4], N, I)
            task = DGRAD_SGD if sgd else DGRAD_GRAD
            parallel(words, floats, task + 0 * N, dH, h_in, WT, back_dz(dZ), dWT, lam64,
                     eta64, none, none, kind, hp, nb, src, rows, fns)
        else:
            folded = update and folds_step(kind)
            if l > 0:       # dH of the layer below, from W before its step
                dH = _view(ws, wsl[l - 1, 4], N, I)
                parallel(words, floats, DGRAD + 0 * N, none2, dH, WT, dZ, none2, 0.0, 0.0,
                         none, none, N * 0, hp, nb, src, rows, fns)
            # plain SGD folded into W's product (its gradient is never stored), and momentum
            # or Nesterov where gemm.folds_step (its gradient neither)
            task = SGD_STEP if sgd else (GRAD_STEP if folded else GRAD)
            parallel(words, floats, task + 0 * N, none2, h_in, WT, dZ, dWT, lam64, eta64,
                     mW, vW, kind, hp, nb, src, rows, fns)
        if update and not sgd and not folded:
            # any other rule: a pass over W of its own after the gradient (gemm._run, OPT_STEP:
            # why)
            parallel(words, floats, OPT_STEP + 0 * N, none2, h_in, WT, dZ, dWT, lam64,
                     eta64, mW, vW, kind, hp, nb, src, rows, fns)
        if update:
            _step_rest(theta, dtheta, m, v, layout, l, kind, eta64, hp, fns)
    return loss, 0


@inlined_kernel
def _backward_gate(theta, dtheta, layout, ws, wsl, l, N, drop, drop_key, nt, hp, src, rows,
                   words, floats, fns):
    """dZ of layer l from the dH its successor left (back through dropout, ReLU and batch norm,
    filling db, dgamma and dbeta); the last layer's dZ is the softmax's.  Returns dZ and whether
    db is filled too (by batch norm's task or BIAS_BACKWARD's)."""
    O = layout[l, 1]
    dZ = _view(ws, wsl[l, 3], N, O)
    if l == layout.shape[0] - 1:
        return dZ, False
    dH = _view(ws, wsl[l, 4], N, O)
    H = _view(ws, wsl[l, 1], N, O)
    nb = _bn_parts(N * O, (O * dZ.itemsize + 63) // 64, nt)    # runs of whole lines
    if layout[l, 4] < 0 and nb > 1:    # dropout, ReLU and db in runs of columns (BIAS_BACKWARD)
        parallel(words, floats, BIAS_BACKWARD + 0 * N, dZ, dH, dH, H,
                 _view(dtheta, layout[l, 3], 1, O), drop[l], 0.0, H[0], H[0], N * 0, hp, nb, src,
                 rows, fns)
        return dZ, True
    if drop[l] > 0:      # dropped units have H = 0, so the ReLU gate below zeroes them
        dropout_backward_gated_s(dH, drop[l])
    if layout[l, 4] >= 0:
        dbgb = _view(dtheta, layout[l, 3], 3, O)    # [db; dgamma; dbeta]
        gamma = theta[layout[l, 4]:layout[l, 4] + O]
        Xhat = _view(ws, wsl[l, 2], N, O)
        inv_std = ws[wsl[l, 6]:wsl[l, 6] + O]
        if nb == 1:
            batchnorm.bn_backward_cols(dZ, dbgb[0], dbgb[1], dbgb[2], dH, Xhat, inv_std, gamma,
                                       H, True, 0, O)
        else:
            parallel(words, floats, BN_BACKWARD + 0 * N, dZ, dH, Xhat, H, dbgb, 0.0, 0.0,
                     gamma, inv_std, BN_RELU + 0 * N, hp, nb, src, rows, fns)
        return dZ, True
    relu_backward_s(dZ, dH, H)
    return dZ, False


@inlined_kernel
def _step_rest(theta, dtheta, m, v, layout, l, kind, eta, hp, fns):
    """The optimiser's step on layer l's b, gamma and beta (its W took its step in its product):
    one call for the three, which lie together ([b; gamma; beta], network._layout), the same
    arithmetic per element as three (a call is ~0.3 us, as long as the step on a 50-unit
    layer's three vectors)."""
    O = layout[l, 1]
    _step_slice(theta, dtheta, m, v, layout[l, 3], 3 * O if layout[l, 4] >= 0 else O, kind,
                eta, hp, fns)


@internal_kernel
def _step_slice(theta, dtheta, m, v, off, size, kind, eta, hp, fns):
    """The optimiser's step on theta[off:off + size], through update_range's address: gemm._run
    calls it too, so it is compiled once, in the second process of a first run (gemm.CALLEES)."""
    call(optim.update_range, fns[UPDATE_RANGE], theta, dtheta, m, v, off, off + size, kind, eta,
         hp)


@inlined_kernel
def _softmax(P, losses, h, y, dZ, back, nt, hp, src, words, floats, fns):
    """P, the per-row losses and (back) their gradient dZ from the last layer's scores h (N, C)
    and the labels y, in runs of rows (gemm's SOFTMAX task, parts.softmax_parts);
    returns the mean loss (softmax_xent.mean_loss, as softmax_xent_forward's)."""
    N, C = h.shape
    none2 = h[:0]
    nb = softmax_parts(N, C, nt)
    if nb == 1:
        # one part: the serial kernels, inlined here, as before the task (through the task the
        # study net's step at batch 100 was 0.94-0.96x, 20 steps a call, 31-41 rounds; this
        # way 1.00x); the same bits either way
        loss = softmax_xent_forward_s(P, losses, h, y)
        if back:
            softmax_xent_backward_s(dZ, P, y)
        return loss
    parallel(words, floats, SOFTMAX + 0 * N, P, h, none2, dZ, none2, 0.0, 0.0, losses,
             losses[:0], np.int64(back), hp, nb, src, y, fns)
    return softmax_xent.mean_loss(losses)


@inlined_kernel
def _score(P, losses, h, y, nt, hp, src, words, floats, fns):
    """An evaluation's result from the last layer's scores h (N, C): P and, with labels, the
    per-row losses; (sum of losses, correct count), or (0.0, 0) without labels."""
    N, C = h.shape
    if y.shape[0] != N:
        _softmax(P, losses, h, np.zeros(N, np.int64), h[:0], False, nt, hp, src, words, floats, fns)
        return 0.0, 0
    mean = _softmax(P, losses, h, y, h[:0], False, nt, hp, src, words, floats, fns)
    correct = 0
    for n in range(N):
        best = 0
        for c in range(1, C):
            if h[n, c] > h[n, best]:
                best = c
        if best == y[n]:
            correct += 1
    return mean * N, correct
