"""Optimisers: SGD, SGD with momentum (optionally Nesterov), AdaGrad and Adam.

Each is a small object holding its hyperparameters and, once bound to a network, its memory
(`state`, two values per parameter at most) and step count.  The update itself is one fused
kernel over the flat parameter buffer (kernels/optim.py), run inside the compiled training step
layer by layer; the rules are PyTorch's (torch.optim.SGD / Adagrad / Adam with no weight decay
and dampening 0), and tests/test_optim.py checks them against PyTorch step for step.

The learning rate comes from the schedule at every step (the cyclical schedule drives any of
them); the L2 penalty stays in the cost, so it reaches the optimiser through the gradient.
"""
import numbers

import numpy as np

from ._checks import finite
from .kernels import optim as _k

NAMES = ("sgd", "momentum", "adagrad", "adam")


def _real(name, value, lo, hi, lo_open=False, hi_open=True):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and finite(value)
    if ok:
        ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        left, right = "(" if lo_open else "[", ")" if hi_open else "]"
        raise ValueError(f"{name} must be a number in {left}{lo}, {hi}{right}; got {value!r}.")
    return float(value)


class Optimizer:
    """Base: `kind` (kernels/optim.py code), `hp` (float64 hyperparameters), `state`, `t`."""
    kind = _k.SGD
    name = "sgd"
    needs_state = False
    cycled = None          # the hp entry a one-cycle schedule moves (momentum, Adam's beta1)

    def __init__(self):
        self.hp = np.zeros(_k.HP_SIZE, np.float64)
        self.state = None
        self.t = 0                 # steps taken
        self.cycle = None          # per-step values of hp[cycled], or None: fixed

    def bind(self, n_params, dtype):
        """Allocate (or keep) the memory for a network of n_params parameters; returns self."""
        size = 2 * n_params if self.needs_state else 0
        if self.state is None or self.state.shape != (size,) or self.state.dtype != dtype:
            self.state = np.zeros(size, dtype)
            self.t = 0
        return self

    def reset(self):
        if self.state is not None:
            self.state[...] = 0
        self.t = 0

    def hyper(self, t):
        """hp for step t (0-based): the step count in it is t + 1, as PyTorch counts."""
        self.hp[_k.HP_T] = t + 1
        if self.cycle is not None:
            self.hp[self.cycled] = self.cycle[t]
        return self.hp

    def hypers(self, t0, t1):
        """hp for steps t0 .. t1 - 1, one row each (a run of steps in one compiled call)."""
        rows = np.repeat(self.hp[None, :], t1 - t0, axis=0)
        rows[:, _k.HP_T] = np.arange(t0 + 1, t1 + 1)
        if self.cycle is not None:
            rows[:, self.cycled] = self.cycle[t0:t1]
        return rows

    def set_cycle(self, values):
        """Drive hp[cycled] with values[t] at step t (None: back to the fixed value); optimisers
        without such an entry (SGD, AdaGrad) ignore it, as they have nothing to cycle."""
        if self.cycled is not None:
            self.cycle = None if values is None else np.asarray(values, np.float64)
            if values is None:
                self.hp[self.cycled] = self._fixed

    def config(self):
        """The hyperparameters as a dict (metrics.json, checkpoints)."""
        return {"optimizer": self.name}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "optimizer")
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """theta -= eta * grad."""


class Momentum(Optimizer):
    """buf = momentum * buf + grad; theta -= eta * buf (Nesterov: eta * (grad + momentum * buf))."""
    needs_state = True

    def __init__(self, momentum=0.9, nesterov=False):
        super().__init__()
        self.momentum = _real("momentum", momentum, 0.0, 1.0, lo_open=True)
        self.nesterov = bool(nesterov)
        self.kind = _k.NESTEROV if self.nesterov else _k.MOMENTUM
        self.name = "momentum"
        self.hp[_k.HP_MOMENTUM] = self._fixed = self.momentum
        self.cycled = _k.HP_MOMENTUM

    def config(self):
        return {"optimizer": self.name, "momentum": self.momentum, "nesterov": self.nesterov}


class AdaGrad(Optimizer):
    """sum += grad^2; theta -= eta * grad / (sqrt(sum) + eps)."""
    kind, name, needs_state = _k.ADAGRAD, "adagrad", True

    def __init__(self, eps=1e-10):
        super().__init__()
        self.eps = _real("eps", eps, 0.0, 1.0, lo_open=True)
        self.hp[_k.HP_EPS] = self.eps

    def config(self):
        return {"optimizer": self.name, "eps": self.eps}


class Adam(Optimizer):
    """m, v moving averages of grad and grad^2 with bias correction;
    theta -= eta / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)."""
    kind, name, needs_state = _k.ADAM, "adam", True

    def __init__(self, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__()
        self.beta1 = _real("beta1", beta1, 0.0, 1.0)
        self.beta2 = _real("beta2", beta2, 0.0, 1.0)
        self.eps = _real("eps", eps, 0.0, 1.0, lo_open=True)
        self.hp[[_k.HP_BETA1, _k.HP_BETA2, _k.HP_EPS]] = self.beta1, self.beta2, self.eps
        self.cycled, self._fixed = _k.HP_BETA1, self.beta1

    def config(self):
        return {"optimizer": self.name, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}


def make(name="sgd", momentum=0.9, nesterov=False, beta1=0.9, beta2=0.999, eps=None):
    """The optimiser called `name` (one of NAMES); eps None: PyTorch's default for it."""
    if name == "sgd":
        return SGD()
    if name == "momentum":
        return Momentum(momentum, nesterov)
    if name == "adagrad":
        return AdaGrad(1e-10 if eps is None else eps)
    if name == "adam":
        return Adam(beta1, beta2, 1e-8 if eps is None else eps)
    raise ValueError(f"optimizer must be one of {', '.join(NAMES)}; got {name!r}.")


def get(optimizer):
    """An Optimizer from an instance or a name."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str):
        return make(optimizer)
    raise ValueError(f"optimizer must be one of {', '.join(NAMES)} or a fastmlp.optim.Optimizer; "
                     f"got {optimizer!r}.")
