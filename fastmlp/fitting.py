"""What Sequential.fit (fastmlp.models) and MLPClassifier (fastmlp.sklearn) put around the Trainer:
the cyclical rate of the Keras-style API, schedules counted from a fit's step 0, an optimiser whose
step count goes on across fits, the History a fit returns, and the checks of fit's inputs.
"""
import numbers

import numpy as np

from . import _checks
from .history import EVAL_COLUMNS


class CyclicLR:
    """The triangular cyclical learning rate (Smith 2015), as in the study: from eta_min up to
    eta_max over a half-cycle, back down over the next, and again.

    The half-cycle is `step_size` update steps or `step_size_epochs` epochs (rounded to whole
    steps once the batch size is known); give one.  The run's length is fit's `epochs`; end it
    at a whole number of cycles (epochs = 2 * step_size_epochs * cycles) to finish at eta_min."""

    def __init__(self, eta_min=1e-5, eta_max=1e-1, step_size=None, step_size_epochs=None):
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in (eta_min, eta_max)) \
                or not 0 < eta_min <= eta_max < float("inf"):
            raise ValueError(f"CyclicLR needs 0 < eta_min <= eta_max < inf; got eta_min={eta_min!r}, "
                             f"eta_max={eta_max!r}.")
        if (step_size is None) == (step_size_epochs is None):
            raise ValueError(f"CyclicLR needs the half-cycle as step_size (update steps) or as "
                             f"step_size_epochs (epochs), exactly one; got step_size={step_size!r}, "
                             f"step_size_epochs={step_size_epochs!r}. The study uses step_size_epochs=5.")
        if step_size is not None and (isinstance(step_size, bool) or not isinstance(step_size, numbers.Integral)
                                      or step_size < 1):
            raise ValueError(f"CyclicLR step_size must be an integer number of update steps >= 1; "
                             f"got {step_size!r}.")
        if step_size_epochs is not None and (isinstance(step_size_epochs, bool)
                                             or not isinstance(step_size_epochs, numbers.Real)
                                             or not 0 < step_size_epochs < float("inf")):
            raise ValueError(f"CyclicLR step_size_epochs must be a finite number of epochs > 0; "
                             f"got {step_size_epochs!r}.")
        self.eta_min, self.eta_max = float(eta_min), float(eta_max)
        self.step_size = None if step_size is None else int(step_size)
        self.step_size_epochs = None if step_size_epochs is None else float(step_size_epochs)

    def half_cycle(self, steps_per_epoch):
        """The half-cycle in update steps (TrainConfig.half_cycle's rounding)."""
        if self.step_size is not None:
            return self.step_size
        ns = int(round(self.step_size_epochs * steps_per_epoch))
        if ns < 1:
            raise ValueError(f"CyclicLR step_size_epochs={self.step_size_epochs} is less than half an "
                             f"update step at {steps_per_epoch} steps per epoch; give a longer "
                             f"half-cycle or a smaller batch_size.")
        return ns

    def config_fields(self):
        return {"schedule": "cyclic", "eta_min": self.eta_min, "eta_max": self.eta_max,
                "ns": self.step_size,
                "ns_epochs": self.step_size_epochs if self.step_size is None else 5.0}

    def __repr__(self):
        size = (f"step_size={self.step_size}" if self.step_size is not None
                else f"step_size_epochs={self.step_size_epochs:g}")
        return f"CyclicLR(eta_min={self.eta_min:g}, eta_max={self.eta_max:g}, {size})"


class FitSchedule:
    """What Trainer asks of a schedule: eta(t) for t in [0, total_steps)."""

    def __init__(self, eta, total_steps):
        self._eta, self.total_steps = eta, total_steps

    def eta(self, t):
        return self._eta(t)


