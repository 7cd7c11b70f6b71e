import re
"""`fastmlp gradcheck`: the per-parameter table on tiny data, its files, and bad input."""
import json

import pytest

from fastmlp.gradcheck import KEYS
from test_cli import run
from train_helpers import write_npz


@pytest.fixture
def npz(tmp_path):
    return write_npz(tmp_path / "blobs.npz")


@pytest.mark.parametrize("batch_norm", ["--batch-norm", "--no-batch-norm"])
def test_gradcheck_prints_and_writes_the_table(npz, tmp_path, capsys, batch_norm):
    out = tmp_path / "gc"
    code, stdout, err = run(["gradcheck", "--dataset", npz, "--sizes", "auto-8-6-auto", batch_norm,
                             "--n", 10, "--dims", 5, "--lam", 0.01, "--out", out], capsys)
    assert code == 0, err
    report = json.loads((out / "gradcheck.json").read_text())
    rows = report["rows"]
    params = ["W1", "b1", "gamma1", "beta1", "W2", "b2", "gamma2", "beta2", "W3", "b3"]
    assert [r["param"] for r in rows] == (params if batch_norm == "--batch-norm"
                                          else ["W1", "b1", "W2", "b2", "W3", "b3"])
    assert report["settings"]["sizes"] == [5, 8, 6, 3] and report["settings"]["n"] == 10
    for r in rows:
        assert set(KEYS) <= set(r)
        assert r["max_abs_error"] <= 1e-8, r
        assert r["zero_gradient"] or r["rel_error"] <= 1e-6, r
    table = (out / "gradcheck.md").read_text()
    assert table.splitlines()[2].startswith("| layer | param |")
    assert "| 1 | W1 | 5x8 |" in table                 # the file is Markdown, the terminal aligned text
    assert re.search(r"^\s*1\s+W1\s+5x8\s+\d+", stdout, re.M) and "|" not in stdout.split("\n\n", 1)[1]


@pytest.mark.parametrize("argv, words", [
    (["--n", 0], "n must be"),
    (["--dims", 13], "dims <="),
    (["--dims", 5, "--sizes", "4-8-auto"], "sizes must start"),
    (["--sizes", "auto-0-auto"], "sizes must be"),
    (["--lam", -1], "lam"),
])
def test_gradcheck_bad_input_exits_2_with_one_line(npz, capsys, argv, words):
    code, stdout, err = run(["gradcheck", "--dataset", npz, *argv], capsys)
    assert code == 2 and stdout == ""
    assert len(err.splitlines()) == 1 and words in err, err


def test_gradcheck_missing_dataset_exits_2(tmp_path, capsys):
    code, _, err = run(["gradcheck", "--dataset", tmp_path / "none.npz"], capsys)
    assert code == 2 and len(err.splitlines()) == 1
