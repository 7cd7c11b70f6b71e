"""The tasks of kernels/gemm.py's `products` one by one, from Python (the tests, benchmarks and
fastmlp/augment.py's batch gather): each wrapper checks its arrays (the tasks trust theirs) and
runs one task in nb parts with the addresses for its dtype."""
import numpy as np

from . import optim
from .gemm import (BIAS_BACKWARD, BIAS_FORWARD, BN_BACKWARD, BN_FORWARD, BN_INFER, BN_RELU,
                   BN_UPDATE, DGRAD, DGRAD_GRAD, DGRAD_SGD, FORWARD, GATHER, GRAD, GRAD_STEP,
                   OPT_STEP, SGD_STEP, SOFTMAX, back_dz, folds_step, native_products, products)
from .gemm_packed import KP
from .optim import HP_SIZE
from .softmax_xent import mean_loss

_NO_ROWS = np.empty(0, np.int64)


def _products(*args):
    """products(*args) for the wrappers below, with the addresses for X's dtype."""
    if args[12] < 1:        # products' nb: none runs no part, leaving the outputs as they were
        raise ValueError(f"nb (parts) must be at least 1; got {args[12]}")
    products(*args, native_products(args[2].dtype))


def _none(X):
    return np.empty((0, 0), X.dtype)


def _no_state(X):
    return np.empty(0, X.dtype), np.empty(0, X.dtype), 0, np.zeros(HP_SIZE)


def _check(X, WT, *pairs):
    """The tasks trust their shapes; these wrappers, off the step's path, check them."""
    arrays = (X, WT) + tuple(a for a, _ in pairs)
    if len({a.dtype for a in arrays}) != 1 or not all(a.flags.c_contiguous for a in arrays):
        raise ValueError("every array must be C-contiguous with one dtype")
    if WT.shape[1] != X.shape[1]:
        raise ValueError(f"WT must be (O, K) = (units, inputs) for X (N, K) = {X.shape}; got "
                         f"{WT.shape} (weights are stored one row per output unit)")
    for a, shape in pairs:
        if a.shape != shape:
            raise ValueError(f"expected an array of shape {shape}; got {a.shape}")


def gather(out, X, rows, nb=2):
    """out (N, K) <- X[rows] (task GATHER)."""
    rows = np.asarray(rows, np.int64)
    if out.shape != (len(rows), X.shape[1]) or out.dtype != X.dtype or not X.flags.c_contiguous:
        raise ValueError(f"out must be (len(rows), K) = {(len(rows), X.shape[1])} in X's dtype, and X "
                         f"C-contiguous; got out {out.shape} {out.dtype}")
    _products(GATHER, _none(out), out, _none(out), _none(out), _none(out), 0.0, 0.0,
             *_no_state(out), nb, X, rows)


def softmax_xent(P, losses, Z, y, dZ, nb):
    """P (N, C), losses (N,) <- softmax and cross-entropy of Z (N, C) against y (N,) and, where
    dZ is (N, C) rather than empty, dZ <- their gradient (task SOFTMAX); returns the mean loss,
    summed in row order as the step sums it."""
    y = np.ascontiguousarray(y, np.int64)
    back = dZ.size > 0
    arrays = (P, Z, losses) + ((dZ,) if back else ())
    if len({a.dtype for a in arrays}) != 1 or not all(a.flags.c_contiguous for a in arrays):
        raise ValueError("P, Z, losses and dZ must be C-contiguous with one dtype")
    if P.shape != Z.shape or (back and dZ.shape != Z.shape) or Z.shape[0] == 0:
        raise ValueError(f"P and dZ (or an empty dZ) must have Z's shape, at least one row; got "
                         f"Z {Z.shape}, P {P.shape}, dZ {dZ.shape}")
    if losses.shape != (Z.shape[0],) or y.shape != losses.shape:
        raise ValueError(f"losses and y must be ({Z.shape[0]},); got {losses.shape}, {y.shape}")
    if not (0 <= y.min() and y.max() < Z.shape[1]):
        raise ValueError(f"labels must be in [0, {Z.shape[1]}); got {y.min()} .. {y.max()}")
    _products(SOFTMAX, P, Z, _none(Z), dZ if back else _none(Z), _none(Z), 0.0, 0.0, losses,
              np.empty(0, Z.dtype), int(back), np.zeros(HP_SIZE), nb, Z, y)
    return mean_loss(losses)


