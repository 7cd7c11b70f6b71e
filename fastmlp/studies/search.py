"""`fastmlp search`: the search for the L2 penalty lam (and, if asked, the learning rate, the
architecture and the dropout rate), then optionally the winner retrained for longer.

What is searched and how the trials are chosen (random, grid, Optuna's TPE; coarse then fine
stages) is set by a SearchPlan (search_plan.py; the draws are in search_points.py, TPE in
search_tpe.py).  The ranking covers every phase, so the best validation accuracy after the fine
stages is never below the coarse best.

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
from dataclasses import replace
from pathlib import Path

from .. import lock
from ..progress import RunsProgress
from . import jsonl
from . import repeats as rep
from .executors import completed, trial_executor
from .search_plan import SearchPlan, conflicts  # noqa: F401  (the CLI and tests import them from here)
from .search_points import around, coarse_random, coarse_size, draws, grid, log_uniform  # noqa: F401
from .search_state import portable, same_final, same_search, trial_record
from .search_table import best_line, describe_point, describe_result, val_key, write_search  # noqa: F401

RESULTS = "trials.jsonl"
FINAL = "final"
lam_values = log_uniform     # the name the lam draws had before eta_max was searched too


# ---- the search --------------------------------------------------------------------------------
def search(base, out, plan=None, log=print, progress=False):
    """Run the coarse phase and the fine stages, or TPE's trials (and the final run if plan.final); return (every trial's
    record, best mean validation accuracy first; the final runs' records or None).  progress: one
    bar with an ETA over the runs left (fastmlp.progress.RunsProgress).  The lock on
    `out` is held throughout (the caller may hold it already, to write the tables too)."""
    plan = (plan or SearchPlan()).validate()
    out = Path(out).resolve()      # workers, local or remote, may start in another folder
    base = portable(replace(base, out=None)).validate()
    plan.check_base(base)
    with lock.hold(out, "fastmlp search"):
        same_search(out / "search.json", base, plan)
        done = {r["key"]: r for r in jsonl.read(out / RESULTS, lambda r: trial_record(r, base), log)}
        final_runs = None
        with trial_executor(plan) as executor, \
                RunsProgress(_runs_left(plan, base, done), "search", log, progress) as bar:
            log = bar.write
            if plan.sampler == "tpe":
                from .search_tpe import tpe_search     # Optuna only when asked for
                tpe_search(executor, base, plan, out, done, log, bar)
            else:
                _stages(executor, base, plan, out, done, log, bar)
            records = sorted(done.values(), key=val_key, reverse=True)
            if plan.final:
                final_runs = _final(executor, records[0], base, plan, out, log, bar)
    return records, final_runs


def _runs_left(plan, base, done):
    """Runs the search has still to train (for the progress bar's ETA)."""
    if plan.sampler == "tpe":
        trials = plan.coarse + plan.fine
    else:
        trials = coarse_size(plan, base) + (plan.fine * (plan.stages - 1) if plan.fine else 0)
    return plan.repeats * (max(trials - len(done), 0) + bool(plan.final))


def _stages(executor, base, plan, out, done, log, bar):
    """The coarse phase (random draws or the grid), then each fine stage around the best trial of
    the phases before it (not of later ones a restarted search has already run: the same centre,
    so the same draws)."""
    coarse = grid(plan, base) if plan.sampler == "grid" else coarse_random(plan, base, plan.coarse)
    _phase(executor, "coarse", coarse, base, plan, out, done, log, bar)
    earlier = {"coarse"}
    for stage in range(1, plan.stages if plan.fine else 1):
        best = max((r for r in done.values() if r["phase"] in earlier), key=val_key, default=None)
        if best is None:
            raise ValueError(f"every coarse trial of the search in {out} failed (see the warnings above), "
                             f"so there is no best trial to refine; rerun the same command to try them again.")
        phase = phase_name(stage)
        _phase(executor, phase, around(plan, base, stage, plan.fine, best), base, plan, out, done, log, bar)
        earlier.add(phase)


def phase_name(stage):
    """coarse, fine, fine2, fine3, ...: the name of stage 0, 1, 2, 3, ... in keys and tables."""
    return "coarse" if stage == 0 else "fine" if stage == 1 else f"fine{stage}"


def _phase(executor, phase, points, base, plan, out, done, log, bar):
    """Train the trials of `points` not in `done`, each with every seed; record each trial in
    `done` and OUT/trials.jsonl as soon as its last seed finishes.  A trial with a failed run
    (its worker died again and again) is left out with a warning, so a rerun tries it again."""
    trials = {f"{phase}-{k}": p for k, p in enumerate(points)}
    seeds = rep.seeds_of(base, plan.repeats)
    jobs = [((key, seed), trial_config(base, point, seed, out / "runs" / run_folder(key, point, seed, plan)), False)
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
                log(f"warning: trial {key} ({describe_point(trials[key], plan)}) is left out: a run of it "
                    f"failed. Rerun the same command to try it again.")
                continue
            record = finish_trial(out, done, key, phase, trials[key], trial_runs)
            log(f"[{phase} {sum(k in done for k in trials)}/{len(trials)}] {describe_point(record, plan)}: "
                f"{describe_result(record, plan)} ({record['seconds']:.1f} s)")


def trial_config(base, point, seed, folder):
    return replace(base, **point, seed=seed, out=str(folder))


def run_folder(key, point, seed, plan):
    """runs/<key>-lam<lam>[-eta<rate>][-<sizes>][-drop<rate>][-seed<s>]: the searched values in the name."""
    name = f"{key}-lam{point['lam']:.3e}"
    if plan.rate():
        name += f"-eta{point[plan.rate()]:.3e}"
    if plan.sizes_choices:
        name += f"-{point['sizes']}"
    if plan.dropouts:
        name += f"-drop{point['dropout']:g}"
    return name + (f"-seed{seed}" if plan.repeats > 1 else "")


def finish_trial(out, done, key, phase, point, runs):
    """A trial's line of trials.jsonl, written there and into `done`: its point, the mean and std
    of its runs' scores, its runs (in seed order)."""
    runs = sorted(runs, key=lambda r: r["seed"])
    finished = [r for r in runs if not r["diverged"]]
    done[key] = record = {"key": key, "phase": phase, **point, **rep.summarise(finished),
                          "diverged": len(runs) - len(finished), "seconds": sum(r["seconds"] for r in runs),
                          "runs": runs}
    jsonl.append(out / RESULTS, record)
    return record


def _final(executor, winner, base, plan, out, log, bar):
    """Retrain `winner` for plan.final_cycles with the search's seeds into OUT/final/; return its runs."""
    if winner["val_accuracy"] is None:
        raise ValueError("every trial diverged, so there is no winner to retrain; search lower lam or "
                         "learning rates (--l-max, --eta-max-range, --eta-range) and run again.")
    folder = out / FINAL
    point = {k: winner[k] for k in ("lam", "eta_max", "sizes", *plan.searched())}
    config = replace(base, **point, cycles=plan.final_cycles)
    settings = {"winner": winner["key"], **point, "cycles": plan.final_cycles, "train_val": plan.final_train_val,
                "seeds": rep.seeds_of(base, plan.repeats)}
    same_final(folder / "final.json", settings)
    log(f"Final: retraining {winner['key']} ({describe_point(winner, plan)}) for {plan.final_cycles} cycles on "
        f"the training{' and validation' if plan.final_train_val else ''} rows.")
    jobs = [(seed, trial_config(config, {}, seed, rep.seed_folder(folder, seed)), plan.final_train_val)
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
    return (f"Final: the search's winner {winner['key']} ({describe_point(winner, plan)}), "
            f"{plan.final_cycles} cycles")


def final_notes(plan):
    if plan.final_train_val:
        return ("Trained on the training and validation rows together: no rows are held out for "
                "validation, so the val column is empty; the test accuracy is the score to report.",)
    return ("Trained on the training rows; the validation rows are those the search ranked on, so the "
            "test accuracy is the unbiased score.",)
