"""What a person watching sees (fastmlp/progress.py): the compile notice and compile time kept apart
from training and evaluation, a bar or a line per epoch, history.csv while the run trains, and one
bar or ETA line over the runs of --repeats, a study or a search."""
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numba
import pytest
from numba.core import event

from fastmlp import progress, run
from fastmlp.cli import main
from fastmlp.network import Network
from fastmlp.studies.repeats import train_repeats
from fastmlp.train import History, Trainer
from train_helpers import tiny_config, tiny_splits, write_npz

TINY = ["--sizes", "auto-16-16-auto", "--batch", "20", "--ns", "24", "--cycles", "1", "--train-eval", "0"]
EPOCH_LINE = r"epoch [123]/3, step \d+/48: train loss [\d.]+ cost [\d.]+ accuracy [\d.]+%; val loss .* elapsed"
NOTICE = "Compiling fastmlp's kernels (first run only"


def _trainer(config, on_evaluate=(), progress=False):
    splits = tiny_splits()
    sizes = config.check_data(len(splits.X_train), splits.X_train.shape[1], splits.n_classes)
    net = Network(sizes, config.batch_norm, config.init, config.dtype, config.seed)
    return Trainer(net, config, progress=progress, on_evaluate=on_evaluate), splits


def test_compile_time_is_kept_apart_from_evaluation_and_training(monkeypatch):
    """Each score of an evaluation (train, val) spends 5 s (fake clock) in Numba's compiler and 1 s
    on its own; every read of the clock moves it on by 1 us, so that no span is 0 s."""
    now = [0.0]

    def clock():
        now[0] += 1e-6
        return now[0]

    monkeypatch.setattr(time, "perf_counter", clock)
    trainer, s = _trainer(tiny_config())
    score = trainer.net._loss_acc_eval

    def compiling_score(X, y):
        event.start_event("numba:compiler_lock")
        now[0] += 5.0
        event.end_event("numba:compiler_lock")
        now[0] += 1.0
        return score(X, y)

    trainer.net._loss_acc_eval = compiling_score
    trainer.fit(s.X_train, s.y_train, s.X_val, s.y_val)
    scores = 2 * len(trainer.history_.evals)
    assert trainer.seconds_ == pytest.approx({"compile": 5.0 * scores, "train": 0.0, "eval": 1.0 * scores,
                                              "checkpoint": 0.0}, abs=1e-3)


def test_the_compile_notice_comes_with_a_compile_not_with_a_cache_load():
    notices = []

    def fresh(x):          # never compiled before: compiling it is a cache miss
        return x + 1

    kernel = numba.njit(fresh)
    with progress.CompileClock(lambda: notices.append(1)) as clock:
        kernel(1)
        kernel(2)           # compiled already
    assert notices == [1] and clock.seconds > 0


def test_piped_output_gets_a_line_per_epoch_and_the_compile_time(tmp_path, capsys):
    data = write_npz(tmp_path / "blobs.npz")
    assert main(["train", "--dataset", str(data), "--n-val", "80", "--out", str(tmp_path / "r"), *TINY]) == 0
    out, err = capsys.readouterr()
    assert [line for line in err.splitlines() if not line.startswith(NOTICE)] == \
        [line for line in err.splitlines() if re.fullmatch(EPOCH_LINE, line)] and len(err.splitlines()) >= 3
    assert re.search(r"\(3 epochs\): compile [\d.]+ s, training [\d.]+ s, evaluation [\d.]+ s;", out)
    assert "seconds_compile" in (tmp_path / "r" / "metrics.json").read_text()


def test_a_terminal_gets_a_bar_with_the_epoch_and_accuracies_in_percent(monkeypatch, capsys):
    """In 80 columns (tmux's default, a notebook's `!fastmlp train`): tqdm's default format cut
    the accuracies off there."""
    monkeypatch.setattr(progress, "mode", lambda: "bar")
    monkeypatch.setenv("COLUMNS", "80")     # tqdm's width where stderr is not a terminal
    monkeypatch.setenv("LINES", "24")
    trainer, s = _trainer(tiny_config(), progress=True)
    trainer.fit(s.X_train, s.y_train, s.X_val, s.y_val)
    frames = [frame.rstrip("\n") for frame in capsys.readouterr().err.split("\r") if frame.strip()]
    assert all(len(frame) <= 80 for frame in frames), frames
    assert re.fullmatch(r"epoch 3/3: 100%\|█+\| [\d:]+<[\d:]+, loss \d\.\d{3}, train \d+\.\d%, val \d+\.\d%",
                        frames[-1]), frames[-1]


def test_the_bar_leaves_the_kernels_compile_out_of_its_rate_and_eta(monkeypatch, capsys):
    """A compile during the first step starts the bar's clock afresh after it: counted in, 30 s of
    compiling made a first run's bar show 30 s/step and an ETA of hours."""
    monkeypatch.setattr(progress, "mode", lambda: "bar")
    history = History([0.1] * 10, evals=[[0, 0, 1.0, 1.0, 0.5, 1.0, 1.0, 0.5]])
    with progress.TrainProgress(True, total=10, steps_per_epoch=5) as shown:
        started = shown.bar.start_t
        shown.notice()                          # Numba starts compiling a kernel of the first step
        shown.advance(1, 1, 0.5, history)
        assert (shown.bar.n, shown.bar.initial) == (1, 1) and shown.bar.start_t > started
        shown.advance(3, 2, 0.5, history)       # later steps count as usual
        assert (shown.bar.n, shown.bar.initial) == (3, 1)


