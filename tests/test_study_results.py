"""A run whose loss explodes without becoming NaN (measured: eta = 0.09 without BN ended at
validation loss 6.4e32) is marked diverged in the study table, left out of its means, and does
not wreck the figure's axes; the rule is fastmlp.divergence.exploded."""
import math

import numpy as np
import pytest

from fastmlp.divergence import EXPLODED_FACTOR, exploded
from fastmlp.studies import repeats
from fastmlp.studies.figures import plot_val_loss, study_figure
from fastmlp.studies.study_results import summarise, table
from fastmlp.studies.trials import Outcome, Trial
from fastmlp.train import History

EXPLODED = 6.4e32


def metrics(val_loss, acc=0.8, classes=10):
    return {"train_accuracy": acc, "val_accuracy": acc, "test_accuracy": acc, "train_loss": val_loss,
            "val_loss": val_loss, "sizes": [20, 8, classes]}


def history(final_val_loss, acc=0.8):
    """Three evaluations, the loss going from ln 10 to `final_val_loss`."""
    losses = np.geomspace(math.log(10), final_val_loss, 3)
    rows = [[s, s / 10, l, l, acc, l, l, acc] for s, l in zip((0, 10, 20), losses)]
    return History(np.full(20, 0.09), evals=rows)


def outcome(cells, bn, finals, acc=0.8):
    trial = Trial(cells, {}, "with batch norm" if bn else "without batch norm", f"η={cells['eta']}")
    return Outcome(trial, seeds=list(range(len(finals))), configs=[None] * len(finals),
                   metrics=[metrics(f, acc) for f in finals], histories=[history(f, acc) for f in finals],
                   diverged=[None] * len(finals))


def study():
    return [outcome({"eta": "0.01", "batch norm": "no"}, False, [0.5, 0.6]),
            outcome({"eta": "0.09", "batch norm": "no"}, False, [EXPLODED], acc=0.1),
            outcome({"eta": "0.01", "batch norm": "yes"}, True, [0.45, 0.55]),
            outcome({"eta": "0.09", "batch norm": "yes"}, True, [0.7, EXPLODED])]


@pytest.mark.parametrize("m, why", [
    (metrics(0.5), None),
    (metrics(EXPLODED_FACTOR * math.log(10)), None),                     # the limit itself is sound
    (metrics(EXPLODED), "final val loss 6.4e+32 > 10 x ln 10 = 23"),
    ({**metrics(1.0), "val_loss": None, "train_loss": 30.0}, "final train loss 30"),  # no validation rows
    (metrics(30.0, classes=100), None),                                  # ln 100 = 4.6: 30 < 46
])
def test_the_rule_is_ten_times_the_loss_of_a_uniform_guess(m, why):
    got = exploded(m)
    assert got is None if why is None else why in got


def test_an_exploded_run_is_marked_diverged_and_left_out_of_the_means():
    records = summarise(study())
    assert records[1]["runs"] == 1 and records[1]["diverged"] == 1 and records[1]["val_loss_mean"] is None
    assert records[3]["diverged"] == 1 and records[3]["val_loss_mean"] == 0.7    # the sound seed only
    rows = [line.split("|")[1:-1] for line in table(records, ("eta", "batch norm")).splitlines()[2:]]
    assert [c.strip() for c in rows[1]] == ["0.09", "no", "diverged", "diverged", "diverged", "diverged",
                                           "1 (1 diverged)"]
    assert [c.strip() for c in rows[3][2:]] == ["80.00%", "80.00%", "80.00%", "0.70", "2 (1 diverged)"]
    assert [c.strip() for c in rows[0][2:6]] == ["80.00% ± 0.00"] * 3 + ["0.55 ± 0.07"]


def test_the_figure_axes_are_fitted_to_the_sound_runs():
    fig = study_figure(study(), "eta study")
    loss_axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in loss_axes] == ["η=0.01", "η=0.09"]
    for ax in loss_axes:
        assert ax.get_ylim()[1] < 3                       # not 6.4e32: the sound curves stay readable
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["without batch norm", "with batch norm", "train", "validation", "a diverged run"]


def test_the_val_loss_figure_is_fitted_too(tmp_path):
    assert plot_val_loss(study(), tmp_path / "v.png", "eta study").stat().st_size > 0


def test_repeats_mark_an_exploded_run_diverged():
    run = repeats.run_record(0, "out", {**metrics(EXPLODED), "seconds": 1.0}, None, 1.0)
    assert "exploded" in run["diverged"] and run["val_accuracy"] is None
    assert repeats.summarise([run])["val_accuracy"] is None


def test_the_bands_stay_where_a_loss_and_an_accuracy_can_be():
    """σ = 0.001 without BN on Fashion-MNIST: one seed stuck at 10 %, two at 88 %; mean + std
    is 106 %, and the band drew the accuracy axis up to 110 %."""
    cells = {"init": "σ=0.001", "batch norm": "no"}
    finals = [(2.30, 0.10), (0.35, 0.88), (0.35, 0.88)]
    o = Outcome(Trial(cells, {}, "without batch norm", "σ=0.001"), seeds=[0, 1, 2], configs=[None] * 3,
                metrics=[metrics(l, a) for l, a in finals], histories=[history(l, a) for l, a in finals],
                diverged=[None] * 3)
    fig = study_figure([o], "init study")
    loss_ax, acc_ax = fig.axes[:2]
    bands = {ax: [c for c in ax.collections if len(c.get_paths())] for ax in (loss_ax, acc_ax)}
    assert all(bands.values())                        # a band in each panel (3 seeds)
    tops = [p.vertices[:, 1].max() for c in bands[acc_ax] for p in c.get_paths()]
    lows = [p.vertices[:, 1].min() for ax in bands for c in bands[ax] for p in c.get_paths()]
    assert max(tops) <= 100.0 and min(lows) >= 0.0
