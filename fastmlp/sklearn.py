"""fastmlp as a scikit-learn estimator: MLPClassifier, with batch norm and dropout.

    from fastmlp import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=(50, 50), batch_norm=True, dropout=0.1, random_state=0)
    clf.fit(X, y).score(X_test, y_test)

It trains with fastmlp.train.Trainer on a fastmlp.Network, so every step is one call of the
fused compiled step; this module only translates: labels of any type to class ids, raw features
to standardised float rows, sklearn's parameter names to a TrainConfig.  scikit-learn is an
optional dependency (pip install "fastmlp[sklearn]").

Differences from sklearn.neural_network.MLPClassifier that matter:
- alpha is the study's lambda: cost = mean cross-entropy + alpha * (sum of squared weights), not
  sklearn's alpha / (2 * batch) scaling; the default 0.005 is the study's.
- the default schedule is the study's triangular cyclical rate (learning_rate="cyclic", eta_min
  1e-5 to eta_max 0.1, n_cycles=2 over max_iter=20 epochs); learning_rate="constant" uses
  learning_rate_init.
- an epoch is n_samples // batch_size steps (the last partial batch is dropped, and a new
  shuffle every epoch); batch_size above n_samples is clipped to n_samples.
- standardize=True standardises each feature with the training rows' mean and std (a constant
  feature gets std 1) inside the estimator; partial_fit takes them from its first call.
"""
try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ModuleNotFoundError as e:       # pragma: no cover - exercised without scikit-learn
    raise ImportError('fastmlp.MLPClassifier needs scikit-learn, an optional dependency: '
                      'pip install "fastmlp[sklearn]" (or pip install scikit-learn).') from e

import math
import numbers

import numpy as np

