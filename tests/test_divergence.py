"""Divergence that the batch-loss check misses (issue 14, item 2): the BN running statistics, the
parameters, the optimiser's memory and the evaluation scores are checked too; a diverged run exits
1 naming the step, eta and the setting to change, keeps its last good checkpoint and writes no
model or metrics; nothing fastmlp writes as JSON holds NaN or Infinity."""
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmlp import Network, checkpoint, jsonio
from fastmlp.cli import main
from fastmlp.config import TrainConfig
from fastmlp.divergence import advice
from fastmlp.run import train
from fastmlp.train import Trainer, TrainingDiverged
from train_helpers import tiny_config, tiny_splits, write_npz


def trainer_for(config, splits, **kw):
    sizes = config.check_data(len(splits.X_train), splits.X_train.shape[1], splits.n_classes)
    return Trainer(Network(sizes, config.batch_norm, config.init, config.dtype, config.seed), config, **kw)


def diverges(config, splits=None, **kw):
    """The TrainingDiverged of fitting config, and the trainer."""
    splits = splits or tiny_splits(dtype=config.dtype)
    trainer = trainer_for(config, splits, **kw)
    with pytest.raises(TrainingDiverged) as err:
        trainer.fit(splits.X_train, splits.y_train, splits.X_val, splits.y_val)
    return err.value, trainer


@pytest.mark.parametrize("changes, knob", [
    # eta far too high: the BN running variance overflows while every batch loss stays finite
    (dict(eta_max=1e4, lam=0.0), "eta_max"),
    (dict(eta_max=1e4, dtype="float64"), "lam"),
    # Adam with beta1 >= sqrt(beta2): unbounded steps; the same run with the default beta2 learns
    (dict(optimizer="adam", beta2=0.0, eta_max=0.3, lam=0.0), "beta2"),
    # the L2 term alone grows the weights once eta * lam >= 1
    (dict(eta_max=1e4), "lam"),
])
def test_divergence_with_finite_batch_losses_is_caught(changes, knob):
    error, trainer = diverges(tiny_config(**changes))
    t = error.step
    assert np.isfinite(trainer.history_.batch_loss[:t + 1]).all()     # the loss check alone misses it
    assert error.knob == knob and error.eta == pytest.approx(trainer.history_.eta[t], rel=1e-6)
    message = str(error)
    assert f"at step {t} " in message and f"with learning rate {error.eta:.6g};" in message
    assert f"{knob} (--{knob.replace('_', '-')}, now " in message and "\n" not in message


def test_adams_default_beta2_does_not_diverge_where_beta2_0_does():
    splits = tiny_splits()
    trainer_for(tiny_config(optimizer="adam", eta_max=0.3, lam=0.0), splits).fit(
        splits.X_train, splits.y_train, splits.X_val, splits.y_val)


def test_an_infinite_optimizer_memory_is_caught():
    # Adam's v = inf freezes a weight (its step m / sqrt(v) is 0) with no NaN anywhere
    splits = tiny_splits()
    trainer = trainer_for(tiny_config(optimizer="adam"), splits)
    steps = trainer.net._train_steps

    def overflowing(X, y, lam, etas, rows, opt, t0, *rest):     # v overflows in step 5
        done = steps(X, y, lam, etas, rows, opt, t0, *rest)
        if t0 <= 5 < t0 + done:
            opt.state[-1] = np.inf
        return done
    trainer.net._train_steps = overflowing
    with pytest.raises(TrainingDiverged, match=r"the optimizer's memory holds inf (\(checked after steps \d+-\d+\) )?at step"):
        trainer.fit(splits.X_train, splits.y_train)
    assert trainer.step_ >= 5


def test_a_network_that_is_not_finite_before_training_is_refused():
    splits = tiny_splits()
    trainer = trainer_for(tiny_config(), splits)
    trainer.net.params["W2"][0, 1] = np.nan
    with pytest.raises(ValueError, match=r"cannot train: the parameter W2 holds NaN before the first step"):
        trainer.fit(splits.X_train, splits.y_train)


