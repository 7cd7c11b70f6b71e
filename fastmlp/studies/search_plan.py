"""The settings of a search (SearchPlan, one `fastmlp search` flag per field) and their checks.

What is searched, and how (see search_points.py for the draws):
- lam always: log-uniform in [10^l_min, 10^l_max], or the values of `lams`;
- the learning rate if asked: the cyclic schedule's eta_max (`eta_max_range`, `eta_maxes`) or,
  with --schedule constant, the constant eta (`eta_range`, `etas`);
- the architecture (`sizes_choices`) and the dropout rate (`dropouts`) if asked, from their lists.
`sampler` random draws from ranges and lists; grid takes every combination of the lists (lam
without --lams: `coarse` values evenly spaced in log10 over its range); tpe lets Optuna's seeded
TPE choose (search_tpe.py).  After random or grid, `stages` - 1 fine stages of `fine` trials
each draw around the best trial so far, `width` decades either side, narrowed by `shrink` per stage.
"""
from dataclasses import dataclass, field, replace

import numpy as np

from .. import extras
from ..config import parse_sizes
from .search_state import check_finite, check_integer

SAMPLERS = ("random", "grid", "tpe")


def _arg(default, help, **cli):
    """A SearchPlan field: `help` is its comment and its CLI help; `cli` holds argparse extras."""
    return field(default=default, metadata={"help": help, **cli})


def _range(help):
    return _arg(None, help, type=float, nargs=2, metavar=("LO", "HI"))