class Continuing:
    """An optimiser bound to the network whose step count goes on from the fits before (Adam's
    bias correction), with the interface the compiled step reads: kind, state, hyper(t)."""

    def __init__(self, optimizer):
        self.optimizer, self.t0 = optimizer, optimizer.t
        self.kind, self.state = optimizer.kind, optimizer.state

    def hyper(self, t):
        return self.optimizer.hyper(self.t0 + t)

    def hypers(self, t0, t1):
        return self.optimizer.hypers(self.t0 + t0, self.t0 + t1)

    def set_cycle(self, values):
        """values[t] for this fit's step t: the optimiser counts on from the fits before."""
        self.optimizer.set_cycle(None if values is None else
                                 np.concatenate([np.zeros(self.t0), values]))


class FitHistory:
    """What `fit` returns, as in Keras: `history` maps loss, accuracy, val_loss, val_accuracy and
    lr to one value per epoch; `epoch` lists the epochs (0-based); `params` the fit's settings.

    loss and accuracy are measured on all the training rows at the end of each epoch, in
    evaluation mode (BN running statistics, no dropout), as val_loss and val_accuracy are: so the
    two pairs compare, where Keras's loss is a running mean over the epoch's batches.  loss is
    the mean cross-entropy without the L2 term; lr is the rate of the epoch's last step.
    `run` is the Trainer's History (per step: eta, batch_loss)."""

    def __init__(self, run, steps_per_epoch, params):
        self.run, self.params = run, params
        logs = [epoch_logs(r, run.eta) for r in run.evals if r[0] > 0 and int(r[0]) % steps_per_epoch == 0]
        self.epoch = list(range(len(logs)))
        self.history = {k: [e[k] for e in logs] for k in (logs[0] if logs else ("loss", "accuracy", "lr"))}

    def __repr__(self):
        return f"FitHistory(epochs={len(self.epoch)}, keys={list(self.history)})"



def epoch_logs(row, eta):
    """The Keras names of one evaluation row at an epoch's end (history_.evals): loss, accuracy,
    val_loss and val_accuracy (without validation rows: not there), lr (the epoch's last step's)."""
    r = dict(zip(EVAL_COLUMNS, row))
    logs = {"loss": r["train_loss"], "accuracy": r["train_accuracy"]}
    if not np.isnan(r["val_loss"]):
        logs.update(val_loss=r["val_loss"], val_accuracy=r["val_accuracy"])
    logs["lr"] = float(eta[int(r["step"]) - 1])
    return logs


class ImageData:
    """What the Trainer needs for augmentation (and a checkpoint stores): raw = X * std + mean."""

    def __init__(self, image_shape, mean, std, n_classes, value_range=255.0):
        self.image_shape, self.mean, self.std = image_shape, mean, std
        self.value_range = value_range          # raw pixels lie in [0, value_range]
        self.label_names = [str(c) for c in range(n_classes)]
        self.source = "arrays given to Sequential.fit"


def augmentation_data(augment, image_shape, standardization, n_features, n_classes, value_range=255.0):
    """(the config's augment spec, the Trainer's data object or None).  The data object also
    goes into saved files, so that `fastmlp predict` can standardise raw rows."""
    spec = "none"
    if augment is not None and not (isinstance(augment, str) and augment.strip().lower() in ("", "none")):
        from .augment import Augment, parse_augment
        if not isinstance(augment, (str, Augment)):
            raise ValueError(f"augment must be a spec string such as 'flip,translate=2' or a "
                             f"fastmlp.augment.Augment; got {augment!r}.")
        spec = parse_augment(augment).spec()
        if image_shape is None:
            raise ValueError(f"augment={spec!r} needs image_shape=(C, H, W), the layout of a row "
                             f"(CIFAR-10: (3, 32, 32), Fashion-MNIST: (1, 28, 28)).")
    if image_shape is None and standardization is None:
        return spec, None
    shape = (n_features,) if image_shape is None else tuple(int(s) for s in image_shape)
    if int(np.prod(shape)) != n_features:
        raise ValueError(f"image_shape={tuple(image_shape)!r} holds {int(np.prod(shape))} values but "
                         f"the rows of X have {n_features}; give the (C, H, W) of one row.")
    if standardization is None:
        mean, std = np.zeros(n_features), np.ones(n_features)
    else:
        if not (isinstance(standardization, (tuple, list)) and len(standardization) == 2):
            raise ValueError(f"standardization must be a pair (mean, std) of (D,) arrays with "
                             f"X = (raw - mean) / std, or None when X holds raw pixels; got "
                             f"{type(standardization).__name__} of length "
                             f"{len(standardization) if hasattr(standardization, '__len__') else '-'}.")
        mean, std = (np.asarray(a, np.float64).ravel() for a in standardization)
        if mean.shape != (n_features,) or std.shape != (n_features,):
            raise ValueError(f"standardization must be (mean, std), each with one value per "
                             f"feature ({n_features}); got shapes {mean.shape} and {std.shape}.")
    return spec, ImageData(shape, mean, std, n_classes, value_range)


