"""The Keras-style model API: Sequential, CyclicLR, load_model, and the callbacks EarlyStopping and
ModelCheckpoint (fastmlp.callbacks).

    model = fastmlp.Sequential([Dense(50), BatchNorm(), ReLU(), Dropout(0.1),
                                Dense(50), BatchNorm(), ReLU(), Dense(10)])
    model.compile(optimizer="adam", schedule=fastmlp.CyclicLR(1e-5, 1e-2, step_size_epochs=2), l2=0.005)
    history = model.fit(X, y, validation_data=(Xv, yv), epochs=8, batch_size=100)

A Sequential is a front end, not an interpreter: its layer list is checked once against the one
network the engine computes (fastmlp.layers.compile_stack) and becomes a fastmlp.Network, and
`fit` runs fastmlp.train.Trainer, so every step is one call of the fused compiled step, and a
model trains to the very parameters of the equivalent Network + Trainer run.

Between fits the weights, the BN running statistics and the optimiser's memory (momentum, Adam's
moments and step count) carry over, as in Keras; each fit runs its own schedule from its step 0.
Files written by `save` are ordinary fastmlp model files (fastmlp.checkpoint): `fastmlp evaluate`
and `fastmlp predict` read them, and `load_model` reads the model.npz of `fastmlp train`.
"""
import numbers

import numpy as np

from . import _checks, checkpoint
from . import optim as _optim
from .callbacks import Callback, EarlyStopping, EpochHook, ModelCheckpoint, check_callbacks
from .config import TrainConfig
from .fitting import (Continuing, CyclicLR, FitHistory, FitSchedule, augmentation_data, check_labels,
                      check_rows, epoch_logs, nonnegative_int, optimizer_fields, positive_int,
                      validation_rows)
from .layers import Stack, compile_stack
from .network import Network
from .schedules import Cyclic
from .train import Trainer

__all__ = ["Sequential", "load_model", "CyclicLR", "FitHistory", "Callback", "EarlyStopping",
           "ModelCheckpoint"]

# Keras's defaults for a constant rate: 0.01 for SGD (and here momentum, AdaGrad as PyTorch), 0.001 for Adam
DEFAULT_LR = {"sgd": 0.01, "momentum": 0.01, "adagrad": 0.01, "adam": 0.001}
LOSSES = (None, "sparse_categorical_crossentropy", "cross_entropy")