from . import checkpoint
from . import optim as _optim
from .config import TrainConfig
from .fitting import Continuing, FitSchedule, optimizer_fields
from .network import Network, check_init
from .schedules import Cyclic
from .stopping import EpochRule
from .sklearn_params import check_params
from .train import Trainer


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """A k-layer MLP classifier (Linear -> [BatchNorm] -> ReLU -> [Dropout] hidden layers,
    softmax output) trained by fastmlp's fused Numba step.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(50, 50)
        Widths of the hidden layers; () is a linear softmax classifier.
    batch_norm : bool, default=True
        Batch normalisation in every hidden layer (running statistics at prediction).
    dropout : float or tuple of float, default=0.0
        Inverted-dropout rate (probability of dropping a unit) after every hidden layer, or one
        rate per hidden layer.
    init : {"he", "he_uniform", "xavier", "xavier_normal", "xavier_uniform", "lecun"} or float, default="he"
        Weight initialiser (docs/guide.md gives each one's formula), or a sigma for N(0, sigma^2).
    optimizer : {"sgd", "momentum", "adagrad", "adam"}, default="sgd"
        Update rule (PyTorch's), driven by the learning-rate schedule.
    momentum, nesterov : float, bool
        Of optimizer="momentum".
    beta1, beta2 : float
        Adam's moment decays.
    epsilon : float or None, default=None
        Adam's / AdaGrad's epsilon; None: PyTorch's default (1e-8 / 1e-10).
    alpha : float, default=0.005
        L2 penalty: cost = mean cross-entropy + alpha * sum of squared weights.
    batch_size : int, default=100
        Rows per update step, clipped to n_samples.
    learning_rate : {"cyclic", "constant"}, default="cyclic"
        Triangular cyclical rate between eta_min and eta_max, n_cycles cycles over max_iter
        epochs; or the constant learning_rate_init.
    learning_rate_init : float, default=0.01
        The rate of learning_rate="constant".
    eta_min, eta_max : float, default=1e-5, 0.1
        Bounds of the cyclical rate.
    n_cycles : int, default=2
        Cycles of the cyclical rate within max_iter epochs (half-cycle max_iter / (2 n_cycles)
        epochs, rounded to whole steps).
    max_iter : int, default=20
        Epochs of `fit` (fewer when it stops early: see tol).
    early_stopping : bool, default=False
        Hold out validation_fraction of fit's rows (stratified, as scikit-learn splits them), score
        the accuracy on them after every epoch, stop when it has not improved by at least tol for
        more than n_iter_no_change epochs in a row, and keep the weights of the best epoch.
    validation_fraction : float, default=0.1
        The share of fit's rows held out with early_stopping, in (0, 1).
    n_iter_no_change : int, default=10
        Epochs in a row without an improvement of at least tol that are tolerated.
    tol : float, default=1e-4
        The improvement that counts: in validation accuracy with early_stopping, else in the
        training loss (loss_curve_), which then stops training the same way (scikit-learn's rule).
    standardize : bool, default=True
        Standardise features with the training rows' mean and std.
    dtype : {"float32", "float64"}, default="float32"
        Float type of the network and its computations.
    random_state : int, RandomState or None, default=None
        Seeds the weights, every epoch's shuffle and the dropout masks; an int s gives the same
        parameters as fastmlp.Network(seed=s) trained by a Trainer with TrainConfig(seed=s).
    verbose : bool, default=False
        A progress bar while training (on a terminal).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    feature_names_in_ : ndarray of str (when X has feature names)
    loss_curve_ : list of float
        Per epoch: the mean training-batch cross-entropy plus alpha * sum of squared weights at
        the epoch's end.
    n_iter_ : int
        Epochs trained (fit: max_iter unless it stopped early; each partial_fit call adds one).
    best_loss_ : float or None
        The lowest value of loss_curve_ (None with early_stopping).
    validation_scores_ : list of float or None
        Validation accuracy after each epoch (None without early_stopping).
    best_validation_score_ : float or None
        The best of validation_scores_, whose weights the network holds (None without early_stopping).
    t_ : int
        Update steps taken.
    network_ : fastmlp.Network
        The trained network (its inputs are standardised rows when standardize=True).
    mean_, scale_ : ndarray of shape (n_features_in_,) or None
        The standardisation (None when standardize=False).
    """

    def __init__(self, hidden_layer_sizes=(50, 50), batch_norm=True, dropout=0.0, init="he",
                 optimizer="sgd", momentum=0.9, nesterov=False, beta1=0.9, beta2=0.999,
                 epsilon=None, alpha=0.005, batch_size=100, learning_rate="cyclic",
                 learning_rate_init=0.01, eta_min=1e-5, eta_max=0.1, n_cycles=2, max_iter=20,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=10, tol=1e-4,
                 standardize=True, dtype="float32", random_state=None, verbose=False):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.batch_norm = batch_norm
        self.dropout = dropout
        self.init = init
        self.optimizer = optimizer
        self.momentum = momentum
        self.nesterov = nesterov
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.eta_min = eta_min
        self.eta_max = eta_max
        self.n_cycles = n_cycles
        self.max_iter = max_iter
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.standardize = standardize
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    # ---- sklearn protocol ---------------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        tags.classifier_tags.multi_label = False
        tags.target_tags.required = True
        return tags

    def fit(self, X, y):
        """Train a fresh network for max_iter epochs on X (n_samples, n_features) and the labels y
        (any hashable, sortable values); returns self."""
        hidden = self._check_params()
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], reset=True)
        check_classification_targets(y)
        classes, ids = np.unique(y, return_inverse=True)
        self._base_seed = self._draw_seed()
        val = None
        if self.early_stopping:         # standardised with the statistics of the rows trained on
            X, Xv, ids, yv = _hold_out(X, ids, self.validation_fraction, self._base_seed)
        self._start(X, hidden, classes)
        if self.early_stopping:
            val = (self._standardized(Xv), yv)
        self._reset_curves()
        batch = min(self.batch_size, len(X))
        spe = len(X) // batch
        if self.learning_rate == "cyclic":
            ns = self._half_cycle(spe)
            total = 2 * ns * self.n_cycles
        else:
            total = self.max_iter * spe
        self._train(self._standardized(X), ids, batch, total, self._base_seed, val)
        return self

    def partial_fit(self, X, y, classes=None):
        """One epoch on X, y.  The first call (on an unfitted estimator) needs `classes`, every
        label that will ever be seen; later calls go on from the weights, optimiser memory and
        schedule position reached.  Returns self."""
        first = not hasattr(self, "classes_")
        if first:
            hidden = self._check_params()
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit: every "
                                 "label that any call will see, e.g. classes=np.unique(y_all).")
            X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], reset=True)
            check_classification_targets(y)
            if self.early_stopping:
                raise ValueError("partial_fit does not support early_stopping=True (one epoch a call, "
                                 "no validation rows); use fit, or set early_stopping=False.")
            classes = np.unique(np.asarray(classes))
            self._base_seed = self._draw_seed()
            self._start(X, hidden, classes)
            self._reset_curves()
        else:
            self._check_params()
            X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], reset=False)
            check_classification_targets(y)
            if classes is not None and not np.array_equal(np.unique(np.asarray(classes)), self.classes_):
                raise ValueError(f"classes={list(classes)!r} differs from the classes of the first "
                                 f"call, {self.classes_.tolist()!r}; pass the same classes (or none).")
        ids = np.searchsorted(self.classes_, y)
        unseen = (ids >= len(self.classes_)) | (self.classes_[np.minimum(ids, len(self.classes_) - 1)] != y)
        if unseen.any():
            raise ValueError(f"y holds labels that are not in classes_ {self.classes_.tolist()!r}: "
                             f"{np.unique(y[unseen]).tolist()!r}. Pass every label in classes= on the "
                             f"first call.")
        batch = min(self.batch_size, len(X))
        seed = int(np.random.SeedSequence([self._base_seed, self.n_iter_]).generate_state(1)[0] >> 1)
        self._train(self._standardized(X), ids, batch, len(X) // batch, seed)
        return self

    def predict_proba(self, X):
        """Class probabilities (n_samples, n_classes), columns in the order of classes_."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return self.network_.predict_proba(self._standardized(X)).astype(np.float64)

    def predict_log_proba(self, X):
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most probable label of each row."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    # ---- pickling: the network as its arrays, without its workspaces --------------------------
    def __getstate__(self):
        state = dict(super().__getstate__())     # object.__getstate__ returns __dict__ itself
        net = state.pop("network_", None)
        if net is not None:
            state["_network_arrays"] = (checkpoint._network_spec(net), net.get_state())
        state["_layout"] = 2            # the optimiser's memory in checkpoint format /2 order
        return state

    def __setstate__(self, state):
        arrays = state.pop("_network_arrays", None)
        layout = state.pop("_layout", 1)
        if arrays is not None:
            net = checkpoint._network(arrays[0])
            net.set_state(arrays[1])
            state["network_"] = net
            opt = state.get("_optimizer")
            if layout == 1 and opt is not None and getattr(opt, "state", None) is not None \
                    and opt.state.size:
                opt.state[...] = checkpoint.optimizer_state_from_v1(net, opt.state)
        super().__setstate__(state)

    # ---- internals --------------------------------------------------------------------------------
    def _check_params(self):
        """Validate the hyperparameters (at fit, as sklearn does); return the hidden widths."""
        return check_params(self)

    def _make_optimizer(self):
        return _optim.make(self.optimizer, self.momentum, bool(self.nesterov), self.beta1, self.beta2,
                           self.epsilon)

    def _draw_seed(self):
        rs = self.random_state
        return int(rs) if isinstance(rs, numbers.Integral) else int(check_random_state(rs).randint(2**31 - 1))

    def _reset_curves(self):
        """The fitted state a fresh fit starts from (scikit-learn's names)."""
        self.n_iter_, self.t_, self.loss_curve_, self._no_improvement_count = 0, 0, [], 0
        self.best_loss_ = None if self.early_stopping else math.inf
        self.validation_scores_ = [] if self.early_stopping else None
        self.best_validation_score_ = -math.inf if self.early_stopping else None

    def _start(self, X, hidden, classes):
        """A fresh network, optimiser and standardisation for data X and the sorted labels
        `classes`."""
        if len(classes) < 2:
            raise ValueError(f"y has 1 class ({classes.tolist()!r}); a classifier needs at least 2 "
                             f"classes to train. Check the labels.")
        if self.standardize:
            mean = X.mean(axis=0, dtype=np.float64)
            scale = X.std(axis=0, dtype=np.float64)
            # as StandardScaler: a feature (almost) constant in the training rows is left unscaled
            scale[scale < 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean))] = 1.0
            self.mean_, self.scale_ = mean, scale
        else:
            self.mean_ = self.scale_ = None
        self.network_ = Network([X.shape[1], *hidden, len(classes)], bool(self.batch_norm),
                                check_init(self.init), self.dtype, self._base_seed,
                                dropout=self.dropout)
        self._optimizer = self._make_optimizer().bind(self.network_.theta.size, self.network_.dtype)
        self.classes_ = classes

    def _standardized(self, X):
        if self.mean_ is None:
            return np.ascontiguousarray(X, dtype=self.network_.dtype)
        Xs = (X - self.mean_) / self.scale_
        if not np.isfinite(Xs).all():
            raise ValueError("X standardised with the training rows' mean and std is not finite (values "
                             "too large for float64); rescale X.")
        return np.ascontiguousarray(Xs, dtype=self.network_.dtype)

    def _half_cycle(self, steps_per_epoch):
        """n_s in steps: n_cycles whole cycles fit in max_iter epochs (never more epochs than
        max_iter, as scikit-learn users read it)."""
        ns = (self.max_iter * steps_per_epoch) // (2 * self.n_cycles)
        if ns < 1:
            raise ValueError(
                f"the cyclic learning rate needs at least 2 * n_cycles update steps within max_iter "
                f"epochs; got max_iter={self.max_iter}, n_cycles={self.n_cycles} and "
                f"{steps_per_epoch} step(s) per epoch (n_samples // batch_size, batch_size="
                f"{self.batch_size}). Raise max_iter, lower n_cycles or batch_size, or use "
                f"learning_rate='constant'.")
        return ns

    def _train(self, X, ids, batch, total, seed, val=None):
        """Run `total` steps from the estimator's current step t_ with a Trainer, fewer if the
        tol / n_iter_no_change rule stops it (fastmlp.stopping.EpochRule); update n_iter_, t_,
        loss_curve_ and the scores; with val (early_stopping) end with the best epoch's weights."""
        net = self.network_
        spe = len(X) // batch
        if self.learning_rate == "cyclic":
            ns = self._half_cycle(spe)
            cyclic = Cyclic(self.eta_min, self.eta_max, ns, 1)        # periodic in t
            t0 = self.t_
            schedule = FitSchedule(lambda t: cyclic.eta(np.asarray(t) + t0), total)
            fields = {"schedule": "cyclic", "eta_min": float(self.eta_min),
                      "eta_max": float(self.eta_max), "ns": ns, "cycles": self.n_cycles}
        else:
            eta = float(self.learning_rate_init)
            schedule = FitSchedule(lambda t: np.full(np.shape(t), eta), total)
            fields = {"schedule": "constant", "eta": eta}
        opt = self._optimizer
        config = TrainConfig(
            sizes=list(net.sizes), batch_norm=net.batch_norm, init=net.init, dtype=net.dtype.name,
            dropout=list(net.dropout), lam=float(self.alpha), batch=batch, seed=seed,
            # the estimator does not report the Trainer's per-epoch evaluations but the L2 term
            # they hold: one row keeps their cost nil
            train_eval=1, **fields, **optimizer_fields(opt))
        rule = EpochRule(self, val is not None)
        trainer = Trainer(net, config, progress=bool(self.verbose),
                          schedule=lambda steps_per_epoch: schedule, on_evaluate=[rule])
        # a TrainingDiverged message names this estimator's parameters, not TrainConfig's
        trainer.knob_names = {"lam": "alpha", "eta": "learning_rate_init", "opt_eps": "epsilon"}
        trainer.optimizer_ = Continuing(opt)
        try:
            trainer.fit(X, ids, *(val or (None, None)))
        finally:
            opt.t += trainer.step_
            self.t_ += trainer.step_
            self.n_iter_ = len(self.loss_curve_)
        if rule.best_state is not None:
            net.set_state(rule.best_state)


def _hold_out(X, ids, fraction, seed):
    """early_stopping's split of fit's rows: (X_train, X_val, ids_train, ids_val), stratified by
    class, with scikit-learn's own train_test_split (as its MLPClassifier does)."""
    from sklearn.model_selection import train_test_split
    try:
        X, Xv, ids, yv = train_test_split(X, ids, test_size=fraction, random_state=seed, stratify=ids)
    except ValueError as e:
        raise ValueError(f"early_stopping cannot hold out validation_fraction={fraction} of {len(X)} rows "
                         f"stratified by class ({' '.join(str(e).split())}); give more rows per class or "
                         f"another validation_fraction.") from None
    if len(Xv) < 2:
        raise ValueError(f"early_stopping needs at least 2 validation rows; validation_fraction={fraction} "
                         f"of {len(X) + len(Xv)} rows gives {len(Xv)}. Raise validation_fraction or give more rows.")
    return X, Xv, np.ascontiguousarray(ids), np.ascontiguousarray(yv)
