"""One whole training run: TrainConfig -> data -> Network -> Trainer.fit -> the run folder.

The folder holds model.npz (a checkpoint.py file), metrics.json, history.csv (one row per
evaluation, kept up to date while the run trains), steps.csv (learning rate and batch loss per step) and the plots (plots.py); checkpoint.npz
stands there while the run is unfinished and is what `--resume` continues.
"""
import contextlib
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numba

from . import _checks, checkpoint, data, jsonio, lock, stopping, tblog
from .config import FIELDS, RESUME_FREE
from .divergence import nonfinite_scores
from .network import Network
from .train import History, Trainer
from .table import format_table as table

CHECKPOINT = "checkpoint.npz"
MODEL = "model.npz"
STUDY_N_VAL = 5000  # validation rows of the CIFAR-10 study


@dataclass
class RunResult:
    net: Network
    history: History
    metrics: dict
    out: Path


def resolve_dataset(config):
    """The dataset to use, and a line for people when the choice was made for them: unset means
    CIFAR-10 if it is found locally, else the embedded sample."""
    if config.dataset is not None:
        return config.dataset, None
    found = data.find_cifar10(config.data_dir)
    if found is not None:
        return "cifar10", f"No --dataset given: using CIFAR-10 found in {found}."
    return "sample", ("No --dataset given and CIFAR-10 is not downloaded: training on the embedded "
                      "Fashion-MNIST sample (`fastmlp download cifar10` for CIFAR-10).")


