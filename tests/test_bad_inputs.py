"""Every bad flag and config value is one line naming it, exit status 2, no traceback, and nothing
trained or allocated (issue 14, items 4, 5 and 7).

The CLI cases run in-process through fastmlp.cli.main and stop before training: validation comes
before the data loads, or right after the embedded sample loads (~0.1 s).
"""
import errno
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastmlp import checkpoint
from fastmlp.cli import main
from fastmlp.config import FIELDS, MAX_SEED, TrainConfig
from train_helpers import write_npz

BIG = str(2**64)          # gave a Numba TypingError as a seed
HUGE = str(10**14)


def run(argv, capsys):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:     # argparse's own usage errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def train_cases(npz):
    """(argv, words one of which the message must hold) for `fastmlp train`."""
    data = ["--dataset", npz]
    cases = []
    for flag, values in {
        "--ns": ["0", "-1", "5000001", HUGE, BIG, "x", "1.5"],
        "--cycles": ["0", "-3", "5000001", BIG, "x"],
        "--ns-epochs": ["0", "-1", "nan", "inf", "1e300", "x"],
        "--sizes": ["", "-", "auto", "0-10", "auto-0-auto", "auto-5000-auto", "auto-²-auto", "9" * 5000,
                    "auto--auto", "auto-" + "-".join(["5"] * 70) + "-auto", "auto-x-auto"],
        "--seed": ["-1", str(MAX_SEED + 1), BIG, "x"],
        "--batch": ["0", "-5", "1", BIG, "2.5"],
        "--lam": ["-1", "nan", "inf", "x"],
        "--eta-min": ["0", "-1", "nan", "inf"],
        "--eta-max": ["0", "nan", "inf"],
        "--eta": ["0", "-1", "nan"],
        "--momentum": ["nan", "inf"],
        "--beta1": ["nan"],
        "--beta2": ["inf"],
        "--opt-eps": ["nan"],
        "--dropout": ["-0.1", "1", "x", "0.1,0.2,0.3", "nan"],
        "--init": ["x", "-1", "0", "nan", "inf"],
        "--augment": ["x", "flip=2", "translate=-1", "blur=0.5:5-1", ",,,"],
        "--threads": ["0", HUGE],
        "--eval-every": ["-1", "x"],
        "--train-eval": ["-1"],
        "--n-val": ["0", "-1"],
        "--pct-start": ["0", "1", "nan"],
        "--div-factor": ["0", "inf"],
        "--final-div-factor": ["-1", "nan"],
        "--split": ["a4"],
        "--dtype": ["float16"],
        "--schedule": ["step"],
        "--standardize": ["x"],
        "--optimizer": ["lbfgs"],
        "--out": [""],
        "--data-dir": [""],
        "--dataset": ["x", "", "missing.npz"],
    }.items():
        cases += [([flag, v, *(data if flag not in ("--dataset", "--split") else [])], flag) for v in values]
    cases += [
        (["--schedule", "onecycle", "--epochs", "0", *data], "epochs"),
        (["--schedule", "onecycle", "--epochs", "1000000", "--batch", "10", *data], "--epochs"),
        (["--ns-epochs", "999999", *data], "--ns-epochs"),
        (["--ns-epochs", "1e-300", *data], "ns_epochs"),
        (["--ns", "5000000", "--cycles", "2", *data], "--cycles"),
        (["--sizes", "auto-4096-4096-4096-4096-4096-4096-4096-auto", *data], "sizes"),
        (["--batch", "1", "--batch-norm", *data], "--no-batch-norm"),
        (["--optimizer", "adam", "--opt-eps", "-1", *data], "eps"),
        (["--repeats", "0", *data], "--repeats"),
        (["--repeats", "1001", *data], "--repeats"),
        (["--repeats", "2", "--seed", str(MAX_SEED), *data], "--seed"),
    ]
    return [(["train", *argv], word) for argv, word in cases]


