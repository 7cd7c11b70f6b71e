"""--n-train and --epochs: how much data and how long (issue 12 item 5)."""
import json

import numpy as np
import pytest

from fastmlp import data
from fastmlp.cli import main
from fastmlp.data import DataError


def test_n_train_overfits_the_first_100_rows_of_the_sample(tmp_path, capsys):
    """The report's check (100 images, 500 epochs, training loss to ~0), shortened: a net that can
    drive the loss of 100 images to ~0 has a working forward and backward."""
    out = tmp_path / "run"
    code = main(["train", "--dataset", "sample", "--n-train", "100", "--n-val", "100", "--schedule", "constant",
                 "--eta", "0.05", "--epochs", "40", "--lam", "0", "--batch", "10", "--sizes", "auto-50-auto",
                 "--out", str(out)])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_train"] == 100 and metrics["steps"] == 40 * 10
    assert metrics["train_loss"] < 0.05 and metrics["train_accuracy"] == 1.0
    assert metrics["val_accuracy"] < 0.9          # the 100 rows were learnt, not the task


def test_n_train_takes_the_first_rows_and_their_statistics():
    raw = data.load_raw("sample")
    full = data.make_splits(raw, "a3", 500, np.float64)
    first = data.make_splits(raw, "a3", 500, np.float64, n_train=100)
    assert len(first.X_train) == 100 and np.array_equal(first.y_train, full.y_train[:100])
    np.testing.assert_allclose(first.X_train * first.std + first.mean, raw.x_train[:100], atol=1e-9)
    assert np.array_equal(first.y_val, full.y_val) and len(first.X_test) == len(full.X_test)
    merged = data.make_splits(raw, "a3", 500, np.float64, merge_val=True, n_train=100)
    assert np.array_equal(merged.y_train, np.r_[full.y_train[:100], full.y_val]) and len(merged.X_val) == 0
    with pytest.raises(DataError, match=r"n_train must be an integer in \[1, 5000\] .*got 5001; use a smaller"):
        data.make_splits(raw, "a3", 500, np.float64, n_train=5001)


def test_epochs_with_the_cyclic_schedule_is_one_line_naming_both_flags(capsys):
    assert main(["train", "--dataset", "sample", "--epochs", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--epochs" in err and "--schedule cyclic" in err
