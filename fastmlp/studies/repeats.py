"""One config trained with several seeds: `fastmlp train --repeats N` and the final run of a search.

Each seed's run is a whole run folder, OUT/seed-<s>/ (as `fastmlp train` writes it), trained
through fastmlp.run.train.  OUT/summary.md and OUT/summary.json hold a row per seed and the mean
± std (sample std, over the runs that finished) of the train, validation and test accuracy: the
reports' "trained 6 times".  Rerunning with the same OUT reuses the seeds that finished and
resumes the one that was interrupted (trials.run_or_reuse).
"""
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import checkpoint, lock
from ..divergence import exploded
from ..progress import RunsProgress
from ..run import load_data, resolve_dataset
from .report import markdown, write_json
from .trials import run_or_reuse

ACCURACIES = ("train_accuracy", "val_accuracy", "test_accuracy")
SUMMARY_FILES = ("summary.md", "summary.json")


def seeds_of(config, repeats):
    """The seeds of `repeats` runs of `config`: seed, seed + 1, ..."""
    return list(range(config.seed, config.seed + repeats))


def seed_folder(out, seed):
    return Path(out) / f"seed-{seed}"


def train_repeats(config, repeats, *, progress=False, log=print):
    """Train `config` once per seed into config.out/seed-<s>/; return the run records (see
    run_record), in seed order.  config.out must be set; the data is loaded once.  progress: one
    bar with an ETA over the runs (fastmlp.progress.RunsProgress).  The lock on config.out is
    held throughout (the caller may hold it already, to write the summary too)."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1 (runs, seeds seed, seed + 1, ...); got {repeats!r}.")
    if config.out is None:
        raise ValueError("train_repeats needs config.out, the folder that holds a seed-<s>/ folder per run.")
    name, note = resolve_dataset(config)
    config = replace(config, dataset=name).validate()
    with lock.hold(config.out, f"fastmlp train --repeats {repeats}"):
        if note:
            log(note)
        splits = load_data(config)
        runs = []
        with RunsProgress(repeats, "repeats", log, progress) as bar:
            for k, seed in enumerate(seeds_of(config, repeats)):
                run_config = replace(config, seed=seed, out=str(seed_folder(config.out, seed)))
                tic = time.perf_counter()
                metrics, _, diverged = run_or_reuse(run_config, splits)
                runs.append(run_record(seed, run_config.out, metrics, diverged, time.perf_counter() - tic))
                bar.advance(f"[{k + 1}/{repeats}] seed {seed}: {describe_run(runs[-1])}")
    return runs


def run_record(seed, out, metrics, diverged, seconds):
    """What a table needs of one run: its seed, accuracies (None where unmeasured or diverged),
    final validation loss, why it diverged (the TrainingDiverged message, or that its loss
    exploded: divergence.exploded) or None, seconds and folder.  seconds: the run's own wall time
    (metrics.json's, so that a run read back reports the same), else `seconds`."""
    diverged = diverged or (metrics is not None and exploded(metrics)) or None
    scores = {k: None if diverged else metrics[k] for k in (*ACCURACIES, "val_loss")}
    seconds = seconds if metrics is None else metrics["seconds"]
    return {"seed": seed, **scores, "diverged": diverged, "seconds": seconds, "out": str(out)}


def describe_run(run):
    if run["diverged"]:
        return f"diverged ({run['diverged']})"
    return (f"train {pct(run['train_accuracy'])}, val {pct(run['val_accuracy'])}, "
            f"test {pct(run['test_accuracy'])} ({run['seconds']:.1f} s)")


def mean_std(runs, key):
    """(mean, sample std) of runs' `key` over the runs that have it; None where undefined
    (no such run; std of a single run)."""
    values = np.array([r[key] for r in runs if r.get(key) is not None], dtype=np.float64)
    mean = float(values.mean()) if len(values) else None
    std = float(values.std(ddof=1)) if len(values) > 1 else None
    return mean, std


def summarise(runs):
    """{key: mean, key_std: std} for each accuracy and the final validation loss, over `runs`."""
    summary = {}
    for key in (*ACCURACIES, "val_loss"):
        summary[key], summary[f"{key}_std"] = mean_std(runs, key)
    return summary


def pct(value):
    return "-" if value is None else f"{100 * value:.2f}%"


def pct_mean_std(mean, std):
    return "-" if mean is None else f"{100 * mean:.2f}%" + ("" if std is None else f" ± {100 * std:.2f}")


def summary_table(runs, out):
    """A row per seed (folder relative to `out`), then the mean ± std row."""
    rows = [[r["seed"], *(("diverged",) * 3 if r["diverged"] else (pct(r[k]) for k in ACCURACIES)),
             _relative(r["out"], out)] for r in runs]
    summary = summarise(runs)
    rows.append(["mean ± std", *(pct_mean_std(summary[k], summary[f"{k}_std"]) for k in ACCURACIES),
                 _finished(runs)])
    return markdown(["seed", "train accuracy", "val accuracy", "test accuracy", "folder"], rows)


def _finished(runs):
    n = sum(not r["diverged"] for r in runs)
    return f"{n} of {len(runs)} runs" + (f" ({len(runs) - n} diverged)" if n < len(runs) else "")


def _relative(path, out):
    try:
        return str(Path(path).resolve().relative_to(Path(out).resolve()))
    except ValueError:
        return str(path)


def write_summary(out, runs, config, title, notes=(), extra=None):
    """OUT/summary.md (title, notes, table) and OUT/summary.json (config, runs, mean ± std and
    `extra`); returns the markdown table."""
    out = Path(out)
    table = summary_table(runs, out)
    text = "\n\n".join([f"# {title}", *notes, table])
    checkpoint.atomic_write_text(out / "summary.md", text + "\n")
    write_json(out / "summary.json", {"title": title, "notes": list(notes), **(extra or {}),
                                      "config": config.to_dict(), "seeds": [r["seed"] for r in runs],
                                      "runs": runs, "summary": summarise(runs),
                                      "diverged": sum(bool(r["diverged"]) for r in runs)})
    return table
