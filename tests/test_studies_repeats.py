"""`fastmlp train --repeats N`: a run folder per seed, the summary (mean ± std) as markdown and JSON,
each seed's run equal to a plain run with that seed, reuse and resumption on a rerun, diverged seeds,
and the train + validation splits that a search's final run can use."""
import json

import numpy as np
import pytest

from fastmlp import checkpoint
from fastmlp.data import make_splits
from test_cli import TINY, run
from train_helpers import CtrlC, tiny_raw, write_npz
from conftest import plain_run_figures


@pytest.fixture(scope="module", autouse=True)
def cheap_runs():
    """Each run's figures as a stub PNG (conftest.py says why)."""
    with plain_run_figures():
        yield


@pytest.fixture
def npz(tmp_path):
    return write_npz(tmp_path / "blobs.npz")


def repeats(npz, out, capsys, *extra):
    return run(["train", "--dataset", npz, "--n-val", 80, "--out", out, *TINY, *extra], capsys)


def rows(stdout):
    return [[c.strip() for c in line.strip("|").split("|")] for line in stdout.splitlines() if line.startswith("|")]


def test_repeats_write_a_folder_per_seed_and_the_mean_and_std(npz, tmp_path, capsys):
    out = tmp_path / "r"
    code, stdout, err = repeats(npz, out, capsys, "--repeats", 3, "--seed", 4)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["seed-4", "seed-5", "seed-6", "summary.json", "summary.md"]
    metrics = [json.loads((out / f"seed-{s}" / "metrics.json").read_text()) for s in (4, 5, 6)]
    assert [m["config"]["seed"] for m in metrics] == [4, 5, 6]
    table = rows(stdout)
    assert table[0] == ["seed", "train accuracy", "val accuracy", "test accuracy", "folder"]
    assert [r[0] for r in table[2:]] == ["4", "5", "6", "mean ± std"]
    summary = json.loads((out / "summary.json").read_text())
    for column, key in enumerate(("train_accuracy", "val_accuracy", "test_accuracy"), start=1):
        values = [m[key] for m in metrics]
        assert [r[column] for r in table[2:5]] == [f"{100 * v:.2f}%" for v in values]
        mean, std = np.mean(values), np.std(values, ddof=1)
        assert summary["summary"][key] == pytest.approx(mean, abs=1e-12)
        assert summary["summary"][f"{key}_std"] == pytest.approx(std, abs=1e-12)
        mean, std = summary["summary"][key], summary["summary"][f"{key}_std"]
        assert table[-1][column] == f"{100 * mean:.2f}% ± {100 * std:.2f}"
    assert summary["seeds"] == [4, 5, 6] and summary["diverged"] == 0 and summary["config"]["seed"] == 4
    assert (out / "summary.md").read_text().count("\n|") == 6
    assert [line.split(":")[0] for line in err.splitlines()[:3]] == ["[1/3] seed 4", "[2/3] seed 5", "[3/3] seed 6"]


def test_each_seed_is_the_plain_run_with_that_seed_and_a_rerun_reuses_them(npz, tmp_path, capsys):
    out = tmp_path / "r"
    code, first, err = repeats(npz, out, capsys, "--repeats", 2)
    assert code == 0, err
    code, _, err = repeats(npz, tmp_path / "plain", capsys, "--seed", 1)
    assert code == 0, err
    assert checkpoint.load(out / "seed-1" / "model.npz").net.theta.tobytes() == \
        checkpoint.load(tmp_path / "plain" / "model.npz").net.theta.tobytes()
    stamp = (out / "seed-0" / "model.npz").stat().st_mtime_ns
    code, second, _ = repeats(npz, out, capsys, "--repeats", 3)      # one more seed: only it trains
    assert code == 0 and rows(second)[2:4] == rows(first)[2:4] and rows(second)[4][0] == "2"
    assert (out / "seed-0" / "model.npz").stat().st_mtime_ns == stamp
    code, _, err = repeats(npz, out, capsys, "--repeats", 2, "--lam", 0.5)
    assert code == 2 and len(err.splitlines()) == 1 and "lam=0.005" in err and "another --out" in err


def test_an_interrupted_seed_resumes_on_the_rerun_bit_identical(npz, tmp_path, capsys, monkeypatch):
    ctrl_c = CtrlC(monkeypatch, 19, occurrence=2)      # seed 0 runs to the end; stop seed 1
    out = tmp_path / "r"
    code, _, err = repeats(npz, out, capsys, "--repeats", 2, "--cycles", 2)
    ctrl_c.release()
    assert code == 130 and err.splitlines()[-1] == (
        f"fastmlp: interrupted at step {ctrl_c.stopped}; saved the checkpoint {out}/seed-1/checkpoint.npz. Continue with the "
        f"same command and --out {out}: finished seeds are kept and this one resumes from its checkpoint.")
    code, stdout, err = repeats(npz, out, capsys, "--repeats", 2, "--cycles", 2)
    assert code == 0, err
    code, _, err = repeats(npz, tmp_path / "plain", capsys, "--seed", 1, "--cycles", 2)
    assert code == 0, err
    assert checkpoint.load(out / "seed-1" / "model.npz").net.theta.tobytes() == \
        checkpoint.load(tmp_path / "plain" / "model.npz").net.theta.tobytes()


def test_a_diverged_seed_is_in_the_summary_and_exits_1(npz, tmp_path, capsys):
    out = tmp_path / "r"
    code, stdout, err = repeats(npz, out, capsys, "--repeats", 2, "--schedule", "constant", "--eta", 1,
                                "--lam", 5, "--ns", 500)
    assert code == 1 and err.splitlines()[-1].startswith("fastmlp: error: 2 of 2 runs diverged (seed 0: "
                                                          "training diverged")
    table = rows(stdout)
    assert table[2][1:4] == ["diverged"] * 3 and table[-1][1:] == ["-", "-", "-", "0 of 2 runs (2 diverged)"]
    assert json.loads((out / "summary.json").read_text())["diverged"] == 2


@pytest.mark.parametrize("argv, words", [
    (["--repeats", 0], "--repeats must be an integer in [1, 1000]; got 0."),
    (["--repeats", 2, "--resume"], "with --repeats 2 rerun the same command with the same --out instead"),
    (["--repeats", 2, "--lam", -1], "lam must be a finite number >= 0"),
])
def test_repeats_bad_input_exits_2_with_one_line(npz, tmp_path, capsys, argv, words):
    code, stdout, err = repeats(npz, tmp_path / "r", capsys, *argv)
    assert code == 2 and stdout == "" and len(err.splitlines()) == 1 and words in err, err


@pytest.mark.parametrize("split_n_val", [80, 1])
def test_merge_val_trains_on_the_training_and_validation_rows(split_n_val):
    raw = tiny_raw()
    plain = make_splits(raw, "a3", split_n_val, "float64")
    merged = make_splits(raw, "a3", split_n_val, "float64", merge_val=True)
    assert merged.X_val.shape == (0, 12) and merged.y_val.shape == (0,) and merged.y_val.dtype == np.int64
    assert merged.y_train.tolist() == raw.y_train.tolist()
    assert np.allclose(merged.X_train.mean(axis=0), 0) and np.allclose(merged.X_train.std(axis=0), 1)
    assert np.allclose(merged.X_train * merged.std + merged.mean, raw.x_train)
    assert np.allclose(merged.X_test * merged.std + merged.mean, raw.x_test)
    assert np.allclose(plain.X_train * plain.std + plain.mean, raw.x_train[:400 - split_n_val])
    assert "trained on both, no validation rows" in merged.source
