"""`fastmlp search`: random search for the L2 penalty lam (and, if asked, eta_max and the
architecture), coarse then fine, then optionally the winner retrained for longer.

Coarse: `coarse` trials, lam drawn log-uniformly from [10^l_min, 10^l_max]; with `eta_max_range`
also eta_max, log-uniform in [10^lo, 10^hi]; with `sizes_choices` also the layer widths, uniformly
from that list.  Fine: `fine` trials around the coarse trial with the best validation accuracy:
its architecture, lam (and eta_max) drawn log-uniformly within +-`width` decades of its values.
Every quantity has its own seeded stream ([search_seed, phase, quantity]), so a restarted search
draws the same trials, and adding eta_max or the architecture leaves the lam draws as they were.
The best validation accuracy after the fine phase is never below the coarse best: the ranking
covers both phases.

With `repeats` N, each trial trains N seeds (seed, seed + 1, ...) and is ranked by its mean
validation accuracy; the table shows mean ± std.  `final` retrains the winner for `final_cycles`
cycles with the same seeds, on the training rows or on training + validation (`final_train_val`,
then there is no validation score and the test accuracy is the one to report), into OUT/final/.

Runs are tasks of a local pool of `workers` spawned processes, or of the workers of a Dask cluster
(`dask_scheduler`, needs the `dask` extra); see executors.py, also for what happens when a worker
or the search itself is killed.  Every finished trial is appended to OUT/trials.jsonl (jsonl.py:
one whole line at a time), and a restarted search with the same OUT reruns none of them (the runs
of an unfinished trial are reused or resumed from their folders, see trials.run_or_reuse).  The
search holds the lock on OUT (fastmlp.lock) for its whole life: a second one there is refused.
search.json (the settings) and the records are checked as they are read back (search_state.py).
"""
import contextlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .. import checkpoint, lock
from ..config import parse_sizes
from ..progress import RunsProgress
from . import jsonl
from . import repeats as rep
from .executors import completed, trial_executor
from .report import markdown, write_csv, write_json
from .search_state import check_finite, check_integer, portable, same_final, same_search, trial_record

RESULTS = "trials.jsonl"
FINAL = "final"


def _arg(default, help, **cli):
    """A SearchPlan field: `help` is its comment and its CLI help; `cli` holds argparse extras."""
    return field(default=default, metadata={"help": help, **cli})


@dataclass
class SearchPlan:
    """Every setting of a search but the base TrainConfig; `fastmlp search` has one flag per field."""
    l_min: float = _arg(-5.0, "log10 of the smallest lam of the coarse phase", type=float)
    l_max: float = _arg(-1.0, "log10 of the largest lam of the coarse phase", type=float)
    eta_max_range: tuple | None = _arg(None, "also search eta_max, log-uniform in [10^LO, 10^HI]; unset: "
                                             "--eta-max for every trial", type=float, nargs=2,
                                       metavar=("LO", "HI"))
    sizes_choices: str | tuple | None = _arg(None, "also search the architecture: candidate layer widths, "
                                                   "comma-separated, drawn uniformly; the fine phase keeps "
                                                   "the coarse winner's; unset: --sizes for every trial",
                                             metavar="auto-50-50-auto,auto-100-auto,...")
    coarse: int = _arg(8, "trials of the coarse phase", type=int)
    fine: int = _arg(8, "trials of the fine phase", type=int)
    width: float = _arg(0.5, "decades either side of the coarse winner's lam (and eta_max) searched by "
                             "the fine phase", type=float)
    search_seed: int = _arg(0, "seeds the draws", type=int)
    repeats: int = _arg(1, "runs per trial, seeds --seed, --seed + 1, ...; ranked by mean validation "
                           "accuracy, shown as mean ± std", type=int)
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
        for name in ("l_min", "l_max", "width"):
            check_finite(name, getattr(self, name))
        _bounds(self)
        if self.l_min > self.l_max:
            raise ValueError(f"l_min must be <= l_max; got l_min={self.l_min}, l_max={self.l_max}.")
        if self.eta_max_range is not None:
            lo_hi = tuple(self.eta_max_range)
            if len(lo_hi) != 2:
                raise ValueError(f"eta_max_range must be two numbers LO HI (log10 of eta_max); got "
                                 f"{self.eta_max_range!r}.")
            for name, value in zip(("eta_max_range LO", "eta_max_range HI"), lo_hi):
                check_finite(name, value)
            if lo_hi[0] > lo_hi[1] or lo_hi[1] > 1:
                raise ValueError(f"eta_max_range must be LO <= HI <= 1 (log10 of eta_max, so eta_max <= 10); "
                                 f"got LO={lo_hi[0]}, HI={lo_hi[1]}.")
            self.eta_max_range = tuple(map(float, lo_hi))
        if self.sizes_choices is not None:
            self.sizes_choices = _parse_choices(self.sizes_choices)
        for name, lo in (("coarse", 1), ("fine", 0), ("search_seed", 0), ("repeats", 1)):
            check_integer(name, getattr(self, name), lo)
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

    def check_base(self, base):
        """The checks that need the base config."""
        if self.eta_max_range is not None:
            if base.schedule != "cyclic":
                raise ValueError(f"eta_max_range searches the cyclic schedule's eta_max, but schedule is "
                                 f"{base.schedule!r}; use --schedule cyclic or drop --eta-max-range.")
            if 10.0 ** self.eta_max_range[0] < base.eta_min:
                raise ValueError(f"eta_max_range LO must be >= log10(eta_min) = {np.log10(base.eta_min):.3g}, "
                                 f"so that every eta_max >= eta_min; got LO={self.eta_max_range[0]}. Raise LO "
                                 f"or lower --eta-min.")
        if self.final_cycles is None:
            self.final_cycles = 2 * base.cycles
        return self


