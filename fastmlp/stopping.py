"""Early stopping and best-weights restore: the rule, and the Trainer hook that applies it.

`Plateau` is Keras's EarlyStopping rule, shared by `fastmlp train --early-stopping PATIENCE` and
fastmlp.callbacks.EarlyStopping: an evaluation improves on the best one when it is better by more
than min_delta; training stops after `patience` evaluations in a row without improvement.
(MLPClassifier follows scikit-learn's own tol / n_iter_no_change rule instead: `EpochRule`.)

`RunStopping` is the command line's hook (Trainer(on_evaluate=[...])).  It watches the evaluations
after training steps (each epoch's end, and every --eval-every steps; not the one before the first
step), keeps a copy of the best evaluation's weights and running statistics in memory, and writes
it to best.npz in the run folder whenever it changes.  A resumed run rebuilds the rule's state by
replaying the checkpoint's evaluations through it and takes the best weights from best.npz, so an
interrupted run stops where the uninterrupted one would and restores the same weights.  At the end
(`finish`) model.npz gets the best weights (unless --no-restore-best) and best.npz is removed.
"""
import math
import numbers
from pathlib import Path

import numpy as np

from . import checkpoint
from .history import EVAL_COLUMNS
from .modelfile import CheckpointError

BEST = "best.npz"
MONITORS = ("val_loss", "val_accuracy")      # what --monitor may name (columns of history.csv)


def mode_of(monitor):
    """'max' for an accuracy, 'min' for a loss or cost (Keras's mode="auto")."""
    return "max" if "acc" in monitor else "min"


class Plateau:
    """Keras's EarlyStopping rule for one monitored number.

    best: the best value so far (None before the first); best_at: where it was seen (the
    caller's label: an epoch or a step); wait: evaluations since the last improvement."""

    def __init__(self, mode, min_delta, patience):
        self.mode, self.min_delta, self.patience = mode, abs(float(min_delta)), patience
        self.best = self.best_at = None
        self.wait = 0

    def improves(self, value):
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, value, at):
        """Record an evaluation; True if it is the new best."""
        if self.improves(value):
            self.best, self.best_at, self.wait = float(value), at, 0
            return True
        self.wait += 1
        return False

    @property
    def exhausted(self):
        """patience evaluations in a row without improvement (patience 0 acts as 1, as in Keras)."""
        return self.wait >= max(1, self.patience)


class RunStopping:
    """`fastmlp train --early-stopping PATIENCE`: a Trainer on_evaluate callback."""

    def __init__(self, config, out):
        self.config, self.out = config, Path(out)
        self.column = EVAL_COLUMNS.index(config.monitor)
        self.rule = Plateau(mode_of(config.monitor), config.min_delta, config.early_stopping)
        self.best_state = None          # get_state() of the best evaluation (with restore_best)
        self.stopped_step = None

    def __call__(self, trainer):
        row = trainer.history_.evals[-1]
        step = int(row[0])
        if step == 0:                   # the evaluation before training: nothing trained yet
            return
        if self.rule.update(row[self.column], step) and self.config.restore_best:
            self.best_state = trainer.net.get_state()
            checkpoint.save(self.out / BEST, trainer.net, self.config, step, data=trainer.data)
        if self.rule.exhausted:
            self.stopped_step = step
            trainer.stop_requested = True

    def resume(self, trainer):
        """Rebuild the rule's state from the evaluations of a restored trainer, and the best
        weights from best.npz (when it holds that evaluation's)."""
        for row in trainer.history_.evals:
            step = int(row[0])
            if step and self.stopped_step is None:
                self.rule.update(row[self.column], step)
                if self.rule.exhausted:      # stopped, but interrupted before it finished
                    self.stopped_step = step
                    trainer.stop_requested = True
        path = self.out / BEST
        if self.config.restore_best and self.rule.best_at is not None and path.exists():
            try:
                saved = checkpoint.load(path)
            except CheckpointError:     # cut short by a crash: the replay will find another best
                return
            if saved.step == self.rule.best_at and saved.net.sizes == trainer.net.sizes:
                self.best_state = saved.net.get_state()

    def finish(self, trainer, log):
        """Restore the best weights (if asked); return the metrics.json entry."""
        rule, spe = self.rule, trainer.steps_per_epoch_
        restored = False
        if self.config.restore_best and rule.best_at is not None and rule.best_at != trainer.step_:
            if self.best_state is None:
                log(f"Could not restore the weights of step {rule.best_at} (the best {self.config.monitor}): "
                    f"{self.out / BEST} is missing or from another evaluation; model.npz holds the last "
                    f"weights.")
            else:
                trainer.net.set_state(self.best_state)
                restored = True
        (self.out / BEST).unlink(missing_ok=True)
        entry = {"patience": self.config.early_stopping, "monitor": self.config.monitor,
                 "min_delta": self.config.min_delta, "stopped_early": self.stopped_step is not None,
                 "stopped_step": self.stopped_step,
                 "stopped_epoch": None if self.stopped_step is None else self.stopped_step / spe,
                 "best_step": rule.best_at, "best_epoch": None if rule.best_at is None else rule.best_at / spe,
                 f"best_{self.config.monitor}": rule.best, "restored_best": restored}
        if self.stopped_step is not None:
            at = "restored" if restored else "kept the last weights; the best were"
            log(f"Stopped early at step {self.stopped_step} (epoch {self.stopped_step / spe:g}): "
                f"{self.config.monitor} did not improve for {self.config.early_stopping} evaluation(s); "
                f"{at} those of step {rule.best_at} (epoch {rule.best_at / spe:g}, "
                f"{self.config.monitor} {_shown(self.config.monitor, rule.best)}).")
        return entry


