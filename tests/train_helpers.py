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


class CtrlC:
    """Presses Ctrl-C just before the training call that takes step `step` (0-based) for the
    `occurrence`-th time.  The trainer hands runs of steps to one compiled call and answers
    Ctrl-C after the run, so the run stops at `stopped`, the end of that call's steps."""

    def __init__(self, monkeypatch, step, occurrence=1):
        from fastmlp import network
        self.step, self.left, self.stopped = step, occurrence, None
        steps, one = network.Network._train_steps, network.Network._train_step

        def run_of_steps(net, X, y, lam, etas, rows, opt, t0, keys, losses):
            self._press(t0, len(etas))
            return steps(net, X, y, lam, etas, rows, opt, t0, keys, losses)

        def one_step(net, X, y, lam, eta, rows=None, opt=None, t=0):
            self._press(t, 1)
            return one(net, X, y, lam, eta, rows, opt, t)
        monkeypatch.setattr(network.Network, "_train_steps", run_of_steps)
        monkeypatch.setattr(network.Network, "_train_step", one_step)
        self.originals = (network.Network, steps, one)

    def _press(self, t0, n):
        if self.left and t0 <= self.step < t0 + n:
            self.left -= 1
            if not self.left:
                import signal
                self.stopped = t0 + n
                signal.raise_signal(signal.SIGINT)

    def release(self):
        """Train without Ctrl-C from here on."""
        cls, steps, one = self.originals
        cls._train_steps, cls._train_step = steps, one
