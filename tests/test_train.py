import json

import numpy as np
import pytest

from fastmlp import Network, checkpoint
from fastmlp.data import from_arrays, make_splits
from fastmlp.run import format_table, train
from fastmlp.train import EVAL_COLUMNS, Trainer, TrainingDiverged
from train_helpers import tiny_config, tiny_splits


def fit(config, splits, **kw):
    sizes = config.check_data(len(splits.X_train), splits.X_train.shape[1], splits.n_classes)
    net = Network(sizes, config.batch_norm, config.init, config.dtype, config.seed)
    return Trainer(net, config, **kw).fit(splits.X_train, splits.y_train, splits.X_val, splits.y_val)


def test_learns_and_records_history():
    splits = tiny_splits()
    t = fit(tiny_config(), splits)
    h = t.history_
    assert t.steps_per_epoch_ == 16 and t.step_ == 48
    assert h.column("step").tolist() == [0, 16, 32, 48]            # start, then every epoch
    assert h.column("epoch").tolist() == [0, 1, 2, 3]
    assert np.array_equal(h.eta, t.config.make_schedule(16).eta(np.arange(48)))
    assert np.isfinite(h.batch_loss).all()
    acc = h.column("val_accuracy")
    assert acc[0] < 0.6 and acc[-1] > 0.95                         # 3 separable blobs
    assert (h.column("train_cost") > h.column("train_loss")).all()  # lam > 0
    assert t.net.accuracy(splits.X_val, splits.y_val) == acc[-1]  # BN running statistics


def test_same_seed_is_bit_identical_and_another_seed_is_not():
    splits = tiny_splits()
    a, b = fit(tiny_config(), splits), fit(tiny_config(), splits)
    assert a.net.theta.tobytes() == b.net.theta.tobytes()
    assert a.net.stats.tobytes() == b.net.stats.tobytes()
    np.testing.assert_array_equal(a.history_.evals, b.history_.evals)  # NaNs compare equal
    assert np.array_equal(a.history_.batch_loss, b.history_.batch_loss)
    c = fit(tiny_config(seed=1), splits)
    assert c.net.theta.tobytes() != a.net.theta.tobytes()


def test_eval_every_adds_step_level_rows():
    t = fit(tiny_config(eval_every=5), tiny_splits())
    want = sorted({0, 48} | set(range(5, 49, 5)) | set(range(16, 49, 16)))
    assert t.history_.column("step").tolist() == want


def test_last_partial_batch_is_dropped_and_steps_follow_ns_epochs():
    splits = tiny_splits(n_train=410, n_val=80)          # 330 rows / batch 20: 16 steps, 10 rows left
    t = fit(tiny_config(ns=None, ns_epochs=1.5, cycles=2), splits)
    assert t.steps_per_epoch_ == 16
    assert t.step_ == 2 * 24 * 2                         # ns = round(1.5 * 16) = 24
    assert t.history_.column("step").tolist() == [0, 16, 32, 48, 64, 80, 96]


def test_train_curve_on_a_fixed_subset():
    splits = tiny_splits()
    t = fit(tiny_config(train_eval=50), splits)
    assert all((50 * acc).is_integer() for acc in t.history_.column("train_accuracy"))
    rows = t._train_eval_rows(splits.X_train, splits.y_train)[0]
    assert rows.shape == (50, splits.X_train.shape[1])
    assert np.array_equal(rows, t._train_eval_rows(splits.X_train, splits.y_train)[0])


def test_divergence_names_step_and_rate_and_keeps_the_last_good_checkpoint(tmp_path):
    # eta * 2 * lam = 3: weight decay multiplies every W by -2 per step until float32 overflows
    # (first in the BN running variance), so the advice names lam.
    config = tiny_config(schedule="constant", eta=1.0, lam=1.5, ns=500)
    path = tmp_path / "checkpoint.npz"
    with pytest.raises(TrainingDiverged) as err:
        fit(config, tiny_splits(), checkpoint_path=path)
    message = str(err.value)
    step = int(message.split(" at step ")[1].split()[0])
    assert step == err.value.step and err.value.eta == 1.0 and err.value.knob == "lam"
    assert step > 16 and "with learning rate 1;" in message and "Lower lam (--lam, now 1.5)" in message
    saved = checkpoint.load(path)
    assert f"the last good checkpoint is {path} (step {saved.step})" in message
    assert saved.step % 16 == 0 and saved.step < step
    assert np.isfinite(saved.net.theta).all()


def test_train_writes_the_run_folder(tmp_path):
    splits = tiny_splits()
    out = tmp_path / "run"
    result = train(tiny_config(out=str(out), eval_every=8), splits)
    names = {p.name for p in out.iterdir()}
    assert names == {"model.npz", "metrics.json", "history.csv", "steps.csv",
                     "cost.png", "loss.png", "accuracy.png", "curves.png"}
    m = json.loads((out / "metrics.json").read_text())
    assert m["val_accuracy"] == result.net.accuracy(splits.X_val, splits.y_val)
    assert m["test_accuracy"] == result.net.accuracy(splits.X_test, splits.y_test)
    assert m["train_accuracy"] == result.net.accuracy(splits.X_train, splits.y_train)
    assert m["final_cost"] == pytest.approx(result.net.cost(splits.X_train, splits.y_train, 0.005), rel=1e-6)
    assert (m["epochs"], m["steps"], m["n_train"], m["n_val"], m["n_test"]) == (3, 48, 320, 80, 90)
    assert m["config"] == tiny_config(out=str(out), eval_every=8).to_dict()
    assert m["seconds"] >= m["seconds_train"] > 0 and m["seconds_eval"] > 0
    lines = (out / "history.csv").read_text().splitlines()
    # no test columns without eval_test: no test numbers to choose settings by
    assert lines[0] == ",".join(EVAL_COLUMNS[:8]) and len(lines) == 1 + len(result.history.evals)
    assert len((out / "steps.csv").read_text().splitlines()) == 1 + 48
    saved = checkpoint.load(out / "model.npz")
    assert saved.net.theta.tobytes() == result.net.theta.tobytes() and saved.step == 48
    assert "test" in format_table(m) and f"{100 * m['test_accuracy']:.2f}%" in format_table(m)
    with pytest.raises(ValueError, match=r"already holds a run \(model.npz\); continue it with --resume"):
        train(tiny_config(out=str(out)), splits)


