"""Every matrix product of a training step and of evaluation, register-blocked and cache-blocked
on vectors (kernels/simd.py), with weights stored as the network stores them: WT (O, I), one row
per output unit; and `products`, the one parallel region that runs them (and the softmax).

    FORWARD  Y (N, O)  <- H (N, I) @ WT^T
    GRAD     dWT (O, I) <- dZ^T @ H + 2 lam WT
    OPT_STEP WT, its optimiser memory <- a step of any rule on dWT (element-wise, a pass of its own)
    GRAD_STEP  GRAD, then OPT_STEP of momentum or Nesterov, folded into the product's stores
    SGD_STEP WT (O, I) <- (1 - 2 eta lam) WT - eta dZ^T @ H
    DGRAD    dH (N, I) <- dZ (N, O) @ WT
    GATHER   X <- src[rows]
    DGRAD_SGD  DGRAD, then SGD_STEP, in one pass over WT (a few rows, or a small layer)
    DGRAD_GRAD DGRAD, then GRAD, likewise (the other rules, before their OPT_STEP)
    SOFTMAX  the softmax and cross-entropy of the last layer's scores, and their gradient
    BN_FORWARD, BN_BACKWARD  a hidden layer's bias and batch norm (and their gradients)
    BN_INFER the same in evaluation, with the running statistics
    BIAS_FORWARD, BIAS_BACKWARD  a hidden layer's bias, ReLU and dropout without batch norm (and
             their gradients)

Which kernel computes a product depends on its shape:
- the forward of a layer of fewer than 128 units and 224 inputs or more (64 or more at 16
  units or fewer): dot products of rows read in place (kernels/gemm_dot.py: there the packing
  costs more than it saves; the 3072 -> 50 forward at batch 100 1.5x faster, measured; with
  fewer inputs each element's lane sum costs more, gemm_dot.dot_form);
- a batch of a few rows: kernels/gemm_thin.py for its weight step (up to 6 rows), input
  gradient (up to 2) and forward (up to 2): there the packing and the 6-row blocks are most of
  the work, and each row of C is better streamed, or packed a block at a time, with the same
  bits as the packed kernel;
- a small input gradient or weight step (a part of at most 64 columns of C and 512K
  multiply-adds, e.g. a 50 -> 50 layer's at batch 100), or one of a part of one or two blocks
  of rows (a layer of up to 6 units, an input gradient of 3-6 rows; a 10-class output layer's
  weight step, an input gradient of 7-12 rows, on B's rows under 4 KB): kernels/gemm_small.py,
  the packed kernel's micro-kernel on operands read in place, with its bits (the packing and
  its calls were half of such a product's time; with one block of rows, B's packed copy is
  read once);
- a hidden layer's input gradient and weight step (plain SGD) or gradient (other rules) at a
  batch of a few rows, or of a small layer: both in one pass over WT (kernels/gemm_back.py,
  tasks DGRAD_SGD and DGRAD_GRAD);
- every other product: the packed kernel (kernels/gemm_packed.py), C (R, J) <- alpha A (R, K)
  B (K, J) + beta S with A and B read through strides.

Why not BLAS: OpenBLAS's sgemm gives an element other bits depending on where it falls in its
tiles (measured on its Haswell kernel: 1.4 % of the elements of a (500, 784) x (784, 512)
product change when only the first 250 rows are computed), so a product cut into one block per
thread changed with the thread count, and a row's prediction with its place in the batch.
Here every output element is one fixed sequence of fused multiply-adds (a chain over each run
of k, the runs added in order; runs depend on K only), whichever block, strip or thread
computes it: results do not depend on the thread count, the cut or the row's place.  The build
without SIMD (no AVX2/FMA) runs each product as one BLAS call on the calling thread, which
keeps the thread count out of its results too.
Legend: V lanes per vector; flat views Xf, Wf, ... of C-contiguous arrays.
"""
import numpy as np
from numba import from_dtype, prange, types