def log_uniform(lo, hi, n, seed):
    """n values log-uniform in [10^lo, 10^hi], seeded."""
    return list(10.0 ** np.random.default_rng(seed).uniform(lo, hi, n))


lam_values = log_uniform     # the name the lam draws had before eta_max was searched too


def draws(plan, base, phase, n, centre=None):
    """n trial points {lam, eta_max, sizes} of `phase` (0 coarse, 1 fine around `centre`, a record)."""
    seed = [plan.search_seed, phase]
    if centre is None:
        lams = log_uniform(plan.l_min, plan.l_max, n, seed)
        etas = (log_uniform(*plan.eta_max_range, n, [*seed, 1]) if plan.eta_max_range else [base.eta_max] * n)
        if plan.sizes_choices:
            picks = np.random.default_rng([*seed, 2]).integers(len(plan.sizes_choices), size=n)
            sizes = [plan.sizes_choices[k] for k in picks]
        else:
            sizes = [base.sizes] * n
    else:
        c = np.log10(centre["lam"])
        lams = log_uniform(c - plan.width, c + plan.width, n, seed)
        if plan.eta_max_range:   # never below eta_min: the schedule needs eta_min <= eta_max
            c = np.log10(centre["eta_max"])
            etas = log_uniform(max(c - plan.width, np.log10(base.eta_min)), c + plan.width, n, [*seed, 1])
        else:
            etas = [centre["eta_max"]] * n
        sizes = [centre["sizes"]] * n
    return [{"lam": float(lam), "eta_max": float(eta), "sizes": s} for lam, eta, s in zip(lams, etas, sizes)]


# ---- the search --------------------------------------------------------------------------------
def search(base, out, plan=None, log=print, progress=False):
    """Run the coarse and the fine phase (and the final run if plan.final); return (every trial's
    record, best mean validation accuracy first; the final runs' records or None).  progress: one
    bar with an ETA over the runs left (fastmlp.progress.RunsProgress).  The lock on `out` is held
    throughout (the caller may hold it already, to write the tables too)."""
    plan = (plan or SearchPlan()).validate()
    out = Path(out).resolve()      # workers, local or remote, may start in another folder
    base = portable(replace(base, out=None)).validate()
    plan.check_base(base)
    with lock.hold(out, "fastmlp search"):
        same_search(out / "search.json", base, plan)
        done = {r["key"]: r for r in jsonl.read(out / RESULTS, lambda r: trial_record(r, base), log)}
        final_runs = None
        runs_left = plan.repeats * (plan.coarse + plan.fine + plan.final - len(done))
        with trial_executor(plan) as executor, RunsProgress(runs_left, "search", log, progress) as bar:
            log = bar.write
            _phase(executor, "coarse", draws(plan, base, 0, plan.coarse), base, plan, out, done, log, bar)
            best = max((r for r in done.values() if r["phase"] == "coarse"), key=_val_key, default=None)
            if best is None:
                raise ValueError(f"every coarse trial of the search in {out} failed (see the warnings above), "
                                 f"so there is no best trial to refine; rerun the same command to try them again.")
            _phase(executor, "fine", draws(plan, base, 1, plan.fine, best), base, plan, out, done, log, bar)
            records = sorted(done.values(), key=_val_key, reverse=True)
            if plan.final:
                final_runs = _final(executor, records[0], base, plan, out, log, bar)
    return records, final_runs


