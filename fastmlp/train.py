"""Mini-batch training of a Network (SGD or another fastmlp.optim optimiser, dropout and
augmentation on the fly): the loop a reader follows top to bottom (`Trainer.fit`).

Choices a reader should know:
- Each epoch draws its own permutation from np.random.default_rng([seed, 0, epoch]), so a run is
  reproducible bit for bit and a resumed run can rebuild the epoch it stopped in.
- Each step gathers its batch's rows of the training set inside its compiled call, into a
  preallocated buffer: no copy of the whole shuffled set (553 MB at the study's size, 0.3 s an
  epoch), and no step allocates.
- Steps run in runs of S in one compiled call (S sized to ~50 ms of work, cut at evaluations and
  epoch ends): a call from Python and the loop around it cost about as much as a whole step of
  a 50-unit net.  Ctrl-C, the progress bar and the divergence check act between runs; a run
  stops after the first step whose loss is not finite.  With --augment, steps go one by one
  (each batch is augmented by a call of its own).
- The last partial batch of an epoch is dropped: an epoch is n_train // batch steps, all batches
  have the same size (one workspace, no tiny batch for BN statistics), and the dropped rows change
  with every shuffle.  The study's 45,000 rows / 100 divide evenly, so nothing is dropped there.
- Evaluation uses the BN running statistics.  The train curves are measured on a fixed seeded
  subset of `train_eval` rows (0: all, as the reports do): at the study's size a pass over all
  45,000 training rows costs about a third of an epoch of training, 5,000 rows a twenty-fifth.
  The final accuracies always use every row.
"""
import math
import signal
import threading
import time
from pathlib import Path

import numba
import numpy as np

