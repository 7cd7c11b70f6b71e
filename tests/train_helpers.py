"""Tiny data and configs shared by the trainer, checkpoint and CLI tests: small enough that a
whole run takes well under a second, structured enough that a working trainer learns it."""
import numpy as np

from fastmlp.config import TrainConfig
from fastmlp.data import from_arrays, make_splits

LABELS = ["ant", "bee", "cat"]


def blobs(n, d=12, classes=3, seed=0):
    """Raw rows around one centre per class, offset and scaled so that standardisation matters."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.5, (classes, d))
    y = rng.permutation(np.arange(n) % classes)
    X = 100 + 20 * (centres[y] + rng.standard_normal((n, d)))
    return X, y


def tiny_raw(n_train=400, n_test=90, seed=0):
    X, y = blobs(n_train + n_test, seed=seed)
    return from_arrays(X[:n_train], y[:n_train], X[n_train:], y[n_train:], LABELS)


def tiny_splits(n_train=400, n_val=80, dtype="float32", seed=0):
    return make_splits(tiny_raw(n_train, seed=seed), "a3", n_val, dtype)


def tiny_config(**changes):
    """3 epochs of 16 steps per cycle on tiny_splits(): 320 rows / batch 20."""
    values = dict(sizes="auto-16-16-auto", batch=20, ns=24, cycles=1, eta_max=0.1, train_eval=0)
    values.update(changes)
    return TrainConfig(**values)


def write_npz(path, n_train=400, n_test=90, seed=0):
    """tiny_raw() as a dataset file for `--dataset PATH.npz`."""
    X, y = blobs(n_train + n_test, seed=seed)
    np.savez(path, x_train=X[:n_train], y_train=y[:n_train], x_test=X[n_train:], y_test=y[n_train:],
             label_names=np.array(LABELS))
    return path
