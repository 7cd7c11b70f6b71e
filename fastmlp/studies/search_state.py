"""What a search keeps in its folder besides the runs: its settings (search.json, and final.json
of the final run), checked against a restarted search's, and its trial records (trials.jsonl),
checked as they are read back."""
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from .._checks import finite
from ..config import TrainConfig
from ..run import resolve_dataset
from . import repeats as rep
from .report import write_json
from .trials import check_same_config


def trial_record(record, base):
    """A line of trials.jsonl, checked (a TypeError or ValueError says what is wrong) and upgraded."""
    if not isinstance(record, dict) or not isinstance(record.get("key"), str) or \
            not isinstance(record.get("phase"), str) or not PHASES.match(record["phase"]):
        raise TypeError("not a trial record: a JSON object with a key and a phase (coarse, fine, fine<N> or tpe)")
    record = _upgrade(record, base)
    for name in ("lam", "eta_max", "eta", "seconds"):
        check_finite(name, record[name])
    for rate in (record["dropout"] if isinstance(record["dropout"], list) else [record["dropout"]]):
        check_finite("dropout", rate)
    for name in (*rep.ACCURACIES, "val_loss"):
        for value in (record[name], record[f"{name}_std"]):
            if value is not None:
                check_finite(name, value)
    if not isinstance(record["sizes"], str) or not isinstance(record["runs"], list):
        raise TypeError(f"sizes must be a string and runs a list; got {record['sizes']!r}, {record['runs']!r}")
    check_integer("diverged", record["diverged"], 0)
    return record


def _upgrade(record, base):
    """A record of a search made before repeats, eta_max, sizes, eta and dropout were searched, in
    today's form."""
    record = {"eta": base.eta, "dropout": base.dropout, **record}
    if "runs" in record:
        return record
    run = {"seed": base.seed, **{k: record[k] for k in (*rep.ACCURACIES, "val_loss")},
           "diverged": record["diverged"], "seconds": record["seconds"], "out": record["out"]}
    record = {k: v for k, v in record.items() if k != "out"}
    return {**record, "eta_max": base.eta_max, "sizes": base.sizes, "diverged": int(bool(run["diverged"])),
            **{f"{k}_std": None for k in (*rep.ACCURACIES, "val_loss")}, "runs": [run]}


def portable(config):
    """config with its dataset chosen and its paths absolute, so that a worker started in another
    folder (or on another machine that mounts the same files) loads the same data."""
    name = resolve_dataset(config)[0]
    if name.endswith(".npz"):
        name = str(Path(name).expanduser().resolve())
    data_dir = None if config.data_dir is None else str(Path(config.data_dir).expanduser().resolve())
    return replace(config, dataset=name, data_dir=data_dir)


PHASES = re.compile(r"^(coarse|fine\d*|tpe)$")
DRAWS = ("l_min", "l_max", "search_seed", "width", "eta_max_range", "sizes_choices", "repeats", "sampler",
         "lams", "eta_maxes", "eta_range", "etas", "dropouts", "shrink", "fine_l_range", "fine_eta_range")
UNSET = {"eta_max_range": None, "sizes_choices": None, "repeats": 1,     # in a search.json from before them
         "sampler": "random", "lams": None, "eta_maxes": None, "eta_range": None, "etas": None, "dropouts": None,
         "shrink": 0.5, "fine_l_range": None, "fine_eta_range": None}


def same_search(path, base, plan):
    """Write the search's settings, or check that a restarted search has the same ones."""
    # a grid's lam axis without --lams, and TPE's random start-up trials, depend on --coarse
    drawn = (*DRAWS, *(["coarse"] if plan.sampler != "random" else []))
    settings = json.loads(json.dumps({"base": base.to_dict(), **{k: getattr(plan, k) for k in drawn}}))
    if path.exists():
        stored = _stored(path)
        for name in drawn:
            if name in stored or name in UNSET:
                was = stored.get(name, UNSET.get(name))
                if was != settings[name]:
                    raise ValueError(f"{path.parent} holds a search with {name}={was!r}, not {settings[name]!r}; "
                                     f"rerun with the same settings to continue it, or choose another --out.")
        try:
            stored_base = portable(TrainConfig(**{**stored["base"], "out": None}))
        except (KeyError, TypeError) as e:
            raise ValueError(f"{path} has no usable base config ({type(e).__name__}: {e}); remove {path.parent} "
                             f"or choose another --out.") from None
        check_same_config(path.parent, stored_base.to_dict(), base)
    write_json(path, settings)


def same_final(path, settings):
    settings = json.loads(json.dumps(settings))
    if path.exists():
        stored = _stored(path)
        if stored != settings:
            changed = ", ".join(f"{k}={stored.get(k)!r}" for k in settings if stored.get(k) != settings[k])
            raise ValueError(f"{path.parent} holds the final run of another setting ({changed}); remove "
                             f"{path.parent} to retrain with these settings, or rerun with the earlier ones.")
    write_json(path, settings)


def _stored(path):
    """search.json or final.json as an earlier session wrote it: a JSON object."""
    try:
        stored = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as e:
        raise ValueError(f"{path} is not readable JSON ({type(e).__name__}: {' '.join(str(e).split())[:200]}); "
                         f"remove {path.parent} or choose another --out.") from None
    if not isinstance(stored, dict):
        raise ValueError(f"{path} must hold a JSON object of settings; got {type(stored).__name__}; remove "
                         f"{path.parent} or choose another --out.")
    return stored


def check_finite(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not finite(value):
        raise ValueError(f"{name} must be a finite number; got {value!r}.")


def check_integer(name, value, lo):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}; got {value!r}.")