@dataclass
class SearchPlan:
    """Every setting of a search but the base TrainConfig; `fastmlp search` has one flag per field."""
    sampler: str = _arg("random", "how trials are chosen: random (from ranges and lists), grid (every "
                                  "combination of the lists), tpe (Optuna's TPE; needs pip install "
                                  "\"fastmlp[optuna]\")", choices=SAMPLERS)
    l_min: float = _arg(-5.0, "log10 of the smallest lam of the coarse phase", type=float)
    l_max: float = _arg(-1.0, "log10 of the largest lam of the coarse phase", type=float)
    lams: str | tuple | None = _arg(None, "the lam values of the coarse phase instead of the range, "
                                          "comma-separated; with lists only, each combination is "
                                          "run once (at most --coarse of them)", metavar="0.01,0.02,...")
    eta_max_range: tuple | None = _range("also search eta_max, log-uniform in [10^LO, 10^HI]; unset: "
                                         "--eta-max for every trial")
    eta_maxes: str | tuple | None = _arg(None, "also search eta_max over these values, comma-separated",
                                         metavar="0.05,0.1,...")
    eta_range: tuple | None = _range("with --schedule constant: also search eta, log-uniform in "
                                     "[10^LO, 10^HI]; unset: --eta for every trial")
    etas: str | tuple | None = _arg(None, "with --schedule constant: also search eta over these values, "
                                          "comma-separated", metavar="0.001,0.01,...")
    sizes_choices: str | tuple | None = _arg(None, "also search the architecture: candidate layer widths, "
                                                   "comma-separated, drawn uniformly; the fine phase keeps "
                                                   "the coarse winner's; unset: --sizes for every trial",
                                             metavar="auto-50-50-auto,auto-100-auto,...")
    dropouts: str | tuple | None = _arg(None, "also search the dropout rate (of every hidden layer) over "
                                              "these values; the fine phase keeps the winner's",
                                        metavar="0,0.1,0.3")
    coarse: int = _arg(8, "trials of the coarse phase (tpe: its random start-up trials)", type=int)
    fine: int | None = _arg(None, "trials of each fine stage (tpe: the trials TPE chooses); unset: 8, "
                                  "or 0 with --sampler grid", type=int)
    stages: int = _arg(2, "phases in all: the coarse one, then stages - 1 fine stages, each around "
                          "the best trial so far", type=int)
    width: float = _arg(0.5, "decades either side of the best trial's lam (and eta) searched by "
                             "the first fine stage", type=float)
    shrink: float = _arg(0.5, "each further fine stage searches width times this many decades", type=float)
    fine_l_range: tuple | None = _range("the first fine stage draws log10 lam from [LO, HI] instead of "
                                        "around the best trial")
    fine_eta_range: tuple | None = _range("the first fine stage draws log10 of the searched eta_max or "
                                          "eta from [LO, HI] instead of around the best trial")
    search_seed: int = _arg(0, "seeds the draws", type=int)
    repeats: int = _arg(1, "runs per trial, seeds --seed, --seed + 1, ...; ranked by mean validation "
                           "accuracy, shown as mean ± std", type=int)
    show_test: bool = _arg(False, "also show the test accuracy in the table and the log; the search "
                                  "ranks by validation accuracy, and picking by test scores overfits "
                                  "the test set", action="store_true")
    workers: int | None = _arg(None, "parallel local worker processes, one Numba thread each; unset: 2",
                               type=int)
    dask_scheduler: str | None = _arg(None, "run the trials on the Dask cluster of this scheduler "
                                            "(tcp://HOST:PORT) instead of local processes; needs "
                                            "pip install \"fastmlp[dask]\"", metavar="ADDRESS")
    final: bool = _arg(False, "retrain the winner (best validation accuracy) for --final-cycles cycles "
                              "into OUT/final/", action="store_true")
    final_cycles: int | None = _arg(None, "cycles of the final run; unset: twice --cycles", type=int)
    final_train_val: bool = _arg(False, "train the final run on the training and validation rows "
                                        "together (no validation score then)", action="store_true")

    def validate(self):
        """Check and normalise every field that can be checked without the base config; return self."""
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}; got {self.sampler!r}.")
        for name in ("l_min", "l_max", "width", "shrink"):
            check_finite(name, getattr(self, name))
        if self.fine is None:
            self.fine = 0 if self.sampler == "grid" else 8
        _bounds(self)
        if self.l_min > self.l_max:
            raise ValueError(f"l_min must be <= l_max; got l_min={self.l_min}, l_max={self.l_max}.")
        for name in ("eta_max_range", "eta_range", "fine_l_range", "fine_eta_range"):
            setattr(self, name, _log_range(name, getattr(self, name)))
        for name, hi in (("lams", 1e3), ("eta_maxes", 10.0), ("etas", 10.0)):
            setattr(self, name, _values(name, getattr(self, name), 0.0, hi, open_lo=True))
        self.dropouts = _values("dropouts", self.dropouts, 0.0, 1.0, open_hi=True)
        for a, b in (("eta_max_range", "eta_maxes"), ("eta_range", "etas"), ("eta_max_range", "eta_range"),
                     ("eta_maxes", "etas"), ("eta_max_range", "etas"), ("eta_maxes", "eta_range")):
            if getattr(self, a) is not None and getattr(self, b) is not None:
                raise ValueError(f"{a} and {b} both search the learning rate; give one of them (got "
                                 f"--{a.replace('_', '-')} and --{b.replace('_', '-')}).")
        if self.sizes_choices is not None:
            self.sizes_choices = _parse_choices(self.sizes_choices)
        for name, lo in (("coarse", 1), ("fine", 0), ("stages", 1), ("search_seed", 0), ("repeats", 1)):
            check_integer(name, getattr(self, name), lo)
        if not 0 < self.shrink <= 1:
            raise ValueError(f"shrink must be in (0, 1] (each fine stage searches width * shrink^k decades); "
                             f"got {self.shrink!r}.")
        self._check_sampler()
        for name in ("workers", "final_cycles"):
            if getattr(self, name) is not None:
                check_integer(name, getattr(self, name), 1)
        if self.dask_scheduler is not None:
            if not isinstance(self.dask_scheduler, str) or not self.dask_scheduler.strip():
                raise ValueError(f"dask_scheduler must be the scheduler's address, e.g. tcp://10.0.0.5:8786; "
                                 f"got {self.dask_scheduler!r}.")
            _check_address(self.dask_scheduler)
            if self.workers is not None:
                raise ValueError(f"workers sets the local process pool, but dask_scheduler runs the trials "
                                 f"on the cluster's workers; drop workers (got workers={self.workers}).")
        if not self.final:
            for name, unset in (("final_cycles", None), ("final_train_val", False)):
                if getattr(self, name) != unset:
                    raise ValueError(f"{name} sets the final run of the winner, which needs final; add "
                                     f"--final or drop --{name.replace('_', '-')} (got {getattr(self, name)}).")
        return self

    def _check_sampler(self):
        if self.sampler == "grid":
            for name, values in (("eta_max_range", "eta_maxes"), ("eta_range", "etas")):
                if getattr(self, name) is not None:
                    raise ValueError(f"a grid takes listed values, not the range {name}; give --"
                                     f"{values.replace('_', '-')} V1,V2,... instead, or use --sampler random.")
            if self.grid_size() > MAX_TRIALS:
                raise ValueError(f"the grid has {self.grid_size()} points, more than {MAX_TRIALS}; list fewer "
                                 f"values.")
        if self.sampler == "tpe":
            extras.require("optuna", "optuna", "--sampler tpe")      # before the search folder is made
            for name, unset in (("stages", 2), ("fine_l_range", None), ("fine_eta_range", None)):
                if getattr(self, name) != unset:
                    raise ValueError(f"{name} sets the fine stages of a random or grid search; TPE chooses "
                                     f"its own trials after --coarse random ones: drop --"
                                     f"{name.replace('_', '-')} or use --sampler random "
                                     f"(got {getattr(self, name)!r}).")
        elif self.stages > 1 and self.fine == 0 and (self.fine_l_range or self.fine_eta_range):
            raise ValueError("fine_l_range and fine_eta_range set the first fine stage, which has no trials "
                             "with fine=0; give --fine N.")

    def grid_size(self):
        axes = [self.lams or range(self.coarse), self.eta_maxes or self.etas or [0],
                self.sizes_choices or [0], self.dropouts or [0]]
        return int(np.prod([len(a) for a in axes]))

    def rate(self):
        """The learning-rate field this search varies ("eta_max" or "eta"), or None."""
        if self.eta_max_range is not None or self.eta_maxes is not None:
            return "eta_max"
        if self.eta_range is not None or self.etas is not None:
            return "eta"
        return None

    def searched(self):
        """The TrainConfig fields whose values differ between trials, in table order."""
        return ["lam", *filter(None, [self.rate()]), *(["sizes"] if self.sizes_choices else []),
                *(["dropout"] if self.dropouts else [])]

    def check_base(self, base):
        """The checks that need the base config."""
        rate = self.rate()
        name = next((n for n in ("eta_max_range", "eta_maxes", "eta_range", "etas") if getattr(self, n)), None)
        if rate == "eta_max" and base.schedule != "cyclic":
            raise ValueError(f"{name} searches the cyclic schedule's eta_max, but schedule is {base.schedule!r}; "
                             f"use --schedule cyclic, or --eta-range / --etas with --schedule constant.")
        if rate == "eta" and base.schedule != "constant":
            raise ValueError(f"{name} searches the constant schedule's eta, but schedule is {base.schedule!r}; "
                             f"add --schedule constant, or use --eta-max-range / --eta-maxes for the cyclic one.")
        if self.eta_max_range and 10.0 ** self.eta_max_range[0] < base.eta_min:
            raise ValueError(f"eta_max_range LO must be >= log10(eta_min) = {np.log10(base.eta_min):.3g}, so that "
                             f"every eta_max >= eta_min; got LO={self.eta_max_range[0]}. Raise LO or lower --eta-min.")
        if self.eta_maxes and min(self.eta_maxes) < base.eta_min:
            raise ValueError(f"every value of eta_maxes must be >= eta_min = {base.eta_min:g}; got "
                             f"{min(self.eta_maxes):g}. Drop it or lower --eta-min.")
        for sizes in (self.sizes_choices or [base.sizes]) if self.dropouts else []:   # a rate > 0 needs a hidden layer
            try:
                replace(base, sizes=sizes, dropout=max(self.dropouts)).validate()
            except ValueError as e:
                raise ValueError(f"dropouts {max(self.dropouts):g} with sizes {sizes}: {e}") from None
        if self.final_cycles is None:
            self.final_cycles = 2 * base.cycles
        return self