def test_no_test_set_gives_null_test_scores(tmp_path):
    X = np.random.default_rng(0).standard_normal((200, 6))
    splits = make_splits(from_arrays(X, (X[:, 0] > 0).astype(int)), "a3", 40, "float32")
    m = train(tiny_config(out=str(tmp_path / "r"), sizes="auto-8-auto"), splits).metrics
    assert m["test_accuracy"] is None and m["test_loss"] is None and m["val_accuracy"] is not None
    assert "-" in format_table(m).splitlines()[-1]


def test_learns_real_cifar10_images(cifar_subset):
    x, y = cifar_subset["x_train"][:1500], cifar_subset["y_train"][:1500]
    splits = make_splits(from_arrays(x, y, cifar_subset["x_test"][:500], cifar_subset["y_test"][:500]),
                         "a3", 300, "float32")
    t = fit(tiny_config(sizes="auto-30-auto", batch=50, ns=None, ns_epochs=2, cycles=1), splits)
    val = t.history_.column("val_accuracy")
    assert val[-1] > 0.22, val                          # chance is 0.10
    assert t.net.accuracy(splits.X_test, splits.y_test) > 0.22


def test_training_copies_no_training_set_and_allocates_nothing_per_step():
    import tracemalloc
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4000, 200)).astype(np.float32)          # 3.2 MB
    y = rng.integers(0, 3, 4000)
    config = tiny_config(sizes="200-16-3", batch=100, ns=80, train_eval=0)   # 4 epochs of 40 steps
    fit(config, make_splits(from_arrays(X[:500], y[:500]), "a3", 100, "float32"))   # compile, warm
    net = Network([200, 16, 3])
    trainer = Trainer(net, config)
    tracemalloc.start()
    trainer.fit(X, y)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # batches are gathered inside the step: no shuffled copy of X (3.2 MB).  What remains is
    # the input check's finiteness mask (1 byte a value: a quarter of X), the epoch's
    # permutation and labels (32 KB each), the workspace and the batch buffer (80 KB)
    assert peak < 0.4 * X.nbytes, peak / X.nbytes


@pytest.mark.parametrize("changes", [
    {},                                                           # plain SGD folded into products
    {"optimizer": "momentum", "nesterov": True, "dropout": 0.3,   # cycled momentum, masks per step
     "schedule": "onecycle", "epochs": 3},
    {"optimizer": "adam", "batch_norm": False, "eval_every": 7},   # cuts at evaluations
])
def test_runs_of_steps_in_one_call_give_the_bits_of_one_call_per_step(monkeypatch, changes):
    """The trainer hands runs of steps to one compiled call; their size must change nothing."""
    import fastmlp.train as train_module
    splits = tiny_splits()
    runs = {}
    for most in (1, 5, 4096):
        monkeypatch.setattr(train_module._Chunks, "MAX", most)
        monkeypatch.setattr(train_module._Chunks, "CHUNK_SECONDS", 1e9)   # always `most` steps
        runs[most] = fit(tiny_config(**changes), splits)
    for most in (5, 4096):
        assert runs[most].net.theta.tobytes() == runs[1].net.theta.tobytes(), most
        assert runs[most].net.stats.tobytes() == runs[1].net.stats.tobytes(), most
        assert runs[most].optimizer_.state.tobytes() == runs[1].optimizer_.state.tobytes(), most
        assert np.array_equal(runs[most].history_.batch_loss, runs[1].history_.batch_loss)
        np.testing.assert_array_equal(runs[most].history_.evals, runs[1].history_.evals)  # NaNs compare equal


def test_divergence_inside_a_run_of_steps_stops_at_the_step_that_diverged(monkeypatch):
    import fastmlp.train as train_module
    splits = tiny_splits()
    steps = []
    for most in (1, 4096):
        monkeypatch.setattr(train_module._Chunks, "MAX", most)
        monkeypatch.setattr(train_module._Chunks, "CHUNK_SECONDS", 1e9)
        config = tiny_config(batch_norm=False, schedule="constant", eta=1e6, lam=0.0)
        sizes = config.check_data(len(splits.X_train), splits.X_train.shape[1], splits.n_classes)
        trainer = Trainer(Network(sizes, False, config.init, config.dtype, config.seed), config)
        with pytest.raises(TrainingDiverged, match=r"at step \d+"):
            trainer.fit(splits.X_train, splits.y_train)
        steps.append((trainer.step_, trainer.net.theta.tobytes()))
    assert steps[0] == steps[1] and steps[0][0] > 0
