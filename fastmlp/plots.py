"""The reports' figures: cost, loss and accuracy, train vs validation over update steps, each with
the learning rate in a small panel underneath so the cycles can be read against the curves.

Figures are drawn on the Agg canvas directly (no pyplot), so plotting never changes the
backend of a session that imports fastmlp.
"""
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

PLOTS = (("cost", "cost", "cost (loss + L2)"), ("loss", "loss", "cross-entropy loss"),
         ("accuracy", "accuracy", "accuracy"))
COLOURS = {"train": "tab:blue", "val": "tab:orange"}


def plot_history(history, out_dir, train_label="training", dpi=120):
    """Write cost.png, loss.png and accuracy.png for a train.History; return their paths.
    train_label names the training curve (say, when it is measured on a subset)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    steps = history.column("step")
    paths = []
    for name, column, label in PLOTS:
        fig = Figure(figsize=(6.4, 4.8))
        FigureCanvasAgg(fig)
        top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [4, 1]})
        for part in ("train", "val"):
            values = history.column(f"{part}_{column}")
            if len(values) and not np.isnan(values).all():
                top.plot(steps, values, marker="." if len(steps) <= 60 else None,
                         color=COLOURS[part], label="validation" if part == "val" else train_label)
        top.set_ylabel(label)
        top.set_title(f"{label} over update steps")
        top.grid(alpha=0.3)
        top.legend()
        bottom.plot(np.arange(len(history.eta)), history.eta, color="grey", linewidth=1)
        bottom.set_ylabel(r"$\eta_t$")
        bottom.set_xlabel("update step")
        bottom.grid(alpha=0.3)
        bottom.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=dpi)
        paths.append(path)
    return paths