def test_the_lines_leave_the_kernels_compile_out_of_their_clock(monkeypatch, capsys):
    """Without a terminal the epoch lines' "elapsed" also starts after a compile: a first run's
    first line said "0:08 elapsed" for 0.1 s of training (the compile is reported apart)."""
    monkeypatch.setattr(progress, "mode", lambda: "lines")
    history = History([0.1] * 10, evals=[[0, 0, 1.0, 1.0, 0.5, 1.0, 1.0, 0.5]])
    with progress.TrainProgress(True, total=10, steps_per_epoch=5) as shown:
        shown.tic -= 90.0                       # 90 s spent before the first step: compiling
        shown.notice()
        history.evals.append([5, 1, 1.0, 1.0, 0.5, 1.0, 1.0, 0.5])
        shown.advance(5, 5, 0.5, history)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("epoch 1/2, step 5/10:") and line.endswith(" 0:00 elapsed")


def test_history_csv_is_readable_while_the_run_trains(tmp_path, monkeypatch):
    seen = []

    def reader(trainer):       # called after history.csv's own callback, as TensorBoard's is
        seen.append(((tmp_path / "run" / "history.csv").read_text(), trainer.history_.csv()))

    monkeypatch.setattr(run.tblog, "loggers", lambda config, out: [reader])
    result = run.train(tiny_config(out=str(tmp_path / "run")), tiny_splits())
    assert len(seen) == 4 and all(on_disk == so_far for on_disk, so_far in seen)
    assert seen[0][0].count("\n") == 2          # header and the evaluation before the first step
    assert (tmp_path / "run" / "history.csv").read_text() == result.history.csv()


def test_history_csv_after_resume_is_rewritten_whole_then_appended(tmp_path):
    path = tmp_path / "history.csv"
    log = run.HistoryCsv(path)
    path.write_text("left by an earlier session\n")
    trainer = type("T", (), {})()
    trainer.history_ = History([0.1] * 4, evals=[[0, 0, 1, 1, 0.5, 1, 1, 0.5], [2, 1, 1, 1, 0.6, 1, 1, 0.6]])
    log(trainer)
    trainer.history_.evals.append([4, 2, 1, 1, 0.7, 1, 1, 0.7] + [float("nan")] * 3)   # no test rows measured
    log(trainer)
    assert path.read_text() == trainer.history_.csv()


def test_repeats_without_a_terminal_show_an_eta_per_run(tmp_path):
    lines = []
    train_repeats(tiny_config(out=str(tmp_path / "rep"), dataset=str(write_npz(tmp_path / "d.npz")), n_val=80),
                  2, progress=True, log=lines.append)
    assert [re.sub(r"[\d.]+", "N", line.split(": ", 1)[0]) for line in lines] == ["[N/N] seed N"] * 2
    assert re.search(r"\[2/2 runs, \d+:\d\d elapsed, about 0:00 left\]$", lines[-1])


def test_runs_progress_draws_one_bar_over_the_runs(monkeypatch, capsys):
    monkeypatch.setattr(progress, "mode", lambda: "bar")
    with progress.RunsProgress(3, "study", print) as bar:
        for k in range(3):
            bar.advance(f"run {k} done")
    err = capsys.readouterr().err
    assert "run 2 done" in err and re.search(r"study: 100%.*3/3", err)


@pytest.mark.slow
def test_the_notice_appears_when_a_kernel_is_not_in_the_cache_and_not_when_all_are(tmp_path, capsys):
    """Two CLI runs in subprocesses, each with a NUMBA_CACHE_DIR of its own holding a copy of this
    process's (warm) cache: the whole copy, then one without l2.sum_squares, which is compiled."""
    from numba.core.caching import _CacheLocator

    from fastmlp.kernels.l2 import sum_squares
    data = write_npz(tmp_path / "blobs.npz")
    assert main(["train", "--dataset", str(data), "--n-val", "80", "--out", str(tmp_path / "warm"), *TINY]) == 0
    capsys.readouterr()
    cache = Path(sum_squares._cache._cache_path)        # where this process's kernels are cached
    for case in ("all", "one missing"):
        folder = tmp_path / case / _CacheLocator.get_suitable_cache_subpath(sum_squares.py_func.__code__.co_filename)
        shutil.copytree(cache, folder)      # with its stamp of the sources (kernels/__init__.py)
        if case == "one missing":
            for f in folder.glob("l2.sum_squares-*"):
                f.unlink()
        done = subprocess.run([sys.executable, "-m", "fastmlp", "train", "--dataset", str(data), "--n-val", "80",
                               "--out", str(tmp_path / case / "run"), *TINY], capture_output=True, text=True,
                              env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / case)}, timeout=600)
        assert done.returncode == 0, done.stderr
        lines = done.stderr.splitlines()
        assert [line.startswith(NOTICE) for line in lines] == [True] * (case == "one missing") + [False] * 3, lines
        assert all(re.fullmatch(EPOCH_LINE, line) for line in lines[-3:])


class _Stream:
    def __init__(self, tty):
        self.tty = tty

    def isatty(self):
        return self.tty


def test_the_form_follows_where_the_output_goes(monkeypatch):
    import tqdm.autonotebook
    for tty, form in ((True, "bar"), (False, "lines")):
        monkeypatch.setattr(sys, "stderr", _Stream(tty))
        assert progress.mode() == form
    monkeypatch.setattr(tqdm.autonotebook, "tqdm", type("NotebookBar", (), {}))   # as in a notebook kernel
    assert progress.mode() == "widget"
