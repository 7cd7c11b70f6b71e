"""The reports' figures of one run, over update steps:
- cost.png, loss.png, accuracy.png: train vs validation (and test with --eval-test), each with the
  learning rate in a small panel underneath so the cycles can be read against the curves;
- curves.png: the four panels of the bonus report in one figure (cost, loss, accuracy in %, and
  the learning rate on a log axis), epochs on a second x axis, titled with the data set, the
  network and the final test accuracy.

Test curves are drawn dashed and labelled "test" (--eval-test): they are there to be looked at,
not to choose settings by.  Figures are drawn on the Agg canvas directly (no pyplot), so plotting
never changes the backend of a session that imports fastmlp.
"""
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

PLOTS = (("cost", "cost", "cost (loss + L2)"), ("loss", "loss", "cross-entropy loss"),
         ("accuracy", "accuracy", "accuracy"))
# part of history.csv -> colour, line style and label ("" for train: the caller names its rows)
PARTS = {"train": ("tab:blue", "-", ""), "val": ("tab:orange", "-", "validation"),
         "test": ("tab:green", "--", "test")}
COLOURS = {part: colour for part, (colour, _, _) in PARTS.items()}
DATASET_NAMES = {"cifar10": "CIFAR-10", "fashion-mnist": "Fashion-MNIST", "sample": "Fashion-MNIST sample"}
OVERVIEW = "curves.png"


def plot_history(history, out_dir, train_label="training", dpi=120):
    """Write cost.png, loss.png and accuracy.png for a history.History; return their paths.
    train_label names the training curve (say, when it is measured on a subset)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, column, label in PLOTS:
        fig = Figure(figsize=(6.4, 4.8))
        FigureCanvasAgg(fig)
        top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [4, 1]})
        draw_parts(top, history, column, train_label)
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
        save_png(fig, path, dpi)
        paths.append(path)
    return paths


def draw_parts(ax, history, column, train_label="training", scale=1.0):
    """The train, validation and (when measured) test curves of `column` on `ax`."""
    steps = history.column("step")
    for part, (colour, style, label) in PARTS.items():
        values = history.column(f"{part}_{column}")
        if len(values) and not np.isnan(values).all():
            ax.plot(steps, scale * values, marker="." if len(steps) <= 60 else None, color=colour,
                    linestyle=style, label=label or train_label)


def plot_overview(history, path, title, train_label="training", dpi=120):
    """Write curves.png (overview_figure) to `path`; return the path."""
    path = Path(path)
    save_png(overview_figure(history, title, train_label), path, dpi)
    return path


def overview_figure(history, title, train_label="training"):
    """Cost, loss, accuracy (%) and learning-rate panels in one Figure, update steps below and
    epochs above each panel."""
    fig = Figure(figsize=(11.0, 7.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2, sharex=True)
    spe = steps_per_epoch(history)
    for ax, (column, label, scale) in zip(axes.flat, (("cost", "cost (loss + L2)", 1.0),
                                                      ("loss", "cross-entropy loss", 1.0),
                                                      ("accuracy", "accuracy (%)", 100.0))):
        draw_parts(ax, history, column, train_label, scale)
        ax.set_ylabel(label)
        ax.legend(fontsize="small")
    lr = axes[1, 1]
    eta = history.eta
    lr.plot(np.arange(len(eta)), eta, color="grey", linewidth=1)
    if len(eta) and (eta > 0).all():     # a log axis shows the cycle's low end, 10^4 below its top
        lr.set_yscale("log")
    lr.set_ylabel(r"learning rate $\eta_t$")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        if spe:
            top = ax.secondary_xaxis("top", functions=(lambda t: t / spe, lambda e: e * spe))
            top.set_xlabel("epoch", fontsize="small")
    for ax in axes[1]:
        ax.set_xlabel("update step")
        ax.tick_params(labelbottom=True)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def steps_per_epoch(history):
    """Update steps per epoch, from the evaluation rows (step / epoch); None before an epoch."""
    for row in history.evals:
        if row[1] > 0:
            return row[0] / row[1]
    return None


def run_title(metrics):
    """'CIFAR-10 (45000 training rows) · 3072-50-50-10 with BN · final test accuracy 53.20%'."""
    config = metrics["config"]
    name = config.get("dataset") or "?"
    data = DATASET_NAMES.get(name, Path(str(name)).name)
    net = "-".join(map(str, metrics["sizes"])) + (" with BN" if config.get("batch_norm") else " without BN")
    test = metrics.get("test_accuracy")
    score = "no test rows" if test is None else f"final test accuracy {100 * test:.2f}%"
    return f"{data} ({metrics['n_train']} training rows) · {net} · {score}"


def save_png(fig, path, dpi):
    """Write `fig` to `path` as a PNG, atomically (a full disk names the file and leaves no torn one)."""
    from .checkpoint import atomic_write
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi))


AUGMENT_CELL = 1.0      # inches per image in the augmentation grid
AUGMENT_DPI = 96


def plot_augment_grid(dataset, augment, path, n=8, variants=6, seed=0, data_dir=None):
    """`fastmlp show-augment`: a grid of n training images of `dataset`, one per row, the
    original first and then `variants` augmented copies (variant v uses the draws of step v of
    seed `seed`).  Returns (path, canonical spec).  The PNG is (n * 96) x ((variants + 1) * 96)
    pixels."""
    from . import data
    from .augment import augment_images, parse_augment
    from .images import draw_image
    augment = parse_augment(augment)
    raw = data.load_raw(dataset, data_dir)
    if len(raw.image_shape) != 3:
        raise ValueError(f"{raw.source} holds plain features (image_shape {raw.image_shape}), not images; "
                         f"show-augment needs an image dataset.")
    C, H, W = raw.image_shape
    pick = np.sort(np.random.default_rng(seed).choice(len(raw.x_train), size=min(n, len(raw.x_train)),
                                                      replace=False))
    images = raw.x_train[pick].reshape(-1, C, H, W)
    value_range = 255.0 if raw.x_train.dtype == np.uint8 else float(max(raw.x_train.max(), 1))
    columns = [images.astype(np.float64)] + [
        augment_images(images, augment, seed=seed, step=v + 1, value_range=value_range)
        for v in range(variants)]
    fig = Figure(figsize=((variants + 1) * AUGMENT_CELL, len(pick) * AUGMENT_CELL))
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.0, right=1.0, bottom=0.0, top=1.0, wspace=0.04, hspace=0.04)
    axes = fig.subplots(len(pick), variants + 1, squeeze=False)
    for i, label in enumerate(raw.y_train[pick]):
        for j, column in enumerate(columns):
            ax = axes[i, j]
            draw_image(ax, column[i], (C, H, W), value_range)
            if j == 0:
                ax.text(0.02, 0.02, raw.label_names[label], transform=ax.transAxes, fontsize=6,
                        color="yellow", backgroundcolor=(0, 0, 0, 0.5))
                for side in ax.spines.values():
                    side.set_color("tab:red")
                    side.set_linewidth(2)
    path = Path(path)
    save_png(fig, path, AUGMENT_DPI)
    return path, augment.spec()
