"""`fastmlp show` and `fastmlp evaluate --out`: what they draw and write (issue 12 item 8)."""
import csv
import json
import re

import numpy as np
import pytest
from matplotlib.image import imread

from fastmlp import checkpoint, data
from fastmlp.cli import main
from fastmlp.evaluation import confusion_matrix, most_confident_errors, per_class
from train_helpers import write_npz

SAMPLE_MODEL = ["--dataset", "sample", "--n-train", "300", "--n-val", "100", "--schedule", "constant", "--eta",
                "0.05", "--epochs", "2", "--batch", "20", "--sizes", "auto-16-auto", "--train-eval", "0"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A model of the embedded sample's images, trained for seconds (about 70 % right: some wrong)."""
    out = tmp_path_factory.mktemp("run")
    assert main(["train", *SAMPLE_MODEL, "--out", str(out)]) == 0
    return out / "model.npz"


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_show_draws_a_grid_of_images_with_predictions_and_counts_the_wrong_ones(model, tmp_path, capsys):
    png = tmp_path / "show.png"
    code, _, err = run(["show", "--model", model, "--n", 12, "--columns", 6, "--first", "--out", png], capsys)
    assert code == 0, err
    raw = data.load_raw("sample")
    saved = checkpoint.load(model)
    pred = saved.net.predict(data.standardize(raw.x_test[:12], saved.mean, saved.std, saved.net.dtype))
    right = int((pred == raw.y_test[:12]).sum())
    assert f"predicts {right} of 12 right, wrong ones in red" in err and 0 < right < 12
    picture = imread(png)
    assert picture.shape[0] < picture.shape[1]           # 2 rows of 6 images: wider than high
    code, _, err = run(["show", "--dataset", "sample", "--part", "train", "--n", 5, "--out", png], capsys)
    assert code == 0 and "5 train images" in err


@pytest.mark.parametrize("argv, words", [
    (["--n", 0], "--n must be an integer in [1, 400]"),
    (["--out", "grid.jpg"], "--out must be the path of the .png"),
    (["--model", "none.npz"], "no such model file"),
])
def test_show_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, words, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, stdout, err = run(["show", "--dataset", "sample", *argv], capsys)
    assert code == 2 and stdout == "" and len(err.splitlines()) == 1 and words in err, err


def test_show_refuses_plain_features_and_a_model_of_other_data(model, tmp_path, capsys):
    npz = write_npz(tmp_path / "blobs.npz")
    code, _, err = run(["show", "--dataset", npz, "--out", tmp_path / "x.png"], capsys)
    assert code == 2 and "holds plain features" in err and len(err.splitlines()) == 1
    other = tmp_path / "other"
    assert main(["train", "--dataset", str(npz), "--schedule", "constant", "--epochs", "1", "--out", str(other)]) == 0
    capsys.readouterr()
    code, _, err = run(["show", "--dataset", "sample", "--model", other / "model.npz", "--out", tmp_path / "x.png"],
                       capsys)
    assert code == 2 and "takes rows of 12 values; these images have 784" in err


def test_evaluate_out_writes_per_class_accuracy_confusion_and_mistakes(model, tmp_path, capsys):
    out = tmp_path / "eval"
    code, stdout, err = run(["evaluate", model, "--out", out], capsys)
    assert code == 0, err
    test_accuracy = float(re.search(r"^test\s+\S+\s+\S+\s+([\d.]+)%$", stdout, re.M).group(1)) / 100
    with open(out / "confusion.csv", newline="") as f:
        rows = list(csv.reader(f))
    names = rows[0][1:]
    matrix = np.array([[int(v) for v in row[1:]] for row in rows[1:]])
    assert names == data.load_raw("sample").label_names and [r[0] for r in rows[1:]] == names
    assert matrix.sum() == 1000 and abs(np.trace(matrix) / 1000 - test_accuracy) < 1e-4
    with open(out / "per_class.csv", newline="") as f:
        records = list(csv.DictReader(f))
    assert [int(r["correct"]) for r in records] == list(np.diag(matrix))
    assert [int(r["rows"]) for r in records] == list(matrix.sum(axis=1))
    assert re.search(r"^T-shirt/top\s+\d+\s+\d+\s+[\d.]+%$", stdout, re.M)        # also on the terminal
    assert "| class | rows | correct | accuracy |" in (out / "per_class.md").read_text()
    for name in ("confusion.png", "misclassified.png"):
        assert imread(out / name).ndim == 3


def test_evaluate_out_on_plain_features_draws_no_images(tmp_path, capsys):
    npz = write_npz(tmp_path / "blobs.npz")
    run_dir = tmp_path / "run"
    assert main(["train", "--dataset", str(npz), "--schedule", "constant", "--epochs", "1", "--out", str(run_dir)]) == 0
    code, _, err = run(["evaluate", run_dir / "model.npz", "--out", tmp_path / "eval"], capsys)
    assert code == 0, err
    assert (tmp_path / "eval" / "confusion.png").exists() and not (tmp_path / "eval" / "misclassified.png").exists()


def test_confusion_per_class_and_the_most_confident_errors():
    y = np.array([0, 0, 1, 2, 2, 2])
    proba = np.array([[.9, .1, 0], [.2, .7, .1], [.1, .8, .1], [.95, 0, .05], [0, .4, .6], [.1, .6, .3]])
    pred = proba.argmax(axis=1)
    matrix = confusion_matrix(y, pred, 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 1, 1]]
    assert [r["accuracy"] for r in per_class(matrix, ["a", "b", "c"])] == [0.5, 1.0, pytest.approx(1 / 3)]
    assert most_confident_errors(proba, y, 2).tolist() == [3, 1]       # 0.95 wrong, then 0.7 wrong
    assert per_class(np.zeros((1, 1), int), ["a"])[0]["accuracy"] is None
    json.dumps(per_class(matrix, ["a", "b", "c"]))                      # records are plain JSON
