"""The three studies of the report, as grids of Trials over a base TrainConfig.

init   weight init N(0, sigma^2) for each sigma, and He, with and without batch norm
depth  3-layer (50-50) vs 9-layer (50-30-20-20-10-10-10-10) hidden widths, with and without BN
eta    a constant learning rate, small / medium / large, with and without BN

Each design names the TrainConfig fields it varies (`varies`): the CLI takes every other field as
a flag, passed through to every run as `fastmlp train` would.
"""
from dataclasses import dataclass

from .trials import Trial

SIGMAS = (1e-1, 1e-3, 1e-4)
HIDDEN = ("50-50", "50-30-20-20-10-10-10-10")
ETAS = (1e-3, 1e-2, 1e-1)
BN = ((False, "without batch norm"), (True, "with batch norm"))


@dataclass(frozen=True)
class Design:
    name: str
    title: str
    varies: tuple            # TrainConfig fields its trials set
    option: str              # the flag that lists the values compared
    default: tuple
    help: str

    def trials(self, values):
        return [t for bn, panel in BN for t in TRIALS[self.name](values, bn, panel)]

    def columns(self):
        return COLUMNS[self.name]


def _init_trials(sigmas, bn, panel):
    inits = [*((float(s), f"σ={float(s):g}") for s in sigmas), ("he", "He")]
    return [Trial({"init": name, "batch norm": _yes(bn)}, {"init": init, "batch_norm": bn}, panel, name)
            for init, name in inits]


def _depth_trials(hidden, bn, panel):
    return [Trial({"layers": len(h.split("-")) + 1, "hidden": h, "batch norm": _yes(bn)},
                  {"sizes": f"auto-{h}-auto", "batch_norm": bn}, panel, f"{len(h.split('-')) + 1}-layer ({h})")
            for h in hidden]


def _eta_trials(etas, bn, panel):
    return [Trial({"eta": f"{float(e):g}", "batch norm": _yes(bn)},
                  {"schedule": "constant", "eta": float(e), "batch_norm": bn}, panel, f"η={float(e):g}")
            for e in etas]


def _yes(flag):
    return "yes" if flag else "no"


TRIALS = {"init": _init_trials, "depth": _depth_trials, "eta": _eta_trials}
COLUMNS = {"init": ("init", "batch norm"), "depth": ("layers", "hidden", "batch norm"),
           "eta": ("eta", "batch norm")}
STUDIES = {
    "init": Design("init", "Weight initialisation: N(0, σ²) and He, with and without batch norm",
                   ("init", "batch_norm"), "--sigmas", SIGMAS,
                   "standard deviations of the N(0, sigma^2) inits compared with He"),
    "depth": Design("depth", "Depth: 3 vs 9 layers, with and without batch norm",
                    ("sizes", "batch_norm"), "--hidden", HIDDEN,
                    "hidden widths of each network compared, joined by '-'"),
    "eta": Design("eta", "Constant learning rate, with and without batch norm",
                  ("schedule", "eta", "eta_min", "eta_max", "batch_norm"), "--etas", ETAS,
                  "constant learning rates compared"),
}