from ._config import internal_kernel, parallel_kernel, serial_kernel
from .batchnorm import bn_backward_cols, bn_forward_infer_rows, bn_forward_train_cols
from .blas import fgemm, gemm
from .coldstart import compile_beside
from .gemm_back import dgrad_weights, dz_rows, fused_shape, transpose_dz
from .gemm_dot import NO, NR, dot_form, forward_dots
from .gemm_packed import KP, outer, sgd_decay
from .gemm_small import small, small_product
from .gemm_thin import FWD_ROWS, THIN_K, THIN_ROWS, forward_rows, thin
from .linear import bias_relu_drop_rows, relu_drop_back_cols
from .native import address, call, callable_at, tag
from . import optim
from .optim import HP_SIZE, update_range
from .pack import MR, pack_a, pack_b
from .simd import SIMD, lanes, prefetch
from .softmax_xent import mean_loss, softmax_xent_rows

GATHER_AHEAD = 4    # rows a gather asks for before it copies them

(FORWARD, GRAD, SGD_STEP, DGRAD, GATHER, GATHER_FORWARD, DGRAD_SGD, OPT_STEP, DGRAD_GRAD,
 GRAD_STEP, SOFTMAX, BN_FORWARD, BN_BACKWARD, BN_INFER, BIAS_FORWARD, BIAS_BACKWARD) = range(16)
BN_UPDATE, BN_RELU = 1, 2  # BN_FORWARD's `kind`: bits (update the running statistics, ReLU)
STEP_UNIT = 16     # OPT_STEP cuts WT in runs of this many values: whole 64-byte lines


# ---- the parallel region -------------------------------------------------------------------
@internal_kernel
def _cut(units, t, nb):
    """Units [u0, u1) of part t of nb (contiguous, sizes differing by at most one)."""
    return units * t // nb, units * (t + 1) // nb


@internal_kernel
def _grid(R, J, step_r, step_j, nb):
    """(pr, pc), pr * pc = nb: how many parts _rect cuts an (R, J) output's rows and its columns
    into.  Each part packs (or reads) its own rows of A and columns of B, ~K (R / pr + J / pc)
    values, while the multiply-adds are shared out whatever the grid, so the grid is the one
    with the least of that among those that give every part a block of both sides.  With 2
    parts that is the longer side cut (net A's forward, 100-500 x 3072 x 50, cut by columns had
    both threads pack all of X: 1.3-1.7x slower than by rows, measured); with more, a cut of
    one side alone has every part pack the whole other operand whatever its own share, so
    there a grid (16 parts of 1024 x 1000: 4 x 4, each packing a quarter of both) keeps the
    packing a part's size.  Measured with 8 parts on 2 cores (the parts' total work, znver4,
    GFLOP/s, one side's cut -> the grid): 100 x 3072 x 50 forward 134 -> 155, 64 x 1024 x 1024
    weight step 114 -> 139, 1024 x 784 x 1000 1.02-1.03x, the rest level; whole steps 1.00-
    1.06x (3072-50-50-10 at batch 100 1.06x, 784-512-256-10 at 500 1.05x).  Where no grid
    gives every part a block of both sides, the side with more blocks is cut alone."""
    br, bj = (R + step_r - 1) // step_r, (J + step_j - 1) // step_j
    best, cost = 0, 0
    for i in range(nb):     # the longer side's cut alone first: it wins ties
        pr = i + 1 if J >= R else nb - i
        pc = nb // pr
        if pr * pc == nb and pr <= br and pc <= bj:
            c = R * pc + J * pr     # nb (R / pr + J / pc), in integers
            if best == 0 or c < cost:
                best, cost = pr, c
    if best > 0:
        return best, nb // best
    return (1, nb) if bj > br or (bj == br and J >= R) else (nb, 1)


@internal_kernel
def gathers_rows(N, I, O, nb):
    """Whether a layer (I, O) takes GATHER_FORWARD for a gathered batch of N rows in nb
    parts: its forward runs as dot products (gemm_dot) cut by rows alone, so each part can
    gather the rows it is about to multiply."""
    return SIMD and dot_form(I, O) and _grid(N, O, np.int64(NR), np.int64(NO), nb)[1] == 1


@internal_kernel
def fuses_back(N, I, O):
    """Whether a hidden layer (I, O) at batch N takes DGRAD_SGD (plain SGD) or DGRAD_GRAD."""
    return SIMD and fused_shape(N, I, O)


