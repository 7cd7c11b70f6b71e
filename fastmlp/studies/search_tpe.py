"""`fastmlp search --sampler tpe`: Optuna's TPE chooses the trials (needs pip install "fastmlp[optuna]").

The search has plan.coarse + plan.fine trial slots.  The first plan.coarse are TPE's random
start-up trials (phase "coarse"), the rest are chosen by TPE from the trials finished so far
(phase "tpe").  Each slot is one task of the executor (local processes or a Dask cluster): the
worker opens the Optuna study in OUT/optuna.journal itself (a JournalStorage file, which Optuna
locks for each write, so the workers share it without any coordination of ours), asks it for a
trial, trains that trial's seeds, and tells the study the mean validation accuracy (0 when every
seed diverged, so that TPE steers away from there).  constant_liar keeps concurrent workers from
asking for the same point.

A trial carries its slot number (a user attribute).  A slot whose task is run again (its worker
died, or the search was killed and restarted) takes up the trial it asked for before, so it
trains the same point and reuses or resumes that point's run folders; only slots without a line
in trials.jsonl are run again.  With --workers 1 the search is reproducible (seeded TPE: each
slot's sampler is seeded with [search_seed, slot]); with several workers the TPE trials depend on
which trials have finished when each is asked.
"""
import contextlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import extras
from ..config import TrainConfig
from . import repeats as rep
from .executors import completed, train_one
from .search import finish_trial, run_folder, trial_config
from .search_plan import SearchPlan
from .search_points import POINT
from .search_table import describe_point, describe_result

STUDY = "fastmlp-search"
JOURNAL = "optuna.journal"


@dataclass(frozen=True)
class TpeJob:
    """What a worker needs for one slot; `out` (the search folder) also names it in a warning."""
    slot: int
    base: TrainConfig
    plan: SearchPlan
    out: str


def _optuna():
    optuna = extras.require("optuna", "optuna", "--sampler tpe")
    optuna.logging.set_verbosity(optuna.logging.WARNING)      # no line per trial: the search logs its own
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def storage(out):
    """The study's JournalStorage in the search folder, OUT/optuna.journal."""
    optuna = _optuna()
    from optuna.storages.journal import JournalFileBackend
    return optuna.storages.JournalStorage(JournalFileBackend(str(Path(out) / JOURNAL)))


def distributions(plan):
    """What TPE searches: lam and the learning rate log-uniform over their ranges or categorical
    over their lists; the architecture and the dropout rate categorical."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    found = {"lam": CategoricalDistribution(plan.lams) if plan.lams else
             FloatDistribution(10.0 ** plan.l_min, 10.0 ** plan.l_max, log=True)}
    rate = plan.rate()
    if rate:
        values, span = (plan.eta_maxes, plan.eta_max_range) if rate == "eta_max" else (plan.etas, plan.eta_range)
        found[rate] = CategoricalDistribution(values) if values else \
            FloatDistribution(10.0 ** span[0], 10.0 ** span[1], log=True)
    if plan.sizes_choices:
        found["sizes"] = CategoricalDistribution(plan.sizes_choices)
    if plan.dropouts:
        found["dropout"] = CategoricalDistribution(plan.dropouts)
    return found


def key_of(slot, plan):
    return f"coarse-{slot}" if slot < plan.coarse else f"tpe-{slot - plan.coarse}"


def tpe_search(executor, base, plan, out, done, log, bar=None):
    """Run every slot without a record in `done`; record each trial as it finishes."""
    optuna = _optuna()
    optuna.create_study(study_name=STUDY, storage=storage(out), direction="maximize", load_if_exists=True)
    sizes = {"coarse": plan.coarse, "tpe": plan.fine}
    jobs = [(slot, TpeJob(slot, base, plan, str(out)), False) for slot in range(plan.coarse + plan.fine)
            if key_of(slot, plan) not in done]
    with contextlib.closing(completed(executor, jobs, log, task=run_slot)) as finished:
        for slot, result in (finished if bar is None else bar.track(finished)):
            key = key_of(slot, plan)
            if result is None:
                log(f"warning: trial {key} is left out: its worker died again and again. Rerun the same command "
                    f"to try it again.")
                continue
            phase = key.split("-")[0]
            record = finish_trial(out, done, key, phase, result["point"], result["runs"])
            count = sum(r["phase"] == phase for r in done.values())
            log(f"[{phase} {count}/{sizes[phase]}] {describe_point(record, plan)}: "
                f"{describe_result(record, plan)} ({record['seconds']:.1f} s, Optuna trial {result['trial']})")


def run_slot(job, merge_val=False):
    """In a worker: ask the study for the slot's trial (or take up the one asked before), train
    its seeds, tell the study; return {"point", "runs", "trial"}."""
    optuna = _optuna()
    plan, base = job.plan, job.base
    seed = int(np.random.SeedSequence([plan.search_seed, job.slot]).generate_state(1)[0])
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=plan.coarse, constant_liar=True)
    study = optuna.load_study(study_name=STUDY, storage=storage(job.out), sampler=sampler)
    states = (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.COMPLETE)
    before = [t for t in study.get_trials(deepcopy=False, states=states) if t.user_attrs.get("slot") == job.slot]
    if before:
        number, params, running = before[-1].number, before[-1].params, before[-1].state == states[0]
    else:
        trial = study.ask(distributions(plan))
        trial.set_user_attr("slot", job.slot)
        number, params, running = trial.number, trial.params, True
    point = {name: params.get(name, getattr(base, name)) for name in POINT}
    key = key_of(job.slot, plan)
    runs = [train_one(trial_config(base, point, s, Path(job.out) / "runs" / run_folder(key, point, s, plan)))
            for s in rep.seeds_of(base, plan.repeats)]
    mean = rep.mean_std([r for r in runs if not r["diverged"]], "val_accuracy")[0]
    if running:
        study.tell(number, 0.0 if mean is None else mean)
    return {"point": point, "runs": runs, "trial": number}
