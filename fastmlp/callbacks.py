"""Keras-style callbacks for Sequential.fit: EarlyStopping, ModelCheckpoint, and Callback to
write your own.

    model.fit(X, y, validation_data=(Xv, yv), epochs=50, callbacks=[
        EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True),
        ModelCheckpoint("best.npz", monitor="val_accuracy", save_best_only=True)])

As in Keras 3: each callback's on_epoch_end(epoch, logs) runs at the end of every epoch (epoch
counts from 0) with logs holding the FitHistory keys of that epoch (loss, accuracy, val_loss,
val_accuracy, lr); setting model.stop_training = True ends the fit after that epoch, and
FitHistory then holds the epochs that ran.  EarlyStopping's rule is fastmlp.stopping.Plateau, the
one `fastmlp train --early-stopping` uses; with restore_best_weights it puts back the best epoch's
weights and BN running statistics at the end of the fit, whether it stopped early or not (Keras
3's behaviour).  Not carried over from Keras: EarlyStopping's baseline, ModelCheckpoint's
save_weights_only and save_freq (a checkpoint is a whole fastmlp model file, once an epoch).
"""
import numbers

from .fitting import nonnegative_int
from .stopping import Plateau, mode_of


class Callback:
    """Base class: override any of on_train_begin, on_epoch_end, on_train_end.  `model` is the
    Sequential being fitted (set before on_train_begin)."""
    model = None

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass


class EarlyStopping(Callback):
    """Stop the fit when `monitor` has not improved by more than min_delta for `patience`
    epochs in a row; mode "auto" minimises losses and maximises accuracies."""

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto",
                 restore_best_weights=False, start_from_epoch=0):
        self.monitor, self.mode = _monitor(monitor), _mode(mode, monitor)
        self.min_delta = _number("min_delta", min_delta)
        self.patience = nonnegative_int("patience", patience)
        self.start_from_epoch = nonnegative_int("start_from_epoch", start_from_epoch)
        self.verbose, self.restore_best_weights = verbose, bool(restore_best_weights)
        self.on_train_begin()

    def on_train_begin(self, logs=None):
        self.rule = Plateau(self.mode, self.min_delta, self.patience)
        self.best_weights, self.best_epoch, self.stopped_epoch = None, 0, 0

    @property
    def best(self):
        return self.rule.best

    @property
    def wait(self):
        return self.rule.wait

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.start_from_epoch:
            return
        if self.rule.update(logs[self.monitor], epoch):
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.net.get_state()
        elif self.rule.exhausted:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.net.set_state(self.best_weights)

    def __repr__(self):
        return (f"EarlyStopping(monitor={self.monitor!r}, min_delta={self.min_delta:g}, patience="
                f"{self.patience}, restore_best_weights={self.restore_best_weights})")


class ModelCheckpoint(Callback):
    """Save the model (Sequential.save: a fastmlp model file, .npz) at the end of every epoch,
    or with save_best_only only when `monitor` is better than at every save before (and better
    than initial_value_threshold).  filepath may hold str.format fields of the epoch (from 1)
    and the logs, e.g. "ckpt-{epoch:02d}-{val_accuracy:.3f}.npz"."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, mode="auto",
                 initial_value_threshold=None):
        self.filepath = str(filepath)
        if not self.filepath.endswith(".npz"):
            raise ValueError(f"ModelCheckpoint filepath must end in .npz (a fastmlp model file, which "
                             f"fastmlp.load_model reads); got {self.filepath!r}.")
        self.monitor, self.mode = _monitor(monitor), _mode(mode, monitor)
        self.verbose, self.save_best_only = verbose, bool(save_best_only)
        self.initial_value_threshold = (None if initial_value_threshold is None
                                        else _number("initial_value_threshold", initial_value_threshold))
        self.on_train_begin()

    def on_train_begin(self, logs=None):
        self.rule = Plateau(self.mode, 0.0, 0)
        self.rule.best = self.initial_value_threshold

    @property
    def best(self):
        return self.rule.best

    def on_epoch_end(self, epoch, logs=None):
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"ModelCheckpoint filepath {self.filepath!r} cannot be filled in ({e!r}); "
                             f"it may use {{epoch}} and {', '.join(f'{{{k}}}' for k in logs)}.") from None
        if self.save_best_only:
            if not self.rule.update(logs[self.monitor], epoch):
                if self.verbose:
                    print(f"Epoch {epoch + 1}: {self.monitor} did not improve from {self.rule.best:.5f}")
                return
        if self.verbose:
            print(f"Epoch {epoch + 1}: saving model to {path}")
        self.model.save(path)


class EpochHook:
    """The Trainer's on_evaluate callback for Sequential.fit: at each epoch's end, the logs to
    every callback, and model.stop_training to the Trainer."""

    def __init__(self, model, callbacks, steps_per_epoch, logs_of):
        self.model, self.callbacks, self.spe, self.logs_of = model, callbacks, steps_per_epoch, logs_of

    def begin(self, keys):
        """Refuse a callback that monitors what this fit does not measure; then on_train_begin."""
        for cb in self.callbacks:
            monitor = getattr(cb, "monitor", None)
            if monitor is not None and monitor not in keys:
                hint = " pass validation_data= or validation_split= to fit, or" if monitor.startswith("val_") else ""
                raise ValueError(f"{type(cb).__name__} monitors {monitor!r}, which this fit does not measure "
                                 f"(it has {', '.join(keys)});{hint} monitor one of those.")
        self.model.stop_training = False
        for cb in self.callbacks:
            cb.set_model(self.model)
            cb.on_train_begin()

    def __call__(self, trainer):
        step = int(trainer.history_.evals[-1][0])
        if step == 0 or step % self.spe:
            return
        logs = self.logs_of(trainer.history_.evals[-1], trainer.history_.eta)
        for cb in self.callbacks:
            cb.on_epoch_end(step // self.spe - 1, logs)
        if self.model.stop_training:
            trainer.stop_requested = True

    def end(self):
        for cb in self.callbacks:
            cb.on_train_end()


def check_callbacks(callbacks):
    """fit's callbacks= as a list of fastmlp.callbacks.Callback."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback) or not isinstance(callbacks, (list, tuple)):
        raise ValueError(f"callbacks must be a list of fastmlp callbacks, e.g. [EarlyStopping(patience=3)]; "
                         f"got {type(callbacks).__name__}.")
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise ValueError(f"callbacks must hold fastmlp.callbacks.Callback objects (EarlyStopping, "
                             f"ModelCheckpoint or a subclass of Callback); got {cb!r}.")
    return list(callbacks)


def _monitor(monitor):
    if not isinstance(monitor, str) or not monitor:
        raise ValueError(f"monitor must be the name of a logged value such as 'val_loss' or "
                         f"'val_accuracy'; got {monitor!r}.")
    return monitor


def _mode(mode, monitor):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max'; got {mode!r}.")
    return mode if mode != "auto" else mode_of(monitor)


def _number(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not abs(value) < float("inf"):
        raise ValueError(f"{name} must be a finite number; got {value!r}.")
    return float(value)
