"""--eval-test (test curves per evaluation, labelled test) and the four-panel curves.png."""
import json
import math

import numpy as np
import pytest

from fastmlp import Network
from fastmlp.plots import overview_figure, run_title
from fastmlp.run import train
from fastmlp.train import EVAL_COLUMNS, History, Trainer
from train_helpers import tiny_config, tiny_splits


def test_eval_test_measures_the_test_set_at_every_evaluation(tmp_path):
    splits = tiny_splits()
    out = tmp_path / "run"
    result = train(tiny_config(out=str(out), eval_test=True), splits)
    h = result.history
    assert h.measured_test() and np.isfinite(h.column("test_loss")).all()
    assert (h.column("test_cost") > h.column("test_loss")).all()          # lam > 0
    m = json.loads((out / "metrics.json").read_text())
    assert h.column("test_accuracy")[-1] == pytest.approx(m["test_accuracy"])   # the last row: the end
    header, *rows = (out / "history.csv").read_text().splitlines()
    assert header == ",".join(EVAL_COLUMNS) and header.endswith("test_loss,test_cost,test_accuracy")
    assert len(rows) == len(h.evals) and "nan" not in rows[-1]
    assert (out / "curves.png").stat().st_size > 0


def test_eval_test_without_test_rows_is_refused_naming_the_flag():
    splits = tiny_splits()
    config = tiny_config(eval_test=True)
    sizes = config.check_data(len(splits.X_train), splits.X_train.shape[1], splits.n_classes)
    trainer = Trainer(Network(sizes, config.batch_norm, config.init, config.dtype, config.seed), config)
    with pytest.raises(ValueError, match=r"eval_test \(--eval-test\).*no test rows"):
        trainer.fit(splits.X_train, splits.y_train, splits.X_val, splits.y_val)


def test_a_history_saved_before_the_test_columns_reads_with_them_unmeasured():
    old = np.arange(2 * 8, dtype=np.float64).reshape(2, 8)
    h = History.from_arrays({"eta": np.full(3, 0.1), "batch_loss": np.ones(3), "evals": old})
    assert h.column("val_accuracy").tolist() == [7.0, 15.0]
    assert all(math.isnan(v) for v in h.column("test_loss")) and not h.measured_test()
    assert h.csv().splitlines()[0] == ",".join(EVAL_COLUMNS[:8])


def test_the_overview_has_four_panels_a_log_eta_axis_epochs_above_and_the_test_score_in_its_title():
    result = train(tiny_config(eval_test=True, eval_every=8), tiny_splits())
    metrics = result.metrics
    title = run_title(metrics)
    assert f"final test accuracy {100 * metrics['test_accuracy']:.2f}%" in title
    assert "-16-16-" in title and "with BN" in title
    fig = overview_figure(result.history, title)
    panels = [ax for ax in fig.axes if ax.get_ylabel()]
    labels = [ax.get_ylabel() for ax in panels]
    assert labels == ["cost (loss + L2)", "cross-entropy loss", "accuracy (%)", r"learning rate $\eta_t$"]
    assert panels[3].get_yscale() == "log"
    accuracy = panels[2]
    assert [line.get_label() for line in accuracy.get_lines()] == ["training", "validation", "test"]
    assert max(max(line.get_ydata()) for line in accuracy.get_lines()) > 1       # in percent
    assert [[c.get_xlabel() for c in ax.child_axes] for ax in panels] == [["epoch"]] * 4  # a second x axis
    assert fig.get_suptitle() == title