def batch_norm(H, Xhat, mean, inv_std, run_mean, run_var, Z, b, gamma, beta, eps, alpha,
               update_running, relu, nb):
    """Z (N, D) <- Z + b, then H <- its batch norm (Xhat, mean, inv_std, and with
    update_running the running statistics too) in nb runs of columns (task BN_FORWARD).
    b, gamma, beta and run_mean, run_var are copied into the task's blocks and back."""
    _bn_check((H, Xhat, Z), (mean, inv_std, run_mean, run_var, b, gamma, beta))
    bgb, run = np.stack([b, gamma, beta]), np.stack([run_mean, run_var])
    kind = (BN_UPDATE if update_running else 0) | (BN_RELU if relu else 0)
    _products(BN_FORWARD, H, Z, Xhat, bgb, run, float(eps), float(alpha), mean, inv_std, kind,
              np.zeros(HP_SIZE), nb, Z, _NO_ROWS)
    run_mean[:], run_var[:] = run


def batch_norm_infer(H, Z, b, gamma, beta, run_mean, run_var, eps, relu, nb):
    """Z (N, D) <- Z + b, then H <- its batch norm with the running statistics, in nb runs of
    rows (task BN_INFER)."""
    _bn_check((H, Z), (b, gamma, beta, run_mean, run_var))
    _products(BN_INFER, H, Z, _none(Z), np.stack([b, gamma, beta]), np.stack([run_mean, run_var]),
              float(eps), 0.0, *_no_state(Z)[:2], BN_RELU if relu else 0, np.zeros(HP_SIZE), nb,
              Z, _NO_ROWS)


def batch_norm_backward(dZ, db, dgamma, dbeta, dH, Xhat, inv_std, gamma, H, relu, nb):
    """dZ (N, D) <- the gradient through batch_norm (and ReLU if relu) from dH, with db,
    dgamma, dbeta, in nb runs of columns (task BN_BACKWARD)."""
    _bn_check((dZ, dH, Xhat, H), (db, dgamma, dbeta, inv_std, gamma))
    out = np.empty((3, dZ.shape[1]), dZ.dtype)
    _products(BN_BACKWARD, dZ, dH, Xhat, H, out, 0.0, 0.0, gamma, inv_std,
              BN_RELU if relu else 0, np.zeros(HP_SIZE), nb, dH, _NO_ROWS)
    db[:], dgamma[:], dbeta[:] = out


def bias_relu(H, b, rate, key, nb):
    """H (N, D) <- max(H + b, 0), then dropout at `rate` with the stream `key` (uint64; none at
    rate 0), in nb runs of rows (task BIAS_FORWARD: a hidden layer without batch norm)."""
    _bn_check((H,), (b,))
    _rate_check(rate)
    key = np.array([key], np.uint64).view(np.int64)[0]     # the task takes the key's bits
    _products(BIAS_FORWARD, H, H, H, b.reshape(1, -1), H, float(rate), 0.0, b, b, int(key),
              np.zeros(HP_SIZE), nb, H, _NO_ROWS)


def bias_relu_backward(dZ, db, dH, H, rate, nb):
    """dZ (N, D) <- the gradient through bias_relu from dH, given its output H (the dropped
    units' zeros gate their gradients), and db, in nb runs of columns (task BIAS_BACKWARD)."""
    _bn_check((dZ, dH, H), (db,))
    _rate_check(rate)
    out = np.empty((1, dZ.shape[1]), dZ.dtype)
    _products(BIAS_BACKWARD, dZ, dH, dH, H, out, float(rate), 0.0, db, db, 0, np.zeros(HP_SIZE),
              nb, dH, _NO_ROWS)
    db[:] = out[0]


def _rate_check(rate):
    if not 0 <= rate < 1:
        raise ValueError(f"rate (the share of units dropped) must lie in [0, 1); got {rate!r}")


def _bn_check(tables, vectors):
    arrays = tables + vectors
    if len({a.dtype for a in arrays}) != 1 or not all(a.flags.c_contiguous for a in arrays):
        raise ValueError("every array must be C-contiguous with one dtype")
    N, D = tables[0].shape
    if N == 0 or any(a.shape != (N, D) for a in tables) or any(v.shape != (D,) for v in vectors):
        raise ValueError(f"every table must be (N, D) = {(N, D)} with N > 0 and every vector "
                         f"({D},); got {[a.shape for a in arrays]}")


def dot_nt(Y, X, WT, nb):
    """Y (N, O) <- X (N, K) @ WT (O, K)^T (task FORWARD)."""
    _check(X, WT, (Y, (X.shape[0], WT.shape[0])))
    _products(FORWARD, Y, X, WT, _none(X), _none(X), 0.0, 0.0, *_no_state(X), nb, X, _NO_ROWS)


