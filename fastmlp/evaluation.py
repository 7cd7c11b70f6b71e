"""`fastmlp evaluate --out DIR`: where a model goes wrong, class by class.

Writes per_class.md and per_class.csv (rows, correct and accuracy of each true class),
confusion.csv and confusion.png (rows: true class, columns: predicted class) and, for image data,
misclassified.png: the wrong predictions the model was surest of, each captioned with its
predicted class, its probability and the true class.
"""
from pathlib import Path

import numpy as np

from . import _checks
from .images import check_images, confusion_figure, image_grid, value_range
from .studies.report import write_csv
from .checkpoint import atomic_write_text
from .table import format_table

FILES = ("per_class.md", "per_class.csv", "confusion.csv", "confusion.png", "misclassified.png")
MISCLASSIFIED = 24      # images in misclassified.png: three rows of eight


def confusion_matrix(y, pred, n_classes):
    """(n_classes, n_classes) int64 counts: entry [t, p] is the rows of true class t predicted p."""
    return np.bincount(y * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class(matrix, names):
    """One record per class: its rows, how many were predicted right, and the accuracy (None
    for a class with no rows)."""
    records = []
    for k, name in enumerate(names):
        rows, correct = int(matrix[k].sum()), int(matrix[k, k])
        records.append({"class": name, "rows": rows, "correct": correct,
                        "accuracy": correct / rows if rows else None})
    return records


def per_class_table(records, style="markdown"):
    cells = [[r["class"], r["rows"], r["correct"], "-" if r["accuracy"] is None else f"{100 * r['accuracy']:.2f}%"]
             for r in records]
    return format_table(["class", "rows", "correct", "accuracy"], cells, style)


def most_confident_errors(proba, y, count):
    """Indices of up to `count` misclassified rows, the most confident (highest predicted
    probability) first."""
    pred = proba.argmax(axis=1)
    wrong = np.flatnonzero(pred != y)
    confidence = proba[wrong, pred[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")[:count]]


def write_evaluation(out, net, X, y, raw, names, image_shape, source):
    """The files above for the standardised rows X (labels y) whose raw rows (for the pictures)
    are `raw`; returns (paths, per-class records)."""
    X = _checks.check_X(X, net.n_features, net.dtype)
    y = _checks.check_y(y, net.n_classes, len(X))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    proba = net.predict_proba(X)
    pred = proba.argmax(axis=1)
    matrix = confusion_matrix(y, pred, net.n_classes)
    records = per_class(matrix, names)
    accuracy = float(np.trace(matrix)) / len(y)
    atomic_write_text(out / "per_class.md", f"Per-class accuracy on {source}: {100 * accuracy:.2f}% "
                                            f"overall.\n\n{per_class_table(records)}\n")
    write_csv(out / "per_class.csv", records)
    write_csv(out / "confusion.csv", [{"true \\ predicted": name, **dict(zip(names, map(int, row)))}
                                      for name, row in zip(names, matrix)])
    paths = [out / name for name in FILES[:3]]
    paths.append(confusion_figure(out / "confusion.png", matrix, names,
                                  f"Confusion matrix, {len(y)} rows, accuracy {100 * accuracy:.2f}%"))
    try:
        check_images(image_shape, source)
    except ValueError:
        return paths, records        # plain features: no pictures to draw
    errors = most_confident_errors(proba, y, MISCLASSIFIED)
    if len(errors):
        captions = [f"{names[pred[i]]} {100 * proba[i, pred[i]]:.0f}%\n(true: {names[y[i]]})" for i in errors]
        paths.append(image_grid(out / "misclassified.png", raw[errors], image_shape, captions,
                                wrong=[True] * len(errors), white=value_range(raw),
                                title=f"The {len(errors)} most confident mistakes: predicted class, "
                                      f"its probability (true class)"))
    return paths, records


def write_for_splits(out, net, splits, mean, std):
    """write_evaluation on the test rows of `splits` (the validation rows where there is no test
    set); mean and std are the statistics the rows were standardised with."""
    part = "test" if splits.X_test is not None and len(splits.X_test) else "val"
    X, y = getattr(splits, f"X_{part}"), getattr(splits, f"y_{part}")
    if X is None or not len(X):
        raise ValueError(f"evaluate --out needs test or validation rows; {splits.source} has neither.")
    raw = X.astype(np.float64) * std + mean
    names = list(splits.label_names)
    return write_evaluation(out, net, X, y, raw, names, splits.image_shape, f"the {part} rows of {splits.source}")
