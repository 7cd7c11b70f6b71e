"""A study's figures, from the histories of its runs (curves over update steps):

curves.png    a column per setting (σ, depth, η), loss above and accuracy (%) below; in each
              panel train (dashed) and validation (solid), without and with batch norm overlaid,
              each the mean over its seeds with a ± std band.
val_loss.png  validation loss, one panel per group (without / with batch norm), a curve per setting.

Runs that diverged (study_results.failures) are left out of the means; a run that finished with
an exploded loss is drawn dotted and labelled diverged, and the y axis is fitted to the sound
runs, so that one run at loss 1e32 does not flatten every other curve to zero.
"""
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..plots import save_png
from .study_results import failures, sound_runs

GROUP_COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:purple")   # by panel: without, with BN
PARTS = (("train", "--"), ("val", "-"))


def plot_study(outcomes, path, title, dpi=120):
    """Write curves.png (study_figure) to `path`; return the path."""
    save_png(study_figure(outcomes, title), path, dpi)
    return path


def study_figure(outcomes, title):
    settings = list(dict.fromkeys(o.trial.curve for o in outcomes))
    groups = list(dict.fromkeys(o.trial.panel for o in outcomes))
    fig = Figure(figsize=(max(7.0, 3.6 * len(settings)), 6.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(settings), sharex=True, squeeze=False)
    for col, setting in enumerate(settings):
        loss_ax, acc_ax = axes[:, col]
        top = 0.0
        for o in (o for o in outcomes if o.trial.curve == setting):
            colour = GROUP_COLOURS[groups.index(o.trial.panel) % len(GROUP_COLOURS)]
            for part, style in PARTS:           # labelled by the figure's one legend
                top = max(top, _band(loss_ax, o, f"{part}_loss", 1.0, colour, style, None))
                _band(acc_ax, o, f"{part}_accuracy", 100.0, colour, style, None)
        _fit_loss_axis(loss_ax, top)
        loss_ax.set_title(setting)
        acc_ax.set_xlabel("update step")
        for ax in (loss_ax, acc_ax):
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("cross-entropy loss")
    axes[1, 0].set_ylabel("accuracy (%)")
    handles = _legend_handles(groups, any(bad for o in outcomes for bad in failures(o)))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize="small", frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def plot_val_loss(outcomes, path, title, dpi=120):
    panels = list(dict.fromkeys(o.trial.panel for o in outcomes))
    fig = Figure(figsize=(5.2 * len(panels), 4.4))
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(1, len(panels), sharey=True))
    top = 0.0
    for ax, panel in zip(axes, panels):
        for k, o in enumerate(x for x in outcomes if x.trial.panel == panel):
            top = max(top, _band(ax, o, "val_loss", 1.0, f"C{k}", "-", o.trial.curve))
        ax.set_title(panel)
        ax.set_xlabel("update step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    _fit_loss_axis(axes[0], top)      # the panels share it
    axes[0].set_ylabel("validation loss")
    fig.suptitle(title)
    fig.tight_layout()
    save_png(fig, path, dpi)
    return path


def _band(ax, outcome, column, scale, colour, style, label):
    """Draw the mean over the sound runs of `outcome` of `column` (× scale) with a ± std band
    when there are several, and each exploded run dotted; return the top of what was drawn
    for the sound runs (0 if none)."""
    curves, steps = [], None
    for _, h in sound_runs(outcome):
        if steps is None:
            steps = h.column("step")
        if len(h.evals) == len(steps):
            curves.append(scale * h.column(column))
    if curves:
        mean, std = np.mean(curves, axis=0), np.std(curves, axis=0, ddof=1) if len(curves) > 1 else 0.0
        ax.plot(steps, mean, color=colour, linestyle=style, label=label, marker="." if len(steps) <= 40 else None)
        if len(curves) > 1:
            # the band stays where the quantity can be: a loss >= 0, an accuracy in [0, 100] %
            # (σ = 0.001 without BN, one seed stuck at 10 % and two at 88 %: mean + std 106 %)
            top = scale if "accuracy" in column else np.inf   # accuracies are fractions here
            ax.fill_between(steps, np.maximum(mean - std, 0.0), np.minimum(mean + std, top), color=colour,
                            alpha=0.15, linewidth=0)
    bad = [h for h, why in zip(outcome.histories, failures(outcome)) if why is not None]
    for k, h in enumerate(bad):       # None: stopped on a NaN, no curve to draw
        if h is not None:
            ax.plot(h.column("step"), scale * h.column(column), color=colour, linestyle=":",
                    label=f"{label} (diverged)" if k == 0 and label else None)
    if bad and label and not any(h is not None for h in bad):
        ax.plot([], [], color=colour, linestyle=":", label=f"{label} (diverged)")
    return float(np.max(np.array(curves) + std)) if curves else 0.0


def _fit_loss_axis(ax, top):
    """The loss axis from 0 to just above the sound runs' curves, whatever the diverged ones did."""
    if top > 0:
        ax.set_ylim(0.0, 1.05 * top)


def _legend_handles(groups, diverged):
    """One legend for the figure: a colour per group, a line style per part (and for diverged runs)."""
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], color=GROUP_COLOURS[k % len(GROUP_COLOURS)], linewidth=4, label=group)
               for k, group in enumerate(groups)]
    styles = [("--", "train"), ("-", "validation")] + ([(":", "a diverged run")] if diverged else [])
    return handles + [Line2D([], [], color="grey", linestyle=style, label=label) for style, label in styles]
