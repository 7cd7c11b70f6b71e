import json
import os
import signal

import numpy as np
import pytest

from fastmlp import Network, checkpoint
from fastmlp.checkpoint import CheckpointError
from fastmlp.run import train
from fastmlp import train as train_module
from fastmlp.train import Trainer, TrainingInterrupted
from train_helpers import LABELS, CtrlC, tiny_config, tiny_splits


def make_trainer(config, splits, **kw):
    sizes = config.check_data(len(splits.X_train), splits.X_train.shape[1], splits.n_classes)
    return Trainer(Network(sizes, config.batch_norm, config.init, config.dtype, config.seed,
                           dropout=config.dropout), config, data=splits, **kw)


def fit(trainer, splits):
    return trainer.fit(splits.X_train, splits.y_train, splits.X_val, splits.y_val)


@pytest.mark.parametrize("dtype, batch_norm", [("float32", True), ("float64", True), ("float32", False)])
def test_round_trip_is_exact(tmp_path, dtype, batch_norm):
    splits = tiny_splits(dtype=dtype)
    config = tiny_config(dtype=dtype, batch_norm=batch_norm, ns=4)
    t = fit(make_trainer(config, splits), splits)
    path = tmp_path / "model.npz"
    checkpoint.save(path, t.net, config, t.step_, t.history_.to_arrays(), splits, t.seconds_)
    c = checkpoint.load(path)
    assert c.net.theta.dtype == np.dtype(dtype) and c.net.sizes == t.net.sizes
    assert c.net.theta.tobytes() == t.net.theta.tobytes()
    assert c.net.stats.tobytes() == t.net.stats.tobytes()
    assert (c.config, c.step, c.seconds) == (config, 8, t.seconds_)
    assert c.mean.tobytes() == splits.mean.tobytes() and c.std.tobytes() == splits.std.tobytes()
    assert (c.label_names, c.image_shape, c.source) == (LABELS, (12,), splits.source)
    for k, v in t.history_.to_arrays().items():
        assert np.array_equal(c.history[k], v, equal_nan=True)
    assert c.net.predict(splits.X_val).tolist() == t.net.predict(splits.X_val).tolist()


def test_a_bare_network_saves_without_data(tmp_path):
    net = Network([5, 4, 3], init=0.1, seed=3)
    checkpoint.save(tmp_path / "m.npz", net, tiny_config())
    c = checkpoint.load(tmp_path / "m.npz")
    assert c.net.theta.tobytes() == net.theta.tobytes() and c.mean is None and c.net.init == 0.1


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    net, config = Network([5, 4, 3]), tiny_config()
    path = tmp_path / "model.npz"
    checkpoint.save(path, net, config)
    before = path.read_bytes()

    def disk_full(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(checkpoint.np, "savez", disk_full)
    with pytest.raises(OSError, match="No space left"):
        checkpoint.save(path, Network([5, 4, 3], seed=1), config)
    with pytest.raises(OSError):
        checkpoint.save(tmp_path / "new.npz", net, config)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]


def test_bad_files_are_refused_with_the_file_named(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope.npz: no such model file"):
        checkpoint.load(tmp_path / "nope.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(CheckpointError, match=r"text.npz: model file must be an .npz archive \(np.savez\); this is not a zip"):
        checkpoint.load(tmp_path / "text.npz")
    np.savez(tmp_path / "data.npz", x_train=np.zeros(3))
    with pytest.raises(CheckpointError, match=r"data.npz: entry 'format' is missing"):
        checkpoint.load(tmp_path / "data.npz")
    np.savez(tmp_path / "pickle.npz", format=np.array(checkpoint.FORMAT), evil=np.array([{}], object))
    with pytest.raises(CheckpointError, match=r"pickle.npz: entry 'evil' of model file has no valid .npy header \(it holds Python objects"):
        checkpoint.load(tmp_path / "pickle.npz")
    checkpoint.save(tmp_path / "m.npz", Network([5, 3]), tiny_config())
    with np.load(tmp_path / "m.npz") as z:
        arrays = dict(z)
    arrays["config"] = np.array(json.dumps({"lamda": 1}))
    np.savez(tmp_path / "future.npz", **arrays)
    with pytest.raises(CheckpointError, match=r"future.npz: entry 'config' does not hold valid training "
                                              r"settings \(.*unknown config key 'lamda'"):
        checkpoint.load(tmp_path / "future.npz")


@pytest.mark.parametrize("bonus", [{}, {"optimizer": "adam", "dropout": 0.2, "eta_max": 0.01},
                                   {"optimizer": "momentum", "nesterov": True, "dropout": [0.1, 0.3]},
                                   {"optimizer": "adagrad", "eta_max": 0.01}])
def test_ctrl_c_mid_step_then_resume_ends_bit_identical(tmp_path, monkeypatch, bonus):
    """The resumed run rebuilds the interrupted step's dropout masks and continues from the
    optimiser memory saved in the checkpoint."""
    splits = tiny_splits()
    config = tiny_config(eval_every=5, **bonus)
    whole = fit(make_trainer(config, splits), splits)

    path = tmp_path / "checkpoint.npz"
    first = make_trainer(config, splits, checkpoint_path=path)
    # runs of up to 3 steps, so that Ctrl-C lands inside epoch 2 (16 steps per epoch)
    monkeypatch.setattr(train_module._Chunks, "MAX", 3)
    ctrl_c = CtrlC(monkeypatch, 20)
    # the handler the run found, given back: Python's default, or SIG_IGN under `cmd &` in a script
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted, match=r"interrupted at step 2\d; saved the checkpoint .*checkpoint.npz"):
        fit(first, splits)
    ctrl_c.release()
    assert signal.getsignal(signal.SIGINT) is handler
    saved = checkpoint.load(path)
    stop = ctrl_c.stopped
    assert 20 < stop < 32 and saved.step == stop and np.isnan(saved.history["batch_loss"][stop:]).all()
    assert np.isfinite(saved.history["batch_loss"][:stop]).all()

    second = make_trainer(config, splits, checkpoint_path=path).restore(saved)
    fit(second, splits)
    assert second.net.theta.tobytes() == whole.net.theta.tobytes()
    assert second.net.stats.tobytes() == whole.net.stats.tobytes()
    np.testing.assert_array_equal(second.history_.evals, whole.history_.evals)  # NaNs compare equal
    assert second.history_.batch_loss.tobytes() == whole.history_.batch_loss.tobytes()


def test_train_resume_finishes_the_run_folder(tmp_path, monkeypatch):
    splits = tiny_splits()
    whole = train(tiny_config(out=str(tmp_path / "whole")), splits)
    out = tmp_path / "cut"
    config = tiny_config(out=str(out))
    ctrl_c = CtrlC(monkeypatch, 29)
    with pytest.raises(KeyboardInterrupt):
        train(config, splits)
    ctrl_c.release()
    # history.csv is written as the run trains: the rows up to the interruption stay
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "history.csv"]
    with pytest.raises(ValueError, match=r"--resume continues the run in .*; lam there is 0.005 but 0.1 "
                                         r"was given"):
        train(tiny_config(out=str(out), lam=0.1), splits, resume=True)
    resumed = train(tiny_config(out=str(out), threads=1), splits, resume=True)
    assert resumed.net.theta.tobytes() == whole.net.theta.tobytes()
    np.testing.assert_array_equal(resumed.history.evals, whole.history.evals)  # NaNs compare equal
    m_whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    m_cut = json.loads((out / "metrics.json").read_text())
    assert m_cut["test_accuracy"] == m_whole["test_accuracy"]
    assert not (out / "checkpoint.npz").exists()
    with pytest.raises(ValueError, match=r"nothing to resume in .*cut.* \(it finished: model.npz is there\)"):
        train(config, splits, resume=True)