def conflicts(plan, given):
    """A TrainConfig flag given on the command line that a plan field searches: one error line."""
    for flag, fields in (("eta_max", ("eta_max_range", "eta_maxes")), ("eta", ("eta_range", "etas")),
                         ("sizes", ("sizes_choices",)), ("dropout", ("dropouts",))):
        for searched in fields:
            if flag in given and getattr(plan, searched) is not None:
                raise ValueError(f"--{flag.replace('_', '-')} fixes {flag} for every trial but --"
                                 f"{searched.replace('_', '-')} searches it; give one of them (got --"
                                 f"{flag.replace('_', '-')} {given[flag]}).")


def _log_range(name, value):
    if value is None:
        return None
    lo_hi = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    if len(lo_hi) != 2:
        raise ValueError(f"{name} must be two numbers LO HI (log10 of the values); got {value!r}.")
    for part, v in zip(("LO", "HI"), lo_hi):
        check_finite(f"{name} {part}", v)
    hi = 3 if name.endswith("l_range") else 1
    if lo_hi[0] > lo_hi[1] or lo_hi[1] > hi or lo_hi[0] < L_RANGE[0]:
        what = "lam <= 1000" if hi == 3 else "a learning rate <= 10"
        raise ValueError(f"{name} must be LO <= HI <= {hi} and LO >= {L_RANGE[0]:g} (log10 of the values, so "
                         f"{what}); got LO={lo_hi[0]}, HI={lo_hi[1]}.")
    return tuple(map(float, lo_hi))