from . import _checks, checkpoint
from .divergence import TrainingDiverged, advice, nonfinite_scores, nonfinite_state
from .history import EVAL_COLUMNS, History   # History: imported from here by other modules too
from .kernels.rng import stream_key
from .network import DROPOUT_STREAM
from .progress import CompileClock, TrainProgress
from .threads import blas_single_threaded
from .workspace import aligned_empty


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training at a step boundary; `path` is the checkpoint saved there (or None)."""

    def __init__(self, step, path):
        super().__init__(step, path)
        self.step, self.path = step, path

    def __str__(self):
        saved = f"saved the checkpoint {self.path}" if self.path else "no checkpoint path, nothing saved"
        return f"interrupted at step {self.step}; {saved}."


class Trainer:
    """Fits `net` with the schedule, L2 penalty and batches of `config`.

    checkpoint_path: where to save at the end of every epoch and on Ctrl-C (None: nowhere).
    data: the Splits (or anything with mean, std, label_names, image_shape, source) stored in
    checkpoints; augmentation needs its mean, std and image_shape (the training rows are
    standardised images, and augmentation works on the raw ones).  progress: show a bar (or,
    without a terminal, a line per epoch) and the compile notice (fastmlp.progress).  Fitted
    state: step_, history_, seconds_ (compile / train / eval / checkpoint: compile is Numba
    compiling or loading the kernels, left out of train and eval), optimizer_ (its memory is
    checkpointed).
    on_evaluate: callables called with the trainer after each evaluation (history_.evals[-1]
    is the new row), e.g. fastmlp.tblog.TensorBoardLog; one that sets `stop_requested` ends
    the run there (fastmlp.stopping: early stopping), and the History is cut to the steps taken.
    knob_names: TrainConfig field -> the name a TrainingDiverged message uses for it (an adapter
    with parameters of its own, e.g. lam -> alpha); unset fields read 'eta_max (--eta-max)'.
    """
    knob_names = None

    def __init__(self, net, config, checkpoint_path=None, data=None, progress=False, schedule=None,
                 on_evaluate=()):
        self.net, self.config = net, config.validate()
        # schedule: a callable steps_per_epoch -> schedule (eta(t), total_steps) replacing the
        # config's cyclic/constant one (the Keras-style API counts epochs instead of cycles)
        self.schedule = schedule
        self.checkpoint_path = None if checkpoint_path is None else Path(checkpoint_path)
        self.data, self.progress = data, progress
        self.on_evaluate = list(on_evaluate)
        self.step_, self.history_, self.saved_step_ = 0, None, None
        self.stop_requested = False    # set by an on_evaluate callback: end after this evaluation
        self.first_step_unix_ = None   # wall clock after this session's first step (start-up)
        self.seconds_ = {"compile": 0.0, "train": 0.0, "eval": 0.0, "checkpoint": 0.0}
        self._jit = CompileClock()     # fit's clock of Numba's compiler while it runs
        self.optimizer_ = self.config.make_optimizer().bind(net.theta.size, net.dtype)
        self.augment_ = self.config.make_augment()

    def restore(self, ckpt):
        """Continue from a checkpoint.Checkpoint of this run."""
        # the data must be the run's and the step within it (checkpoint.py owns these checks)
        checkpoint.check_resume(ckpt, self.data, self.checkpoint_path)
        self.net.set_state(ckpt.net.get_state())
        if self.optimizer_.state.size:
            saved = ckpt.config.make_optimizer().config()
            got = None if ckpt.optimizer_state is None else ckpt.optimizer_state.shape
            if saved != self.optimizer_.config() or got != self.optimizer_.state.shape:
                raise ValueError(f"the checkpoint was trained with {saved} (memory of shape {got}), "
                                 f"this run is configured with {self.optimizer_.config()} (memory of "
                                 f"shape {self.optimizer_.state.shape}); resume with the optimizer "
                                 f"settings of the interrupted run.")
            self.optimizer_.state[...] = ckpt.optimizer_state
        self.step_, self.saved_step_ = ckpt.step, ckpt.step
        self.history_ = History.from_arrays(ckpt.history)
        self.seconds_.update(ckpt.seconds)
        return self

    def fit(self, X, y, X_val=None, y_val=None, X_test=None, y_test=None):
        """Train on X, y; X_val, y_val give the validation curves, X_test, y_test the test
        curves (used only with config.eval_test, which needs them)."""
        cfg, net = self.config, self.net
        X, y, val = self._checked(X, y, X_val, y_val)
        test = self._test_rows(X_test, y_test)
        bad = nonfinite_state(net, self.optimizer_)
        if bad:                   # a network or checkpoint given in this state: nothing to train
            raise ValueError(f"cannot train: {bad} before the first step (step {self.step_}); start "
                             f"from a fresh Network or a checkpoint written by a run that did not diverge.")
        n, batch = X.shape[0], cfg.batch
        self.steps_per_epoch_ = spe = n // batch
        schedule = (self.schedule or cfg.make_schedule)(spe)
        total = self._start_history(schedule)
        opt, augmenter, dropout = self.optimizer_, self._augmenter(X), any(net.dropout)
        opt.set_cycle(schedule.momentum(np.arange(total))
                      if cfg.cycle_momentum and hasattr(schedule, "momentum") else None)
        # the update multiplies in net.dtype: eta rounded to it, as the step takes a float64
        self._etas = etas = self.history_.eta.astype(net.dtype).astype(np.float64)
        train_eval = self._train_eval_rows(X, y)
        labels = np.empty(spe * batch, np.int64)           # this epoch's labels, in order
        losses = np.empty(spe)
        if augmenter:
            from .augment import batch_key
            batch_rows = aligned_empty((batch, X.shape[1]), net.dtype)   # as the step's own
            augment, threads = augmenter.apply, numba.get_num_threads()
        chunk = _Chunks()

        with TrainProgress(self.progress, total, spe, self.step_) as bar, \
                CompileClock(bar.notice) as self._jit, _DeferredInterrupt() as interrupt, \
                blas_single_threaded():
            if not self.history_.evals:
                self._evaluate(train_eval, val, test)
            while self.step_ < total and not self.stop_requested:
                tic = time.perf_counter()
                epoch, b = divmod(self.step_, spe)
                order = np.random.default_rng([cfg.seed, 0, epoch]).permutation(n)[:spe * batch]
                np.take(y, order, out=labels, mode="clip")   # "raise" would buffer `out`
                self.seconds_["train"] += time.perf_counter() - tic
                while b < spe and self.step_ < total and not self.stop_requested:
                    # a run of steps up to the next evaluation, the epoch's end or the run's,
                    # sized to take ~CHUNK_SECONDS (Ctrl-C and the bar answer within that)
                    t0 = self.step_
                    S = 1 if augmenter else min(spe - b, total - t0, self._to_next_eval(t0),
                                                chunk.size)
                    tic, jit = time.perf_counter(), self._jit.seconds
                    # each step's dropout key (a compiled call each: only when dropout is on)
                    keys = (np.array([stream_key(cfg.seed, t, DROPOUT_STREAM)
                                      for t in range(t0, t0 + S)], np.uint64)
                            if dropout else np.zeros(S, np.uint64))
                    rows = slice(b * batch, (b + S) * batch)
                    if augmenter:    # the batch's rows augmented into batch_rows first
                        augment(batch_rows, X, order[rows], batch_key(cfg.seed, t0), threads)
                        augment = augmenter.apply_trusted     # checked on the first step
                        net.drop_key = keys[0]
                        losses[0] = net._train_step(batch_rows, labels[rows], cfg.lam, etas[t0],
                                                    None, opt, t0)
                        done = 1
                    else:            # forward, backward and update of S steps in one call
                        done = net._train_steps(X, labels[rows], cfg.lam, etas[t0:t0 + S],
                                                order[rows], opt, t0, keys, losses)
                    self.history_.batch_loss[t0:t0 + done] = losses[:done]
                    if not math.isfinite(losses[done - 1]):
                        self.step_ = t0 + done - 1          # steps before it are taken
                        raise self.diverged(f"the loss is {losses[done - 1]}", self.step_)
                    bad = nonfinite_state(net, opt)
                    if bad:                                 # somewhere in steps t0 .. t0 + done - 1
                        self.step_ = t0 + done - 1
                        raise self.diverged(bad if done == 1 else f"{bad} (checked after steps "
                                             f"{t0}-{self.step_})", self.step_)
                    self.step_, b = t0 + done, b + done
                    if self.first_step_unix_ is None:
                        self.first_step_unix_ = time.time()
                    seconds = self._charge("train", tic, jit)
                    chunk.measured(done, seconds)
                    if self.step_ % spe == 0 or self.step_ == total or \
                            (cfg.eval_every and self.step_ % cfg.eval_every == 0):
                        self._evaluate(train_eval, val, test)
                    bar.advance(self.step_, done, losses[done - 1], self.history_)
                    if interrupt.requested:
                        self.save_checkpoint()
                        raise TrainingInterrupted(self.step_, self.checkpoint_path)
                if self.step_ < total and not self.stop_requested:
                    self.save_checkpoint()                  # end of an epoch
        if self.stop_requested:     # a finished run: its History holds the steps it took
            self.history_.truncate(self.step_)
        return self

    def _charge(self, part, tic, jit):
        """Add the seconds since `tic` to seconds_[part], but those Numba spent compiling since
        self._jit.seconds was `jit` to seconds_["compile"]; return the seconds charged to part."""
        jit = self._jit.seconds - jit
        seconds = time.perf_counter() - tic - jit
        self.seconds_[part] += seconds
        self.seconds_["compile"] += jit
        return seconds

    def _to_next_eval(self, t):
        """Steps from step t to the next --eval-every evaluation (no limit without one)."""
        every = self.config.eval_every
        return every - t % every if every else 1 << 62

    def _augmenter(self, X):
        """The Augmenter of this run's --augment spec, or None when it is off."""
        if not self.augment_.enabled:
            return None
        from .augment import Augmenter
        data = self.data
        if data is None or getattr(data, "image_shape", None) is None:
            raise ValueError(f"augment={self.config.augment!r} needs the images' shape and the "
                             f"standardisation's mean and std: pass data= (a fastmlp.data.Splits, or "
                             f"an object with image_shape, mean and std) to the Trainer.")
        augmenter = Augmenter(self.augment_, data.image_shape, data.mean, data.std,
                              getattr(data, "value_range", 255.0))
        std = np.asarray(data.std)
        if std.min() < 0.01 * np.median(std):
            import warnings
            warnings.warn(f"augmenting rows standardised per pixel whose std ranges from {std.min():.3g} to "
                          f"{std.max():.3g}: a pixel moved onto a low-std spot is scaled up to "
                          f"{np.median(std) / std.min():.0f}x (measured on Fashion-MNIST: 22 % accuracy "
                          f"instead of 80 %). Standardise per channel (standardize='channel', the default "
                          f"with augment).", stacklevel=3)
        return augmenter

    def _checked(self, X, y, X_val, y_val):
        """Inputs as the trusted internals want them: C-contiguous net.dtype rows, int64 labels."""
        net = self.net
        X = _checks.check_X(X, net.n_features, net.dtype, "X_train")
        y = _checks.check_y(y, net.n_classes, X.shape[0], "y_train")
        val = None
        if X_val is not None and len(X_val):
            X_val = _checks.check_X(X_val, net.n_features, net.dtype, "X_val")
            val = (X_val, _checks.check_y(y_val, net.n_classes, X_val.shape[0], "y_val"))
        self.config.check_data(X.shape[0], net.n_features, net.n_classes)
        return X, y, val

    def _test_rows(self, X_test, y_test):
        """The test rows eval_test measures at each evaluation; None without eval_test."""
        if not self.config.eval_test:
            return None
        if X_test is None or not len(X_test):
            raise ValueError("eval_test (--eval-test) measures the test set at each evaluation, but no "
                             "test rows were given; pass X_test and y_test to fit, or drop --eval-test.")
        net = self.net
        X_test = _checks.check_X(X_test, net.n_features, net.dtype, "X_test")
        return X_test, _checks.check_y(y_test, net.n_classes, X_test.shape[0], "y_test")

    def _start_history(self, schedule):
        """A fresh History, or check that a restored one is this schedule's; return total steps."""
        total = schedule.total_steps
        if self.history_ is None:
            self.history_ = History(schedule.eta(np.arange(total)))
        elif len(self.history_.eta) != total:
            raise ValueError(f"the restored run has {len(self.history_.eta)} steps but this data and "
                             f"config make {total}; resume with the data and config of that run.")
        return total

    def _train_eval_rows(self, X, y):
        k = self.config.train_eval
        if k == 0 or k >= X.shape[0]:
            return X, y
        rows = np.sort(np.random.default_rng([self.config.seed, 1]).choice(X.shape[0], k, replace=False))
        return X[rows], y[rows]

    def _evaluate(self, train_rows, val, test=None):
        """Append one row of EVAL_COLUMNS, in evaluation mode (BN running statistics)."""
        tic, jit = time.perf_counter(), self._jit.seconds
        penalty = self.config.lam * float(self.net.l2())
        row = [self.step_, self.step_ / self.steps_per_epoch_]
        measured = []                                # columns of the parts given: checked below
        for part in (train_rows, val, test):
            if part is None:
                row += [math.nan] * 3
            else:
                loss, acc = self.net._loss_acc_eval(*part)
                measured += range(len(row), len(row) + 3)
                row += [loss, loss + penalty, acc]
        self._charge("eval", tic, jit)
        bad = nonfinite_scores([EVAL_COLUMNS[k] for k in measured], [row[k] for k in measured])
        if bad:                                      # found after the last step taken
            raise self.diverged(bad, max(self.step_ - 1, 0))
        self.history_.evals.append(row)
        for callback in self.on_evaluate:
            callback(self)

    def save_checkpoint(self):
        """Write the checkpoint; a network that holds a NaN or inf is refused (TrainingDiverged),
        so that the last good checkpoint stays."""
        if self.checkpoint_path is None:
            return
        bad = nonfinite_state(self.net, self.optimizer_)
        if bad:
            raise self.diverged(bad, max(self.step_ - 1, 0))
        tic = time.perf_counter()
        checkpoint.save(self.checkpoint_path, self.net, self.config, self.step_,
                        self.history_.to_arrays(), self.data, self.seconds_, self.optimizer_.state)
        self.saved_step_ = self.step_
        self.seconds_["checkpoint"] += time.perf_counter() - tic

    def diverged(self, what, t):
        """The TrainingDiverged to raise for `what` (words: what is not finite), found after step t:
        the step, its learning rate, the checkpoint kept and the setting to change."""
        etas = getattr(self, "_etas", np.zeros(0))       # set by fit
        eta = float(etas[min(t, len(etas) - 1)]) if len(etas) else math.nan
        if self.checkpoint_path is None:
            kept = "no checkpoint is kept (no checkpoint path)"
        elif self.saved_step_ is None:
            kept = "no checkpoint was written yet (it diverged in the first epoch)"
        else:
            kept = f"the last good checkpoint is {self.checkpoint_path} (step {self.saved_step_})"
        hypers = self.optimizer_.hypers(0, t + 1)      # as the steps used them (cycled or fixed)
        knob, fix = advice(self.config, etas[:t + 1], hypers, self.knob_names)
        epoch = t // getattr(self, "steps_per_epoch_", 1 << 62) + 1
        return TrainingDiverged(f"training diverged: {what} at step {t} (epoch {epoch}) with learning "
                                f"rate {eta:.6g}; {kept}. {fix}", step=t, eta=eta, knob=knob)


