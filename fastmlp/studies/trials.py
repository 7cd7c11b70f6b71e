"""Run a grid of trials, each over several seeds, through fastmlp.run.train; summarise and write.

A trial is a set of TrainConfig changes with the cells that name it in the table.  Every run
writes its own run folder (OUT/runs/<trial>-seed<k>/, as `fastmlp train` would), so a study that
is stopped and started again with the same --out reuses the runs that finished and resumes the one
that was interrupted.  A run whose loss becomes NaN is recorded as diverged, not fatal.

What a study writes from them (tables, figures) is study_results.py's.
"""
import json
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import checkpoint, lock
from ..config import FIELDS, RESUME_FREE
from ..divergence import exploded
from ..progress import RunsProgress
from ..run import CHECKPOINT, MODEL, load_data, resolve_dataset, train
from ..train import History, TrainingDiverged


@dataclass
class Trial:
    cells: dict            # column -> value naming the trial in the table, e.g. {"init": "He"}
    changes: dict          # TrainConfig fields this trial sets
    panel: str = ""        # the figure panel its curve goes in
    curve: str = ""        # the curve's label in that panel

    @property
    def label(self):
        return ", ".join(f"{k} {v}" for k, v in self.cells.items())

    @property
    def slug(self):
        return re.sub(r"[^A-Za-z0-9.]+", "-", "-".join(map(str, self.cells.values()))).strip("-")


@dataclass
class Outcome:
    """One trial over its seeds.  Lists run parallel to `seeds`; None where a run diverged."""
    trial: Trial
    seeds: list = field(default_factory=list)
    configs: list = field(default_factory=list)
    metrics: list = field(default_factory=list)      # metrics.json of each run, or None
    histories: list = field(default_factory=list)    # train.History of each run, or None
    diverged: list = field(default_factory=list)     # the TrainingDiverged message, or None


def run_trials(trials, base, seeds, out, log=print, progress=False):
    """Train every trial with every seed (base config + trial changes + seed); return Outcomes.

    The data is loaded once, with the base config (all trials must share dataset, split and dtype).
    log gets one line per finished run.  progress: one bar with an ETA over the runs
    (fastmlp.progress.RunsProgress).  The lock on `out` is held while the runs train.
    """
    out = Path(out)
    base = replace(base, dataset=resolve_dataset(base)[0]).validate()
    configs = [[replace(base, **t.changes, seed=s, out=str(out / "runs" / f"{t.slug}-seed{s}")).validate()
                for s in seeds] for t in trials]
    with lock.hold(out, "fastmlp study"):
        splits = load_data(base)
        with RunsProgress(len(trials) * len(seeds), "study", log, progress) as bar:
            return _run_all(trials, configs, seeds, splits, bar)


def _run_all(trials, configs, seeds, splits, bar):
    outcomes, total, done = [], len(trials) * len(seeds), 0
    for trial, trial_configs in zip(trials, configs):
        outcome = Outcome(trial)
        for seed, config in zip(seeds, trial_configs):
            tic = time.perf_counter()
            metrics, history, diverged = run_or_reuse(config, splits)
            done += 1
            for name, value in (("seeds", seed), ("configs", config), ("metrics", metrics),
                                ("histories", history), ("diverged", diverged)):
                getattr(outcome, name).append(value)
            diverged = diverged or exploded(metrics)
            result = (f"diverged ({diverged})" if diverged else
                      f"test {_pct(metrics['test_accuracy'])}, val {_pct(metrics['val_accuracy'])}")
            bar.advance(f"[{done}/{total}] {trial.label}, seed {seed}: {result} ({time.perf_counter() - tic:.1f} s)")
        outcomes.append(outcome)
    return outcomes


def run_or_reuse(config, splits, progress=False):
    """(metrics, history, None) of one run, or (None, None, message) if it diverged.  A run that
    finished in an earlier session is read back; one that was interrupted is resumed.
    progress: show the trainer's progress bar.  The run folder is locked before it is looked at."""
    folder = Path(config.out)
    with lock.hold(folder, "fastmlp train"):
        if (folder / MODEL).exists() and not (folder / CHECKPOINT).exists():
            metrics = _finished_metrics(folder)
            check_same_config(folder, metrics["config"], config)
            return metrics, History.from_arrays(checkpoint.load(folder / MODEL).history), None
        try:
            result = train(config, splits, resume=(folder / CHECKPOINT).exists(), progress=progress)
        except TrainingDiverged as e:
            return None, None, str(e)
    return result.metrics, result.history, None


def _finished_metrics(folder):
    """metrics.json of a finished run folder, which must be a JSON object with its config."""
    path = folder / "metrics.json"
    try:
        metrics = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as e:
        metrics = f"not readable JSON ({type(e).__name__})"
    if not isinstance(metrics, dict) or not isinstance(metrics.get("config"), dict):
        raise ValueError(f"{path} is not the metrics of a finished run ({str(metrics)[:100]}); remove {folder} "
                         f"to train that run again.")
    return metrics


def check_same_config(folder, stored, config):
    given = json.loads(json.dumps(config.to_dict()))
    for name in FIELDS:
        if name not in RESUME_FREE and stored.get(name) != given[name]:
            raise ValueError(f"{folder} holds runs made with {name}={stored.get(name)!r}, not "
                             f"{given[name]!r}; choose another --out for a study with other settings.")


def _pct(value):
    return "-" if value is None else f"{100 * value:.2f}%"
