"""`fastmlp` on the command line: train, evaluate, predict, export, download, gradcheck, show, study,
search, report, show-augment. This file runs the commands; their flags are in fastmlp/cli_parser.py.

`fastmlp train` has one flag per TrainConfig field, built from the dataclass (so help and defaults
come from one place); `--config run.toml` reads the same fields from a file, and flags override it.
Exit codes: 0 done, 1 training diverged, 2 bad input (one line on stderr, no traceback),
130 interrupted (a checkpoint was saved; continue with --resume --out DIR).
Set FASTMLP_DEBUG=1 to get the traceback behind a one-line error.
"""
import dataclasses
import errno
import gc
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from . import checkpoint, data, lock
from .cli_parser import build_parser
from .config import MAX_SEED, TrainConfig, _int, read_toml
from .run import CHECKPOINT, evaluate, format_table, load_data, train
from . import show
from .studies import gradtable
from .train import TrainingDiverged, TrainingInterrupted

MAX_REPEATS = 1000          # --repeats, study --seeds: runs of one command
MAX_AUGMENT_ROWS = 100      # show-augment --n: a PNG of n * 96 pixels high (100,000 took 12 GB)
MAX_AUGMENT_VARIANTS = 20   # show-augment --variants


def main(argv=None):
    if argv is None:    # the process is this command's own (not a caller's, e.g. a test's)
        # Every object made so far (numpy's, Numba's, fastmlp's modules) lives to the end:
        # frozen, the collector stops scanning them.  Without it a warm `fastmlp train
        # --dataset sample` spent 0.2 s in two full collections (while Numba loads the cached
        # step, and while matplotlib parses its text).  Whole command, interleaved pairs
        # (farm-bench, medians): warm 0.82-0.84x (8 pairs, 2.68 -> 2.15 s), cold (compiling)
        # 0.94x (4 pairs, 16.5 -> 15.1 s; its peak memory 366 -> 399 MiB)
        gc.freeze()
    args = build_parser().parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)     # `fastmlp report` shows its command
    try:
        return COMMANDS[args.command](args)
    except TrainingInterrupted as e:
        hint = f" Continue with `fastmlp train --resume --out {e.path.parent}`." if e.path else ""
        print(f"fastmlp: {e}{hint}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("fastmlp: interrupted.", file=sys.stderr)
        return 130
    except TrainingDiverged as e:
        return _fail(e, 1)
    except (ValueError, OSError) as e:     # DataError and CheckpointError are ValueErrors too
        return _fail(e, 2)
    except MemoryError as e:                # the bounds on data and flags should make this rare
        return _fail(MemoryError("out of memory: the data, the network or the run does not fit in this "
                                 "machine's memory (or its ulimit); use a smaller dataset, --sizes or "
                                 "run length"), 2, e)


def _fail(error, code, cause=None):
    if os.environ.get("FASTMLP_DEBUG"):
        raise cause or error
    message = str(error) if not isinstance(error, OSError) or not error.filename else \
        f"{error.filename}: {error.strerror}"
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        message += "; free some space there or write elsewhere (--out)"
    print(f"fastmlp: error: {' '.join(message.split())}", file=sys.stderr)
    return code


def cmd_train(args):
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    if args.repeats != 1:
        return _train_repeats(args, given)
    base = None
    if args.resume:   # the interrupted run's settings; train() refuses flags that would change them
        if "out" not in given:
            raise ValueError("--resume needs --out DIR, the folder of the interrupted run.")
        stored = Path(given["out"]) / CHECKPOINT
        base = checkpoint.load(stored).config if stored.exists() else None
    sources = [(args.config, read_toml(args.config))] if args.config else []
    config = TrainConfig.from_sources(*sources, ("command line", given), base=base)
    result = train(config, resume=args.resume, progress=True, log=_say)
    m = result.metrics
    print(format_table(m))
    # epochs to 2 decimals: a run of 40 steps of 49 is "0.82 epochs", not "0.816327"
    print(f"{m['steps']} steps ({round(m['epochs'], 2):g} epochs): compile {m['seconds_compile']:.1f} s, training "
          f"{m['seconds_train']:.1f} s, evaluation {m['seconds_eval']:.1f} s; the run {m['seconds']:.1f} s. "
          f"Wrote {result.out}/: model.npz metrics.json history.csv steps.csv cost.png loss.png accuracy.png curves.png")
    return 0


def _train_repeats(args, given):
    from .run import new_run_folder
    from .studies.repeats import SUMMARY_FILES, train_repeats, write_summary
    _int("--repeats", args.repeats, 1, MAX_REPEATS)
    if given.get("seed", 0) + args.repeats - 1 > MAX_SEED:
        raise ValueError(f"--seed + --repeats - 1 must be at most {MAX_SEED} (seeds are int64); got --seed "
                         f"{given['seed']} with --repeats {args.repeats}.")
    if args.resume:
        raise ValueError(f"--resume continues one interrupted run; with --repeats {args.repeats} rerun the same "
                         f"command with the same --out instead: finished seeds are kept and an interrupted "
                         f"one resumes from its checkpoint.")
    sources = [(args.config, read_toml(args.config))] if args.config else []
    config = TrainConfig.from_sources(*sources, ("command line", given)).validate()
    out = Path(config.out) if config.out is not None else new_run_folder()
    config = dataclasses.replace(config, out=str(out))
    with lock.hold(out, f"fastmlp train --repeats {args.repeats}"):    # the runs and their summary
        try:
            runs = train_repeats(config, args.repeats, progress=True, log=_say)
        except TrainingInterrupted as e:
            print(f"fastmlp: {e} Continue with the same command and --out {out}: finished seeds are kept and "
                  f"this one resumes from its checkpoint.", file=sys.stderr)
            return 130
        seeds = f"{runs[0]['seed']}-{runs[-1]['seed']}"
        print(write_summary(out, runs, config, f"fastmlp train, {len(runs)} runs (seeds {seeds})"))
    _say(f"Wrote {out}/: {' '.join(SUMMARY_FILES)} and seed-<s>/ for seeds {seeds}, each a run folder")
    diverged = [r for r in runs if r["diverged"]]
    if diverged:
        raise TrainingDiverged(f"{len(diverged)} of {len(runs)} runs diverged (seed {diverged[0]['seed']}: "
                               f"{diverged[0]['diverged']}).")
    return 0


def cmd_evaluate(args):
    model = checkpoint.load(args.model)
    config = dataclasses.replace(model.config, **{k: getattr(args, k) for k in
                                                  ("dataset", "data_dir", "split", "n_val")
                                                  if getattr(args, k) is not None},
                                 download=args.download)
    config.validate()
    splits = load_data(config)
    net = model.net
    if splits.X_train.shape[1] != net.n_features or splits.n_classes != net.n_classes:
        raise ValueError(f"{args.model} takes {net.n_features} features and {net.n_classes} classes; "
                         f"{splits.source} has {splits.X_train.shape[1]} and {splits.n_classes}.")
    if model.mean is not None and not (np.array_equal(model.mean, splits.mean)
                                       and np.array_equal(model.std, splits.std)):
        # This split's training statistics differ from the model's: standardise as the model was.
        for part in ("train", "val", "test"):
            raw = getattr(splits, f"X_{part}").astype(np.float64) * splits.std + splits.mean
            setattr(splits, f"X_{part}", data.standardize(raw, model.mean, model.std, net.dtype))
    print(f"{args.model} on {splits.source}")
    print(format_table(evaluate(net, splits, config.lam)))
    if args.out is not None:
        from .evaluation import per_class_table, write_for_splits
        paths, records = write_for_splits(args.out, net, splits, *((model.mean, model.std)
                                          if model.mean is not None else (splits.mean, splits.std)))
        print(f"\n{per_class_table(records, 'text')}")
        _say(f"Wrote {args.out}/: {' '.join(p.name for p in paths)}")
    return 0


def cmd_predict(args):
    from .npyfile import load_npy
    model = checkpoint.load(args.model)
    net = model.net
    X = load_npy(args.file, "predict input")    # its header checked before anything is allocated
    if X.ndim == 1:
        X = X[None, :]
    elif X.ndim > 2 and model.image_shape and tuple(X.shape[1:]) == tuple(model.image_shape):
        X = X.reshape(len(X), -1)
    if X.ndim != 2 or X.shape[1] != net.n_features:
        raise ValueError(f"{args.file} must hold rows of {net.n_features} values, shape (N, "
                         f"{net.n_features}) or ({net.n_features},), or images (N, "
                         f"{', '.join(map(str, model.image_shape or ('C', 'H', 'W')))}); got shape {X.shape}.")
    if X.dtype.kind not in "uif":
        raise ValueError(f"{args.file} must hold numbers; got dtype {X.dtype}.")
    if not args.standardized:
        if model.mean is None:
            raise ValueError(f"{args.model} has no stored mean/std to standardise raw rows; standardise "
                             f"them yourself and pass --standardized.")
        X = data.standardize(X, model.mean, model.std, net.dtype)
    labels = net.predict(X.astype(net.dtype, copy=False))
    names = model.label_names or [str(k) for k in range(net.n_classes)]
    if args.out is None:
        print("\n".join(f"{k}\t{names[k]}" for k in labels))
    elif str(args.out).endswith(".npy"):
        checkpoint.atomic_write(args.out, lambda f: np.save(f, labels.astype(np.int64)))
    else:
        checkpoint.atomic_write_text(args.out, "".join(f"{k}\t{names[k]}\n" for k in labels))
    return 0


def cmd_export(args):
    from .export import export_onnx
    model = export_onnx(args.model, args.onnx, args.standardized)
    rows = "standardised" if args.standardized else "raw"
    _say(f"Wrote {args.onnx}: {model.net!r} as ONNX; input `input` ({rows} rows), outputs `probabilities` "
         f"and `label`")
    return 0


def cmd_download(args):
    print(data.download(args.name, args.data_dir, args.url))
    return 0


def cmd_gradcheck(args):
    return gradtable.run(args, _say)


def cmd_show(args):
    return show.run(args, _say)


def cmd_study(args):
    from .studies.designs import STUDIES
    from .studies.study_results import write_study
    from .studies.trials import run_trials
    design = STUDIES[args.study]
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    base = TrainConfig.from_sources(("command line", given)).validate()
    _int("--seeds", args.seeds, 1, MAX_REPEATS)
    out = Path(args.out or f"runs/study-{design.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    with lock.hold(out, f"fastmlp study {design.name}"):     # the runs and the tables
        outcomes = run_trials(design.trials(getattr(args, design.option[2:])), base,
                              range(base.seed, base.seed + args.seeds), out, log=_say, progress=True)
        table, paths = write_study(out, design.name, outcomes, design.columns(), design.title)
    print(table)
    _say(f"Wrote {out}/: {' '.join(p.name for p in paths)} and runs/")
    return 0


def cmd_search(args):
    from .studies.search import (FINAL, SearchPlan, best_line, conflicts, final_notes, final_title, search,
                                 write_search)
    from .studies.repeats import summary_table
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    plan = SearchPlan(**{f.name: getattr(args, f.name) for f in dataclasses.fields(SearchPlan)})
    conflicts(plan, given)
    base = TrainConfig.from_sources(("command line", given)).validate()
    plan.validate()
    if plan.final_train_val and base.early_stopping is not None:   # refused now, not after the trials
        raise ValueError(f"--early-stopping {base.early_stopping} watches the validation rows, which "
                         f"--final-train-val trains the final runs on; drop one of the two.")
    out = Path(args.out or f"runs/search-{time.strftime('%Y%m%d-%H%M%S')}")
    with lock.hold(out, "fastmlp search"):    # the trials and the tables
        try:
            records, final_runs = search(base, out, plan, log=_say, progress=True)
        except KeyboardInterrupt:   # TrainingInterrupted too: its hint would name one run, not the search
            print(f"fastmlp: search interrupted. Continue with the same command and --out {out}: finished "
                  f"trials are kept and interrupted runs resume from their checkpoints.", file=sys.stderr)
            return 130
        print(write_search(out, records, plan))
    print(best_line(records))
    files = "results.md results.json results.csv val_vs_lam.png trials.jsonl search.json and runs/"
    if plan.sampler == "tpe":
        files = files.replace("search.json", "search.json optuna.journal")
    if final_runs is not None:
        print(f"\n{final_title(records[0], plan)}. {' '.join(final_notes(plan))}\n")
        print(summary_table(final_runs, out / FINAL))
        files += f"; {FINAL}/: summary.md summary.json final.json and a folder per seed"
    _say(f"Wrote {out}/: {files}")
    return 0


def cmd_report(args):
    from .studies.fullreport import ReportPlan, base_config, run_report
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    plan = ReportPlan(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ReportPlan)}).resolved()
    base = base_config(given, plan)
    out = Path(args.out or f"runs/report-{time.strftime('%Y%m%d-%H%M%S')}")
    command = "fastmlp " + shlex.join(args.argv)
    done, pages = run_report(base, plan, out, command, log=_say)
    ran = sum(not d.reused for d in done)
    print(f"Report: {len(done)} step{'s' if len(done) != 1 else ''} ({ran} ran, {len(done) - ran} reused). Open {pages[0]}")
    _say(f"Wrote {out}/: report.html report.md and a folder per step ({' '.join(d.step.name for d in done)})")
    return 0


def cmd_show_augment(args):
    from .plots import plot_augment_grid
    _int("--n", args.n, 1, MAX_AUGMENT_ROWS)
    _int("--variants", args.variants, 1, MAX_AUGMENT_VARIANTS)
    _int("--seed", args.seed, 0, MAX_SEED)
    if not args.out.strip() or Path(args.out).is_dir():
        raise ValueError(f"--out must be the path of the .png file to write; got {args.out!r}.")
    path, spec = plot_augment_grid(args.dataset, args.augment, args.out, n=args.n, variants=args.variants,
                                   seed=args.seed, data_dir=args.data_dir)
    _say(f"Wrote {path}: {args.n} images x (original + {args.variants} variants of {spec})")
    return 0


def _say(line):
    print(line, file=sys.stderr)


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "download": cmd_download, "export": cmd_export,
            "show": cmd_show,
            "gradcheck": cmd_gradcheck, "study": cmd_study,
            "search": cmd_search, "report": cmd_report, "show-augment": cmd_show_augment}