class _DeferredInterrupt:
    """Turns Ctrl-C into a flag the loop checks between steps, so the checkpoint written then is at
    a step boundary: a step cut after its forward pass has already moved the BN running statistics,
    and resuming from there would not match an uninterrupted run.  A second Ctrl-C stops at once.
    Only the main thread can own the handler; elsewhere Ctrl-C behaves as usual."""

    def __enter__(self):
        self.requested = False
        self.installed = threading.current_thread() is threading.main_thread()
        if self.installed:
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self.installed:   # None: the old handler was not set from Python
            signal.signal(signal.SIGINT, self.previous or signal.default_int_handler)


class _Chunks:
    """How many steps the trainer hands to one compiled call: as many as take ~CHUNK_SECONDS,
    from the time steps took so far (one step at first, so the first call, which may compile,
    stays short).  The size changes nothing in the results: a run of S steps in one call gives
    the same bits as S calls (tests/test_train.py)."""
    CHUNK_SECONDS = 0.05
    MAX = 4096

    def __init__(self):
        self.size, self.calls, self.steps, self.seconds = 1, 0, 0, 0.0

    def measured(self, steps, seconds):
        self.calls += 1
        if self.calls > 1:           # the first call may hold the kernels' compile
            self.steps, self.seconds = self.steps + steps, self.seconds + seconds
        per_step = self.seconds / self.steps if self.steps else self.CHUNK_SECONDS
        self.size = int(min(self.MAX, 2 * self.size, max(1, self.CHUNK_SECONDS / per_step)))