OTHER_CASES = [
    (["gradcheck", "--n", "0"], "n"),
    (["gradcheck", "--n", "1", "--dataset", "sample"], "--n"),
    (["gradcheck", "--dims", "0"], "dims"),
    (["gradcheck", "--seed", BIG], "--seed"),
    (["gradcheck", "--lam", "nan"], "lam"),
    (["gradcheck", "--n", "100000", "--dataset", "sample"], "n"),
    (["gradcheck", "--sizes", "auto-5000-auto", "--dataset", "sample"], "sizes"),
    (["study", "eta", "--seeds", "0"], "--seeds"),
    (["study", "eta", "--etas", "nan"], "eta"),
    (["show-augment", "--n", "0"], "--n"),
    (["show-augment", "--n", "100000"], "--n"),
    (["show-augment", "--variants", "100000"], "--variants"),
    (["show-augment", "--seed", BIG], "--seed"),
    (["show-augment", "--augment", "flip=7"], "flip"),
    (["show-augment", "--dataset", "x"], "dataset"),
    (["show-augment", "--out", ""], "--out"),
    (["show-augment", "--out", "."], "--out"),
    (["search", "--width", "-1"], "width"),
    (["search", "--width", "0"], "width"),
    (["search", "--width", "nan"], "width"),
    (["search", "--l-min", "-400"], "l_min"),
    (["search", "--l-max", "400"], "l_max"),
    (["search", "--coarse", "0"], "coarse"),
    (["search", "--coarse", "1000000000"], "coarse"),
    (["search", "--fine", "-1"], "fine"),
    (["search", "--repeats", "1000000"], "repeats"),
    (["search", "--workers", "0"], "workers"),
    (["search", "--workers", "100000"], "workers"),
    (["search", "--search-seed", "-1"], "search_seed"),
    (["search", "--eta-max-range", "nan", "1"], "eta_max_range"),
    (["search", "--sizes-choices", ""], "sizes_choices"),
    (["search", "--final-cycles", "0", "--final"], "final_cycles"),
    (["search", "--dask-scheduler", ""], "dask_scheduler"),
    (["search", "--dask-scheduler", "foo://127.0.0.1:1"], "dask_scheduler"),
    (["search", "--dask-scheduler", "tls://127.0.0.1:1"], "dask_scheduler"),
    (["search", "--seed", BIG], "seed"),
    (["evaluate", "none.npz"], "none.npz"),
    (["download", "cifar100"], "cifar100"),
]


@pytest.fixture
def npz(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)      # relative paths, and a run without --out, stay in tmp_path
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("FASTMLP_DATA", raising=False)
    return write_npz(tmp_path / "blobs.npz")


@pytest.fixture
def no_training(monkeypatch):
    """A case that gets as far as training fails at once instead of training."""
    from fastmlp.train import Trainer

    def fit(*args, **kwargs):
        raise AssertionError("a bad input got as far as training")
    monkeypatch.setattr(Trainer, "fit", fit)


def test_every_bad_flag_is_one_line_naming_it_with_exit_2(npz, tmp_path, capsys, no_training):
    bad = []
    for argv, word in train_cases(npz) + OTHER_CASES:
        argv = [*argv, "--out", tmp_path / "out"] if argv[0] == "train" and "--out" not in argv else argv
        code, out, err = run(argv, capsys)
        names = {word, word.lstrip("-"), word.lstrip("-").replace("-", "_")}
        if not (code == 2 and err.count("\n") == 1 and "Traceback" not in err
                and err.startswith("fastmlp") and any(n in err for n in names)):
            bad.append((argv, code, err))
    assert not bad, "\n".join(map(str, bad))
    assert not [*tmp_path.rglob("model.npz"), *tmp_path.rglob("checkpoint.npz")]    # nothing trained


