"""Learning-rate schedules: eta(t) for update step t = 0, 1, ..., total_steps - 1.

Update t uses eta(t).  Cyclic is the triangular schedule of Smith (2015) as in the DD2424
assignment: within cycle l, for 2 l n_s <= t <= (2l+1) n_s the rate rises linearly from eta_min
to eta_max, and for (2l+1) n_s <= t <= 2(l+1) n_s it falls back; so eta(0) = eta_min,
eta(n_s) = eta_max, eta(2 n_s) = eta_min, and a run of `cycles` cycles is 2 n_s cycles steps.
n_s is in update steps here; TrainConfig converts epochs to steps (the study: 45,000 rows,
batch 100 -> 450 steps per epoch, n_s = 5 epochs = 2250 steps).
"""
import numbers

import numpy as np


def _steps(t):
    """t as an int64 array (or scalar) of non-negative step indices."""
    arr = np.asarray(t)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"t must be an integer step index or an array of them; got {t!r}.")
    if arr.size and arr.min() < 0:
        raise ValueError(f"t must be >= 0 (steps count from 0); got {arr.min()}.")
    return arr.astype(np.int64)


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}.")
    return int(value)


class Constant:
    """eta(t) = eta for every step."""

    def __init__(self, eta, total_steps):
        if not 0 < eta < np.inf:
            raise ValueError(f"eta must be a finite number > 0; got {eta!r}.")
        self.eta_value = float(eta)
        self.total_steps = _positive_int("total_steps", total_steps)

    def eta(self, t):
        steps = _steps(t)
        out = np.full(steps.shape, self.eta_value)
        return float(out) if out.ndim == 0 else out

    def __repr__(self):
        return f"Constant(eta={self.eta_value}, total_steps={self.total_steps})"


class Cyclic:
    """Triangular cyclical rate between eta_min and eta_max with half-cycle ns steps."""

    def __init__(self, eta_min, eta_max, ns, cycles=1):
        if not 0 < eta_min <= eta_max < np.inf:
            raise ValueError(f"eta_min and eta_max must satisfy 0 < eta_min <= eta_max < inf; "
                             f"got eta_min={eta_min}, eta_max={eta_max}.")
        self.eta_min, self.eta_max = float(eta_min), float(eta_max)
        self.ns = _positive_int("ns", ns)
        self.cycles = _positive_int("cycles", cycles)
        self.total_steps = 2 * self.ns * self.cycles

    def eta(self, t):
        """Vectorised: an int gives a float, an array of ints an array of float64."""
        pos = _steps(t) % (2 * self.ns)                     # position within the cycle
        rise = np.where(pos <= self.ns, pos, 2 * self.ns - pos) / self.ns   # 0 -> 1 -> 0
        out = self.eta_min + rise * (self.eta_max - self.eta_min)
        return float(out) if out.ndim == 0 else out

    def __repr__(self):
        return (f"Cyclic(eta_min={self.eta_min}, eta_max={self.eta_max}, ns={self.ns}, "
                f"cycles={self.cycles})")
