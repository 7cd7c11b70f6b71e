"""MLPClassifier's hyperparameters checked at fit, as scikit-learn checks them: every error names the
parameter, the rule and the value (and __init__ and set_params never validate, as sklearn requires)."""
import numbers

import numpy as np

from . import _checks
from . import optim as _optim
from .network import check_dropout, check_init

SCHEDULES = ("cyclic", "constant")


def check_params(self):
    """Validate MLPClassifier `self`'s hyperparameters (at fit, as sklearn does); return the hidden widths."""
    sizes = self.hidden_layer_sizes
    if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
        sizes = (sizes,)
    try:
        hidden = [int(w) for w in sizes if isinstance(w, numbers.Integral) and not isinstance(w, bool)
                  and w > 0]
        ok = len(hidden) == len(list(sizes))
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"hidden_layer_sizes must be a tuple of positive integer widths such as "
                         f"(50, 50) (or () for no hidden layer); got {self.hidden_layer_sizes!r}.")
    if not isinstance(self.batch_norm, (bool, np.bool_)):
        raise ValueError(f"batch_norm must be True or False; got {self.batch_norm!r}.")
    check_dropout(self.dropout, len(hidden))
    check_init(self.init)
    if self.optimizer not in _optim.NAMES:
        raise ValueError(f"optimizer must be one of {', '.join(_optim.NAMES)}; got {self.optimizer!r}.")
    if not isinstance(self.nesterov, (bool, np.bool_)):
        raise ValueError(f"nesterov must be True or False; got {self.nesterov!r}.")
    self._make_optimizer()          # checks momentum, beta1, beta2, epsilon
    _checks.check_nonnegative(self.alpha, "alpha")
    _int("batch_size", self.batch_size)
    _int("max_iter", self.max_iter)
    _int("n_cycles", self.n_cycles)
    _int("n_iter_no_change", self.n_iter_no_change)
    if not isinstance(self.early_stopping, (bool, np.bool_)):
        raise ValueError(f"early_stopping must be True or False; got {self.early_stopping!r}.")
    vf = self.validation_fraction
    if isinstance(vf, (bool, np.bool_)) or not isinstance(vf, numbers.Real) or not 0 < vf < 1:
        raise ValueError(f"validation_fraction must be a number in (0, 1); got {vf!r}.")
    _checks.check_nonnegative(self.tol, "tol")
    if self.learning_rate not in SCHEDULES:
        raise ValueError(f"learning_rate must be 'cyclic' or 'constant'; got {self.learning_rate!r}.")
    for name in ("learning_rate_init", "eta_min", "eta_max"):
        _positive(name, getattr(self, name))
    if self.eta_min > self.eta_max:
        raise ValueError(f"eta_min must be <= eta_max; got eta_min={self.eta_min!r}, "
                         f"eta_max={self.eta_max!r}.")
    if not isinstance(self.standardize, (bool, np.bool_)):
        raise ValueError(f"standardize must be True or False; got {self.standardize!r}.")
    _checks.check_dtype(self.dtype)
    rs = self.random_state
    if isinstance(rs, numbers.Integral) and not isinstance(rs, bool) and not 0 <= rs < 2 ** 32:
        raise ValueError(f"random_state must be None, a RandomState or an integer in [0, 2**32); "
                         f"got {rs!r}.")
    return hidden


def _int(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}.")


def _positive(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
            or not 0 < value < float("inf"):
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}.")
