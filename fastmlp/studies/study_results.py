"""What a study writes: the table (train, validation and test accuracy and the final validation
loss, mean ± std over seeds), results.json / .csv, configs.json and the figures.

A run counts as diverged when its loss became NaN or inf (the trainer stopped it) or when it
finished with an exploded loss (fastmlp.divergence.exploded): either way it is left out of the
means and the figures' axes, and counted in the runs column.
"""
from pathlib import Path

import numpy as np

from .. import checkpoint
from ..divergence import exploded
from .report import markdown, write_csv, write_json

SCORES = ("train_accuracy", "val_accuracy", "test_accuracy", "val_loss")


def failures(outcome):
    """Per run of a trials.Outcome: None if it finished sound, else why it counts as diverged."""
    return [message if metrics is None else exploded(metrics)
            for message, metrics in zip(outcome.diverged, outcome.metrics)]


def sound_runs(outcome):
    """(metrics, history) of each run of `outcome` that finished and did not explode."""
    return [(m, h) for m, h, bad in zip(outcome.metrics, outcome.histories, failures(outcome)) if bad is None]


def summarise(outcomes):
    """One record per trial: its cells, then mean and std (sample, over the sound runs) of the
    accuracies and of the final validation loss, and how many runs there were / diverged."""
    records = []
    for o in outcomes:
        record = dict(o.trial.cells)
        sound = [m for m, _ in sound_runs(o)]
        for key in SCORES:
            v = np.array([m[key] for m in sound if m.get(key) is not None], dtype=np.float64)
            record[f"{key}_mean"] = float(v.mean()) if len(v) else None
            record[f"{key}_std"] = float(v.std(ddof=1)) if len(v) > 1 else None
        record["runs"] = len(o.seeds)
        record["diverged"] = len(o.seeds) - len(sound)
        records.append(record)
    return records


def table(records, columns):
    """The markdown table of summarise()'s records; `columns` are the trial cells shown first."""
    header = [*columns, "train accuracy", "val accuracy", "test accuracy", "final val loss", "runs"]
    rows = []
    for r in records:
        runs = f"{r['runs']}" + (f" ({r['diverged']} diverged)" if r["diverged"] else "")
        rows.append([*(r[c] for c in columns), *(_mean_std(r, k, 100, "%") for k in SCORES[:3]),
                     _mean_std(r, "val_loss", 1, ""), runs])
    return markdown(header, rows)


def _mean_std(record, key, scale, unit):
    mean, std = record[f"{key}_mean"], record[f"{key}_std"]
    if mean is None:
        return "diverged"
    return f"{scale * mean:.2f}{unit}" + (f" ± {scale * std:.2f}" if std is not None else "")


def write_study(out, name, outcomes, columns, title):
    """results.md/.json/.csv, configs.json, curves.png and val_loss.png in `out`; returns
    (markdown table, paths)."""
    from .figures import plot_study, plot_val_loss       # matplotlib only when writing
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = summarise(outcomes)
    md = table(records, columns)
    checkpoint.atomic_write_text(out / "results.md", f"# {title}\n\n{md}\n")
    write_json(out / "results.json", {"study": name, "title": title, "trials": [
        {**r, "seeds": o.seeds, **{key: [_get(m, key) for m in o.metrics] for key in SCORES},
         "diverged_message": failures(o), "runs_out": [c.out for c in o.configs]}
        for r, o in zip(records, outcomes)]})
    write_csv(out / "results.csv", records)
    write_json(out / "configs.json", [{"trial": o.trial.label, "seed": s, "config": c.to_dict()}
                                      for o in outcomes for s, c in zip(o.seeds, o.configs)])
    figures = [plot_study(outcomes, out / "curves.png", title), plot_val_loss(outcomes, out / "val_loss.png", title)]
    names = ["results.md", "results.json", "results.csv", "configs.json", *(f.name for f in figures)]
    return md, [out / n for n in names]


def _get(metrics, key):
    return None if metrics is None else metrics[key]
