"""Sequential.fit(callbacks=[...]): EarlyStopping and ModelCheckpoint with Keras's semantics."""
import numpy as np
import pytest

import fastmlp
from fastmlp import Callback, Dense, EarlyStopping, Input, ModelCheckpoint, ReLU, Sequential
from train_helpers import blobs

EPOCHS = 30


@pytest.fixture(scope="module")
def data():
    X, y = blobs(400)
    X = (X - X.mean(0)) / X.std(0)
    return X[:320], y[:320], X[320:], y[320:]


def model():
    # a constant rate of 5 makes the validation loss go up and down (16 steps an epoch)
    m = Sequential([Input(12), Dense(16), ReLU(), Dense(3)])
    return m.compile(optimizer="sgd", schedule=5.0, batch_size=20)


def fit(data, callbacks, **kw):
    X, y, Xv, yv = data
    m = model()
    history = m.fit(X, y, validation_data=(Xv, yv), epochs=EPOCHS, verbose=0, callbacks=callbacks, seed=0, **kw)
    return m, history


def test_early_stopping_restores_the_best_epoch(data, capsys):
    stop = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True, verbose=1)
    m, h = fit(data, [stop])
    ran = len(h.epoch)
    assert ran < EPOCHS and stop.stopped_epoch == ran - 1 and m.stop_training
    assert all(len(v) == ran for v in h.history.values())
    losses = h.history["val_loss"]
    assert stop.best_epoch == int(np.argmin(losses)) and stop.best == min(losses)
    assert min(losses[-2:]) >= stop.best                # the last two epochs did not improve
    assert m.evaluate(*data[2:]) == (losses[stop.best_epoch], h.history["val_accuracy"][stop.best_epoch])
    assert m.evaluate(*data[2:])[0] != losses[-1]
    out = capsys.readouterr().out
    assert f"Epoch {ran}: early stopping" in out and f"best epoch: {stop.best_epoch + 1}." in out


def test_without_restore_the_last_weights_stay(data):
    stop = EarlyStopping(patience=2)
    m, h = fit(data, [stop])
    assert len(h.epoch) < EPOCHS
    assert m.evaluate(*data[2:])[0] == h.history["val_loss"][-1]


def test_model_checkpoint_keeps_the_best(data, tmp_path):
    best = ModelCheckpoint(tmp_path / "best.npz", monitor="val_accuracy", save_best_only=True)
    every = ModelCheckpoint(str(tmp_path / "e{epoch:02d}-{val_loss:.3f}.npz"))
    m, h = fit(data, [best, every, EarlyStopping(patience=3)])
    accs = h.history["val_accuracy"]
    first_best = int(np.argmax(accs))        # the first epoch to reach the highest accuracy
    loaded = fastmlp.load_model(tmp_path / "best.npz")
    assert loaded.evaluate(*data[2:]) == (h.history["val_loss"][first_best], accs[first_best])
    files = sorted(p.name for p in tmp_path.glob("e*.npz"))
    assert files == [f"e{e + 1:02d}-{v:.3f}.npz" for e, v in zip(h.epoch, h.history["val_loss"])]
    # a file saved during the fit counts the steps taken so far
    assert fastmlp.load_model(tmp_path / files[1]).optimizer.t == 2 * 16


def test_a_callback_of_ones_own_stops_the_fit(data):
    class StopAfterTwo(Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.keys = list(logs)
            if epoch == 1:
                self.model.stop_training = True
    cb = StopAfterTwo()
    m, h = fit(data, [cb])
    assert h.epoch == [0, 1] and cb.keys == ["loss", "accuracy", "val_loss", "val_accuracy", "lr"]
    assert m.optimizer.t == 2 * 16


def test_a_monitor_the_fit_does_not_measure_is_refused_before_training(data):
    X, y = data[:2]
    m = model()
    with pytest.raises(ValueError, match=r"EarlyStopping monitors 'val_loss'.*validation_data="):
        m.fit(X, y, epochs=2, verbose=0, callbacks=[EarlyStopping()])
    assert m.optimizer.t == 0
    m.fit(X, y, epochs=2, verbose=0, callbacks=[EarlyStopping(monitor="loss")])      # this one is there


@pytest.mark.parametrize("callbacks, match", [
    (EarlyStopping(), "callbacks must be a list"), ([object()], "callbacks must hold")])
def test_bad_callbacks_are_refused(data, callbacks, match):
    X, y = data[:2]
    with pytest.raises(ValueError, match=match):
        model().fit(X, y, epochs=1, verbose=0, callbacks=callbacks)


@pytest.mark.parametrize("make, match", [
    (lambda: EarlyStopping(patience=-1), "patience must be an integer >= 0"),
    (lambda: EarlyStopping(mode="up"), "mode must be"),
    (lambda: EarlyStopping(min_delta=float("nan")), "min_delta must be a finite number"),
    (lambda: ModelCheckpoint("model.keras"), "must end in .npz")])
def test_bad_settings_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_importable_from_the_keras_style_module():
    from fastmlp.models import EarlyStopping as a, ModelCheckpoint as b
    assert (a, b) == (EarlyStopping, ModelCheckpoint)