@pytest.mark.parametrize("content", [
    b"\x7fELF\x02\x01\x01\x00\xd0\xff\xfe",       # a binary: UnicodeDecodeError before
    b"lam = [[[[[[[[[[[[[[[[" * 200,              # deeply nested and torn
    b"lam = 0.1\nlam = 0.2\n",
    b"[ns]\nx = 1\n",                             # a table for an int
    b"sizes = {a = 1}\n",
    b"seed = 18446744073709551616\n",
    b"ns = 1979-05-27\n",                         # a TOML date
    b"dropout = [0.1, \"x\"]\n",
    b"out = \"\"\n",
    b"momentum = nan\n",
])
def test_bad_config_files_are_one_line_naming_the_file(npz, tmp_path, capsys, content, no_training):
    (tmp_path / "run.toml").write_bytes(content)
    code, _, err = run(["train", "--config", tmp_path / "run.toml", "--dataset", npz], capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "run.toml" in err or "must" in err, err


FIELD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.lists(st.one_of(st.integers(-5, 10**6), st.text(max_size=4)), max_size=5),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(FIELDS), FIELD_VALUES, min_size=1, max_size=4))
def test_any_config_values_validate_or_fail_with_a_value_error(values):
    """TOML and library users reach TrainConfig directly: whatever the values, validate() and
    check_data() either pass or raise ValueError, and what passes can be written as strict JSON."""
    try:
        config = TrainConfig.from_dict(values).validate()
        config.check_data(500, 20, 3)
    except ValueError:
        return
    assert config.seed <= MAX_SEED
    assert all(not (isinstance(v, float) and not math.isfinite(v)) for v in config.to_dict().values())


def test_batch_of_one_with_batch_norm_is_refused_but_fine_without(npz, tmp_path, capsys):
    code, _, err = run(["train", "--dataset", npz, "--batch", "1", "--out", tmp_path / "a"], capsys)
    assert code == 2 and "batch must be >= 2 with batch norm" in err and "--no-batch-norm" in err
    code, _, err = run(["train", "--dataset", npz, "--batch", "1", "--no-batch-norm", "--ns", "2", "--cycles",
                        "1", "--sizes", "auto-8-auto", "--out", tmp_path / "b"], capsys)
    assert code == 0, err


def test_a_full_disk_names_the_file_it_was_writing(npz, tmp_path, capsys, monkeypatch):
    real = checkpoint.os.fsync

    def full(fd):                        # what a full disk does at the end of a write
        real(fd)
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(checkpoint.os, "fsync", full)
    code, _, err = run(["train", "--dataset", npz, "--ns", "2", "--cycles", "1", "--sizes", "auto-8-auto",
                        "--out", tmp_path / "r"], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert str(tmp_path / "r") in err and "No space left on device" in err and "free some space" in err
    assert not list((tmp_path / "r").glob(".*.tmp"))         # no torn temporary file stays


def test_plots_go_through_atomic_write(tmp_path, monkeypatch):
    """A PNG is written whole or not at all, and a failure names it."""
    from fastmlp import plots
    from fastmlp.train import History
    monkeypatch.setattr(checkpoint.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    history = History(np.linspace(0.1, 0.01, 4), np.ones(4), [[4, 1.0] + [0.5] * 10])
    with pytest.raises(OSError) as e:
        plots.plot_history(history, tmp_path)
    assert e.value.filename == str(tmp_path / "cost.png") and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("key", ["lam", "init"])
@pytest.mark.parametrize("value", [-9223372036854775809, 10**400])
def test_ints_beyond_int64_are_value_errors(key, value):
    """Found by hypothesis: np.isfinite raised TypeError on a Python int beyond int64."""
    with pytest.raises(ValueError, match=key):
        TrainConfig.from_dict({key: value}).validate()


@pytest.mark.parametrize("value", [-9223372036854775809, 10**400])
def test_optimizer_hyperparameters_beyond_int64_are_value_errors(value):
    """The twin of the check above in fastmlp/optim.py's hyperparameter check."""
    with pytest.raises(ValueError, match="beta1"):
        TrainConfig.from_dict({"optimizer": "adam", "beta1": value}).validate()