def test_resume_with_augmentation_rebuilds_the_same_batches(tmp_path, monkeypatch):
    """Augmentation draws are keyed by (seed, step), so an interrupted augmented run resumes to
    the same bits."""
    from fastmlp.config import TrainConfig
    from fastmlp.run import load_data
    config = TrainConfig(dataset="sample", ns=12, cycles=1, batch=50, augment="flip,translate=2:edge,jitter",
                         dropout=0.1, optimizer="adam", eta_max=0.005, train_eval=200)
    splits = load_data(config)
    whole = fit(make_trainer(config, splits), splits)
    path = tmp_path / "checkpoint.npz"
    first = make_trainer(config, splits, checkpoint_path=path)
    ctrl_c = CtrlC(monkeypatch, 8)
    with pytest.raises(TrainingInterrupted, match="interrupted at step 9;"):    # one step a call
        fit(first, splits)
    ctrl_c.release()
    second = make_trainer(config, splits, checkpoint_path=path).restore(checkpoint.load(path))
    fit(second, splits)
    assert second.net.theta.tobytes() == whole.net.theta.tobytes()
    assert second.history_.batch_loss.tobytes() == whole.history_.batch_loss.tobytes()


def test_restore_refuses_another_optimizers_memory(tmp_path):
    splits = tiny_splits()
    config = tiny_config(optimizer="momentum")
    t = fit(make_trainer(config, splits), splits)
    path = tmp_path / "m.npz"
    checkpoint.save(path, t.net, config, t.step_, t.history_.to_arrays(), splits, t.seconds_,
                    t.optimizer_.state)
    other = make_trainer(tiny_config(optimizer="adam"), splits)
    with pytest.raises(ValueError, match=r"trained with \{'optimizer': 'momentum'.*this run is configured "
                                         r"with \{'optimizer': 'adam'"):
        other.restore(checkpoint.load(path))


def test_format_1_optimizer_memory_is_reordered_on_load(tmp_path):
    """Format /1 files stored each W's optimiser memory in (fan_in, fan_out) order; loading one
    gives the memory in the network's (fan_out, fan_in) order, parameters unchanged."""
    net = Network([7, 5, 3], seed=0)
    rng = np.random.default_rng(0)
    state = rng.standard_normal(2 * net.theta.size).astype(net.dtype)     # Adam's m, then v
    old = state.copy()
    P = net.theta.size
    for c in range(2):
        for k, (fi, fo) in enumerate([(7, 5), (5, 3)], start=1):
            at = c * P + net._offsets[f"W{k}"]
            old[at:at + fi * fo] = state[at:at + fi * fo].reshape(fo, fi).T.reshape(-1)
    checkpoint.save(tmp_path / "m.npz", net, tiny_config(), optimizer_state=old)
    with np.load(tmp_path / "m.npz") as z:
        arrays = dict(z)
    arrays["format"] = np.array("fastmlp-checkpoint/1")
    np.savez(tmp_path / "v1.npz", **arrays)
    loaded = checkpoint.load(tmp_path / "v1.npz")
    np.testing.assert_array_equal(loaded.optimizer_state, state)
    np.testing.assert_array_equal(loaded.net.theta, net.theta)
    np.testing.assert_array_equal(checkpoint.load(tmp_path / "m.npz").optimizer_state, old)
