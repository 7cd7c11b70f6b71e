"""`fastmlp train --tensorboard DIR`: event files that TensorBoard reads back, holding what
history.csv and steps.csv hold (accuracy in %), one run per run folder, each step once across a
resumed run; a one-line error naming the extra when tensorboard is missing."""
import csv
import sys

import numpy as np
import pytest

from fastmlp import tblog
from fastmlp.config import TrainConfig
from test_cli import TINY, run
from train_helpers import CtrlC, write_npz

NEEDS = 'tensorboard is an optional extra: pip install "fastmlp[tensorboard]"'
EVAL_TAGS = ["loss/train", "cost/train", "accuracy/train", "loss/val", "cost/val", "accuracy/val"]
STEP_TAGS = ["learning_rate", "batch_loss"]


def read_scalars(folder):
    """{tag: [(step, value), ...]} of every event file in `folder`, as TensorBoard reads them."""
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator", reason=NEEDS)
    events = accumulator.EventAccumulator(str(folder), size_guidance={accumulator.SCALARS: 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def read_csv(path):
    with open(path) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def test_two_epochs_on_the_sample_read_back(tmp_path, capsys):
    pytest.importorskip("tensorboard", reason=NEEDS)
    code, _, err = run(["train", "--dataset", "sample", "--sizes", "auto-16-auto", "--ns-epochs", "1",
                        "--cycles", "1", "--out", tmp_path / "run", "--tensorboard", tmp_path / "tb"], capsys)
    assert code == 0, err
    assert [p.name for p in (tmp_path / "tb").iterdir()] == ["run"]      # DIR/<run folder name>/
    scalars = read_scalars(tmp_path / "tb" / "run")
    assert sorted(scalars) == sorted(EVAL_TAGS + STEP_TAGS)
    history = read_csv(tmp_path / "run" / "history.csv")
    assert len(history) == 3                                  # before training, after each epoch
    for tag in EVAL_TAGS:
        what, part = tag.split("/")
        scale = 100 if what == "accuracy" else 1
        assert [s for s, _ in scalars[tag]] == [int(r["step"]) for r in history]
        np.testing.assert_allclose([v for _, v in scalars[tag]],
                                   [scale * r[f"{part}_{what}"] for r in history], rtol=1e-6)
    steps = read_csv(tmp_path / "run" / "steps.csv")           # fewer than MAX_STEP_POINTS: each step
    for tag, column in (("learning_rate", "eta"), ("batch_loss", "batch_loss")):
        assert [s for s, _ in scalars[tag]] == list(range(len(steps)))
        np.testing.assert_allclose([v for _, v in scalars[tag]], [r[column] for r in steps], rtol=1e-6)


def test_long_runs_log_at_most_max_step_points_means(tmp_path, capsys, monkeypatch):
    pytest.importorskip("tensorboard", reason=NEEDS)
    monkeypatch.setattr(tblog, "MAX_STEP_POINTS", 10)           # 48 steps: a point every 5
    npz = write_npz(tmp_path / "blobs.npz")
    code, _, err = run(["train", "--dataset", npz, "--n-val", 80, "--out", tmp_path / "run", *TINY,
                        "--tensorboard", tmp_path / "tb"], capsys)
    assert code == 0, err
    scalars = read_scalars(tmp_path / "tb" / "run")
    losses = [r["batch_loss"] for r in read_csv(tmp_path / "run" / "steps.csv")]
    assert [s for s, _ in scalars["batch_loss"]] == [4, 9, 14, 19, 24, 29, 34, 39, 44, 47]
    np.testing.assert_allclose([v for _, v in scalars["batch_loss"]],
                               [np.mean(losses[t - t % 5:t + 1]) for t in (4, 9, 14, 19, 24, 29, 34, 39, 44, 47)],
                               rtol=1e-6)


@pytest.mark.parametrize("before", [True, False])
def test_a_resumed_run_logs_every_step_once(tmp_path, capsys, monkeypatch, before):
    """Interrupted in epoch 2 (with --tensorboard or without), resumed with it at once (the same
    second: the two sessions' files must not collide)."""
    pytest.importorskip("tensorboard", reason=NEEDS)
    npz = write_npz(tmp_path / "blobs.npz")
    ctrl_c = CtrlC(monkeypatch, 19)
    tb = ["--tensorboard", tmp_path / "tb"]
    code, _, err = run(["train", "--dataset", npz, "--n-val", 80, "--out", tmp_path / "cut", *TINY]
                       + (tb if before else []), capsys)
    ctrl_c.release()
    assert code == 130, err
    code, _, err = run(["train", "--resume", "--out", tmp_path / "cut", *tb], capsys)
    assert code == 0, err
    scalars = read_scalars(tmp_path / "tb" / "cut")
    evals = [int(r["step"]) for r in read_csv(tmp_path / "cut" / "history.csv")]
    assert evals == [0, 16, 32, 48]
    # the resumed session logs from the last evaluation before the checkpoint on
    last = max(s for s in evals if s <= ctrl_c.stopped) if not before else 0
    assert [s for s, _ in scalars["accuracy/val"]] == [s for s in evals if before or s > last]
    assert [s for s, _ in scalars["batch_loss"]] == list(range(last, 48))


def test_without_tensorboard_the_error_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)          # import tensorboard raises ImportError
    code, out, err = run(["train", "--dataset", "sample", "--out", tmp_path / "run",
                          "--tensorboard", tmp_path / "tb"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("fastmlp: error: --tensorboard needs the tensorboard package")
    assert 'pip install "fastmlp[tensorboard]"' in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "tb").exists()


def test_tensorboard_must_be_a_path():
    with pytest.raises(ValueError, match="tensorboard must be a folder path"):
        TrainConfig(tensorboard=3).validate()


@pytest.mark.parametrize("command", [["train"], ["study", "init"], ["search"]])
def test_help_describes_the_flag(command, capsys):
    code, out, _ = run([*command, "--help"], capsys)     # a bare % in a help text breaks --help
    assert code == 0 and "--tensorboard DIR" in out and "fastmlp[tensorboard]" in out