def _phase(executor, phase, points, base, plan, out, done, log, bar):
    """Train the trials of `points` not in `done`, each with every seed; record each trial in
    `done` and OUT/trials.jsonl as soon as its last seed finishes.  A trial with a failed run
    (its worker died again and again) is left out with a warning, so a rerun tries it again."""
    trials = {f"{phase}-{k}": p for k, p in enumerate(points)}
    seeds = rep.seeds_of(base, plan.repeats)
    jobs = [((key, seed), _trial_config(base, point, seed, out / "runs" / _folder(key, point, seed, plan)), False)
            for key, point in trials.items() if key not in done for seed in seeds]
    runs = {}                                    # key -> the finished runs of an unfinished trial
    with contextlib.closing(completed(executor, jobs, log)) as finished:
        for (key, seed), run in bar.track(finished):
            runs.setdefault(key, []).append(run)
            if plan.repeats > 1 and run is not None:
                log(f"  {key} seed {seed}: {rep.describe_run(run)}")
            if len(runs[key]) < len(seeds):
                continue
            trial_runs = runs.pop(key)
            if None in trial_runs:
                log(f"warning: trial {key} ({_describe_point(trials[key], plan)}) is left out: a run of it "
                    f"failed. Rerun the same command to try it again.")
                continue
            done[key] = record = _record(key, phase, trials[key], sorted(trial_runs, key=lambda r: r["seed"]))
            jsonl.append(out / RESULTS, record)
            log(f"[{phase} {sum(k in done for k in trials)}/{len(trials)}] {_describe_point(record, plan)}: "
                f"{_describe_result(record)} ({record['seconds']:.1f} s)")


def _trial_config(base, point, seed, folder):
    return replace(base, **point, seed=seed, out=str(folder))


def _folder(key, point, seed, plan):
    name = f"{key}-lam{point['lam']:.3e}"
    if plan.eta_max_range:
        name += f"-eta{point['eta_max']:.3e}"
    if plan.sizes_choices:
        name += f"-{point['sizes']}"
    return name + (f"-seed{seed}" if plan.repeats > 1 else "")


def _record(key, phase, point, runs):
    """A trial's line of trials.jsonl: its point, the mean and std of its runs' scores, its runs."""
    finished = [r for r in runs if not r["diverged"]]
    return {"key": key, "phase": phase, **point, **rep.summarise(finished),
            "diverged": len(runs) - len(finished), "seconds": sum(r["seconds"] for r in runs), "runs": runs}


def _final(executor, winner, base, plan, out, log, bar):
    """Retrain `winner` for plan.final_cycles with the search's seeds into OUT/final/; return its runs."""
    if winner["val_accuracy"] is None:
        raise ValueError("every trial diverged, so there is no winner to retrain; search lower lam or "
                         "eta_max ranges (--l-max, --eta-max-range) and run again.")
    folder = out / FINAL
    point = {k: winner[k] for k in ("lam", "eta_max", "sizes")}
    config = replace(base, **point, cycles=plan.final_cycles)
    settings = {"winner": winner["key"], **point, "cycles": plan.final_cycles, "train_val": plan.final_train_val,
                "seeds": rep.seeds_of(base, plan.repeats)}
    same_final(folder / "final.json", settings)
    log(f"Final: retraining {winner['key']} ({_describe_point(winner, plan)}) for {plan.final_cycles} cycles on "
        f"the training{' and validation' if plan.final_train_val else ''} rows.")
    jobs = [(seed, _trial_config(config, {}, seed, rep.seed_folder(folder, seed)), plan.final_train_val)
            for seed in settings["seeds"]]
    with contextlib.closing(completed(executor, jobs, log)) as finished:
        runs = [run for _, run in bar.track(finished)]
    if None in runs:
        raise ValueError(f"the final run in {folder} failed: its worker process died again and again (see the "
                         f"warnings above); rerun the same command to try it again (the trials are kept).")
    runs.sort(key=lambda r: r["seed"])
    for run in runs:
        log(f"  final seed {run['seed']}: {rep.describe_run(run)}")
    rep.write_summary(folder, runs, config, final_title(winner, plan),
                      final_notes(plan), {"winner": winner, "final": settings})
    return runs


