"""Divergence: what the trainer checks besides the batch loss, and the one-line message it raises.

Why the loss alone is not enough (each seen): a training-mode forward normalises with the
batch's own statistics, so the BN running variance can overflow to inf while every batch loss
stays finite, and the saved model then predicts one class for every row; Adam's second moment
can overflow to inf and freeze a parameter (its update m / sqrt(v) becomes 0) with no NaN
anywhere; finite parameters can give an infinite evaluation loss or L2 term.  So the trainer
checks the parameters, the running statistics and the optimiser's memory after every run of
steps (isfinite over three flat buffers: 0.1-0.2 ms for the study's 3072-50-50-10 network, under
0.5 % of a ~50 ms run of steps) and every evaluation row, and never writes a checkpoint of a network that fails them.

The advice names the setting whose stability rule the run broke, where one did (Adam's beta2,
the L2 penalty), else the learning rate.
"""
import math

import numpy as np


class TrainingDiverged(ArithmeticError):
    """The training diverged: a loss, parameter, BN running statistic or optimiser memory became
    NaN or infinite.  step: the step it was found at; eta: that step's learning rate; knob: the
    TrainConfig field the advice names (None when not known)."""

    def __init__(self, message, step=None, eta=None, knob=None):
        super().__init__(message)
        self.step, self.eta, self.knob = step, eta, knob


def nonfinite_state(net, optimizer):
    """What holds a NaN or an infinity among the network's parameters, its BN running statistics
    and the optimiser's memory, as words for the message; None when everything is finite."""
    for buf, views, kind in ((net.theta, net.params, "parameter"),
                             (net.stats, net.running, "BN running statistic")):
        if not np.isfinite(buf).all():      # the flat buffer first: one pass when all is well
            name = next(k for k, v in views.items() if not np.isfinite(v).all())
            return f"the {kind} {name} holds {_worst(views[name])}"
    state = optimizer.state
    if state is not None and state.size and not np.isfinite(state).all():
        return f"the optimizer's memory holds {_worst(state)}"
    return None


def nonfinite_scores(names, values, of="the evaluation's"):
    """The first of `values` (named by `names`) that is NaN or infinite, as words; None if none."""
    for name, value in zip(names, values):
        if not math.isfinite(value):
            return f"{of} {name} is {value}"
    return None


def _worst(a):
    return "NaN" if np.isnan(a).any() else "inf"


def advice(config, etas, hypers, names=None):
    """(knob, sentence): the TrainConfig field to change and how, for a run that diverged with
    the learning rates `etas` of the steps taken so far and `hypers` (the optimiser's hp rows
    of those steps, kernels/optim.py, or None: the config's fixed values).  names: field -> how
    the caller calls it (an adapter's own parameter names); default 'lam (--lam, now 0.005)'."""
    def say(field):
        value = getattr(config, field)
        if names and field in names:
            return f"{names[field]} (now {value:g})"
        return f"{field} (--{field.replace('_', '-')}, now {value:g})"

    eta_max = float(np.max(etas)) if len(etas) else 0.0
    eta = "eta" if config.schedule == "constant" else "eta_max"
    opt = config.optimizer
    if opt == "adam":
        # |m / sqrt(v)| is bounded only while beta1 < sqrt(beta2) (a geometric series in
        # beta1 / sqrt(beta2)); beyond it one small gradient after large ones makes a huge step
        beta1 = _max_hyper(hypers, "HP_BETA1", config.beta1)
        if beta1 >= math.sqrt(config.beta2):
            return "beta2", (f"Raise {say('beta2')}: Adam's step m / sqrt(v) is unbounded unless "
                             f"beta1 < sqrt(beta2), and beta1 reached {beta1:g}; the default is 0.999.")
    if opt in ("sgd", "momentum") and config.lam > 0:
        # the L2 term alone is a quadratic of curvature 2 lam per weight: plain SGD on it is
        # stable while eta * lam < 1, heavy-ball momentum mu while eta * lam < 1 + mu,
        # Nesterov while eta * lam < (1 + mu) / (1 + 2 mu)
        limit = 1.0
        if opt == "momentum":
            mu = np.asarray([config.momentum] if hypers is None else _column(hypers, "HP_MOMENTUM"))
            limit = float(np.min((1 + mu) / (1 + 2 * mu) if config.nesterov else 1 + mu))
        if eta_max * config.lam >= limit:
            return "lam", (f"Lower {say('lam')} or {say(eta)}: the L2 penalty alone makes the weights "
                           f"grow once eta * lam >= {limit:.3g}, and eta * lam reached "
                           f"{eta_max * config.lam:.3g}.")
    text = f"Lower {say(eta)}"
    default_eps = {"adam": 1e-8, "adagrad": 1e-10}.get(opt)
    if default_eps and config.opt_eps is not None and config.opt_eps < default_eps:
        text += f", or raise {say('opt_eps')} to its default {default_eps:g}"
    return eta, text + "."


def _column(hypers, which):
    from .kernels import optim as k
    return np.asarray(hypers)[:, getattr(k, which)]


def _max_hyper(hypers, which, fixed):
    return fixed if hypers is None or not len(hypers) else float(np.max(_column(hypers, which)))


# ---- a finished run whose loss exploded ---------------------------------------------------------
EXPLODED_FACTOR = 10.0


def exploded(metrics):
    """Why a finished run (its metrics.json) counts as diverged although every number it holds is
    finite, or None.  The rule: its final validation loss (the training loss when there are no
    validation rows) is above EXPLODED_FACTOR * ln K for K classes.

    Why: ln K is the loss of a uniform guess, where a fresh network starts; sound runs end below
    it and overfit ones a few times above it, so a run ending ten times worse than guessing has
    learnt nothing usable.  Its loss then only says how far the logits blew up (measured: eta =
    0.09 without BN ended at validation loss 6.4e32), and averaged or plotted with the other runs
    it flattens their curves to zero and prints as a 33-digit number.  The trainer stops only on a
    NaN or inf (TrainingDiverged); the studies, searches and --repeats summaries apply this rule."""
    part = "val" if metrics.get("val_loss") is not None else "train"
    loss, classes = metrics[f"{part}_loss"], metrics["sizes"][-1]
    limit = EXPLODED_FACTOR * math.log(classes)
    if loss is None or (math.isfinite(loss) and loss <= limit):
        return None
    return (f"the loss exploded: final {part} loss {loss:.3g} > {EXPLODED_FACTOR:g} x ln {classes} "
            f"= {limit:.3g}, a uniform guess's loss times {EXPLODED_FACTOR:g}")
