"""A study's figure: validation loss over update steps, one panel per group of trials side by
side (say, without and with batch norm), one curve per trial (the mean over its seeds)."""
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..plots import save_png


def plot_val_loss(outcomes, path, title, dpi=120):
    panels = list(dict.fromkeys(o.trial.panel for o in outcomes))
    fig = Figure(figsize=(5.2 * len(panels), 4.4))
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(1, len(panels), sharey=True))
    for ax, panel in zip(axes, panels):
        for k, o in enumerate(x for x in outcomes if x.trial.panel == panel):
            colour = f"C{k}"
            finished = [h for h in o.histories if h is not None]
            if not finished:
                ax.plot([], [], color=colour, label=f"{o.trial.curve} (diverged)")
                continue
            steps = finished[0].column("step")
            curves = [h.column("val_loss") for h in finished if len(h.column("val_loss")) == len(steps)]
            ax.plot(steps, np.mean(curves, axis=0), color=colour, label=o.trial.curve,
                    marker="." if len(steps) <= 40 else None)
        ax.set_title(panel)
        ax.set_xlabel("update step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    axes[0].set_ylabel("validation loss")
    fig.suptitle(title)
    fig.tight_layout()
    save_png(fig, path, dpi)
    return path
