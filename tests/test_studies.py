"""`fastmlp study {init,depth,eta}` on a tiny synthetic dataset: the table, the files, the exact
configs, reuse of finished runs, diverged runs, and bad input."""
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fastmlp.config import TrainConfig
from fastmlp.run import train
from test_cli import run
from conftest import plain_run_figures

TINY = ["--ns", 6, "--cycles", 1, "--batch", 50, "--train-eval", 0, "--n-val", 100]
GRIDS = {"init": ["--sigmas", 0.1], "depth": ["--hidden", "8-8", "8-6-4"], "eta": ["--etas", 0.01, 0.1]}
FILES = ["configs.json", "curves.png", "results.csv", "results.json", "results.md", "runs", "val_loss.png"]


@pytest.fixture(scope="module", autouse=True)
def cheap_runs():
    """Each run's figures as a stub PNG (conftest.py says why)."""
    with plain_run_figures():
        yield


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    """600 training and 100 test rows of 20 features around 3 class centres."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0.0, 1.5, (3, 20))
    y = rng.permutation(np.arange(700) % 3)
    X = 100 + 20 * (centres[y] + rng.standard_normal((700, 20)))
    path = tmp_path_factory.mktemp("data") / "synthetic.npz"
    np.savez(path, x_train=X[:600], y_train=y[:600], x_test=X[600:], y_test=y[600:])
    return path


def study(name, npz, out, capsys, *extra):
    return run(["study", name, "--dataset", npz, "--out", out, *TINY, *GRIDS[name], *extra], capsys)


def table_rows(stdout):
    lines = [line for line in stdout.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]


@pytest.mark.parametrize("name, cells, changes", [
    ("init", [["σ=0.1", "no"], ["He", "no"], ["σ=0.1", "yes"], ["He", "yes"]],
     [{"init": 0.1, "batch_norm": False}, {"init": "he", "batch_norm": False},
      {"init": 0.1, "batch_norm": True}, {"init": "he", "batch_norm": True}]),
    ("depth", [["3", "8-8", "no"], ["4", "8-6-4", "no"], ["3", "8-8", "yes"], ["4", "8-6-4", "yes"]],
     [{"sizes": "auto-8-8-auto", "batch_norm": False}, {"sizes": "auto-8-6-4-auto", "batch_norm": False},
      {"sizes": "auto-8-8-auto", "batch_norm": True}, {"sizes": "auto-8-6-4-auto", "batch_norm": True}]),
    ("eta", [["0.01", "no"], ["0.1", "no"], ["0.01", "yes"], ["0.1", "yes"]],
     [{"eta": 0.01, "schedule": "constant", "batch_norm": False},
      {"eta": 0.1, "schedule": "constant", "batch_norm": False},
      {"eta": 0.01, "schedule": "constant", "batch_norm": True},
      {"eta": 0.1, "schedule": "constant", "batch_norm": True}]),
])
def test_study_writes_table_configs_and_figure(npz, tmp_path, capsys, name, cells, changes):
    out = tmp_path / name
    code, stdout, err = study(name, npz, out, capsys)
    assert code == 0, err
    rows = table_rows(stdout)
    assert [r[:len(cells[0])] for r in rows] == cells
    for r in rows:
        assert r[len(cells[0])].endswith("%") and r[-1] == "1"
    assert len([line for line in err.splitlines() if line.startswith("[")]) == 4   # one per finished run
    assert sorted(p.name for p in out.iterdir()) == FILES
    assert (out / "val_loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "results.md").read_text().count("\n|") == 6
    assert len((out / "results.csv").read_text().splitlines()) == 5
    results = json.loads((out / "results.json").read_text())
    assert [t["runs"] for t in results["trials"]] == [1] * 4
    assert all(0 <= t["test_accuracy_mean"] <= 1 for t in results["trials"])
    configs = json.loads((out / "configs.json").read_text())
    assert len(configs) == 4
    for entry, want in zip(configs, changes):
        config = entry["config"]
        assert {k: config[k] for k in want} == want
        assert config["ns"] == 6 and config["batch"] == 50 and config["lam"] == 0.005
        assert config["dataset"] == str(npz) and Path(config["out"]).parent == out / "runs"


def test_recorded_config_reproduces_the_run(npz, tmp_path, capsys):
    """The study trains through fastmlp.run.train: a recorded config, run again, gives the same
    test accuracy."""
    out = tmp_path / "eta"
    assert study("eta", npz, out, capsys)[0] == 0
    entry = json.loads((out / "configs.json").read_text())[1]
    again = train(replace(TrainConfig(**entry["config"]), out=str(tmp_path / "again")))
    results = json.loads((out / "results.json").read_text())
    assert again.metrics["test_accuracy"] == results["trials"][1]["test_accuracy"][0]


def test_seeds_give_mean_and_std_and_rerun_reuses_finished_runs(npz, tmp_path, capsys):
    out = tmp_path / "eta"
    args = ["--etas", 0.05, "--seeds", 2, "--seed", 3]
    code, first, err = run(["study", "eta", "--dataset", npz, "--out", out, *TINY, *args], capsys)
    assert code == 0, err
    rows = table_rows(first)
    assert len(rows) == 2 and all("±" in r[2] and r[-1] == "2" for r in rows)
    assert [c["seed"] for c in json.loads((out / "configs.json").read_text())] == [3, 4, 3, 4]
    model = next((out / "runs").glob("*-seed3")) / "model.npz"
    stamp = model.stat().st_mtime_ns
    code, second, _ = run(["study", "eta", "--dataset", npz, "--out", out, *TINY, *args], capsys)
    assert code == 0 and second == first and model.stat().st_mtime_ns == stamp
    code, _, err = run(["study", "eta", "--dataset", npz, "--out", out, *TINY, *args, "--lam", 0.1], capsys)
    assert code == 2 and "another --out" in err and len(err.splitlines()) == 1


def test_a_diverged_run_is_recorded_not_fatal(npz, tmp_path, capsys):
    code, stdout, err = run(["study", "eta", "--dataset", npz, "--out", tmp_path / "s", *TINY,
                             "--etas", 1e30, "--init", 1.0], capsys)
    assert code == 0, err
    assert "diverged" in table_rows(stdout)[0][2] and "diverged" in err


@pytest.mark.parametrize("argv, words", [
    (["study", "eta", "--seeds", 0], "seeds must be"),
    (["study", "depth", "--hidden", "5-x"], "sizes must be"),
    (["study", "init", "--lam", -1], "lam"),
    (["study", "init", "--init", "he"], "unrecognized arguments"),   # the study sets init itself
])
def test_study_bad_input_exits_2_with_one_line(npz, tmp_path, capsys, argv, words):
    code, stdout, err = run([*argv, "--dataset", npz, "--out", tmp_path / "s"], capsys)
    assert code == 2 and stdout == ""
    assert len(err.splitlines()) == 1 and words in err, err


def test_study_missing_dataset_exits_2(tmp_path, capsys):
    code, _, err = run(["study", "depth", "--dataset", tmp_path / "none.npz", "--out", tmp_path / "s"], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "none.npz" in err