class Sequential:
    """A stack of fastmlp.layers compiled onto one fastmlp.Network.

    layers: [Input(D)], then hidden blocks Dense(h) [BatchNorm()] ReLU() [Dropout(r)], then
    Dense(n_classes) (see fastmlp.layers).  dtype: float32 (fast) or float64.  The weights are
    drawn when the input width is known: at the first fit (from its seed) or by `build`."""

    def __init__(self, layers=None, dtype="float32"):
        self.layers = list(layers or [])
        self.dtype = _checks.check_dtype(dtype)
        self._stack = compile_stack(self.layers) if self.layers else None
        self.net = None                 # the fastmlp.Network, once built
        self.optimizer = None           # a fastmlp.optim.Optimizer, once compiled
        self.schedule = self.l2 = self.batch_size = None
        self.history = None             # FitHistory of the last fit
        self._last = None               # (TrainConfig, Trainer, data) of the last (or this) fit
        self._fitting = False           # inside fit: the optimiser's step count is not updated yet
        self.stop_training = False      # a callback sets it to end the fit (Keras)

    # ---- building ---------------------------------------------------------------------------
    def add(self, layer):
        """Append a layer (before the model is built); the stack is checked when it is used."""
        if self.net is not None:
            raise ValueError("add: the model is already built; layers can only be added before the "
                             "first fit or build.")
        self.layers.append(layer)
        self._stack = None

    @property
    def stack(self):
        if self._stack is None:
            self._stack = compile_stack(self.layers)
        return self._stack

    def build(self, input_dim=None, seed=0):
        """Draw the weights of a network with `input_dim` inputs (default: from Input/input_dim)
        from `seed`; returns the fastmlp.Network."""
        stack = self.stack
        width = input_dim if input_dim is not None else stack.n_features
        if width is None:
            raise ValueError("build needs the input width: pass input_dim=D, start the layers with "
                             "Input(D), or call fit, which takes it from X.")
        if stack.n_features is not None and width != stack.n_features:
            raise ValueError(f"input_dim={width} disagrees with the model's Input({stack.n_features}); "
                             f"the rows of X must have {stack.n_features} features.")
        nonnegative_int("seed", seed)
        self.net = Network(stack.sizes(width), stack.batch_norm, stack.init, self.dtype, seed,
                           stack.bn_epsilon, stack.bn_momentum, stack.dropout)
        if self.optimizer is not None:
            self.optimizer.bind(self.net.theta.size, self.net.dtype).reset()
        return self.net

    def compile(self, optimizer="sgd", schedule=None, l2=0.0, batch_size=100, loss=None, metrics=None):
        """Choose how `fit` trains.

        optimizer: "sgd", "momentum", "adagrad", "adam" (PyTorch's defaults) or a
        fastmlp.optim.Optimizer such as fastmlp.optim.Adam(beta1=0.9).  schedule: a
        fastmlp.CyclicLR, or a constant learning rate (float); None: the constant rate Keras
        uses for the optimiser (0.01; 0.001 for Adam).  l2: the cost is mean cross-entropy +
        l2 * sum of squared weights (the study's lambda; not biases or BN parameters).
        batch_size: fit's default.  loss and metrics are accepted for Keras code: the loss is
        always sparse categorical cross-entropy, and accuracy is always reported.
        A new compile starts the optimiser's memory afresh; the weights stay."""
        opt = _optim.get(optimizer)
        if schedule is None:
            schedule = DEFAULT_LR[opt.name]
        if isinstance(schedule, numbers.Real) and not isinstance(schedule, bool):
            if not 0 < schedule < float("inf"):
                raise ValueError(f"schedule as a constant learning rate must be a finite number > 0; "
                                 f"got {schedule!r}.")
            schedule = float(schedule)
        elif not isinstance(schedule, CyclicLR):
            raise ValueError(f"schedule must be a fastmlp.CyclicLR(eta_min, eta_max, step_size=... or "
                             f"step_size_epochs=...) or a constant learning rate (a float); got {schedule!r}.")
        self.l2 = _checks.check_nonnegative(l2, "l2")
        self.batch_size = positive_int("batch_size", batch_size)
        if loss not in LOSSES:
            raise ValueError(f"loss must be 'sparse_categorical_crossentropy' (integer class ids, the "
                             f"only loss the engine computes) or None; got {loss!r}.")
        if metrics is not None and (isinstance(metrics, str) or
                                    any(m not in ("accuracy", "acc") for m in metrics)):
            raise ValueError(f"metrics must be None or ['accuracy'] (fit always reports loss and "
                             f"accuracy); got {metrics!r}.")
        self.optimizer, self.schedule = opt, schedule
        if self.net is not None:
            opt.bind(self.net.theta.size, self.net.dtype).reset()
        return self

    # ---- training ---------------------------------------------------------------------------
    def fit(self, X, y, epochs=1, batch_size=None, validation_data=None, validation_split=0.0,
            augment=None, image_shape=None, standardization=None, value_range=255.0, seed=0,
            verbose=1, callbacks=None):
        """Train for `epochs` epochs of len(X) // batch_size steps (the last partial batch of each
        epoch is dropped; batch_size above len(X) is clipped to it); returns a FitHistory.

        X (N, D) float32/float64 rows; y (N,) integer class ids 0..C-1 (C = the last Dense's
        units).  validation_data: (X_val, y_val); or validation_split: the last fraction of the
        rows, before shuffling, as in Keras.  augment: a spec string such as
        "flip,translate=2" or a fastmlp.augment.Augment, applied to each training batch on the
        fly; it needs image_shape (C, H, W), and standardization=(mean, std) when X is
        standardised raw pixels (X = (raw - mean) / std), since augmentation works on raw images;
        value_range: raw pixels lie in [0, value_range] (255 for 8-bit images, 1.0 for pixels
        scaled to [0, 1]), which scales brightness jitter and bounds the clipping.  seed: the weights (when this fit builds the model),
        each epoch's shuffle, the dropout masks and the augmentation draws.  verbose: 0 silent,
        1 a progress bar (on a terminal), 2 one line per epoch, printed when fit returns.
        callbacks: fastmlp.callbacks objects, Keras-style (EarlyStopping, ModelCheckpoint, or a
        Callback of your own), called at the end of every epoch with its FitHistory values."""
        if self.optimizer is None:
            raise ValueError("fit: the model is not compiled; call model.compile(optimizer=..., "
                             "schedule=..., l2=...) first.")
        nonnegative_int("seed", seed)
        epochs = positive_int("epochs", epochs)
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0 (silent), 1 (progress bar) or 2 (a line per epoch); "
                             f"got {verbose!r}.")
        stack = self.stack
        X = check_rows(X, "X", self.net.n_features if self.net is not None else stack.n_features, self.dtype)
        y = check_labels(y, stack.n_classes, len(X), "y")
        X, y, val = validation_rows(X, y, validation_data, validation_split, stack.n_classes, self.dtype)
        batch = min(positive_int("batch_size", batch_size or self.batch_size), len(X))
        spe = len(X) // batch
        total = epochs * spe
        schedule, fields = self._schedule(spe, total)
        aug_spec, data = augmentation_data(augment, image_shape, standardization, X.shape[1],
                                           stack.n_classes, value_range)
        callbacks = check_callbacks(callbacks)
        if self.net is None:            # every check passed: draw the weights
            self.build(X.shape[1], seed)
        net = self.net
        # a fresh model draws shuffles, dropout masks and augmentation from `seed` (so it equals
        # the Network + Trainer run with that seed); a model that has trained mixes in its step
        # count (saved with it), or a second fit would repeat the first one's draws step for step
        steps = self.optimizer.t
        draws = seed if steps == 0 else int(np.random.SeedSequence([seed, steps]).generate_state(1)[0])
        config = TrainConfig(
            sizes=list(net.sizes), batch_norm=net.batch_norm, init=net.init, dtype=net.dtype.name,
            dropout=list(net.dropout), augment=aug_spec, lam=self.l2, batch=batch, seed=draws,
            train_eval=0, **fields, **optimizer_fields(self.optimizer))
        hook = EpochHook(self, callbacks, spe, epoch_logs)
        trainer = Trainer(net, config, data=data, progress=verbose == 1,
                          schedule=lambda steps_per_epoch: schedule, on_evaluate=[hook])
        # a TrainingDiverged message names compile()'s settings, not TrainConfig's
        trainer.knob_names = {"lam": "compile's l2", "eta": "the learning rate (compile's schedule)", "eta_max":
                              "CyclicLR's eta_max", "beta2": "Adam's beta2", "opt_eps": "the optimizer's eps"}
        opt = self.optimizer.bind(net.theta.size, net.dtype)
        trainer.optimizer_ = Continuing(opt)
        hook.begin(["loss", "accuracy"] + (["val_loss", "val_accuracy"] if val else []) + ["lr"])
        self._last, self._fitting = (config, trainer, data), True     # what save() writes
        try:
            trainer.fit(X, y, *(val or (None, None)))
        finally:                        # the steps taken count even if training stopped early
            opt.t += trainer.step_
            self._fitting = False
        hook.end()                      # EarlyStopping(restore_best_weights=True) restores here
        self.history = FitHistory(trainer.history_, spe, {"epochs": epochs, "steps": spe,
                                                          "batch_size": batch, "samples": len(X)})
        if verbose == 2:
            for e in self.history.epoch:
                print(f"Epoch {e + 1}/{epochs} - " + " - ".join(
                    f"{k}: {v[e]:.4g}" for k, v in self.history.history.items()))
        return self.history

    def _schedule(self, spe, total):
        """(the fit's schedule, its TrainConfig fields)."""
        if isinstance(self.schedule, CyclicLR):
            ns = self.schedule.half_cycle(spe)
            cyclic = Cyclic(self.schedule.eta_min, self.schedule.eta_max, ns, 1)   # periodic in t
            fields = dict(self.schedule.config_fields(), cycles=max(1, -(-total // (2 * ns))))
            return FitSchedule(cyclic.eta, total), fields
        eta = self.schedule
        return (FitSchedule(lambda t: np.full(np.shape(t), eta), total),
                {"schedule": "constant", "eta": eta, "cycles": 1})

    def _fitted(self, what):
        if self.net is None:
            raise ValueError(f"{what}: the model has no weights yet; fit it (or build it) first.")
        return self.net

    def evaluate(self, X, y):
        """(mean cross-entropy, accuracy) on X, y in evaluation mode; the loss is without the L2
        term (the cost is loss + l2 * sum of squared weights)."""
        net = self._fitted("evaluate")
        X = check_rows(X, "X", net.n_features, net.dtype)
        loss, acc = net._loss_acc_eval(X, check_labels(y, net.n_classes, len(X), "y"))
        return float(loss), float(acc)

    def predict(self, X):
        """Class probabilities (N, C) in evaluation mode; predict(X).argmax(1) are the classes."""
        net = self._fitted("predict")
        return net.predict_proba(check_rows(X, "X", net.n_features, net.dtype))

    def _table(self):
        """(layer, output width, trainable parameters) rows."""
        stack, rows = self.stack, []
        width = self.net.n_features if self.net is not None else stack.n_features
        for layer in self.layers:
            name = type(layer).__name__
            if name == "Input":
                rows.append((repr(layer), layer.width, 0))
            elif name == "Dense":
                params = None if width is None else (width + 1) * layer.units
                rows.append((repr(layer), layer.units, params))
                width = layer.units
                if layer.activation == "relu":
                    rows.append(("  (ReLU)", width, 0))
            elif name == "BatchNorm":
                rows.append((repr(layer), width, 2 * width))
            else:
                rows.append((repr(layer), width, 0))
        return rows

    def summary(self, print_fn=print):
        """The layers, their output widths and parameter counts, and what the stack compiles to;
        printed with print_fn, or returned as a string with print_fn=None."""
        stack, rows = self.stack, self._table()
        n_in = self.net.n_features if self.net is not None else stack.n_features
        wide = max(len(r[0]) for r in rows + [("Layer", 0, 0)])
        lines = [f"{'Layer':<{wide}}  {'Output':>7}  {'Params':>9}", "-" * (wide + 20)]
        for name, out, params in rows:
            lines.append(f"{name:<{wide}}  {out:>7}  {'?' if params is None else f'{params:,}':>9}")
        lines.append("-" * (wide + 20))
        known = [p for _, _, p in rows]
        total = "? (input width unknown until fit)" if None in known else f"{sum(known):,}"
        lines.append(f"Trainable params: {total}")
        if stack.batch_norm:
            lines.append(f"Running statistics (not trained): {2 * sum(stack.hidden):,}")
        sizes = "-".join(str(w) for w in stack.sizes(n_in or "?"))
        lines.append(f"Compiled onto: Network({sizes}, batch_norm={stack.batch_norm}, "
                     f"init={stack.init!r}, dtype={self.dtype.name}"
                     + (f", dropout={list(stack.dropout)}" if any(stack.dropout) else "") + ")")
        if self.optimizer is not None:
            lines.append(f"Training: {self.optimizer!r}, schedule {self.schedule!r}, l2={self.l2:g}, "
                         f"batch_size={self.batch_size}")
        text = "\n".join(lines)
        if print_fn is None:
            return text
        print_fn(text)

    # ---- files ------------------------------------------------------------------------------
    def save(self, path):
        """Write the model to `path` (.npz; a fastmlp model file, no pickles): weights, running
        statistics, the optimiser's memory and step count, the compile settings, the last fit's
        history.  fastmlp.load_model(path) reads it back."""
        net = self._fitted("save")
        state = None if self.optimizer is None else self.optimizer.state
        step = 0 if self.optimizer is None else self.optimizer.t
        if self._last is not None:      # during a fit (ModelCheckpoint), the steps taken so far
            config, trainer, data = self._last
            history = None if trainer.history_ is None else trainer.history_.to_arrays()
            step += trainer.step_ if self._fitting else 0
        else:
            config, history, data = self._config(), None, None
        checkpoint.save(path, net, config, step, history, data, {}, state)

    def _config(self):
        """A TrainConfig of the compile settings, for a model saved before any fit."""
        net = self.net
        fields = {}
        if self.optimizer is not None:
            fields.update(optimizer_fields(self.optimizer), lam=self.l2, batch=self.batch_size)
            fields.update(self.schedule.config_fields() if isinstance(self.schedule, CyclicLR)
                          else {"schedule": "constant", "eta": self.schedule})
        return TrainConfig(sizes=list(net.sizes), batch_norm=net.batch_norm, init=net.init,
                           dtype=net.dtype.name, dropout=list(net.dropout), **fields)

    @classmethod
    def load(cls, path):
        """A model from a file of `save` (or the model.npz / checkpoint.npz of `fastmlp train`),
        compiled with the settings it was trained with, ready to predict or to fit on."""
        ckpt = checkpoint.load(path)
        net, config = ckpt.net, ckpt.config
        stack = Stack(net.n_features, net.sizes[1:-1], net.n_classes, net.batch_norm,
                      tuple(net.dropout), net.init, net.bn_alpha, net.bn_eps)
        model = cls(stack.layers(), dtype=net.dtype)
        try:    # the file's settings passed TrainConfig.validate; these are Sequential's own rules
            if config.schedule == "cyclic":
                schedule = CyclicLR(config.eta_min, config.eta_max, step_size=config.ns,
                                    step_size_epochs=None if config.ns is not None else config.ns_epochs)
            else:
                schedule = config.eta
            model.compile(config.make_optimizer(), schedule, config.lam, config.batch)
        except ValueError as e:
            raise checkpoint.CheckpointError(f"{path}: entry 'config' cannot compile a Sequential "
                                             f"({e}).") from None
        model.net = net
        opt = model.optimizer.bind(net.theta.size, net.dtype)
        if opt.state.size == 0:         # SGD: no memory, the step count alone
            opt.t = ckpt.step
        elif ckpt.optimizer_state is not None and ckpt.optimizer_state.shape == opt.state.shape:
            opt.state[...] = ckpt.optimizer_state
            opt.t = ckpt.step
        else:       # no memory saved (or another optimiser's): start it afresh, t with it, or
            opt.t = 0   # Adam's bias correction would be off for the first steps
        return model

    def __repr__(self):
        return f"Sequential({self.layers!r}, dtype={self.dtype.name!r})"


def load_model(path):
    """fastmlp.Sequential.load(path)."""
    return Sequential.load(path)