def input_grad(dX, dY, WT, nb):
    """dX (N, K) <- dY (N, O) @ WT (O, K) (task DGRAD)."""
    _check(dX, WT, (dY, (dX.shape[0], WT.shape[0])))
    _products(DGRAD, _none(dX), dX, WT, dY, _none(dX), 0.0, 0.0, *_no_state(dX), nb, dX,
             _NO_ROWS)


def weight_grad(dWT, X, dY, WT, lam, eta, update, nb, mW, vW, kind, hp):
    """dWT (O, K) <- dY (N, O)^T X (N, K) + 2 lam WT (task GRAD), then with `update` the
    optimiser's step on WT and its memory mW, vW (task OPT_STEP), as the training step takes
    them: for a rule where folds_step, both in one (GRAD_STEP), and dWT is then scratch."""
    _check(X, WT, (dY, (X.shape[0], WT.shape[0])), (dWT, WT.shape))
    if update:      # the optimiser's memory: m for all but SGD, v for Adam, as update_range reads
        need = {optim.SGD: (), optim.MOMENTUM: (mW,), optim.NESTEROV: (mW,), optim.ADAGRAD: (mW,),
                optim.ADAM: (mW, vW)}.get(kind)
        if need is None or np.shape(hp) != (HP_SIZE,) or np.asarray(hp).dtype != np.float64:
            raise ValueError(f"kind must be an optimiser of kernels/optim.py (0-4) and hp "
                             f"({HP_SIZE},) float64; got kind {kind}, hp {np.shape(hp)} "
                             f"{np.asarray(hp).dtype}")
        _check(X, WT, *((m, (WT.size,)) for m in need))   # flat, as WT's slice of the state
    if update and folds_step.py_func(kind):     # (compiled, it has no Python wrapper)
        _products(GRAD_STEP, _none(X), X, WT, dY, dWT, float(lam), float(eta), mW, vW, kind, hp,
                  nb, X, _NO_ROWS)
        return
    _products(GRAD, _none(X), X, WT, dY, dWT, float(lam), float(eta), mW, vW, kind, hp, nb, X,
              _NO_ROWS)
    if update:
        _products(OPT_STEP, _none(X), X, WT, dY, dWT, float(lam), float(eta), mW, vW, kind, hp,
                  nb, X, _NO_ROWS)


def _one_run(WT, X):
    """The fused tasks' own limits: each of their two products' k in one run."""
    if not 1 <= WT.shape[0] <= KP:
        raise ValueError(f"WT must have 1 to {KP} rows (output units) here; got {WT.shape[0]}")
    if not 1 <= X.shape[0] <= KP:
        raise ValueError(f"X must have 1 to {KP} rows (a batch) here; got {X.shape[0]}")


def input_grad_sgd_step(dX, WT, X, dY, lam, eta, nb):
    """dX (N, K) <- dY (N, O) @ WT (O, K), then WT <- (1 - 2 eta lam) WT - eta dY^T X in place,
    in one pass over WT (task DGRAD_SGD; where fuses_back, of which this asks only O <= KP and
    N <= KP: each product's k in one run)."""
    _check(X, WT, (dY, (X.shape[0], WT.shape[0])), (dX, X.shape))
    _one_run(WT, X)
    _products(DGRAD_SGD, dX, X, WT, back_dz(dY), _none(X), float(lam), float(eta),
              *_no_state(X), nb, X, _NO_ROWS)


def input_and_weight_grad(dX, dWT, WT, X, dY, lam, nb):
    """dX (N, K) <- dY (N, O) @ WT (O, K) and dWT <- dY^T X + 2 lam WT in one pass over WT
    (task DGRAD_GRAD; as input_grad_sgd_step, it asks only O <= KP and N <= KP)."""
    _check(X, WT, (dY, (X.shape[0], WT.shape[0])), (dX, X.shape), (dWT, WT.shape))
    _one_run(WT, X)
    _products(DGRAD_GRAD, dX, X, WT, back_dz(dY), dWT, float(lam), 0.0, *_no_state(X), nb, X,
              _NO_ROWS)


def weight_sgd_step(WT, X, dY, lam, eta, nb):
    """WT (O, K) <- (1 - 2 eta lam) WT - eta dY^T X in place (task SGD_STEP)."""
    _check(X, WT, (dY, (X.shape[0], WT.shape[0])))
    _products(SGD_STEP, _none(X), X, WT, dY, _none(X), float(lam), float(eta),
             *_no_state(X), nb, X, _NO_ROWS)
