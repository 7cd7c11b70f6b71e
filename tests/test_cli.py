import gc
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from fastmlp import checkpoint
from fastmlp.cli import main
from fastmlp.data import standardize
from fastmlp.run import train
from train_helpers import LABELS, CtrlC, blobs, tiny_config, write_npz

TINY = ["--sizes", "auto-16-16-auto", "--batch", "20", "--ns", "24", "--cycles", "1", "--train-eval", "0"]


def notes(err):
    """stderr without the progress: the line per epoch (stderr is no terminal here) and the
    compile notice."""
    return "".join(line for line in err.splitlines(keepends=True)
                   if not re.match(r"epoch \d+/\d+, step |Compiling fastmlp's kernels ", line))


def run(argv, capsys):
    """Exit code, stdout and stderr of `fastmlp argv`."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:          # argparse's own exits (usage errors, --help)
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def npz(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)      # a run without --out goes to ./runs
    return write_npz(tmp_path / "blobs.npz")


@pytest.fixture
def model(npz, tmp_path, capsys):
    code, out, err = run(["train", "--dataset", npz, "--n-val", 80, "--out", tmp_path / "run", *TINY], capsys)
    assert code == 0, err
    return tmp_path / "run" / "model.npz"


def test_train_end_to_end_matches_the_library(npz, model, tmp_path):
    out = model.parent
    metrics = json.loads((out / "metrics.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == ["accuracy.png", "cost.png", "curves.png", "history.csv",
                                                     "loss.png", "metrics.json", "model.npz", "steps.csv"]
    for key in ("train_accuracy", "val_accuracy", "test_accuracy", "final_cost", "epochs", "seconds"):
        assert key in metrics
    assert metrics["val_accuracy"] > 0.9 and metrics["config"]["dataset"] == str(npz)
    library = train(tiny_config(dataset=str(npz), n_val=80, out=str(tmp_path / "lib")))
    assert checkpoint.load(model).net.theta.tobytes() == library.net.theta.tobytes()


def test_train_prints_the_table(npz, capsys):
    code, out, err = run(["train", "--dataset", npz, "--n-val", 80, "--out", "r", *TINY], capsys)
    assert code == 0 and notes(err) == "" and len(err.splitlines()) >= 3, err
    lines = out.splitlines()
    assert lines[0].split() == ["loss", "cost", "accuracy"]
    assert [line.split()[0] for line in lines[1:4]] == ["train", "val", "test"]
    m = json.loads(open("r/metrics.json").read())
    assert f"{100 * m['test_accuracy']:.2f}%" in lines[3]
    assert re.match(r"48 steps \(3 epochs\): compile [\d.]+ s, training [\d.]+ s, evaluation ", lines[4])


def test_config_file_with_flags_overriding_it(npz, tmp_path, capsys):
    (tmp_path / "run.toml").write_text(f'dataset = "{npz}"\nn_val = 80\nlam = 0.5\nseed = 7\n'
                                       f'sizes = "auto-8-auto"\nns = 24\ncycles = 1\nbatch = 20\n')
    code, _, err = run(["train", "--config", tmp_path / "run.toml", "--lam", "0.001", "--out", "r"], capsys)
    assert code == 0, err
    config = json.loads(open("r/metrics.json").read())["config"]
    assert (config["lam"], config["seed"], config["sizes"], config["batch_norm"]) == \
        (0.001, 7, "auto-8-auto", True)


def test_evaluate_reproduces_the_metrics(model, npz, capsys):
    m = json.loads((model.parent / "metrics.json").read_text())
    code, out, err = run(["evaluate", model], capsys)
    assert code == 0, err
    for part in ("train", "val", "test"):
        assert f"{100 * m[f'{part}_accuracy']:.2f}%" in next(x for x in out.splitlines() if x.startswith(part))
    # another split standardises with the model's statistics, so the test rows score the same
    code, out, err = run(["evaluate", model, "--n-val", 200], capsys)
    assert code == 0, err
    assert f"{100 * m['test_accuracy']:.2f}%" in out.splitlines()[-1]


def test_predict_raw_and_standardised_rows(model, tmp_path, capsys):
    saved = checkpoint.load(model)
    X, _ = blobs(30, seed=5)
    want = saved.net.predict(standardize(X, saved.mean, saved.std))
    np.save(tmp_path / "raw.npy", X)
    code, out, err = run(["predict", model, tmp_path / "raw.npy"], capsys)
    assert code == 0, err
    assert out.splitlines() == [f"{k}\t{LABELS[k]}" for k in want]
    np.save(tmp_path / "std.npy", standardize(X, saved.mean, saved.std))
    code, out, _ = run(["predict", model, tmp_path / "std.npy", "--standardized", "--out", tmp_path / "p.npy"],
                       capsys)
    assert code == 0 and out == ""
    assert np.load(tmp_path / "p.npy").tolist() == want.tolist()
    np.save(tmp_path / "one.npy", X[0])
    code, out, _ = run(["predict", model, tmp_path / "one.npy", "--out", tmp_path / "p.txt"], capsys)
    assert code == 0 and (tmp_path / "p.txt").read_text() == f"{want[0]}\t{LABELS[want[0]]}\n"


def test_download_calls_the_data_layer(monkeypatch, tmp_path, capsys):
    import fastmlp.data
    seen = []
    monkeypatch.setattr(fastmlp.data, "download", lambda *a: seen.append(a) or tmp_path / "cifar")
    code, out, _ = run(["download", "cifar10", "--data-dir", tmp_path], capsys)
    assert code == 0 and out.strip() == str(tmp_path / "cifar")
    assert seen == [("cifar10", str(tmp_path), None)]


def test_without_dataset_falls_back_to_the_sample_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))          # no CIFAR-10 in ~/.cache/fastmlp
    monkeypatch.delenv("FASTMLP_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["train", "--sizes", "auto-8-auto", "--ns", "5", "--cycles", "1", "--out", "r"],
                         capsys)
    assert code == 0
    assert notes(err).count("\n") == 1 and "embedded Fashion-MNIST sample" in err
    metrics = json.loads(open("r/metrics.json").read())
    assert metrics["sizes"] == [784, 8, 10] and metrics["config"]["dataset"] == "sample"
    # predict takes the sample's raw images as rows or as (N, 1, 28, 28) images alike
    from fastmlp.data import load_sample
    images = load_sample().x_test[:20]
    np.save("rows.npy", images)
    np.save("images.npy", images.reshape(20, 1, 28, 28))
    rows, images = (run(["predict", "r/model.npz", name], capsys) for name in ("rows.npy", "images.npy"))
    assert rows[0] == images[0] == 0 and rows[1] == images[1] and len(rows[1].splitlines()) == 20


def test_ctrl_c_exits_130_and_resume_finishes_bit_identical(npz, model, tmp_path, capsys, monkeypatch):
    ctrl_c = CtrlC(monkeypatch, 19)
    cut = ["train", "--dataset", npz, "--n-val", 80, "--out", tmp_path / "cut", *TINY]
    code, _, err = run(cut, capsys)
    ctrl_c.release()
    err = notes(err)
    assert code == 130 and err.count("\n") == 1
    assert err == (f"fastmlp: interrupted at step {ctrl_c.stopped}; saved the checkpoint {tmp_path}/cut/checkpoint.npz. "
                   f"Continue with `fastmlp train --resume --out {tmp_path}/cut`.\n")
    code, out, err = run(["train", "--resume", "--out", tmp_path / "cut", "--threads", "1"], capsys)
    assert code == 0, err
    assert checkpoint.load(tmp_path / "cut" / "model.npz").net.theta.tobytes() == \
        checkpoint.load(model).net.theta.tobytes()


def test_divergence_exits_1_with_one_line(npz, capsys):
    code, _, err = run(["train", "--dataset", npz, "--n-val", 80, "--out", "d", *TINY,
                        "--schedule", "constant", "--eta", "1", "--lam", "5", "--ns", "500"], capsys)
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("fastmlp: error: training diverged: ") and "learning rate 1;" in err
    assert "Lower lam (--lam, now 5)" in err


def bad_inputs(npz, tmp_path):
    (tmp_path / "bad.toml").write_text("lamda = 1\n")
    (tmp_path / "empty").mkdir()
    np.save(tmp_path / "wide.npy", np.zeros((2, 13)))
    data = ["--dataset", npz]
    return [
        (["train", "--dataset", "cifar100"], r"dataset must be one of cifar10, fashion-mnist, sample"),
        (["train", "--dataset", tmp_path / "missing.npz"], r"missing.npz: no such file"),
        (["train", "--eta-min", "0.2", "--eta-max", "0.1"], r"eta_min must be <= eta_max; got eta_min=0.2"),
        (["train", "--lam", "-1"], r"lam must be a finite number >= 0; got -1.0"),
        (["train", "--lam", "abc"], r"argument --lam: invalid float value: 'abc'"),
        (["train", "--ns", "0"], r"ns must be an integer in \[1, 5000000\]; got 0"),
        (["train", "--ns-epochs", "0"], r"ns_epochs must be a number in \(0, 1000000\]"),
        (["train", "--cycles", "0"], r"cycles must be an integer in \[1, 5000000\]; got 0"),
        (["train", *data, "--batch", "5000"], r"batch must be <= the number of training rows \(360\)"),
        (["train", *data, "--n-val", "5000"], r"n_val must be an integer in \[1, 399\]"),
        (["train", *data, "--sizes", "100-16-auto"], r"sizes must start with the data's 12 input features"),
        (["train", "--sizes", "3072-x"], r"sizes must be at least two positive widths"),
        (["train", "--init", "glorot"], r"init must be one of he, he_uniform, xavier, xavier_normal, xavier_uniform, lecun or a positive float sigma"),
        (["train", "--split", "a4"], r"argument --split: invalid choice: 'a4'"),
        (["train", "--dtype", "float16"], r"argument --dtype: invalid choice"),
        (["train", "--threads", "0"], r"threads must be an integer in \[1, \d+\]; got 0"),
        (["train", "--threads", "9999"], r"threads must be an integer in \[1, \d+\]; got 9999"),
        (["train", "--eval-every", "-1"], r"eval_every must be an integer >= 0"),
        (["train", "--dataset", "sample", "--split", "a2"], r"split 'a2' .* needs CIFAR-10's training batches"),
        (["train", "--config", tmp_path / "none.toml"], r"config file .*none.toml does not exist"),
        (["train", "--config", tmp_path / "bad.toml"], r"unknown config key 'lamda'. Did you mean 'lam'\?"),
        (["train", "--resume"], r"--resume needs --out DIR"),
        (["train", "--resume", "--out", tmp_path / "empty"], r"nothing to resume in .*empty"),
        (["train", "--colour", "red"], r"unrecognized arguments: --colour red"),
        (["evaluate", tmp_path / "none.npz"], r"none.npz: no such model file"),
        (["predict", tmp_path / "none.npz", tmp_path / "x.npy"], r"none.npz: no such model file"),
        (["frobnicate"], r"argument COMMAND: invalid choice: 'frobnicate'"),
        ([], r"the following arguments are required: COMMAND"),
    ]


def test_every_bad_input_is_one_line_and_exit_2(npz, tmp_path, capsys):
    for argv, pattern in bad_inputs(npz, tmp_path):
        code, out, err = run(argv, capsys)
        assert code == 2, (argv, code, err)
        assert err.count("\n") == 1 and "Traceback" not in err, (argv, err)
        assert err.startswith("fastmlp") and " error: " in err, (argv, err)
        assert re.search(pattern, err), (argv, pattern, err)
    assert not (tmp_path / "runs").exists()


def test_bad_inputs_with_a_model(model, tmp_path, capsys):
    code, _, err = run(["evaluate", model, "--dataset", "sample"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert re.search(r"model.npz takes 12 features and 3 classes; .*sample.* has 784 and 10", err), err
    np.save(tmp_path / "wide.npy", np.zeros((2, 13)))
    np.save(tmp_path / "nan.npy", np.full((2, 12), np.nan))
    (tmp_path / "junk.npy").write_text("junk")
    for name, pattern in [("wide.npy", r"must hold rows of 12 values, .* got shape \(2, 13\)"),
                          ("nan.npy", r"must be finite|standardize needs"),
                          ("junk.npy", r"junk.npy: cannot read it as a .npy array"),
                          ("none.npy", r"none.npy: cannot read it")]:
        code, _, err = run(["predict", model, tmp_path / name], capsys)
        assert code == 2 and err.count("\n") == 1, (name, err)
        assert re.search(pattern, err), (name, err)


def test_python_dash_m_in_a_subprocess(npz, tmp_path):
    ok = subprocess.run([sys.executable, "-m", "fastmlp", "train", "--dataset", str(npz), "--n-val", "80",
                         "--out", str(tmp_path / "sub"), *TINY], capture_output=True, text=True, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "sub" / "model.npz").is_file() and "test" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "fastmlp", "train", "--cycles", "0"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr == "fastmlp: error: cycles must be an integer in [1, 5000000]; got 0.\n"


def test_show_augment_writes_a_grid_png(tmp_path, capsys):
    from matplotlib.image import imread
    path = tmp_path / "grid.png"
    code, _, err = run(["show-augment", "--dataset", "sample", "--augment", "flip,translate=2:edge,blur,jitter",
                        "--n", 3, "--variants", 4, "--seed", 1, "--out", path], capsys)
    assert code == 0, err
    assert "flip=0.5,translate=2:edge,blur=0.5:0.3-1,brightness=0.1,contrast=0.2" in err
    assert imread(path).shape[:2] == (3 * 96, 5 * 96)       # one row per image; original + 4 variants


def test_show_augment_rejects_a_bad_spec(tmp_path, capsys):
    code, _, err = run(["show-augment", "--dataset", "sample", "--augment", "flip=2", "--out",
                        tmp_path / "x.png"], capsys)
    assert code == 2 and "flip must be a number in [0, 1]" in err and not (tmp_path / "x.png").exists()


def test_the_collector_is_frozen_in_the_commands_own_process_only(monkeypatch, capsys):
    """`fastmlp ...` (main() reading sys.argv) freezes the objects made so far (cli.main: why);
    main(argv) from a caller's process, a test's or a notebook's, leaves its collector alone."""
    monkeypatch.setattr(sys, "argv", ["fastmlp", "--help"])
    gc.unfreeze()
    try:
        assert run(["--help"], capsys)[0] == 0 and gc.get_freeze_count() == 0
        with pytest.raises(SystemExit):
            main()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
