"""What a search shows: its log lines, results.md (ranked by validation accuracy, then in trial
order), results.json / .csv and val_vs_lam.png.

The test accuracy is left out of the tables and the log unless plan.show_test: a search ranks by
validation accuracy, and a table of test scores invites picking the trial by them, which makes the
test score of the pick an optimistic one (the final run's test accuracy is the one to report).
"""
import re
from pathlib import Path

from .. import checkpoint
from . import repeats as rep
from .report import markdown, write_csv, write_json

PHASE_ORDER = re.compile(r"^(coarse|fine(\d*)|tpe)-(\d+)$")
LATER = {"fine": "fine", "tpe": "TPE"}


def val_key(record):
    return -1.0 if record["val_accuracy"] is None else record["val_accuracy"]


def trial_order(record):
    """Sort key: coarse trials, then fine stage 1, 2, ..., TPE's, each in the order drawn."""
    m = PHASE_ORDER.match(record["key"])
    if m is None:
        return (99, 0, record["key"])
    stage = 0 if m[1] == "coarse" else 99 if m[1] == "tpe" else int(m[2] or 1)
    return (stage, int(m[3]), "")


def layers(sizes):
    """Weight layers of a sizes string: auto-50-50-auto has 3."""
    return sizes.count("-")


def _cell(name, value):
    if name == "sizes":
        return value
    if name == "dropout":
        return f"{value:g}" if isinstance(value, (int, float)) else ",".join(f"{v:g}" for v in value)
    return f"{value:.3e}"


def describe_point(record, plan):
    return ", ".join(f"{name}={_cell(name, record[name])}" for name in plan.searched())


def describe_result(record, plan):
    if record["val_accuracy"] is None:
        return "diverged"
    val = rep.pct_mean_std(record["val_accuracy"], record["val_accuracy_std"])
    test = rep.pct_mean_std(record["test_accuracy"], record["test_accuracy_std"])
    return (f"val {val}" + (f", test {test}" if plan.show_test else "") +
            (f" ({record['diverged']} diverged)" if record["diverged"] else ""))


def best_line(records):
    """Coarse best and overall best validation accuracy (the later phases can only add to it)."""
    coarse = max((r for r in records if r["phase"] == "coarse"), key=val_key)
    best = records[0]
    later = sorted({LATER.get(r["phase"].rstrip("0123456789"), r["phase"]) for r in records} - {"coarse"})
    if not later:
        return f"Best validation accuracy: {rep.pct(best['val_accuracy'])} ({best['key']}), coarse phase only."
    stages = len({r["phase"] for r in records if r["phase"].startswith("fine")})
    name = later[0] + (" phases" if stages > 1 else " phase")
    return (f"Best validation accuracy: coarse phase {rep.pct(coarse['val_accuracy'])} ({coarse['key']}); "
            f"after the {name} {rep.pct(best['val_accuracy'])} ({best['key']}).")


def table(records, plan, ranked=True):
    """The markdown table of `records` as given: rank (or trial order), the searched columns, the
    number of layers, the scores (mean ± std over a trial's seeds)."""
    searched = plan.searched()
    scores = ["val_accuracy", *(["test_accuracy"] if plan.show_test else []), "train_accuracy"]
    header = ["rank" if ranked else "#", "trial", "phase", "layers", *searched,
              *(s.replace("_", " ") for s in scores), *(["runs"] if plan.repeats > 1 else []), "seconds"]
    rows = []
    for k, r in enumerate(records):
        runs = [f"{len(r['runs'])}" + (f" ({r['diverged']} diverged)" if r["diverged"] else "")]
        rows.append([k + 1, r["key"], r["phase"], layers(r["sizes"]), *(_cell(c, r[c]) for c in searched),
                     *(_score(r, key) for key in scores), *(runs if plan.repeats > 1 else []),
                     f"{r['seconds']:.1f}"])
    return markdown(header, rows)


def title(plan):
    what = {"eta_max": "eta_max", "eta": "eta", "sizes": "the architecture", "dropout": "dropout"}
    names = ["lam", *(what[c] for c in plan.searched()[1:])]
    how = {"random": "Random search", "grid": "Grid search", "tpe": "TPE search (Optuna)"}[plan.sampler]
    return f"{how} for " + ", ".join(names[:-1]) + (" and " if len(names) > 1 else "") + names[-1]


def write_search(out, records, plan=None):
    """results.md / .json / .csv (best validation accuracy first) and val_vs_lam.png; returns the
    ranked markdown table."""
    from .search_figure import plot_val_vs_lam      # matplotlib only when writing
    from .search_plan import SearchPlan
    plan = plan or SearchPlan().validate()
    out = Path(out)
    md = table(records, plan)
    seeds = f" Each trial: {plan.repeats} seeds, mean ± std." if plan.repeats > 1 else ""
    hidden = "" if plan.show_test else " Test accuracy not shown (--show-test shows it): rank and pick by validation."
    by_trial = table(sorted(records, key=trial_order), plan, ranked=False)
    checkpoint.atomic_write_text(out / "results.md", f"# {title(plan)}\n\n{md}\n\n{best_line(records)}{seeds}"
                                                     f"{hidden}\n\n## In trial order\n\n{by_trial}\n")
    write_json(out / "results.json", records)
    hide = set() if plan.show_test else {"test_accuracy", "test_accuracy_std"}
    write_csv(out / "results.csv", [{"rank": k + 1, "layers": layers(r["sizes"]),
                                     **{c: v for c, v in r.items() if c != "runs" and c not in hide},
                                     "runs": len(r["runs"])} for k, r in enumerate(records)])
    plot_val_vs_lam(records, out / "val_vs_lam.png", title(plan))
    return md


def _score(record, key):
    if record["val_accuracy"] is None:
        return "diverged"
    return rep.pct_mean_std(record[key], record[f"{key}_std"])
