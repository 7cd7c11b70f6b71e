"""`fastmlp gradcheck`: the per-parameter table on tiny data, its files, and bad input."""
import json
import re

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


def test_gradcheck_batch_sizes_table_and_pass_line(npz, tmp_path, capsys):
    out = tmp_path / "gc"
    code, stdout, err = run(["gradcheck", "--dataset", npz, "--sizes", "auto-8-auto", "--dims", 5,
                             "--batch-sizes", "4,8,12", "--out", out], capsys)
    assert code == 0, err
    assert re.search(r"^layer\s+param\s+n=4\s+n=8\s+n=12$", stdout, re.M)
    assert re.search(r"^\s*1\s+b1\s+\S+ abs\s+\S+ abs\s+\S+ abs$", stdout, re.M)   # zero gradient: abs error
    assert stdout.rstrip().endswith("PASS: all 18 parameter checks within --tol 1e-06.")
    report = json.loads((out / "gradcheck.json").read_text())
    assert list(report["rows_by_batch_size"]) == ["4", "8", "12"] and report["settings"]["n"] == [4, 8, 12]
    assert "| layer | param | n=4 | n=8 | n=12 |" in (out / "gradcheck.md").read_text()


def test_gradcheck_fails_with_exit_1_past_tol_and_honours_h_and_max_entries(npz, capsys):
    """A step h = 0.5 makes centred differences poor derivatives: the check must say FAIL and exit 1
    (a script or CI stops there); --max-entries bounds the entries checked."""
    code, stdout, err = run(["gradcheck", "--dataset", npz, "--sizes", "auto-8-auto", "--dims", 5, "--n", 10,
                             "--no-batch-norm", "--h", 0.5, "--max-entries", 3], capsys)
    assert code == 1, err
    checked, kinks = re.search(r"^\s*1\s+W1\s+5x8\s+(\d+)\s+(\d+)\s", stdout, re.M).groups()
    assert int(checked) + int(kinks) == 3 and "h=0.5" in stdout     # kinks: entries left out
    assert re.search(r"^FAIL: \d+ of 4 parameter checks exceed --tol 1e-06: W1 \d\.\d\de-\d\d", stdout, re.M)
    code, stdout, _ = run(["gradcheck", "--dataset", npz, "--sizes", "auto-8-auto", "--dims", 5, "--n", 10,
                           "--no-batch-norm", "--h", 0.5, "--tol", 1.0], capsys)
    assert code == 0 and "PASS" in stdout


@pytest.mark.parametrize("argv, words", [
    (["--batch-sizes", "10,x"], "--batch-sizes must be"),
    (["--batch-sizes", "10,10"], "--batch-sizes must be"),
    (["--batch-sizes", "1,10"], "must be >= 2 with batch norm"),
    (["--h", 0], "h must be > 0"),
    (["--max-entries", 0], "max_entries must be"),
    (["--tol", -1], "--tol must be"),
])
def test_gradcheck_new_flags_refuse_bad_values_in_one_line(npz, capsys, argv, words):
    code, stdout, err = run(["gradcheck", "--dataset", npz, *argv], capsys)
    assert code == 2 and stdout == ""
    assert len(err.splitlines()) == 1 and words in err, err
