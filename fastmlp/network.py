"""The k-layer network: hidden layers Linear -> BatchNorm -> ReLU (BN optional), then Linear ->
softmax.  Parameters live in one flat buffer `theta` with named views (W1, b1, gamma1, beta1,
..., Wk, bk) and gradients in a matching buffer `dtheta`, so an optimiser updates everything
with one array operation and a compiled step can take the whole network as a few arrays.

Beside it: initializers.py (the weight initialisers), workspace.py (the buffers and their
layout) and unfused.py (the one-kernel-per-operation reference path, net.fused = False).
"""
import numbers
from collections import OrderedDict

import numba
import numpy as np

from . import _checks
from . import optim as _optim
from . import unfused
from ._checks import check_dropout
from .initializers import INITS, check_init, draw_weights  # noqa: F401  (INITS: imported from here too)
from .kernels import gemm, parts, pool, step
from .kernels import optim as optim_kernels
from .kernels.l2 import sum_squares
from .kernels.rng import stream_key
from .threads import blas_single_threaded
from .workspace import Workspace, aligned_empty, flat_views

EVAL_CHUNK = 8192   # rows per evaluation pass: bounds memory on 50,000-image sets
MAX_WORKSPACES = 4  # batch sizes kept preallocated (train batch, last partial batch, eval)
_NO_ROWS = np.empty(0, np.int64)      # train_step's `rows` when the batch is given whole
_ZERO_ETA = np.zeros(1)                # an evaluation's etas (unused) and losses (not written)
_ZERO_KEY = np.zeros(1, np.uint64)


