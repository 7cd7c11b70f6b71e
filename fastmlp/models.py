"""The Keras-style model API: Sequential, CyclicLR, load_model.

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
from .config import TrainConfig
from .layers import Stack, compile_stack
from .network import Network
from .schedules import Cyclic
from .train import EVAL_COLUMNS, Trainer

# Keras's defaults for a constant rate: 0.01 for SGD (and here momentum, AdaGrad as PyTorch), 0.001 for Adam
DEFAULT_LR = {"sgd": 0.01, "momentum": 0.01, "adagrad": 0.01, "adam": 0.001}
LOSSES = (None, "sparse_categorical_crossentropy", "cross_entropy")


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


class _FitSchedule:
    """What Trainer asks of a schedule: eta(t) for t in [0, total_steps)."""

    def __init__(self, eta, total_steps):
        self._eta, self.total_steps = eta, total_steps

    def eta(self, t):
        return self._eta(t)


class _Continuing:
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
        rows = [dict(zip(EVAL_COLUMNS, r)) for r in run.evals
                if r[0] > 0 and int(r[0]) % steps_per_epoch == 0]
        self.epoch = list(range(len(rows)))
        self.history = {"loss": [r["train_loss"] for r in rows],
                        "accuracy": [r["train_accuracy"] for r in rows]}
        if rows and not np.isnan(rows[0]["val_loss"]):
            self.history["val_loss"] = [r["val_loss"] for r in rows]
            self.history["val_accuracy"] = [r["val_accuracy"] for r in rows]
        self.history["lr"] = [float(run.eta[int(r["step"]) - 1]) for r in rows]

    def __repr__(self):
        return f"FitHistory(epochs={len(self.epoch)}, keys={list(self.history)})"


class _ImageData:
    """What the Trainer needs for augmentation (and a checkpoint stores): raw = X * std + mean."""

    def __init__(self, image_shape, mean, std, n_classes, value_range=255.0):
        self.image_shape, self.mean, self.std = image_shape, mean, std
        self.value_range = value_range          # raw pixels lie in [0, value_range]
        self.label_names = [str(c) for c in range(n_classes)]
        self.source = "arrays given to Sequential.fit"


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
        self._last = None               # (TrainConfig, Trainer History, data) of the last fit

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
        _nonnegative_int("seed", seed)
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
        self.batch_size = _positive_int("batch_size", batch_size)
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
            verbose=1):
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
        1 a progress bar (on a terminal), 2 one line per epoch, printed when fit returns."""
        if self.optimizer is None:
            raise ValueError("fit: the model is not compiled; call model.compile(optimizer=..., "
                             "schedule=..., l2=...) first.")
        _nonnegative_int("seed", seed)
        epochs = _positive_int("epochs", epochs)
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0 (silent), 1 (progress bar) or 2 (a line per epoch); "
                             f"got {verbose!r}.")
        stack = self.stack
        X = _rows(X, "X", self.net.n_features if self.net is not None else stack.n_features, self.dtype)
        y = _labels(y, stack.n_classes, len(X), "y")
        val = None
        if validation_data is not None:
            if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
                raise ValueError(f"validation_data must be a pair (X_val, y_val); got "
                                 f"{type(validation_data).__name__}.")
            Xv = _rows(validation_data[0], "X_val", X.shape[1], self.dtype)
            val = (Xv, _labels(validation_data[1], stack.n_classes, len(Xv), "y_val"))
        elif validation_split:
            if not (isinstance(validation_split, numbers.Real) and 0 < validation_split < 1):
                raise ValueError(f"validation_split must be a fraction in (0, 1); got {validation_split!r}.")
            cut = len(X) - int(len(X) * validation_split)
            if cut < 1 or cut == len(X):
                raise ValueError(f"validation_split={validation_split} of {len(X)} rows leaves no "
                                 f"training or no validation rows; use a larger data set or fraction.")
            X, y, val = X[:cut], y[:cut], (X[cut:], y[cut:])
        batch = min(_positive_int("batch_size", batch_size or self.batch_size), len(X))
        spe = len(X) // batch
        total = epochs * spe
        schedule, fields = self._schedule(spe, total)
        aug_spec, data = self._augmentation(augment, image_shape, standardization, X.shape[1],
                                            value_range)
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
            train_eval=0, **fields, **_optimizer_fields(self.optimizer))
        trainer = Trainer(net, config, data=data, progress=verbose == 1,
                          schedule=lambda steps_per_epoch: schedule)
        # a TrainingDiverged message names compile()'s settings, not TrainConfig's
        trainer.knob_names = {"lam": "compile's l2", "eta": "the learning rate (compile's schedule)", "eta_max":
                              "CyclicLR's eta_max", "beta2": "Adam's beta2", "opt_eps": "the optimizer's eps"}
        opt = self.optimizer.bind(net.theta.size, net.dtype)
        trainer.optimizer_ = _Continuing(opt)
        try:
            trainer.fit(X, y, *(val or (None, None)))
        finally:                        # the steps taken count even if training stopped early
            opt.t += trainer.step_
        self._last = (config, trainer.history_, data)
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
            return _FitSchedule(cyclic.eta, total), fields
        eta = self.schedule
        return (_FitSchedule(lambda t: np.full(np.shape(t), eta), total),
                {"schedule": "constant", "eta": eta, "cycles": 1})

    def _augmentation(self, augment, image_shape, standardization, n_features, value_range=255.0):
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
        return spec, _ImageData(shape, mean, std, self.stack.n_classes, value_range)

    # ---- using ------------------------------------------------------------------------------
    def _fitted(self, what):
        if self.net is None:
            raise ValueError(f"{what}: the model has no weights yet; fit it (or build it) first.")
        return self.net

    def evaluate(self, X, y):
        """(mean cross-entropy, accuracy) on X, y in evaluation mode; the loss is without the L2
        term (the cost is loss + l2 * sum of squared weights)."""
        net = self._fitted("evaluate")
        X = _rows(X, "X", net.n_features, net.dtype)
        loss, acc = net._loss_acc_eval(X, _labels(y, net.n_classes, len(X), "y"))
        return float(loss), float(acc)

    def predict(self, X):
        """Class probabilities (N, C) in evaluation mode; predict(X).argmax(1) are the classes."""
        net = self._fitted("predict")
        return net.predict_proba(_rows(X, "X", net.n_features, net.dtype))

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
        if self._last is not None:
            config, run, data = self._last
            history = run.to_arrays()
        else:
            config, history, data = self._config(), None, None
        state = None if self.optimizer is None else self.optimizer.state
        step = 0 if self.optimizer is None else self.optimizer.t
        checkpoint.save(path, net, config, step, history, data, {}, state)

    def _config(self):
        """A TrainConfig of the compile settings, for a model saved before any fit."""
        net = self.net
        fields = {}
        if self.optimizer is not None:
            fields.update(_optimizer_fields(self.optimizer), lam=self.l2, batch=self.batch_size)
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


def _optimizer_fields(opt):
    """TrainConfig fields that make `opt` (config.make_optimizer() gives an equal one)."""
    fields = {"optimizer": opt.name}
    if opt.name == "momentum":
        fields.update(momentum=opt.momentum, nesterov=opt.nesterov)
    elif opt.name == "adam":
        fields.update(beta1=opt.beta1, beta2=opt.beta2, opt_eps=opt.eps)
    elif opt.name == "adagrad":
        fields.update(opt_eps=opt.eps)
    return fields


def _rows(X, name, n_features, dtype=None):
    """X checked as (N, n_features) finite float rows (n_features None: any width)."""
    arr = np.asarray(X)
    width = n_features if n_features is not None else (arr.shape[1] if arr.ndim == 2 else 1)
    return _checks.check_X(arr, width, dtype or (arr.dtype if arr.dtype.kind == "f" else np.float64), name)


def _labels(y, n_classes, n_rows, name):
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


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}.")
    return int(value)


def _nonnegative_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0; got {value!r}.")
    return int(value)
