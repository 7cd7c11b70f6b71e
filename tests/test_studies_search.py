"""`fastmlp search`: coarse then fine lam draws in two worker processes, a table sorted by
validation accuracy, and a restart that reruns nothing."""
import json

import numpy as np
import pytest

from fastmlp.studies.search import lam_values
from test_cli import run
from train_helpers import write_npz

TINY = ["--sizes", "auto-8-auto", "--ns", 6, "--cycles", 1, "--batch", 40, "--train-eval", 0, "--n-val", 80]


def test_lam_values_are_log_uniform_in_range_and_seeded():
    lams = lam_values(-4, -2, 200, 0)
    assert min(lams) >= 1e-4 and max(lams) <= 1e-2 and lams == lam_values(-4, -2, 200, 0)
    assert 0.4 < np.mean(np.log10(lams) < -3) < 0.6


def test_search_sorts_by_val_accuracy_and_resumes(tmp_path, capsys):
    npz = write_npz(tmp_path / "blobs.npz")
    argv = ["search", "--dataset", npz, "--out", tmp_path / "s", "--coarse", 3, "--fine", 2,
            "--l-min", -4, "--l-max", -1, *TINY]
    code, first, err = run(argv, capsys)
    assert code == 0, err
    assert len([line for line in err.splitlines() if line.startswith("[")]) == 5
    records = json.loads((tmp_path / "s" / "results.json").read_text())
    assert [r["phase"] for r in records].count("coarse") == 3 and len(records) == 5
    vals = [r["val_accuracy"] for r in records]
    assert vals == sorted(vals, reverse=True)
    coarse = [r["lam"] for r in records if r["phase"] == "coarse"]
    assert all(1e-4 <= lam <= 1e-1 for lam in coarse)
    best = max((r for r in records if r["phase"] == "coarse"), key=lambda r: r["val_accuracy"])
    assert all(abs(np.log10(r["lam"] / best["lam"])) <= 0.5 for r in records if r["phase"] == "fine")
    assert len((tmp_path / "s" / "results.csv").read_text().splitlines()) == 6
    assert (tmp_path / "s" / "results.md").read_text().count("\n|") == 7

    code, second, err = run(argv, capsys)       # everything finished: nothing reruns
    assert code == 0 and second == first and "[" not in err
    assert len((tmp_path / "s" / "trials.jsonl").read_text().splitlines()) == 5


@pytest.mark.parametrize("argv, words", [
    (["--l-min", 0, "--l-max", -1], "l_min must be <= l_max"),
    (["--coarse", 0], "coarse must be"),
    (["--batch", 0], "batch must be"),
])
def test_search_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, words):
    code, stdout, err = run(["search", "--dataset", "sample", "--out", tmp_path / "s", *argv], capsys)
    assert code == 2 and stdout == "" and len(err.splitlines()) == 1 and words in err, err