def final_title(winner, plan):
    return (f"Final: the search's winner {winner['key']} ({_describe_point(winner, plan)}), "
            f"{plan.final_cycles} cycles")


def final_notes(plan):
    if plan.final_train_val:
        return ("Trained on the training and validation rows together: no rows are held out for "
                "validation, so the val column is empty; the test accuracy is the score to report.",)
    return ("Trained on the training rows; the validation rows are those the search ranked on, so the "
            "test accuracy is the unbiased score.",)


# ---- records and settings ----------------------------------------------------------------------
def _val_key(record):
    return -1.0 if record["val_accuracy"] is None else record["val_accuracy"]


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
    for name, hi in (("coarse", MAX_TRIALS), ("fine", MAX_TRIALS), ("repeats", MAX_REPEATS), ("workers", MAX_WORKERS)):
        value = getattr(plan, name)
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > hi:
            raise ValueError(f"{name} must be at most {hi}; got {value!r}.")


def _check_address(address):
    scheme, sep, rest = address.strip().rpartition("://")
    if sep and scheme not in DASK_SCHEMES:
        raise ValueError(f"dask_scheduler must be an address with one of the schemes {', '.join(DASK_SCHEMES)} "
                         f"(e.g. tcp://10.0.0.5:8786); got {address!r}.")


# ---- tables ------------------------------------------------------------------------------------
def _describe_point(record, plan):
    parts = [f"lam={record['lam']:.3e}"]
    if plan.eta_max_range:
        parts.append(f"eta_max={record['eta_max']:.3e}")
    if plan.sizes_choices:
        parts.append(f"sizes={record['sizes']}")
    return ", ".join(parts)


def _describe_result(record):
    if record["val_accuracy"] is None:
        return "diverged"
    val = rep.pct_mean_std(record["val_accuracy"], record["val_accuracy_std"])
    test = rep.pct_mean_std(record["test_accuracy"], record["test_accuracy_std"])
    return f"val {val}, test {test}" + (f" ({record['diverged']} diverged)" if record["diverged"] else "")


def best_line(records):
    """Coarse best and overall best validation accuracy (the fine phase can only add to it)."""
    coarse = max((r for r in records if r["phase"] == "coarse"), key=_val_key)
    best = records[0]
    return (f"Best validation accuracy: coarse phase {rep.pct(coarse['val_accuracy'])} ({coarse['key']}); "
            f"after the fine phase {rep.pct(best['val_accuracy'])} ({best['key']}).")


def write_search(out, records, plan=None):
    """results.md / .json / .csv, best validation accuracy first; returns the markdown table.
    The table shows the searched columns: lam, and eta_max and sizes when they were searched."""
    plan = plan or SearchPlan()
    out = Path(out)
    searched = ["lam", *(["eta_max"] if plan.eta_max_range else []), *(["sizes"] if plan.sizes_choices else [])]
    header = ["rank", "phase", *searched, "val accuracy", "test accuracy", "train accuracy",
              *(["runs"] if plan.repeats > 1 else []), "seconds"]
    rows = []
    for k, r in enumerate(records):
        cells = [f"{r[c]:.3e}" if c != "sizes" else r[c] for c in searched]
        scores = [_score(r, key) for key in ("val_accuracy", "test_accuracy", "train_accuracy")]
        runs = [f"{len(r['runs'])}" + (f" ({r['diverged']} diverged)" if r["diverged"] else "")]
        rows.append([k + 1, r["phase"], *cells, *scores, *(runs if plan.repeats > 1 else []),
                     f"{r['seconds']:.1f}"])
    md = markdown(header, rows)
    title = "Random search for " + " and ".join(["lam", *(["eta_max"] if plan.eta_max_range else []),
                                                 *(["the architecture"] if plan.sizes_choices else [])])
    seeds = f" Each trial: {plan.repeats} seeds, mean ± std." if plan.repeats > 1 else ""
    checkpoint.atomic_write_text(out / "results.md", f"# {title}\n\n{md}\n\n{best_line(records)}{seeds}\n")
    write_json(out / "results.json", records)
    write_csv(out / "results.csv", [{"rank": k + 1, **{c: v for c, v in r.items() if c != "runs"},
                                     "runs": len(r["runs"])} for k, r in enumerate(records)])
    return md


def _score(record, key):
    if record["val_accuracy"] is None:
        return "diverged"
    return rep.pct_mean_std(record[key], record[f"{key}_std"])

