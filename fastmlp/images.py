"""Pictures of data rows: a grid of images, each with a caption, wrong predictions framed in red.

`fastmlp show`, `fastmlp evaluate --out` (the most confidently misclassified test images) and
`fastmlp show-augment` draw images through here.  Rows are raw, in the units of the data files
(pixels 0..255 for CIFAR-10 and Fashion-MNIST), stored as channel planes (C, H, W) one after
another.  Figures are drawn on the Agg canvas directly, as in plots.py.
"""
import math

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

CELL = 1.2          # inches per image, caption included
DPI = 96
MAX_IMAGES = 400    # a grid of 400 CIFAR images is 20 x 20 cells, ~2300 pixels square
WRONG = "tab:red"


def check_images(image_shape, source):
    """Refuse data that is not images of 1 (grey) or 3 (RGB) channel planes."""
    if len(image_shape) != 3 or image_shape[0] not in (1, 3):
        raise ValueError(f"{source} holds plain features (image_shape {tuple(image_shape)}), not grey or RGB "
                         f"images (C, H, W) with C 1 or 3; there is nothing to draw.")


def value_range(x):
    """The value a white pixel has: 255 for bytes, else the largest value (at least 1)."""
    return 255.0 if np.asarray(x).dtype == np.uint8 else float(max(np.max(x), 1.0))


def draw_image(ax, row, image_shape, white=255.0):
    """Draw one raw row as an image on the axes `ax`, without ticks."""
    img = np.clip(np.asarray(row, np.float64).reshape(image_shape) / white, 0.0, 1.0)
    if image_shape[0] == 3:     # planes (3, H, W) -> an RGB picture (H, W, 3)
        ax.imshow(img.transpose(1, 2, 0), interpolation="nearest")
    else:
        ax.imshow(img[0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def image_grid(path, rows, image_shape, captions, wrong=None, columns=8, title=None, white=255.0):
    """Write a PNG of `rows` (N, D) in a grid of `columns`, each image over its caption; wrong: N
    booleans, the True ones framed and captioned in red.  Returns the path."""
    from .plots import save_png
    n = len(rows)
    columns = max(1, min(columns, n))
    lines = max(c.count("\n") + 1 for c in captions) if captions else 1
    grid_rows = math.ceil(n / columns)
    head = 0.35 if title else 0.0
    fig = Figure(figsize=(columns * CELL, grid_rows * (CELL + 0.12 * lines) + head))
    FigureCanvasAgg(fig)
    axes = fig.subplots(grid_rows, columns, squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.set_axis_off()
            continue
        draw_image(ax, rows[k], image_shape, white)
        bad = wrong is not None and bool(wrong[k])
        ax.set_title(captions[k], fontsize=7, color=WRONG if bad else "black", pad=2)
        for side in ax.spines.values():
            side.set_color(WRONG if bad else "lightgrey")
            side.set_linewidth(3 if bad else 0.5)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(pad=0.3, h_pad=0.2, w_pad=0.2)
    save_png(fig, path, DPI)
    return path


def confusion_figure(path, matrix, names, title):
    """Write the confusion matrix (rows: true class, columns: predicted) as a PNG: each cell coloured
    by its share of the true class's rows and labelled with its count."""
    from .plots import save_png
    k = len(names)
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(4.5, 0.55 * k + 2)
    fig = Figure(figsize=(size, size))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), names, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=9)
    if k <= 30:     # past that the counts do not fit in their cells
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black")
    fig.tight_layout()
    save_png(fig, path, 110)
    return path