def validation_rows(X, y, validation_data, validation_split, n_classes, dtype):
    """(X, y, val): fit's training rows and its validation pair (or None), checked."""
    val = None
    if validation_data is not None:
        if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
            raise ValueError(f"validation_data must be a pair (X_val, y_val); got "
                             f"{type(validation_data).__name__}.")
        Xv = check_rows(validation_data[0], "X_val", X.shape[1], dtype)
        val = (Xv, check_labels(validation_data[1], n_classes, len(Xv), "y_val"))
    elif validation_split:
        if not (isinstance(validation_split, numbers.Real) and 0 < validation_split < 1):
            raise ValueError(f"validation_split must be a fraction in (0, 1); got {validation_split!r}.")
        cut = len(X) - int(len(X) * validation_split)
        if cut < 1 or cut == len(X):
            raise ValueError(f"validation_split={validation_split} of {len(X)} rows leaves no "
                             f"training or no validation rows; use a larger data set or fraction.")
        X, y, val = X[:cut], y[:cut], (X[cut:], y[cut:])
    return X, y, val


def optimizer_fields(opt):
    """TrainConfig fields that make `opt` (config.make_optimizer() gives an equal one)."""
    fields = {"optimizer": opt.name}
    if opt.name == "momentum":
        fields.update(momentum=opt.momentum, nesterov=opt.nesterov)
    elif opt.name == "adam":
        fields.update(beta1=opt.beta1, beta2=opt.beta2, opt_eps=opt.eps)
    elif opt.name == "adagrad":
        fields.update(opt_eps=opt.eps)
    return fields


def check_rows(X, name, n_features, dtype=None):
    """X checked as (N, n_features) finite float rows (n_features None: any width)."""
    arr = np.asarray(X)
    width = n_features if n_features is not None else (arr.shape[1] if arr.ndim == 2 else 1)
    return _checks.check_X(arr, width, dtype or (arr.dtype if arr.dtype.kind == "f" else np.float64), name)


def check_labels(y, n_classes, n_rows, name):
    """y as int64 class ids 0..n_classes-1, one per row; errors say how to get there."""
    arr = np.asarray(y)
    ids = f"integer class ids 0..{n_classes - 1} (the last Dense has {n_classes} units)"
    if arr.ndim == 2 and arr.shape[1] == n_classes:
        raise ValueError(f"{name} must be 1-D {ids}; got a one-hot array of shape {arr.shape}. "
                         f"Pass {name}.argmax(axis=1).")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D {ids}; got shape {arr.shape}.")
    if arr.shape[0] != n_rows:
        raise ValueError(f"{name} must have one label per row ({n_rows}); got {arr.shape[0]}.")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        first = arr[0] if arr.size else None
        raise ValueError(f"{name} must hold {ids}; got dtype {arr.dtype} (first value {first!r}). "
                         f"Map labels to ids first, e.g. classes, {name} = np.unique(labels, "
                         f"return_inverse=True), or use fastmlp.MLPClassifier, which takes any labels.")
    bad = (arr < 0) | (arr >= n_classes)
    if bad.any():
        at = int(np.argmax(bad))
        raise ValueError(f"{name} must hold {ids}; got {arr[at].item()!r} at row {at}. Give the last Dense "
                         f"one unit per class, or map the labels to 0..{n_classes - 1}.")
    return np.ascontiguousarray(arr, dtype=np.int64)


def positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}.")
    return int(value)


def nonnegative_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0; got {value!r}.")
    return int(value)