class EpochRule:
    """MLPClassifier's stopping rule, scikit-learn's MLPClassifier's own, after each epoch (each
    evaluation after a training step): a Trainer on_evaluate callback that appends the epoch's
    training loss to est.loss_curve_ (mean batch loss + alpha * sum of squared weights at the
    epoch's end) and, with early_stopping, its validation accuracy to est.validation_scores_.

    An epoch counts as no improvement when the score is below best_validation_score_ + tol
    (with early_stopping) or the loss above best_loss_ - tol (without); the best moves on any
    gain, however small.  Training stops once more than n_iter_no_change epochs in a row count
    so.  With early_stopping, `best_state` holds the weights of the best-scoring epoch."""

    def __init__(self, est, early_stopping):
        self.est, self.early_stopping, self.best_state = est, early_stopping, None

    def __call__(self, trainer):
        evals, est = trainer.history_.evals, self.est
        step = int(evals[-1][0])
        if step == 0:
            return
        row = dict(zip(EVAL_COLUMNS, evals[-1]))
        steps = slice(int(evals[-2][0]), step)             # this epoch's steps
        est.loss_curve_.append(float(np.mean(trainer.history_.batch_loss[steps])
                                     + row["train_cost"] - row["train_loss"]))
        if self.early_stopping:
            score = row["val_accuracy"]
            est.validation_scores_.append(score)
            worse = score < est.best_validation_score_ + est.tol
            if score > est.best_validation_score_:
                est.best_validation_score_, self.best_state = score, trainer.net.get_state()
        else:
            worse = est.loss_curve_[-1] > est.best_loss_ - est.tol
            est.best_loss_ = min(est.best_loss_, est.loss_curve_[-1])
        est._no_improvement_count = est._no_improvement_count + 1 if worse else 0
        if est._no_improvement_count > est.n_iter_no_change:
            trainer.stop_requested = True


def for_run(config, out):
    """The run's RunStopping, or None without --early-stopping."""
    return None if config.early_stopping is None else RunStopping(config, out)


def check_validation(config, n_val, source):
    """--early-stopping watches validation scores: refuse a run without validation rows."""
    if config.early_stopping is not None and not n_val:
        raise ValueError(f"--early-stopping {config.early_stopping} watches {config.monitor} on the "
                         f"validation rows, but {source or 'the data'} has none; keep validation rows "
                         f"(--n-val N with --split a3, or a PATH.npz with X_val and y_val) or drop "
                         f"--early-stopping.")


def _shown(monitor, value):
    return f"{100 * value:.2f}%" if "acc" in monitor and math.isfinite(value) else f"{value:.4f}"


def check_config(config):
    """TrainConfig.validate's checks of the early-stopping fields; a setting that would do
    nothing without --early-stopping is refused rather than ignored."""
    patience = config.early_stopping
    if patience is not None and (isinstance(patience, bool) or not isinstance(patience, numbers.Integral)
                                 or patience < 1):
        raise ValueError(f"early_stopping (--early-stopping PATIENCE) must be an integer >= 1, the evaluations "
                         f"without improvement before training stops; got {patience!r}.")
    if config.monitor not in MONITORS:
        raise ValueError(f"monitor (--monitor) must be one of {', '.join(MONITORS)}; got {config.monitor!r}.")
    delta = config.min_delta
    if isinstance(delta, bool) or not isinstance(delta, numbers.Real) or not 0 <= delta < math.inf:
        raise ValueError(f"min_delta (--min-delta) must be a finite number >= 0; got {delta!r}.")
    if patience is None:
        for name, flag, default in (("monitor", "--monitor", "val_loss"), ("min_delta", "--min-delta", 0.0),
                                    ("restore_best", "--no-restore-best", True)):
            if getattr(config, name) != default:
                raise ValueError(f"{name} ({flag}) only acts with --early-stopping PATIENCE; got {name}="
                                 f"{getattr(config, name)!r} without it. Add --early-stopping or drop {flag}.")
