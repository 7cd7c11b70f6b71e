"""A search's figure: validation accuracy against lam on a log axis, one mark per trial (the mean
over its seeds, with a bar of ± one std when it has several), coloured by phase, so that where the
coarse phase found the good region and how the fine stages (or TPE) closed in on it can be seen."""
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..plots import save_png
from .search_table import trial_order


def plot_val_vs_lam(records, path, title, dpi=120):
    fig = Figure(figsize=(6.4, 4.4))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    phases = list(dict.fromkeys(r["phase"] for r in sorted(records, key=trial_order)))
    for k, phase in enumerate(phases):
        mine = [r for r in records if r["phase"] == phase]
        scored = [r for r in mine if r["val_accuracy"] is not None]
        label = f"{phase} ({len(mine)} trials" + (f", {len(mine) - len(scored)} diverged)" if
                                                  len(scored) < len(mine) else ")")
        lam = np.array([r["lam"] for r in scored])
        val = 100 * np.array([r["val_accuracy"] for r in scored])
        std = np.array([100 * (r["val_accuracy_std"] or 0.0) for r in scored])
        ax.errorbar(lam, val, yerr=std if std.any() else None, fmt="o", color=f"C{k}", label=label,
                    markersize=5, alpha=0.85, capsize=2, linestyle="none")
    ax.set_xscale("log")
    ax.set_xlabel(r"$\lambda$ (L2 penalty)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    fig.tight_layout()
    save_png(fig, path, dpi)
    return path
