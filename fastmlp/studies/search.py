"""`fastmlp search`: random search for the L2 penalty lam, coarse then fine.

Coarse: `coarse` values of lam drawn log-uniformly from [10^l_min, 10^l_max].  Fine: `fine` values
drawn log-uniformly from a band of +-`width` decades around the coarse trial with the best
validation accuracy.  The draws are seeded (`search_seed`), so a restarted search draws the same
values again.

Trials run in a pool of `workers` processes, each with one Numba thread (two runs on two cores
beat one run on two threads at this size); each worker loads the data once.  Every finished trial
is appended to OUT/trials.jsonl, and a restarted search with the same --out reruns none of them
(an interrupted run is resumed from its checkpoint, see trials.run_or_reuse).
"""
import concurrent.futures
import json
import multiprocessing
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import checkpoint
from ..config import TrainConfig
from .report import markdown, write_csv, write_json
from .trials import check_same_config, run_or_reuse

RESULTS = "trials.jsonl"
_worker_data = {}     # per worker process: the loaded splits, by what selects them


def lam_values(l_min, l_max, n, seed):
    """n values of lam, log-uniform in [10^l_min, 10^l_max], seeded."""
    return list(10.0 ** np.random.default_rng(seed).uniform(l_min, l_max, n))


def search(base, out, l_min=-5.0, l_max=-1.0, coarse=8, fine=8, width=0.5, search_seed=0, workers=2,
           log=print):
    """Run the coarse and the fine phase; return every trial's record, best validation accuracy first."""
    _check_range(l_min, l_max, coarse, fine, width, workers)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = replace(base, out=None).validate()
    _same_search(out / "search.json", {"base": base.to_dict(), "l_min": l_min, "l_max": l_max,
                                       "search_seed": search_seed})
    done = _read_results(out / RESULTS)
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=_start_worker) as pool:
        try:
            _phase("coarse", lam_values(l_min, l_max, coarse, [search_seed, 0]), base, out, done, pool, log)
            best = max((r for r in done.values() if r["phase"] == "coarse"), key=_val_key)
            centre = np.log10(best["lam"])
            _phase("fine", lam_values(centre - width, centre + width, fine, [search_seed, 1]), base, out,
                   done, pool, log)
        except BaseException:
            pool.shutdown(cancel_futures=True)     # do not start the queued trials
            raise
    return sorted(done.values(), key=_val_key, reverse=True)


def _phase(phase, lams, base, out, done, pool, log):
    todo = {}
    for k, lam in enumerate(lams):
        key = f"{phase}-{k}"
        if key in done:
            continue
        config = replace(base, lam=float(lam), out=str(out / "runs" / f"{key}-lam{lam:.3e}"))
        todo[pool.submit(_trial, config)] = (key, phase, float(lam))
    finished = len(lams) - len(todo)
    for future in concurrent.futures.as_completed(todo):
        key, phase, lam = todo[future]
        record = {"key": key, "phase": phase, "lam": lam, **future.result()}
        done[key] = record
        with open(out / RESULTS, "a") as f:
            f.write(json.dumps(record) + "\n")
        finished += 1
        result = ("diverged" if record["val_accuracy"] is None else
                  f"val {100 * record['val_accuracy']:.2f}%, test {100 * record['test_accuracy']:.2f}%")
        log(f"[{phase} {finished}/{len(lams)}] lam={lam:.3e}: {result} ({record['seconds']:.1f} s)")


def _start_worker():
    import numba
    numba.set_num_threads(1)


def _trial(config):
    """In a worker: train one config (reusing a finished run folder) and return its scores."""
    from ..run import load_data
    tic = time.perf_counter()
    key = (config.dataset, config.data_dir, config.split, config.n_val, config.dtype)
    if key not in _worker_data:
        _worker_data[key] = load_data(config)
    metrics, _, diverged = run_or_reuse(config, _worker_data[key])
    scores = {k: None if metrics is None else metrics[k]
              for k in ("train_accuracy", "val_accuracy", "test_accuracy", "val_loss")}
    return {**scores, "diverged": diverged, "seconds": time.perf_counter() - tic, "out": config.out}


def _val_key(record):
    return -1.0 if record["val_accuracy"] is None else record["val_accuracy"]


def _read_results(path):
    if not path.exists():
        return {}
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["key"]: r for r in records}


def _same_search(path, settings):
    """Write the search's settings, or check that a restarted search has the same ones."""
    settings = json.loads(json.dumps(settings))
    if path.exists():
        stored = json.loads(path.read_text())
        if stored["l_min"] != settings["l_min"] or stored["l_max"] != settings["l_max"] or \
                stored["search_seed"] != settings["search_seed"]:
            raise ValueError(f"{path.parent} holds a search with other lam draws; choose another --out.")
        check_same_config(path.parent, stored["base"], TrainConfig(**{**settings["base"], "out": None}))
    checkpoint.atomic_write_text(path, json.dumps(settings, indent=2) + "\n")


def _check_range(l_min, l_max, coarse, fine, width, workers):
    for name, value in (("l_min", l_min), ("l_max", l_max), ("width", width)):
        if not np.isfinite(value):
            raise ValueError(f"{name} must be a finite number; got {value!r}.")
    if l_min > l_max:
        raise ValueError(f"l_min must be <= l_max; got l_min={l_min}, l_max={l_max}.")
    for name, value, lo in (("coarse", coarse, 1), ("fine", fine, 0), ("workers", workers, 1)):
        if value < lo:
            raise ValueError(f"{name} must be an integer >= {lo}; got {value}.")


def write_search(out, records):
    """results.md / .json / .csv, best validation accuracy first; returns the markdown table."""
    out = Path(out)
    rows = [[k + 1, r["phase"], f"{r['lam']:.3e}", *(_pct(r[c]) for c in
             ("val_accuracy", "test_accuracy", "train_accuracy")), f"{r['seconds']:.1f}"]
            for k, r in enumerate(records)]
    md = markdown(["rank", "phase", "lam", "val accuracy", "test accuracy", "train accuracy", "seconds"], rows)
    checkpoint.atomic_write_text(out / "results.md", f"# Random search for lam\n\n{md}\n")
    write_json(out / "results.json", records)
    write_csv(out / "results.csv", [{k: v for k, v in r.items() if k != "diverged"} for r in records])
    return md


def _pct(value):
    return "diverged" if value is None else f"{100 * value:.2f}%"