def test_a_non_finite_evaluation_score_is_caught(monkeypatch):
    splits = tiny_splits()
    trainer = trainer_for(tiny_config(), splits)
    calls = []

    def loss_acc(X, y):
        calls.append(1)
        return (math.inf if len(calls) == 4 else 1.0), 0.5     # the 2nd evaluation's val_loss
    monkeypatch.setattr(trainer.net, "_loss_acc_eval", loss_acc)
    with pytest.raises(TrainingDiverged, match=r"the evaluation's val_loss is inf at step 15 \(epoch 1\)"):
        trainer.fit(splits.X_train, splits.y_train, splits.X_val, splits.y_val)
    assert len(trainer.history_.evals) == 1               # the bad row is not recorded


def test_a_checkpoint_of_a_non_finite_network_is_refused_and_the_good_one_kept(tmp_path):
    splits = tiny_splits()
    path = tmp_path / "checkpoint.npz"
    trainer = trainer_for(tiny_config(), splits, checkpoint_path=path, data=splits)
    trainer.fit(splits.X_train, splits.y_train)
    trainer.save_checkpoint()
    good = path.read_bytes()
    trainer.net.running["run_var1"][3] = np.inf
    with pytest.raises(TrainingDiverged, match="the BN running statistic run_var1 holds inf"):
        trainer.save_checkpoint()
    assert path.read_bytes() == good


def test_a_diverged_run_keeps_its_last_good_checkpoint_and_writes_no_model(tmp_path):
    out = tmp_path / "run"
    config = tiny_config(schedule="constant", eta=1.0, lam=1.5, ns=500, out=str(out))
    with pytest.raises(TrainingDiverged) as err:
        train(config, tiny_splits())
    saved = checkpoint.load(out / "checkpoint.npz")
    assert 0 < saved.step < err.value.step and f"(step {saved.step})" in str(err.value)
    assert np.isfinite(saved.net.theta).all() and np.isfinite(saved.net.stats).all()
    assert not (out / "model.npz").exists() and not (out / "metrics.json").exists()


def test_a_non_finite_final_evaluation_is_divergence_not_a_nan_in_metrics(tmp_path):
    splits = tiny_splits()
    splits.X_test[:5] = 3e38                      # finite rows whose scores overflow float32
    with pytest.raises(TrainingDiverged, match=r"the final evaluation's test_\w+ is (inf|nan) at step 47 "):
        train(tiny_config(out=str(tmp_path / "run")), splits)
    assert not (tmp_path / "run" / "metrics.json").exists()


def strict(text):
    """json.loads that refuses NaN, Infinity and -Infinity, as JavaScript and jq do."""
    def refuse(name):
        raise AssertionError(f"{name} in JSON")
    return json.loads(text, parse_constant=refuse)


def test_metrics_json_is_strict_and_says_why_a_value_is_null(tmp_path):
    splits = tiny_splits()
    splits.X_test, splits.y_test = splits.X_test[:0], splits.y_test[:0]
    out = tmp_path / "run"
    train(tiny_config(out=str(out)), splits)
    metrics = strict((out / "metrics.json").read_text())
    assert metrics["test_loss"] is None and metrics["test_accuracy"] is None
    assert metrics["undefined"] == {"test_loss, test_cost, test_accuracy": "no test rows"}


