"""Learning-rate schedules: eta(t) for update step t = 0, 1, ..., total_steps - 1.

Update t uses eta(t).  Cyclic is the triangular schedule of Smith (2015) as in the DD2424
assignment: within cycle l, for 2 l n_s <= t <= (2l+1) n_s the rate rises linearly from eta_min
to eta_max, and for (2l+1) n_s <= t <= 2(l+1) n_s it falls back; so eta(0) = eta_min,
eta(n_s) = eta_max, eta(2 n_s) = eta_min, and a run of `cycles` cycles is 2 n_s cycles steps.
n_s is in update steps here; TrainConfig converts epochs to steps (the study: 45,000 rows,
batch 100 -> 450 steps per epoch, n_s = 5 epochs = 2250 steps).

OneCycle is PyTorch's OneCycleLR policy (Smith & Topin 2018) with its two-phase default, written
from torch/optim/lr_scheduler.py so that eta(t) is the rate torch's t-th optimizer.step() uses.
"""
import math
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


class OneCycle:
    """PyTorch's OneCycleLR (three_phase=False, anneal_strategy='cos'): eta rises from
    eta_max / div_factor to eta_max over the first pct_start of the run, then falls to
    eta_max / (div_factor * final_div_factor); `momentum(t)` moves the other way, from
    max_momentum down to base_momentum and back (cycle_momentum)."""

    def __init__(self, eta_max, total_steps, pct_start=0.3, div_factor=25.0, final_div_factor=1e4,
                 base_momentum=0.85, max_momentum=0.95):
        if not 0 < eta_max < np.inf:
            raise ValueError(f"eta_max must be a finite number > 0; got {eta_max!r}.")
        self.total_steps = _positive_int("total_steps", total_steps)
        if not 0 < pct_start < 1:
            raise ValueError(f"pct_start must be in (0, 1); got {pct_start!r}.")
        for name, value in (("div_factor", div_factor), ("final_div_factor", final_div_factor)):
            if not 0 < value < np.inf:
                raise ValueError(f"{name} must be a finite number > 0; got {value!r}.")
        # torch's phases: the rise ends at step pct_start * total - 1, the fall at total - 1,
        # and the fall is measured from the rise's end step
        self.rise_end = float(pct_start * self.total_steps) - 1
        if self.rise_end <= 0 or self.total_steps - 1 <= self.rise_end:
            raise ValueError(f"a one-cycle run of {self.total_steps} steps with pct_start={pct_start} has "
                             f"an empty phase (torch's OneCycleLR divides by zero there); give it at "
                             f"least {math.ceil(2 / pct_start)} steps or change pct_start.")
        self.eta_max, self.pct_start = float(eta_max), float(pct_start)
        self.eta_start = self.eta_max / div_factor
        self.eta_end = self.eta_start / final_div_factor
        self.div_factor, self.final_div_factor = float(div_factor), float(final_div_factor)
        self.base_momentum, self.max_momentum = float(base_momentum), float(max_momentum)

    def _anneal(self, t, start, peak, end):
        """torch's _annealing_cos over the two phases, from start to peak and on to end."""
        t = _steps(t).astype(np.float64)
        rising = t <= self.rise_end
        pct = np.where(rising, t / self.rise_end,
                       (t - self.rise_end) / (self.total_steps - 1 - self.rise_end))
        a, b = np.where(rising, start, peak), np.where(rising, peak, end)
        out = b + (a - b) / 2.0 * (np.cos(np.pi * pct) + 1)
        return float(out) if out.ndim == 0 else out

    def eta(self, t):
        return self._anneal(t, self.eta_start, self.eta_max, self.eta_end)

    def momentum(self, t):
        return self._anneal(t, self.max_momentum, self.base_momentum, self.max_momentum)

    def __repr__(self):
        return (f"OneCycle(eta_max={self.eta_max}, total_steps={self.total_steps}, pct_start="
                f"{self.pct_start}, div_factor={self.div_factor}, final_div_factor="
                f"{self.final_div_factor})")
