"""`fastmlp train --early-stopping`: the rule (fastmlp.stopping.Plateau, Keras's), stopping and
restoring the best evaluation's weights, metrics.json, refusals, and --resume."""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmlp import checkpoint
from fastmlp.config import TrainConfig
from fastmlp.stopping import Plateau
from fastmlp.train import EVAL_COLUMNS
from test_cli import run
from train_helpers import CtrlC, write_npz

# eta 5 on the tiny blobs: val_loss is best after epoch 4 (step 64) and worse after 5 and 6
TINY = ["--n-val", 80, "--sizes", "auto-16-16-auto", "--batch", 20, "--train-eval", 0,
        "--schedule", "constant", "--eta", 5, "--epochs", 30, "--early-stopping", 2]


@pytest.fixture
def npz(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return write_npz(tmp_path / "blobs.npz")


def keras_rule(values, patience, min_delta, mode):
    """Keras 3's EarlyStopping.on_epoch_end, transcribed: the epoch it stops at (or None).
    Keras negates min_delta in min mode and compares monitor_op(value - min_delta, best)."""
    delta = -min_delta if mode == "min" else min_delta
    best, wait = None, 0
    for epoch, v in enumerate(values):
        wait += 1
        better = best is None or (v - delta < best if mode == "min" else v - delta > best)
        if better:
            best, wait = v, 0
            continue
        if wait >= patience and epoch > 0:
            return epoch
    return None


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=12), st.integers(0, 4),
       st.sampled_from([0.0, 1.0, 2.5]), st.sampled_from(["min", "max"]))
def test_the_rule_stops_where_keras_does(values, patience, min_delta, mode):
    rule, stopped = Plateau(mode, min_delta, patience), None
    for epoch, v in enumerate(values):
        rule.update(float(v), epoch)
        if rule.exhausted:
            stopped = epoch
            break
    assert stopped == keras_rule(values, patience, min_delta, mode)


def history(out):
    rows = np.loadtxt(out / "history.csv", delimiter=",", skiprows=1)
    return {int(r[0]): dict(zip(EVAL_COLUMNS, r)) for r in rows}


def test_stops_and_restores_the_best_evaluation(npz, tmp_path, capsys):
    code, out, err = run(["train", "--dataset", npz, "--out", "es", *TINY], capsys)
    assert code == 0, err
    m = json.loads((tmp_path / "es" / "metrics.json").read_text())
    es = m["early_stopping"]
    assert es["stopped_early"] and es["restored_best"] and es["best_step"] < es["stopped_step"] == m["steps"]
    evals = history(tmp_path / "es")
    assert max(evals) == es["stopped_step"] < 30 * 16            # history.csv ends where it stopped
    best, last = evals[es["best_step"]], evals[es["stopped_step"]]
    assert es["best_val_loss"] == pytest.approx(min(r["val_loss"] for s, r in evals.items() if s))
    # the model's validation scores are the best evaluation's, not the last one's
    assert m["val_loss"] == pytest.approx(best["val_loss"], rel=1e-6) != pytest.approx(last["val_loss"])
    assert m["val_accuracy"] == pytest.approx(best["val_accuracy"])
    assert f"Stopped early at step {es['stopped_step']}" in err and "restored those of step" in err
    assert not (tmp_path / "es" / "best.npz").exists()
    assert len(checkpoint.load(tmp_path / "es" / "model.npz").history["eta"]) == es["stopped_step"]


def test_no_restore_best_keeps_the_last_weights(npz, tmp_path, capsys):
    code, _, err = run(["train", "--dataset", npz, "--out", "last", "--no-restore-best", *TINY], capsys)
    assert code == 0, err
    m = json.loads((tmp_path / "last" / "metrics.json").read_text())
    assert m["early_stopping"]["stopped_early"] and not m["early_stopping"]["restored_best"]
    assert m["val_loss"] == pytest.approx(history(tmp_path / "last")[m["steps"]]["val_loss"], rel=1e-6)


def test_monitor_val_accuracy(npz, tmp_path, capsys):
    code, _, err = run(["train", "--dataset", npz, "--out", "acc", *TINY, "--monitor", "val_accuracy",
                        "--min-delta", 0.5], capsys)        # nothing beats the first by 50 points
    assert code == 0, err
    es = json.loads((tmp_path / "acc" / "metrics.json").read_text())["early_stopping"]
    assert (es["best_step"], es["stopped_step"]) == (16, 48) and "best_val_accuracy" in es


def test_resume_stops_and_restores_as_an_uninterrupted_run(npz, tmp_path, capsys, monkeypatch):
    code, _, err = run(["train", "--dataset", npz, "--out", "whole", *TINY], capsys)
    assert code == 0, err
    ctrl_c = CtrlC(monkeypatch, 70)     # after the best evaluation (step 64), before the stop (96)
    code, _, err = run(["train", "--dataset", npz, "--out", "cut", *TINY], capsys)
    ctrl_c.release()
    assert code == 130 and (tmp_path / "cut" / "best.npz").exists(), err
    code, _, err = run(["train", "--resume", "--out", "cut"], capsys)
    assert code == 0, err
    whole, cut = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("whole", "cut"))
    assert cut["early_stopping"] == whole["early_stopping"]
    assert checkpoint.load(tmp_path / "cut" / "model.npz").net.theta.tobytes() == \
        checkpoint.load(tmp_path / "whole" / "model.npz").net.theta.tobytes()


def test_refused_without_validation_rows(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 4)), np.arange(60) % 2
    np.savez("noval.npz", x_train=X, y_train=y, x_test=X[:10], y_test=y[:10])
    code, _, err = run(["train", "--dataset", "noval.npz", "--split", "a2", "--out", "r", *TINY], capsys)
    assert code == 2 and err.count("\n") == 1, err


@pytest.mark.parametrize("flags, named", [
    (["--monitor", "val_accuracy"], "--monitor"), (["--min-delta", 0.1], "--min-delta"),
    (["--no-restore-best"], "--no-restore-best"), (["--early-stopping", 0], "--early-stopping"),
    (["--early-stopping", 2, "--min-delta", -1], "--min-delta")])
def test_settings_that_would_do_nothing_are_refused(flags, named, capsys):
    code, _, err = run(["train", "--dataset", "sample", *flags], capsys)
    assert code == 2 and named in err and err.startswith("fastmlp: error: ") and err.count("\n") == 1, err


def test_config_without_the_new_fields_still_loads():
    """A run folder written before early stopping existed: its config has none of the fields."""
    old = {k: v for k, v in TrainConfig().to_dict().items()
           if k not in ("early_stopping", "monitor", "min_delta", "restore_best")}
    assert TrainConfig.from_dict(old).validate().early_stopping is None


def test_search_refuses_early_stopping_with_final_train_val(tmp_path, capsys):
    """The final runs would have no validation rows: refused before the first trial."""
    code, out, err = run(["search", "--dataset", "sample", "--out", tmp_path / "s", "--final", "--final-train-val",
                          "--early-stopping", 2], capsys)
    assert code == 2 and "--final-train-val" in err and err.count("\n") == 1, err
    assert not (tmp_path / "s").exists()