DROPOUT_STREAM = 1   # kernels/rng.py stream of the dropout masks (augment.STREAM: augmentation's)
class Network:
    """A k-layer fully connected classifier.

    Network([3072, 50, 50, 10], batch_norm=True, init="he", dtype=np.float32, seed=0)

    sizes: [n_features, hidden widths..., n_classes].  init: "he" N(0, 2/fan_in),
    "he_uniform" U(+-sqrt(6/fan_in)), "xavier" or "xavier_normal" N(0, 2/(fan_in + fan_out)),
    "xavier_uniform" U(+-sqrt(6/(fan_in + fan_out))), "lecun" N(0, 1/fan_in), or a float sigma
    for N(0, sigma^2).  dropout: the rate (probability of dropping a unit) after every hidden
    layer, or one rate per hidden layer; inverted, so evaluation uses every unit as it is.  Biases and BN shifts start at 0, BN scales at 1, running
    means at 0 and running variances at 1.  bn_alpha is the running-statistics momentum:
    run = bn_alpha * run + (1 - bn_alpha) * batch.
    """

    def __init__(self, sizes, batch_norm=True, init="he", dtype=np.float32, seed=0,
                 bn_eps=1e-5, bn_alpha=0.9, dropout=0.0):
        self.sizes = _checks.check_sizes(sizes)
        self.batch_norm = bool(batch_norm)
        self.init = check_init(init)
        self.dtype = _checks.check_dtype(dtype)
        self.seed = seed
        self.bn_eps = _checks.check_nonnegative(bn_eps, "bn_eps")
        if not 0 <= bn_alpha <= 1:
            raise ValueError(f"bn_alpha must lie in [0, 1]; got {bn_alpha!r}.")
        self.bn_alpha = float(bn_alpha)
        self.n_layers = len(self.sizes) - 1
        self.n_features, self.n_classes = self.sizes[0], self.sizes[-1]
        self.dropout = check_dropout(dropout, self.n_layers - 1)
        self._drop = np.array(self.dropout + (0.0,), np.float64)   # per layer, as the step reads it
        # names this step's dropout masks; the trainer sets it every step, and the gradient
        # check leaves it alone so that every forward of a check drops the same units
        self.drop_key = np.uint64(stream_key(int(seed) if isinstance(seed, numbers.Integral)
                                             else 0, 0, DROPOUT_STREAM))
        self._sgd = _optim.SGD().bind(0, self.dtype)

        shapes = OrderedDict()
        stat_shapes = OrderedDict()
        for k in range(1, self.n_layers + 1):
            fan_in, fan_out = self.sizes[k - 1], self.sizes[k]
            shapes[f"W{k}"] = (fan_in, fan_out)
            shapes[f"b{k}"] = (fan_out,)
            if self.batch_norm and k < self.n_layers:
                shapes[f"gamma{k}"] = (fan_out,)
                shapes[f"beta{k}"] = (fan_out,)
                stat_shapes[f"run_mean{k}"] = (fan_out,)
                stat_shapes[f"run_var{k}"] = (fan_out,)
        self.theta, self.params, self._offsets = flat_views(shapes, self.dtype)
        self.dtheta, self.grads, _ = flat_views(shapes, self.dtype)
        self.stats, self.running, stat_offsets = flat_views(stat_shapes, self.dtype)
        self._offsets.update(stat_offsets)
        self.layout = self._layout()
        self.fused = True   # False: one kernel call per operation (the reference path)
        # scratch for W transposed, used by the backward of layers 2..k (layer 1 has no dX)
        self._WT = [np.empty((0, 0), self.dtype)] + [
            np.empty((self.sizes[k], self.sizes[k - 1]), self.dtype) for k in range(2, self.n_layers + 1)]
        self._workspaces = OrderedDict()
        self._train_ws = None
        self.reset(seed)

    def _layout(self):
        """The offset table of the fused step (kernels/step.py): per layer I, O and the offsets
        of W (stored (O, I), see _flat_views), b, gamma, beta in theta and of the running
        mean and variance in stats."""
        rows = []
        for k in range(1, self.n_layers + 1):
            rows.append([self.sizes[k - 1], self.sizes[k]]
                        + [self._offsets.get(f"{p}{k}", -1)
                           for p in ("W", "b", "gamma", "beta", "run_mean", "run_var")])
        layout = np.array(rows, np.int64)
        # the step hands a batch norm's vectors on as blocks: [b; gamma; beta] (3, O) from b's
        # offset, [run_mean; run_var] (2, O) from run_mean's (kernels/gemm.py, BN_FORWARD)
        for I, O, _, b, g, be, rm, rv in layout:
            if g >= 0 and not (g == b + O and be == g + O and rv == rm + O):
                raise RuntimeError(f"b, gamma, beta (and run_mean, run_var) must be adjacent "
                                   f"in the flat buffers; got the layout {layout.tolist()}")
        return layout

    # ---- parameters -------------------------------------------------------------------
    def reset(self, seed=0):
        """Draw fresh weights.  Drawn in float64 then cast, so float32 and float64 networks
        with the same seed start from the same (rounded) weights."""
        rng = np.random.default_rng(seed)
        for k in range(1, self.n_layers + 1):
            fan_in, fan_out = self.sizes[k - 1], self.sizes[k]
            self.params[f"W{k}"][...] = draw_weights(rng, self.init, fan_in, fan_out)
            self.params[f"b{k}"][...] = 0
            if f"gamma{k}" in self.params:
                self.params[f"gamma{k}"][...] = 1
                self.params[f"beta{k}"][...] = 0
                self.running[f"run_mean{k}"][...] = 0
                self.running[f"run_var{k}"][...] = 1
        self.dtheta[...] = 0

    @property
    def param_names(self):
        return list(self.params)

    def weight_names(self):
        return [f"W{k}" for k in range(1, self.n_layers + 1)]

    def __getitem__(self, name):
        if name in self.params:
            return self.params[name]
        if name in self.running:
            return self.running[name]
        raise KeyError(f"{name!r} is not a parameter of this network; it has "
                       f"{', '.join(list(self.params) + list(self.running))}.")

    def l2(self):
        """Sum of squared weights over the weight matrices (not b, gamma, beta)."""
        return sum(sum_squares(self.params[w]) for w in self.weight_names())

    def copy(self, dtype=None):
        """An independent network with the same parameters and running statistics."""
        net = Network(self.sizes, self.batch_norm, self.init, dtype or self.dtype, self.seed,
                      self.bn_eps, self.bn_alpha, self.dropout)
        net.theta[...] = self.theta
        net.stats[...] = self.stats
        net.fused = self.fused
        net.drop_key = self.drop_key
        return net

    def get_state(self):
        """Parameters and running statistics as a dict of arrays (copies)."""
        state = {name: v.copy() for name, v in self.params.items()}
        state.update({name: v.copy() for name, v in self.running.items()})
        return state

    def set_state(self, state):
        """Load arrays produced by `get_state` (same architecture), exactly."""
        for name, view in list(self.params.items()) + list(self.running.items()):
            if name not in state:
                raise ValueError(f"state is missing {name!r}; it must come from a network "
                                 f"with sizes {self.sizes} and batch_norm={self.batch_norm}.")
            value = np.asarray(state[name])
            if value.shape != view.shape:
                raise ValueError(f"state[{name!r}] must have shape {view.shape}; "
                                 f"got {value.shape}.")
            view[...] = value

    # ---- forward / backward -------------------------------------------------------------
    def _workspace(self, n, train):
        key = (n, train)
        ws = self._workspaces.pop(key, None)
        if ws is None:
            ws = Workspace(self, n, train)
            while len(self._workspaces) >= MAX_WORKSPACES:
                self._workspaces.popitem(last=False)
        self._workspaces[key] = ws
        return ws

    def _step(self, ws, X, y, lam, eta, flags, opt=None, t=0, src=None, rows=_NO_ROWS):
        """train_step on the batch X, or on the rows `rows` of src gathered into X first."""
        opt = opt or self._sgd
        return self._steps(ws, X, y, lam, np.array([eta], np.float64), flags, opt,
                           opt.hyper(t)[None, :], np.array([self.drop_key], np.uint64),
                           src, rows, np.empty(1))[0]

    def _steps(self, ws, X, y, lam, etas, flags, opt, hps, keys, src, rows, losses):
        """One train_step call of len(etas) steps; returns (last loss, steps taken)."""
        nt = numba.get_num_threads()
        # a run of steps keeps its threads between its tasks (kernels/pool.py); a single step
        # (an evaluation, a first call that compiles) wakes Numba's pool for each task instead
        waiting = parts.kept_threads(self.layout, X.shape[0], nt) if len(etas) > 1 else 0
        X2 = X[:0]
        if waiting and len(rows) and pool.gathers_ahead(X):   # each next batch, ahead
            if ws.Xahead is None:
                ws.Xahead = aligned_empty(X.shape, self.dtype)
            X2 = ws.Xahead
        args = (self.theta, self.dtheta, self.stats, self.layout, ws.buf, ws.wsl, X, X2, y,
                float(lam), etas, float(self.bn_eps), float(self.bn_alpha), flags, nt, opt.kind,
                opt.state, hps, self._drop, keys, X if src is None else src, rows, losses)
        fns = gemm.native_products(self.theta.dtype, step.train_step, args + pool.IDLE)
        with pool.threads(waiting, self.theta, fns) as shared, blas_single_threaded():
            loss, done = step.train_step(*args, *shared, fns)
        return float(loss), int(done)

    def _train_step(self, X, y, lam, eta, rows=None, opt=None, t=0):
        """One optimiser step in one compiled call: forward (updating the running statistics,
        dropping units with the masks of `drop_key`), backward, and the update of `opt` (a
        fastmlp.optim.Optimizer bound to this network; None: SGD) at its step t, with
        learning rate eta.  Inputs are trusted (checked by the caller).  With `rows`, the batch
        is X[rows] (X the whole training set) with labels y, gathered by a compiled call first.
        Returns the batch's mean loss."""
        opt = opt or self._sgd
        if rows is not None and not self.fused:
            X = X[rows]
        if not self.fused:
            loss = self._forward_train(X, y)
            self._backward(y, lam)
            optim_kernels.update(self.theta, self.dtheta, opt.state, opt.kind, eta, opt.hyper(t))
            return loss
        flags = step.FORWARD | step.UPDATE_STATS | step.BACKWARD | step.UPDATE
        ws = self._workspace(len(y), True)
        self._train_ws = ws
        if rows is None:
            ws.X = X
            return self._step(ws, X, y, lam, eta, flags, opt, t)
        if ws.Xrows is None:
            ws.Xrows = aligned_empty((len(y), self.n_features), self.dtype)
        ws.X = ws.Xrows
        return self._step(ws, ws.Xrows, y, lam, eta, flags, opt, t, X, rows)

    def _train_steps(self, X, y, lam, etas, rows, opt, t0, keys, losses):
        """len(etas) optimiser steps from step t0, as len(etas) calls of _train_step would take
        them (the same bits), in one compiled call when the network is fused: step s trains on
        X[rows[s N:(s+1) N]] with labels y[s N:(s+1) N] (N = len(y) // len(etas)), learning rate
        etas[s] and dropout key keys[s].  Fills losses[:steps taken] and stops after the first
        step whose loss is not finite; returns the steps taken."""
        S = len(etas)
        N = len(y) // S
        if not self.fused:
            for s in range(S):
                self.drop_key = keys[s]
                part = slice(s * N, (s + 1) * N)
                losses[s] = self._train_step(X, y[part], lam, etas[s], rows[part], opt, t0 + s)
                if not np.isfinite(losses[s]):
                    return s + 1
            return S
        ws = self._workspace(N, True)
        self._train_ws = ws
        if ws.Xrows is None:
            ws.Xrows = aligned_empty((N, self.n_features), self.dtype)
        ws.X = ws.Xrows
        self.drop_key = keys[S - 1]
        flags = step.FORWARD | step.UPDATE_STATS | step.BACKWARD | step.UPDATE
        return self._steps(ws, ws.Xrows, y, lam, etas, flags, opt, opt.hypers(t0, t0 + S), keys,
                           X, rows, losses)[1]

    def _forward_train(self, X, y, update_stats=True):
        """Training-mode forward on a checked batch; keeps what backward needs.  Returns the
        mean cross-entropy loss."""
        ws = self._workspace(X.shape[0], True)
        ws.X = X
        if self.fused:
            self._train_ws = ws
            flags = step.FORWARD | (step.UPDATE_STATS if update_stats else 0)
            return self._step(ws, X, y, 0.0, 0.0, flags)
        loss = unfused.forward_train(self, ws, X, y, update_stats)
        self._train_ws = ws
        return loss


    def _backward(self, y, lam):
        """Fill `grads` from the last training forward: d(loss + lam * sum ||W||^2)."""
        ws = self._train_ws
        if self.fused:
            self._step(ws, ws.X, y, lam, 0.0, step.BACKWARD)
            return
        unfused.backward(self, ws, y, lam)


    def _chunks(self, X):
        for start in range(0, X.shape[0], EVAL_CHUNK):
            yield start, X[start:start + EVAL_CHUNK]

    def forward(self, X, train=False, update_stats=True):
        """Class probabilities (N, C).  train=True uses batch statistics in BN (updating the
        running ones if update_stats) and keeps the intermediates `backward` needs; it has no
        labels, so call `loss_and_grad` to train."""
        X = _checks.check_X(X, self.n_features, self.dtype)
        if train:
            y0 = np.zeros(X.shape[0], np.int64)       # the loss is discarded here
            self._forward_train(X, y0, update_stats)
            return self._train_ws.P.copy()
        return self._predict_proba(X)

    def _eval_chunk(self, X, y):
        """Evaluation-mode forward of one checked chunk; returns (workspace, sum of losses,
        correct count); y may be empty (no labels: probabilities only)."""
        ws = self._workspace(X.shape[0], False)
        if self.fused:
            flags = step.EVALUATE
            total, correct = self._steps(ws, X, y, 0.0, _ZERO_ETA, flags, self._sgd,
                                         self._sgd.hp[None, :], _ZERO_KEY, None, _NO_ROWS,
                                         _ZERO_ETA)
            return ws, total, correct
        return (ws, *unfused.evaluate(self, ws, X, y))

    def _predict_proba(self, X):
        P = np.empty((X.shape[0], self.n_classes), self.dtype)
        no_labels = np.zeros(0, np.int64)
        for start, chunk in self._chunks(X):
            ws = self._eval_chunk(chunk, no_labels)[0]
            P[start:start + chunk.shape[0]] = ws.P
        return P

    def predict_proba(self, X):
        """Class probabilities (N, C) in evaluation mode."""
        return self.forward(X, train=False)

    def predict(self, X):
        """Predicted class indices (N,) in evaluation mode."""
        return self.predict_proba(X).argmax(axis=1)

    def _loss_acc_eval(self, X, y):
        """Mean loss and accuracy in evaluation mode, one pass."""
        total, correct = 0.0, 0
        for start, chunk in self._chunks(X):
            _, t, c = self._eval_chunk(chunk, y[start:start + chunk.shape[0]])
            total, correct = total + t, correct + c
        return total / X.shape[0], correct / X.shape[0]

    def _checked(self, X, y):
        X = _checks.check_X(X, self.n_features, self.dtype)
        return X, _checks.check_y(y, self.n_classes, X.shape[0])

    def loss(self, X, y, train=False):
        """Mean cross-entropy.  train=True computes the training objective: the batch's own BN
        statistics (the running ones are not touched) and dropout with the masks of drop_key."""
        X, y = self._checked(X, y)
        if train:
            return self._forward_train(X, y, update_stats=False)
        return self._loss_acc_eval(X, y)[0]

    def cost(self, X, y, lam=0.0, train=False):
        """Mean cross-entropy + lam * sum of squared weights."""
        lam = _checks.check_nonnegative(lam, "lam")
        return self.loss(X, y, train) + lam * self.l2()

    def accuracy(self, X, y):
        """Fraction of rows whose predicted class is y (evaluation mode)."""
        X, y = self._checked(X, y)
        return self._loss_acc_eval(X, y)[1]

    def loss_and_grad(self, X, y, lam=0.0, update_stats=True):
        """Training-mode forward and backward on one batch.  Fills `grads` (views of `dtheta`)
        and returns (cost, loss)."""
        lam = _checks.check_nonnegative(lam, "lam")
        X, y = self._checked(X, y)
        loss = self._forward_train(X, y, update_stats)
        self._backward(y, lam)
        return loss + lam * self.l2(), loss

    def backward(self, y, lam=0.0):
        """Gradients for the batch of the last `forward(X, train=True)`; fills `grads` and
        returns it."""
        if self._train_ws is None:
            raise ValueError("backward needs a training forward first: call "
                             "forward(X, train=True) or use loss_and_grad(X, y, lam).")
        lam = _checks.check_nonnegative(lam, "lam")
        y = _checks.check_y(y, self.n_classes, self._train_ws.n)
        self._backward(y, lam)
        return self.grads

    def relu_pattern(self):
        """Which hidden units were active (> 0) in the last training forward, concatenated
        over layers.  The gradient check uses it to see a ReLU kink being crossed."""
        ws = self._train_ws
        if ws is None:
            return np.zeros(0, bool)
        return np.concatenate([h.ravel() > 0 for h in ws.H]) if ws.H else np.zeros(0, bool)

    def __repr__(self):
        sizes = "-".join(map(str, self.sizes))
        drop = "" if not any(self.dropout) else f", dropout={list(self.dropout)}"
        return (f"Network({sizes}, batch_norm={self.batch_norm}, init={self.init!r}, "
                f"dtype={self.dtype.name}{drop})")