def load_data(config, merge_val=False):
    """The standardised Splits that `config` names; merge_val: its training and validation rows
    together as the training set, no validation rows (see data.make_splits)."""
    name = resolve_dataset(config)[0]
    raw = data.load_raw(name, config.data_dir, config.download)
    n_val = config.n_val
    if n_val is None:
        n_val = STUDY_N_VAL if name == "cifar10" else max(1, len(raw.x_train) // 10)
    return data.make_splits(raw, config.split, n_val, config.dtype, merge_val,
                            per_channel=config.standardization() == "channel", n_train=config.n_train)


def train(config, splits=None, *, resume=False, progress=False, log=None):
    """Run `config` end to end and write its folder; returns a RunResult.

    splits: the data (a fastmlp.data.Splits); None loads config.dataset.  resume: continue the
    interrupted run in config.out from its checkpoint.  log: a callable for lines meant for people.
    The run holds the lock on its folder throughout (fastmlp.lock): a second run there is refused.
    """
    config.validate()
    start = time.perf_counter()
    threads = numba.get_num_threads()
    try:
        if config.threads is not None:
            numba.set_num_threads(config.threads)
        with contextlib.ExitStack() as stack:
            out = _locked_out(stack, config.out)
            return _run(config, out, start, splits, resume, progress, log or (lambda line: None))
    finally:
        numba.set_num_threads(threads)


def _locked_out(stack, out):
    """The run's folder, its lock held until `stack` closes: `out`, or unset a new runs/<time>."""
    if out is not None:
        return stack.enter_context(lock.hold(Path(out), "fastmlp train"))
    while True:       # a run started in the same second may take the same new name: then the next
        with contextlib.suppress(lock.FolderBusy):
            return stack.enter_context(lock.hold(new_run_folder(), "fastmlp train"))


def _run(config, out, start, splits, resume, progress, log):
    on_evaluate = tblog.loggers(config, out)   # --tensorboard: its package checked before the data loads
    on_evaluate.insert(0, HistoryCsv(out / "history.csv"))
    if splits is None:   # record the dataset chosen, so that evaluate and --resume use it again
        name, note = resolve_dataset(config)
        config = replace(config, dataset=name)
    ckpt = _resumable(out, config) if resume else _fresh(out)
    checkpoint.remove_stale_temporaries(out)    # what a write killed mid-way left (checkpoint.py)
    if splits is None:
        if note:
            log(note)
        splits = load_data(config)
    sizes = config.check_data(len(splits.X_train), splits.X_train.shape[1], splits.n_classes)
    stopping.check_validation(config, 0 if splits.X_val is None else len(splits.X_val), splits.source)
    net = Network(sizes, config.batch_norm, config.init, config.dtype, config.seed,
                  dropout=config.dropout)
    stopper = stopping.for_run(config, out)     # --early-stopping: None without it
    trainer = Trainer(net, config, out / CHECKPOINT, splits, progress,
                      on_evaluate=on_evaluate + ([stopper] if stopper else []))
    if ckpt is not None:
        trainer.restore(ckpt)
        if stopper:
            stopper.resume(trainer)
        log(f"Resuming {out} at step {ckpt.step}.")
    trainer.fit(splits.X_train, splits.y_train, splits.X_val, splits.y_val, splits.X_test, splits.y_test)
    stopped = stopper.finish(trainer, log) if stopper else None   # the best weights restored
    metrics = final_metrics(trainer, splits, time.perf_counter() - start)
    if stopped is not None:
        metrics["early_stopping"] = stopped
    write_outputs(out, trainer, splits, metrics)
    return RunResult(net, trainer.history_, metrics, out)


class HistoryCsv:
    """A Trainer on_evaluate callback that keeps history.csv up to date while the run trains, so
    that it can be tailed or plotted mid-run: the first call writes the whole file (the restored
    rows too, after --resume) atomically, later ones append their row.  A row is one write of a
    short line, so a reader sees whole rows; write_outputs writes the same file at the end."""

    def __init__(self, path):
        self.path, self.rows = Path(path), None

    def __call__(self, trainer):
        evals = trainer.history_.evals
        if self.rows is not None and len(evals) == self.rows + 1:
            with open(self.path, "a") as f:
                f.write(History.csv_line(evals[-1], trainer.history_.csv_width()))
        else:
            checkpoint.atomic_write_text(self.path, trainer.history_.csv())
        self.rows = len(evals)


def new_run_folder():
    base = Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    out, k = base, 1
    while out.exists():
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return out


def _fresh(out):
    for name in (CHECKPOINT, MODEL):
        if (out / name).exists():
            raise ValueError(f"out folder {out} already holds a run ({name}); continue it with --resume "
                             f"or choose another --out.")
    return None


def _resumable(out, config):
    """The checkpoint to resume from, after checking that it is this run's."""
    if not (out / CHECKPOINT).exists():
        done = " (it finished: model.npz is there)" if (out / MODEL).exists() else ""
        raise ValueError(f"nothing to resume in {out}: {out / CHECKPOINT} does not exist{done}; "
                         f"--resume needs --out set to the folder of an interrupted run.")
    ckpt = checkpoint.load(out / CHECKPOINT)
    for name in FIELDS:
        stored, given = getattr(ckpt.config, name), getattr(config, name)
        if name not in RESUME_FREE and stored != given:
            raise ValueError(f"--resume continues the run in {out} as it was configured; {name} there is "
                             f"{stored!r} but {given!r} was given. Drop that setting, or start a new run.")
    return ckpt


def evaluate(net, splits, lam):
    """{part}_{loss,cost,accuracy} for part in train, val, test, on every row, in evaluation mode;
    None where a part is empty (no test set): JSON has no NaN."""
    penalty = lam * float(net.l2())
    scores = {}
    for part in ("train", "val", "test"):
        X, y = getattr(splits, f"X_{part}"), getattr(splits, f"y_{part}")
        loss = cost = acc = None
        if X is not None and len(X):
            loss, acc = net._loss_acc_eval(_checks.check_X(X, net.n_features, net.dtype),
                                           _checks.check_y(y, net.n_classes, len(X)))
            loss, cost, acc = float(loss), float(loss + penalty), float(acc)
        scores.update({f"{part}_loss": loss, f"{part}_cost": cost, f"{part}_accuracy": acc})
    return scores


def final_metrics(trainer, splits, seconds):
    """metrics.json.  seconds: wall time of this call (data loading, compilation and outputs
    included); seconds_compile / _train / _eval / _checkpoint: summed over every session of the
    run, so a resumed run reports its whole training time (compile: Numba compiling the kernels,
    or loading them from its cache, left out of train and eval); seconds_per_epoch =
    seconds_train / epochs."""
    metrics = evaluate(trainer.net, splits, trainer.config.lam)
    scored = [(k, v) for k, v in metrics.items() if v is not None]
    bad = nonfinite_scores(*zip(*scored), of="the final evaluation's")
    if bad:      # on every row: the evaluations while training saw train_eval rows of the train set
        raise trainer.diverged(bad, max(trainer.step_ - 1, 0))
    epochs = trainer.step_ / trainer.steps_per_epoch_
    metrics.update(
        final_cost=metrics["train_cost"], epochs=epochs, steps=trainer.step_,
        steps_per_epoch=trainer.steps_per_epoch_, sizes=trainer.net.sizes,
        n_train=len(splits.X_train), n_val=len(splits.X_val), n_test=len(splits.X_test),
        seconds=seconds, seconds_compile=trainer.seconds_["compile"], seconds_train=trainer.seconds_["train"], seconds_eval=trainer.seconds_["eval"],
        seconds_checkpoint=trainer.seconds_["checkpoint"],
        seconds_per_epoch=trainer.seconds_["train"] / epochs,
        first_step_unix=trainer.first_step_unix_,
        dataset=getattr(splits, "source", ""), config=trainer.config.to_dict(),
        # the bonus settings as they ran: canonical augmentation spec, every optimiser
        # hyperparameter (defaults filled in), dropout per hidden layer
        augment=trainer.augment_.spec(), optimizer=trainer.optimizer_.config(),
        standardize=trainer.config.standardization(),
        dropout=list(trainer.net.dropout))
    # JSON has no NaN: what cannot be measured is null, with the reason here
    metrics["undefined"] = {f"{part}_loss, {part}_cost, {part}_accuracy": f"no {part} rows"
                            for part in ("train", "val", "test") if metrics[f"{part}_loss"] is None}
    if metrics["first_step_unix"] is None:
        metrics["undefined"]["first_step_unix"] = "no step ran in this session"
    return metrics


def write_outputs(out, trainer, splits, metrics):
    """model.npz, metrics.json, history.csv, steps.csv and the plots; then drop the checkpoint."""
    from . import plots  # matplotlib loads in ~0.5 s: only when plotting
    checkpoint.save(out / MODEL, trainer.net, trainer.config, trainer.step_,
                    trainer.history_.to_arrays(), splits, trainer.seconds_, trainer.optimizer_.state)
    jsonio.write(out / "metrics.json", metrics)
    checkpoint.atomic_write_text(out / "history.csv", trainer.history_.csv())
    checkpoint.atomic_write_text(out / "steps.csv", trainer.history_.steps_csv())
    n, k = len(splits.X_train), trainer.config.train_eval
    train_label = f"training ({k} of {n} rows)" if 0 < k < n else "training"
    plots.plot_history(trainer.history_, out, train_label)
    plots.plot_overview(trainer.history_, out / plots.OVERVIEW, plots.run_title(metrics), train_label)
    (out / CHECKPOINT).unlink(missing_ok=True)


def format_table(metrics, style="text"):
    """The final table as the reports print it: loss, cost and accuracy (%) per split."""
    rows = []
    for part in ("train", "val", "test"):
        acc = metrics[f"{part}_accuracy"]
        rows.append([part, "-", "-", "-"] if acc is None else
                    [part, f"{metrics[f'{part}_loss']:.4f}", f"{metrics[f'{part}_cost']:.4f}", f"{100 * acc:.2f}%"])
    return table(["", "loss", "cost", "accuracy"], rows, style)
