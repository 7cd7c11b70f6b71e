"""The trial points of a random or grid search: {lam, eta_max, eta, sizes, dropout} dicts, the
TrainConfig fields a trial sets (those not searched keep the base config's value).

Every quantity has its own seeded stream ([search_seed, stage, quantity]), so a restarted search
draws the same trials, and searching one more quantity leaves the draws of the others as they were.
"""
import itertools

import numpy as np

POINT = ("lam", "eta_max", "eta", "sizes", "dropout")
_STREAM = {"eta_max": 1, "sizes": 2, "eta": 3, "dropout": 4}     # lam: the stage's own stream


def log_uniform(lo, hi, n, seed):
    """n values log-uniform in [10^lo, 10^hi], seeded."""
    return list(10.0 ** np.random.default_rng(seed).uniform(lo, hi, n))


def pick(values, n, seed):
    """n values drawn uniformly, with replacement, from `values`, seeded."""
    return [values[k] for k in np.random.default_rng(seed).integers(len(values), size=n)]


def _seed(plan, stage, name):
    return [plan.search_seed, stage] + ([_STREAM[name]] if name in _STREAM else [])


def coarse_random(plan, base, n):
    """n points of the coarse phase: each searched quantity drawn from its range or list.  When
    every searched quantity is listed (--lams and no range), the points are distinct combinations
    of the lists, in grid order: all of them if there are at most n (`--lams 0.01,0.02,0.03` runs
    those three), else n of them drawn without replacement.  Drawing with replacement there would
    run the same trial again and again."""
    seed = _seed(plan, 0, "lam")
    if only_listed(plan):
        combos = grid(plan, base)
        if len(combos) <= n:
            return combos
        return [combos[k] for k in sorted(np.random.default_rng(seed).choice(len(combos), n, replace=False))]
    columns = {"lam": pick(plan.lams, n, seed) if plan.lams else log_uniform(plan.l_min, plan.l_max, n, seed)}
    for name, values, span in (("eta_max", plan.eta_maxes, plan.eta_max_range), ("eta", plan.etas, plan.eta_range)):
        if values:
            columns[name] = pick(values, n, _seed(plan, 0, name))
        elif span:
            columns[name] = log_uniform(*span, n, _seed(plan, 0, name))
    for name, values in (("sizes", plan.sizes_choices), ("dropout", plan.dropouts)):
        if values:
            columns[name] = pick(values, n, _seed(plan, 0, name))
    return _points(base, columns, n)


def only_listed(plan):
    """Whether every quantity a random search varies comes from a list (none from a range)."""
    return plan.lams is not None and plan.eta_max_range is None and plan.eta_range is None


def coarse_size(plan, base):
    """The number of trials of the coarse phase of a random or grid search."""
    if plan.sampler == "grid":
        return len(grid(plan, base))
    return min(plan.coarse, plan.grid_size()) if only_listed(plan) else plan.coarse


def grid(plan, base):
    """Every combination of the listed values (lam without a list: plan.coarse values evenly
    spaced in log10 over [l_min, l_max]), lam varying slowest."""
    axes = {"lam": plan.lams or list(np.logspace(plan.l_min, plan.l_max, plan.coarse)),
            "eta_max": plan.eta_maxes, "eta": plan.etas, "sizes": plan.sizes_choices, "dropout": plan.dropouts}
    axes = {name: values for name, values in axes.items() if values}
    combos = list(itertools.product(*axes.values()))
    return _points(base, {name: [c[k] for c in combos] for k, name in enumerate(axes)}, len(combos))


def around(plan, base, stage, n, centre):
    """n points of fine stage `stage` (1, 2, ...) around `centre` (the best record so far): lam and
    the searched learning rate log-uniform within +-width * shrink^(stage - 1) decades of the
    centre's (stage 1: within fine_l_range / fine_eta_range if given); sizes and dropout the centre's."""
    half = plan.width * plan.shrink ** (stage - 1)
    given = {"lam": plan.fine_l_range, plan.rate(): plan.fine_eta_range} if stage == 1 else {}
    columns = {}
    for name in filter(None, ("lam", plan.rate())):
        c = np.log10(centre[name])
        lo, hi = given.get(name) or (c - half, c + half)
        if name == "eta_max":      # never below eta_min: the schedule needs eta_min <= eta_max
            lo = max(lo, np.log10(base.eta_min))
        columns[name] = log_uniform(lo, max(lo, hi), n, _seed(plan, stage, name))
    for name in ("sizes", "dropout", "eta_max", "eta"):
        if name not in columns:
            columns[name] = [centre.get(name, getattr(base, name))] * n
    return _points(base, columns, n)


def _points(base, columns, n):
    def value(name, k):
        if name not in columns:
            return getattr(base, name)
        v = columns[name][k]       # numpy scalars as floats, for JSON; sizes and per-layer rates as given
        return float(v) if isinstance(v, (float, int, np.number)) and not isinstance(v, bool) else v
    return [{name: value(name, k) for name in POINT} for k in range(n)]


def draws(plan, base, phase, n, centre=None):
    """n random points of `phase` (0 coarse; 1, 2, ... fine stages around `centre`, a record)."""
    return coarse_random(plan, base, n) if centre is None else around(plan, base, phase, n, centre)