def test_the_cli_exits_1_on_divergence_with_finite_losses(tmp_path, capsys):
    npz = write_npz(tmp_path / "blobs.npz")
    code = main(["train", "--dataset", str(npz), "--n-val", "80", "--sizes", "auto-16-16-auto",
                 "--batch", "20", "--ns", "24", "--cycles", "1", "--eta-max", "1e4", "--lam", "0",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and err.startswith("fastmlp: error: training diverged: ")
    assert "Lower eta_max (--eta-max, now 10000)" in err
    assert not (tmp_path / "run" / "model.npz").exists()


@pytest.mark.parametrize("value", ["0", "-1e-8", "nan", "inf", "1"])
def test_opt_eps_outside_0_1_is_refused_naming_the_flag(value, tmp_path, capsys):
    code = main(["train", "--dataset", "sample", "--optimizer", "adam", f"--opt-eps={value}",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("fastmlp: error: opt_eps (--opt-eps) must be a number in (0, 1)")
    assert not (tmp_path / "run").exists()


# ---- the advice -----------------------------------------------------------------------------------
def knob_of(etas=(0.1,), hypers=None, **changes):
    return advice(TrainConfig(**changes), np.asarray(etas), hypers)


def test_advice_names_the_broken_rule():
    assert knob_of(optimizer="adam", beta1=0.9, beta2=0.81)[0] == "beta2"       # beta1 == sqrt(beta2)
    assert knob_of(optimizer="adam", beta1=0.9, beta2=0.82)[0] == "eta_max"
    assert knob_of(etas=[1.0, 2.0], lam=0.5)[0] == "lam"                        # eta * lam = 1
    assert knob_of(etas=[1.0, 1.9], lam=0.5)[0] == "eta_max"
    assert knob_of(etas=[1.8], lam=1.0, optimizer="momentum", momentum=0.9)[0] == "eta_max"   # < 1 + mu
    assert knob_of(etas=[1.9], lam=1.0, optimizer="momentum", momentum=0.9)[0] == "lam"
    assert knob_of(etas=[0.7], lam=1.0, optimizer="momentum", momentum=0.9, nesterov=True)[0] == "lam"
    assert knob_of(etas=[1e6], lam=1.0, optimizer="adam")[0] == "eta_max"      # Adam normalises L2
    assert knob_of(schedule="constant", eta=5.0)[0] == "eta"
    knob, text = knob_of(optimizer="adagrad", opt_eps=1e-30)
    assert knob == "eta_max" and "opt_eps (--opt-eps, now 1e-30) to its default 1e-10" in text


def test_advice_uses_the_cycled_beta1_and_momentum():
    hp = np.zeros((2, 5))
    hp[:, 1] = [0.85, 0.95]                         # onecycle's beta1 reached 0.95 > sqrt(0.9)
    assert knob_of(hypers=hp, optimizer="adam", beta1=0.9, beta2=0.9)[0] == "beta2"
    hp[:, 0] = [0.85, 0.95]                         # heavy ball: stable while eta * lam < 1 + mu
    assert knob_of(etas=[1.87], hypers=hp, lam=1.0, optimizer="momentum", momentum=0.9)[0] == "lam"


def test_adapters_name_their_own_parameters():
    pytest.importorskip("sklearn")
    from fastmlp.sklearn import MLPClassifier
    splits = tiny_splits()
    clf = MLPClassifier((16,), learning_rate="constant", learning_rate_init=1e4, alpha=0.0,
                        max_iter=3, batch_size=20, random_state=0)
    with pytest.raises(TrainingDiverged, match=r"Lower learning_rate_init \(now 10000\)"):
        clf.fit(splits.X_train, splits.y_train)


# ---- the JSON writer ------------------------------------------------------------------------------
def test_the_json_writer_refuses_nan_naming_the_file_and_key(tmp_path):
    path = tmp_path / "m.json"
    with pytest.raises(ValueError, match=r"m.json: 'runs'\[1\]\['loss'\] is nan, and JSON has no NaN"):
        jsonio.write(path, {"ok": 1.0, "runs": [{"loss": 2.0}, {"loss": np.float32("nan")}]})
    assert not path.exists()


values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                      lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                                  max_size=4),
                      max_leaves=20)


@settings(max_examples=100, deadline=None)
@given(values)
def test_the_json_writer_writes_strict_json_or_names_the_bad_value(value):
    try:
        text = jsonio.dumps(value)
    except ValueError as e:
        assert ("is nan" in str(e) or "is inf" in str(e) or "is -inf" in str(e)) and "\n" not in str(e)
    else:
        strict(text)