def _values(name, values, lo, hi, open_lo=False, open_hi=False):
    """'a,b,c' or a sequence of numbers -> a tuple of distinct floats in the interval, or None."""
    if values is None:
        return None
    items = values.split(",") if isinstance(values, str) else list(values)
    rule = f"{'(' if open_lo else '['}{lo:g}, {hi:g}{')' if open_hi else ']'}"
    try:
        numbers = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        numbers = ()
    ok = numbers and all(np.isfinite(v) and (lo < v if open_lo else lo <= v) and (v < hi if open_hi else v <= hi)
                         for v in numbers)
    if not ok or len(set(numbers)) != len(numbers):
        raise ValueError(f"{name} must be distinct numbers in {rule} separated by commas, e.g. --"
                         f"{name.replace('_', '-')} {'0,0.1,0.3' if name == 'dropouts' else '0.01,0.02'}; "
                         f"got {values!r}.")
    return numbers


def _parse_choices(choices):
    """'a,b,c' or a sequence of size strings -> a tuple of size strings, each checked."""
    items = choices.split(",") if isinstance(choices, str) else list(choices)
    items = [item.strip() if isinstance(item, str) else item for item in items]
    if not items or any(item in ("", None) for item in items):
        raise ValueError(f"sizes_choices must be layer widths separated by commas, e.g. "
                         f"'auto-50-50-auto,auto-100-auto'; got {choices!r}.")
    for k, item in enumerate(items):
        try:
            parse_sizes(item)
        except ValueError as e:
            raise ValueError(f"sizes_choices entry {k + 1} ({item!r}) is not an architecture: {e}") from None
    return tuple(item if isinstance(item, str) else "-".join(map(str, item)) for item in items)


# ---- bounds (issue 14: every bad flag is one line naming it) --------------------------------------
L_RANGE = (-15.0, 3.0)     # log10 lam: below, the penalty is lost in the float64 rounding of the loss;
                           # above, it crushes every weight to zero
MAX_WIDTH = 5.0            # decades either side of the coarse winner
MAX_TRIALS = 10_000        # per phase
MAX_STAGES = 20            # each narrows the search; more cannot tell trials apart
MAX_WORKERS = 256          # local processes, each holding the data and a Numba runtime
MAX_REPEATS = 1000         # seeds per trial
DASK_SCHEMES = ("tcp", "tls", "ucx", "ws", "wss", "inproc")


def _bounds(plan):
    for name in ("l_min", "l_max"):
        if not L_RANGE[0] <= getattr(plan, name) <= L_RANGE[1]:
            raise ValueError(f"{name} must be in [{L_RANGE[0]:g}, {L_RANGE[1]:g}] (log10 of lam); got "
                             f"{getattr(plan, name)!r}.")
    if not 0 < plan.width <= MAX_WIDTH:
        raise ValueError(f"width must be in (0, {MAX_WIDTH:g}] (decades either side of the coarse winner); "
                         f"got {plan.width!r}.")
    for name, hi in (("coarse", MAX_TRIALS), ("fine", MAX_TRIALS), ("stages", MAX_STAGES),
                     ("repeats", MAX_REPEATS), ("workers", MAX_WORKERS)):
        value = getattr(plan, name)
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > hi:
            raise ValueError(f"{name} must be at most {hi}; got {value!r}.")


def _check_address(address):
    scheme, sep, rest = address.strip().rpartition("://")
    if sep and scheme not in DASK_SCHEMES:
        raise ValueError(f"dask_scheduler must be an address with one of the schemes {', '.join(DASK_SCHEMES)} "
                         f"(e.g. tcp://10.0.0.5:8786); got {address!r}.")