@internal_kernel
def folds_step(kind):
    """Whether a layer's weights take optimiser `kind`'s step inside their product (GRAD_STEP)
    rather than in an OPT_STEP after it: momentum and Nesterov, on the vector kernels."""
    return SIMD and (kind == optim.MOMENTUM or kind == optim.NESTEROV)


@internal_kernel
def _rect(R, J, step_r, step_j, t, nb):
    """Part t of nb of an (R, J) output cut into blocks of step_r rows and step_j columns, on
    the grid of parts _grid gives: rows [r0, r1), columns [j0, j1)."""
    br, bj = (R + step_r - 1) // step_r, (J + step_j - 1) // step_j
    pr, pc = _grid(R, J, step_r, step_j, nb)
    u0, u1 = _cut(br, t // pc, pr)
    v0, v1 = _cut(bj, t % pc, pc)
    return min(R, u0 * step_r), min(R, u1 * step_r), min(J, v0 * step_j), min(J, v1 * step_j)


@parallel_kernel
def products(task, Y, X, WT, dY, dWT, lam, eta, mW, vW, kind, hp, nb, src, idx, fns):
    """One product (or the gather, the softmax, a batch norm) cut into nb parts, one per
    thread; nb = 1 runs it whole on the calling thread, without waking the pool.  X (N, I),
    WT (O, I) as stored, Y and dY (N, O), `fns` the table of addresses (native_products):

      FORWARD   Y <- X WT^T (training and evaluation)
      GRAD      dWT <- dY^T X + 2 lam WT
      OPT_STEP  WT and its slices mW, vW of the optimiser's memory take a step on dWT
                (kernels/optim.py: rule `kind`, learning rate eta, hyperparameters hp), each
                part a run of WT's values; nothing for a batch of no rows (X (0, I))
      SGD_STEP  WT <- (1 - 2 eta lam) WT - eta dY^T X: plain SGD folded into the product, no
                gradient stored (saves two passes over WT and dWT)
      DGRAD     X <- dY WT: the input gradient (X is the output here)
      GATHER    X <- src[idx] (idx (N,) row numbers), in nb runs of columns: a batch of shuffled
                rows copied where the step needs it, instead of shuffling the whole training
                set each epoch (a 553 MB copy at the study's size)
      GATHER_FORWARD  GATHER, then FORWARD, in one region (where gathers_rows): each part
                gathers the rows of X it then multiplies, so the step wakes the threads once
                for both (the study net's whole step 1.02-1.04x on 2 threads, measured), a
                block of rows at a time while the one before multiplies (forward_dots)
      DGRAD_SGD Y <- dZ WT (Y the input gradient, (N, I)), then SGD_STEP on X, in one pass over
                WT (where fuses_back): each part a run of columns of both; dY holds dZ
                transposed (back_dz)
      DGRAD_GRAD  the same with GRAD for SGD_STEP: dWT <- dZ^T X + 2 lam WT
      SOFTMAX   Y (N, C) <- softmax of the scores X (N, C) row by row, mW (N,) <- each row's
                cross-entropy against its label idx[n] and, with kind 1, dY <- their gradient
                (P - onehot) / N (kernels/softmax_xent.py), each part a run of rows: its
                scalar exp makes it ~4 ns a score on one core, so the step gives it a part
                per parts.PART_SOFTMAX scores (there: measured)
      BN_FORWARD  X (N, D) <- X + b, then Y <- its batch norm, Xhat, mW <- the batch means,
                vW <- the inverse deviations (kernels/batchnorm.py, eps lam, momentum eta):
                dY is [b; gamma; beta] (3, D), dWT [run_mean; run_var] (2, D), kind bits
                BN_UPDATE (moves the running statistics) and BN_RELU; WT holds Xhat
      BN_BACKWARD  Y (N, D) <- dZ from dH in X, Xhat in WT, the forward's output in dY,
                gamma in mW and the inverse deviations in vW; dWT (3, D) <- [db; dgamma;
                dbeta]; kind BN_RELU as in the forward.
                Both cut D into runs of whole 64-byte lines, one per part (parts.PART_BN:
                where that pays, measured)
      BN_INFER  X (N, D) <- X + b, then Y <- its batch norm with the running statistics,
                dY and dWT as in BN_FORWARD, eps lam, kind BN_RELU; a run of rows per part
      BIAS_FORWARD  Y (N, D) <- max(Y + b, 0) with b = dY[0], then dropout at rate lam with
                the key whose bits `kind` holds (none at rate 0); a run of rows per part
      BIAS_BACKWARD  Y (N, D) <- dZ from dH in X and the forward's output in dY, through
                dropout at rate lam (0: none) and the ReLU; dWT[0] <- db; runs of whole
                64-byte lines, as BN_BACKWARD (linear.py's kernels; parts.PART_BN)
      GRAD_STEP GRAD, then OPT_STEP, for a rule where folds_step: the packed kernel takes the
                step as it stores each tile of the gradient (gemm_packed._store_rule; a batch
                of one run of k), the others on their part of WT after it; dWT is scratch
                (the gradient, or untouched); nothing for a batch of no rows

    One parallel region for all of them: every `prange` kernel costs 1-2.4 s of the first
    run's compile (measured; the budget is 15 s).  Its parts call _run through its address
    (kernels/native.py), so _run's code is compiled once, not again in this function and in
    its parallel body; _run's kernels call the packs through theirs (fns, below)."""
    run = part_runner(task, fns)
    if nb == 1:
        call(_run, run, np.int64(0), task, Y, X, WT, dY, dWT, lam, eta, mW, vW, kind, hp, nb,
             src, idx, fns)
        return
    for t in prange(nb):
        # int64: the parallel loop index is unsigned
        call(_run, run, np.int64(t), task, Y, X, WT, dY, dWT, lam, eta, mW, vW, kind, hp, nb,
             src, idx, fns)
    return


@internal_kernel
def part_runner(task, fns):
    """The address of what runs a part of `task` (products, and kernels/pool.py's threads): a
    batch norm's parts run _bn_run, which takes _run's arguments (so `call` types it as _run:
    _signatures checks the two are the same), every other task's _run."""
    return fns[BN_RUN] if task >= BN_FORWARD else fns[RUN]


@internal_kernel
def _bn_run(t, task, Y, X, WT, dY, dWT, lam, eta, mW, vW, kind, hp, nb, src, idx, fns):
    """Part t of nb of a batch norm's task, or of a hidden layer's bias, ReLU and dropout
    without one (products: the arguments): in training, BN_FORWARD, BN_BACKWARD and
    BIAS_BACKWARD a run of whole 64-byte lines of each row, so that no two threads write one
    line where rows are whole lines too (the step's arrays start lines, fastmlp/workspace.py,
    so at widths of a multiple of 16 float32 or 8 float64 values; at other widths a part's
    edge shares a line a row); BN_INFER and BIAS_FORWARD a run of rows.  A function of its
    own, not a branch of _run: as one, the products _run computes ran slower (100 x 3072 x
    1024 SGD_STEP on 2 threads 0.88x, 15 interleaved rounds, the other tasks' code unchanged)."""
    N, D = X.shape
    relu = (kind & BN_RELU) != 0
    if task == BIAS_FORWARD:
        n0, n1 = _cut(N, t, nb)
        bias_relu_drop_rows(Y, dY[0], lam, kind, n0, n1)
        return
    if task == BN_INFER:
        n0, n1 = _cut(N, t, nb)
        bn_forward_infer_rows(Y, X, dY[0], dY[1], dY[2], dWT[0], dWT[1], lam, relu, n0, n1)
        return
    line = 64 // X.itemsize
    u0, u1 = _cut((D + line - 1) // line, t, nb)
    d0, d1 = u0 * line, min(D, u1 * line)
    if d1 <= d0:
        return
    if task == BIAS_BACKWARD:
        relu_drop_back_cols(Y, dWT[0], X, dY, lam, d0, d1)
    elif task == BN_FORWARD:
        bn_forward_train_cols(Y, WT, mW, vW, dWT[0], dWT[1], X, dY[0], dY[1], dY[2], lam, eta,
                              (kind & BN_UPDATE) != 0, relu, d0, d1)
    else:
        bn_backward_cols(Y, dWT[0], dWT[1], dWT[2], X, WT, vW, mW, dY, relu, d0, d1)
    return


@internal_kernel
def _run(t, task, Y, X, WT, dY, dWT, lam, eta, mW, vW, kind, hp, nb, src, idx, fns):
    """Part t of nb of `products` (nb = 1: the whole product, the same code, so the same bits)."""
    N, I = X.shape
    O = WT.shape[0]
    Xf, Wf, Yf, dYf, dWf = X.reshape(-1), WT.reshape(-1), Y.reshape(-1), dY.reshape(-1), dWT.reshape(-1)
    V = lanes(Xf)
    if task == OPT_STEP:
        # a pass of its own after GRAD (AdaGrad, Adam) or DGRAD_GRAD (any rule).  Against
        # each tile's step by update_range per row of the tile, in strip order, the pass won
        # (the step's streams evicted the packed blocks the next tiles needed; whole steps,
        # Nesterov / Adam: 784-512-256-10 at batch 32 1.09-1.21x / 1.46x, 784-1000-1000-10 at
        # 32 1.12-1.28x / 1.32x, docs/performance.md); momentum and Nesterov now fold in
        # vectors and in bands, which beats the pass (GRAD_STEP, gemm_packed._store_rule)
        if N > 0:           # as before: no step where no row wrote a gradient
            u0, u1 = _cut((O * I + STEP_UNIT - 1) // STEP_UNIT, t, nb)
            lo, hi = u0 * STEP_UNIT, min(O * I, u1 * STEP_UNIT)
            if hi > lo:
                call(update_range, fns[UPDATE_RANGE], Wf, dWf, mW, vW, lo, hi, kind, eta, hp)
        return
    if task == GRAD_STEP and N == 0:
        return              # as OPT_STEP: no step where no row wrote a gradient
    if task == SOFTMAX:     # X the scores, Y the probabilities, mW the losses, idx the labels
        n0, n1 = _cut(N, t, nb)
        if n1 > n0:
            call(softmax_xent_rows, fns[SOFTMAX_ROWS], Y, mW, X, idx, dY, n0, n1, kind == 1)
        return
    if task == GATHER:      # a run of columns of every row (GATHER_FORWARD: forward_dots')
        k0, k1 = _cut(I, t, nb)
        Sf = src.reshape(-1)
        L = k1 - k0
        line = 64 // Sf.itemsize
        for n in range(N):
            # the rows are shuffled, so no prefetcher foresees the next one: ask for the part
            # of the row GATHER_AHEAD further on now.  784-value rows (Fashion-MNIST's) from
            # a 188 MB float32 set: the gather alone 43 -> 27 us a batch of 100 on one thread
            # (znver4; prefetching into L1 instead: no faster); the study net's whole step
            # 1.06x on one thread, 1.02-1.04x on two (1, 2, 4 or 8 rows ahead alike)
            if n + GATHER_AHEAD < N:
                ahead = idx[n + GATHER_AHEAD] * I
                for c in range(k0, k1, line):
                    prefetch(Sf, ahead + c)
            # 1-D views indexed from 0: the copy vectorises (2-D indexing from k0 kept Numba's
            # negative-index test in the loop: 5x slower), and it compiles in a fraction of
            # the time of a slice assignment (~2.5 s of the first run, measured)
            dst = Xf[n * I + k0:n * I + k1]
            row = Sf[idx[n] * I + k0:idx[n] * I + k1]
            for j in range(L):
                dst[j] = row[j]
        return
    fused = task == DGRAD_SGD or task == DGRAD_GRAD
    if not SIMD:        # one BLAS call, by the first part only
        if t == 0 and fused:    # (the step does not ask for them without SIMD)
            _blas(DGRAD, Yf, Yf, Wf, dYf, dWf, N, I, O, dY.shape[1], True, lam, eta)
            _blas(SGD_STEP if task == DGRAD_SGD else GRAD, Yf, Xf, Wf, dYf, dWf, N, I, O,
                  dY.shape[1], True, lam, eta)
        elif t == 0:
            _blas(task, Yf, Xf, Wf, dYf, dWf, N, I, O, O, False, lam, eta)
        return
    # C <- alpha A B + beta S through one call (each call site is a copy of the kernels for
    # LLVM to optimise: seconds of the first run's compile).  The block sizes go to _rect as
    # np.int64: as module constants they are literals, and each set of literal values compiled
    # _rect and _grid again (passed as np.int64, a cold compile of the step was 0.3-0.5 s
    # shorter in 6 of 7 interleaved pairs)
    if fused:               # a run of columns of dH (in Y) and WT, in units of V
        u0, u1 = _cut((I + V - 1) // V, t, nb)
        if u1 > u0:         # dY holds dZ transposed (gemm_back.transpose_dz)
            Df, alpha, beta = _weights_out(task == DGRAD_SGD, Wf, dWf, lam, eta)
            call(dgrad_weights, fns[BACK], Yf, Wf, Df, dYf, Xf, N, I, O, dY.shape[1], alpha, beta,
                 task == DGRAD_SGD, u0 * V, min(I, u1 * V))
        return
    if (task == FORWARD or task == GATHER_FORWARD) and dot_form(I, O):  # narrow: gemm_dot.py
        r0, r1, j0, j1 = _rect(N, O, np.int64(NR), np.int64(NO), t, nb)
        if r1 > r0 and j1 > j0:     # GATHER_FORWARD: each part gathers its own rows there
            call(forward_dots, fns[DOTS], Yf, Xf, Wf, I, O, r0, r1, j0, j1, src.reshape(-1),
                 idx if task == GATHER_FORWARD else idx[:0])
        return
    # streamed: a batch of a few rows takes gemm_thin, a small part gemm_small, the others the
    # packed gemm_packed.outer
    if task == FORWARD:     # Y (N, O): A(k=i, r=n) = X[n I + i], B(k=i, c=o) = WT[o I + i]
        r0, r1, j0, j1 = _rect(N, O, np.int64(MR), 2 * V, t, nb)
        Cf, Sf, Af, Bf, K, J, sk, sr, tk, tj, alpha, beta = Yf, Yf, Xf, Wf, I, O, 1, I, 1, I, 1.0, 0.0
        streamed = N <= FWD_ROWS
    elif task == DGRAD:     # X (N, I): A(k=o, r=n) = dY[n O + o], B(k=o, c=i) = WT[o I + i]
        r0, r1, j0, j1 = _rect(N, I, np.int64(MR), 2 * V, t, nb)
        Cf, Sf, Af, Bf, K, J, sk, sr, tk, tj, alpha, beta = Xf, Xf, dYf, Wf, O, I, 1, O, I, 1, 1.0, 0.0
        streamed = N <= THIN_ROWS
    else:                   # (O, I): A(k=n, r=o) = dY[n O + o], B(k=n, c=i) = X[n I + i]
        streamed = N <= THIN_K
        if streamed:
            # cut by rows alone: each part a run of whole rows of WT, one stretch of memory
            # (cut by columns, the two parts wrote the two halves of each row at the same time:
            # 1 x 1024 x 1024 on 2 threads 920 against 81 us, one A/B run)
            r0, r1 = _cut(O, t, nb)
            j0, j1 = 0, I
        else:
            r0, r1, j0, j1 = _rect(O, I, np.int64(MR), 2 * V, t, nb)
        Sf, Af, Bf, K, J, sk, sr, tk, tj = Wf, dYf, Xf, N, I, O, 1, I, 1
        Cf, alpha, beta = _weights_out(task == SGD_STEP, Wf, dWf, lam, eta)
    if r1 <= r0 or j1 <= j0:
        return
    # K in runs of equal length, at most KP each (a short last run would cost a whole pass of
    # C's loads and stores for little work); one count for every kernel, whose bits depend on it
    runs = (K + KP - 1) // KP
    if streamed and task == FORWARD:
        call(forward_rows, fns[ROWS], Yf, Xf, Wf, I, O, runs, r0, r1, j0, j1, fns[PACK_B])
        return
    folded = False
    if streamed:
        call(thin, fns[THIN], Cf, Sf, Af, Bf, K, runs, J, sk, sr, tk, alpha, beta, r0, r1, j0, j1)
    # a small input gradient or weight step reads its operands in place (gemm_small.py); not
    # the forward, whose B (WT) would be read down its columns
    elif task != FORWARD and small_product(r1 - r0, j1 - j0, K, tk * Bf.itemsize):
        call(small, fns[SMALL], Cf, Sf, Af, Bf, K, J, sk, sr, tk, alpha, beta, r0, r1, j0, j1)
    else:   # GRAD_STEP's step folded into the tiles' stores where k is one run
        folded = task == GRAD_STEP and runs == 1
        outer(Cf, Sf, Af, Bf, K, runs, J, sk, sr, tk, tj, alpha, beta, r0, r1, j0, j1,
              fns[PACK_A], fns[PACK_B], mW, kind if folded else 0, eta, hp[optim.HP_MOMENTUM])
    if task == GRAD_STEP and not folded:    # the part's rectangle of WT, after its gradient
        for r in range(r0, r1):
            call(update_range, fns[UPDATE_RANGE], Wf, dWf, mW, vW, r * J + j0, r * J + j1, kind,
                 eta, hp)
    return


@internal_kernel
def _weights_out(step, Wf, dWf, lam, eta):
    """(C, alpha, beta) of W's product C <- alpha dZ^T H + beta WT: plain SGD's step in place
    (C = WT, -eta, 1 - 2 eta lam) or the gradient (C = dWT, 1, 2 lam).  One place for the
    packed kernels and the fused backward (gemm_back), whose bits must be theirs."""
    if step:
        return Wf, -eta, sgd_decay(eta, lam)
    return dWf, 1.0, 2.0 * lam


@internal_kernel
def _blas(task, Yf, Xf, Wf, dYf, dWf, N, I, O, ld, zt, lam, eta):
    """The build without SIMD: each product as one BLAS call (row-major arrays passed as their
    Fortran transposes, kernels/blas.py); dY (N, O) rows ld apart, or with `zt` given
    transposed, (O, ld) (the fused tasks')."""
    # to Fortran, dY (N, O) is dY^T (O, N) and dY transposed (O, ld) is (ld, O): op(B) for B =
    # dY^T (DGRAD) and for B = dY (the weights' products)
    t_dyt, t_dy = (84, 78) if zt else (78, 84)
    if task == FORWARD:
        gemm(84, 78, O, N, I, Wf, I, Xf, I, 0.0, Yf, O)
    elif task == DGRAD:
        gemm(78, t_dyt, I, N, O, Wf, I, dYf, ld, 0.0, Xf, I)
    elif task == SGD_STEP:
        fgemm(78, t_dy, I, O, N, -eta, Xf, I, dYf, ld, 1.0 - 2.0 * eta * lam, Wf, I)
    else:
        for e in range(O * I):
            dWf[e] = 2 * lam * Wf[e]
        gemm(78, t_dy, I, O, N, Xf, I, dYf, ld, 1.0, dWf, I)


# ---- products for a dtype, as addresses (kernels/native.py) ---------------------------------
# fns, the table of addresses train_step hands to products and products to _run: native.tag
# (train_step checks it), then products', _run's and the two packs' (each pack called from two
# places, the packed kernel and forward_rows or per block: compiled into both, the second call
# site of pack_b cost 0.5-1.0 s of the first run's compile), and gemm_back's fused backward
# (compiled into _run, it made a first step's compile 8.1 -> 12-13 s; through its address
# 9.7-10.0 -> 10.7-11.1 s, docs/performance.md).  _run's other kernels (small, thin, the dot
# form, the forward of a few rows) and the optimisers' update_range (called by _run and by
# train_step, so compiled in both processes before) came next: the whole compile, on one core,
# was level (22.2-24.2 against 22.5-28.9 s), but in pieces of 0.5-1.5 s instead of inside _run's
# 8-9 s the two processes below end closer together: a first run's compile 13.9-19.2 -> 11.5-18.3
# s over eight interleaved pairs (medians 15.7 -> 13.9 s), the same bits, whole steps level.
# Last, the softmax's rows (task SOFTMAX) and batch norm's parts (BN_FORWARD, BN_BACKWARD),
# compiled in the second process too
(TAG, PRODUCTS, RUN, PACK_A, PACK_B, BACK, SMALL, THIN, DOTS, ROWS, UPDATE_RANGE, SOFTMAX_ROWS,
 BN_RUN) = range(13)
CALLEES = (products, _run, pack_a, pack_b, dgrad_weights, small, thin, forward_dots,
           forward_rows, update_range, softmax_xent_rows, _bn_run)   # the table's order


def _signatures(dtype):
    """Each of CALLEES' argument types for arrays of `dtype`."""
    c1, c2 = types.Array(from_dtype(dtype), 1, "C"), types.Array(from_dtype(dtype), 2, "C")
    i, f = types.int64, types.float64
    fns = types.Array(i, 1, "C")
    args = (i, c2, c2, c2, c2, c2, f, f, c1, c1, i, types.Array(f, 1, "C"), i, c2,
            types.Array(i, 1, "C"), fns)
    return {products: args, _run: (i,) + args, pack_a: (c1, c1, i, i, i, i, i, i),
            pack_b: (c1, c1, c1, i, i, i, i, i, i),
            dgrad_weights: (c1, c1, c1, c1, c1, i, i, i, i, f, f, types.boolean, i, i),
            small: (c1, c1, c1, c1, i, i, i, i, i, f, f, i, i, i, i),
            thin: (c1, c1, c1, c1, i, i, i, i, i, i, f, f, i, i, i, i),
            forward_dots: (c1, c1, c1, i, i, i, i, i, i, c1, types.Array(i, 1, "C")),
            forward_rows: (c1, c1, c1, i, i, i, i, i, i, i, i),
            update_range: (c1, c1, c1, c1, i, i, i, f, types.Array(f, 1, "C")),
            softmax_xent_rows: (c2, c1, c2, types.Array(i, 1, "C"), c2, i, i, types.boolean),
            _bn_run: (i,) + args}


DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# products calls _bn_run's address as if it were _run's (call checks only _run's types)
assert all(_signatures(d)[_bn_run] == _signatures(d)[_run] for d in DTYPES)
for _f in CALLEES:
    callable_at(_f, [_signatures(d)[_f] for d in DTYPES])
_NATIVE = {}


def native_products(dtype, caller=None, args=()):
    """fns for arrays of `dtype`, the last argument of step.train_step: the callees compiled on
    first use (or loaded from the cache).  Called through it, the kernels under products are
    compiled once, not again inside each caller.  With `caller` about to be called with args +
    (fns,), on an empty cache the callees are compiled in a second process meanwhile
    (kernels/coldstart.py)."""
    if dtype not in _NATIVE:
        d = np.dtype(dtype)
        s = _signatures(d)
        if caller is not None:
            # the second process takes _run and the kernels it calls, this one products and
            # thin after the caller: two halves that end together (compile events, znver3, an
            # empty cache, run side by side: train_step 9.4 s, products 0.6, thin 0.6, here;
            # _run 4.6, dgrad_weights 1.4, the packs 1.1, small 1.5, forward_rows 0.6,
            # update_range 0.5, forward_dots 0.6, there; each process ends at 12-17 s of the
            # run, within 0.2-1.1 s of the other; softmax_xent_rows joined them later).  With
            # _run alone in the second process (its kernels in it), this one had taken 25.8 s
            # against its 13.9
            # Here too, after the step, what a run of steps compiles beyond it (pool.py): left to
            # a run's second call, it had held that call 0.3-0.4 s; in the second process, the
            # whole first run's compile 0.9 s longer (2 interleaved pairs, fresh caches)
            from . import pool     # (pool.py imports this module)
            child = (_run, dgrad_weights, pack_b, pack_a, small, forward_rows, update_range,
                     forward_dots, softmax_xent_rows, _bn_run)
            names = ", ".join(f.__name__ for f in child)
            compile_beside(caller, args + (np.zeros(len(CALLEES) + 1, np.int64),),
                           [(f, s[f]) for f in child],
                           f"import numpy\nfrom {__name__} import {names}, _signatures\n"
                           f"s = _signatures(numpy.dtype({d.name!r}))\n"
                           f"for f in ({names},):\n    f.compile(s[f])",
                           after=[(f, s[f]) for f in CALLEES if f not in child] +
                           pool.signatures(d))
        _NATIVE[dtype] = np.array([tag(d)] + [address(f, s[f]) for f in CALLEES], np.int64)
    return _NATIVE[dtype]


@serial_kernel
def back_dz(dY):
    """dY (N, O) transposed for DGRAD_SGD and DGRAD_GRAD: (O, gemm_back.dz_rows) in dY's dtype
    (from the step and from kernels/tasks.py)."""
    N, O = dY.shape
    NT = dz_rows(N, dY.itemsize)
    dZT = np.empty((O, NT), dY.dtype)
    transpose_dz(dZT.reshape(-1), dY.reshape(-1), N, O, NT)
    return dZT
