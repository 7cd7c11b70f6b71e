"""The Keras-style API (fastmlp.Sequential): a front end compiled onto Network + Trainer."""
import contextlib

import numpy as np
import pytest

import fastmlp
from fastmlp import (BatchNorm, CyclicLR, Dense, Dropout, Input, Network, ReLU, Sequential,
                     TrainConfig, Trainer, checkpoint, optim)
from fastmlp.data import load_dataset


@pytest.fixture(scope="module")
def sample():
    """The embedded Fashion-MNIST sample: 5,000 training, 500 validation, 1,000 test rows."""
    return load_dataset("sample", n_val=500)


def study_model(dropout=0.1):
    return Sequential([Dense(50), BatchNorm(), ReLU(), Dropout(dropout),
                       Dense(50), BatchNorm(), ReLU(), Dense(10)])


def test_fit_evaluate_predict_save_load_round_trip(sample, tmp_path):
    d = sample
    model = study_model()
    model.compile(optimizer="adam", schedule=CyclicLR(1e-5, 1e-2, step_size_epochs=1), l2=0.001)
    history = model.fit(d.X_train, d.y_train, validation_data=(d.X_val, d.y_val), epochs=4,
                        batch_size=100, seed=1, verbose=0)

    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert history.epoch == [0, 1, 2, 3]
    assert all(len(v) == 4 for v in history.history.values())
    # half-cycles of one epoch (50 steps): the first epoch ends near eta_max, the second near eta_min
    assert history.history["lr"][0] == pytest.approx(1e-2, rel=0.03)
    assert history.history["lr"][1] == pytest.approx(1e-5, abs=3e-4)
    assert history.history["val_accuracy"][-1] > 0.75
    # evaluate runs the very computation of the history's last validation entry
    assert model.evaluate(d.X_val, d.y_val) == (history.history["val_loss"][-1],
                                                history.history["val_accuracy"][-1])
    loss, acc = model.evaluate(d.X_test, d.y_test)
    P = model.predict(d.X_test)
    assert P.shape == (1000, 10) and np.allclose(P.sum(axis=1), 1, atol=1e-5)
    assert np.mean(P.argmax(axis=1) == d.y_test) == acc > 0.75
    assert 0 < loss < 1

    path = tmp_path / "model.npz"
    model.save(path)
    loaded = fastmlp.load_model(path)
    assert np.array_equal(loaded.predict(d.X_test), P)
    assert loaded.evaluate(d.X_test, d.y_test) == (loss, acc)
    assert [repr(layer) for layer in loaded.layers] == [
        "Input(shape=(784,))", "Dense(units=50)", "BatchNorm()", "ReLU()", "Dropout(rate=0.1)",
        "Dense(units=50)", "BatchNorm()", "ReLU()", "Dense(units=10)"]
    assert repr(loaded.optimizer) == repr(model.optimizer) and loaded.optimizer.t == 200
    assert repr(loaded.schedule) == repr(model.schedule) and loaded.l2 == 0.001
    assert checkpoint.load(path).step == 200            # an ordinary fastmlp model file

    # training goes on from the saved optimiser memory and step count exactly as in memory
    model.fit(d.X_train, d.y_train, epochs=1, seed=2, verbose=0)
    loaded.fit(d.X_train, d.y_train, epochs=1, seed=2, verbose=0)
    assert np.array_equal(loaded.net.theta, model.net.theta)
    assert np.array_equal(loaded.net.stats, model.net.stats)


@pytest.mark.parametrize("case", ["bn-dropout-adam-cyclic", "plain-nesterov-constant"])
def test_sequential_trains_to_the_parameters_of_network_and_trainer(sample, case):
    d = sample
    X, y, Xv, yv = d.X_train[:2000], d.y_train[:2000], d.X_val, d.y_val
    if case == "bn-dropout-adam-cyclic":
        layers = [Input(784), Dense(30), BatchNorm(), ReLU(), Dropout(0.2), Dense(20), BatchNorm(),
                  ReLU(), Dropout(0.1), Dense(10)]
        net = Network([784, 30, 20, 10], batch_norm=True, dropout=[0.2, 0.1], seed=5)
        config = TrainConfig(optimizer="adam", beta1=0.8, eta_min=1e-4, eta_max=1e-2, ns_epochs=1,
                             cycles=2, lam=0.002, batch=50, seed=5)
        compiled = dict(optimizer=optim.Adam(beta1=0.8), schedule=CyclicLR(1e-4, 1e-2, step_size_epochs=1),
                        l2=0.002)
        epochs = 4
    else:
        layers = [Dense(40, activation="relu", kernel_initializer="glorot_uniform"),
                  Dense(10, activation="softmax")]
        net = Network([784, 40, 10], batch_norm=False, init="xavier_uniform", seed=7)
        config = TrainConfig(optimizer="momentum", momentum=0.8, nesterov=True, schedule="constant",
                             eta=0.02, ns_epochs=1.5, cycles=1, lam=0.0, batch=100, seed=7)
        compiled = dict(optimizer=optim.Momentum(0.8, nesterov=True), schedule=0.02)
        epochs = 3
    Trainer(net, config).fit(X, y, Xv, yv)

    model = Sequential(layers)
    model.compile(**compiled)
    model.fit(X, y, validation_data=(Xv, yv), epochs=epochs, batch_size=config.batch,
              seed=config.seed, verbose=0)
    assert model.net.sizes == net.sizes and model.net.dropout == net.dropout
    assert np.array_equal(model.net.theta, net.theta)          # bit identical
    assert np.array_equal(model.net.stats, net.stats)


BAD_STACKS = [
    ([Dense(50), BatchNorm(), ReLU(), Dense(10), BatchNorm()], "BatchNorm after the last Dense"),
    ([Dense(50), Dropout(0.1), ReLU(), Dense(10)], "Dropout before ReLU"),
    ([Dense(50), BatchNorm(), Dropout(0.1), ReLU(), Dense(10)], "Dropout before ReLU"),
    ([Dense(50), BatchNorm(), ReLU(), Dense(50), ReLU(), Dense(10)],
     "BatchNorm must be in every hidden block or in none"),
    ([Dense(50), ReLU(), BatchNorm(), Dense(10)], "BatchNorm after a ReLU"),
    ([Dense(50, activation="relu"), BatchNorm(), Dense(10)], "BatchNorm after a ReLU"),
    ([Dense(50), BatchNorm(), ReLU()], "the last layer must be Dense(n_classes)"),
    ([Dense(50), Dense(10)], "needs ReLU() before the output layer"),
    ([Dense(50), ReLU(), ReLU(), Dense(10)], "a second ReLU"),
    ([Dense(50), ReLU(), Dropout(0.1), Dropout(0.1), Dense(10)], "one Dropout per hidden block"),
    ([ReLU(), Dense(10)], "expected a Dense layer first"),
    ([Dense(50), ReLU(), Input(784), Dense(10)], "Input must be the first layer"),
    ([Dense(50), BatchNorm(momentum=0.99), ReLU(), Dense(50), BatchNorm(), ReLU(), Dense(10)],
     "same momentum and epsilon"),
    ([Dense(50, kernel_initializer="he"), ReLU(), Dense(10, kernel_initializer="xavier")],
     "same kernel_initializer"),
    ([Dense(50), ReLU(), Dense(10, activation="relu")], "activation is softmax"),
    ([Dense(50), ReLU(), Dense(1)], "at least 2 units"),
    ([], "non-empty list of layers"),
    ([Dense(50), "relu", Dense(10)], "layer 1 is 'relu'"),
]


@pytest.mark.parametrize("layers, message", BAD_STACKS, ids=[m for _, m in BAD_STACKS])
def test_unsupported_stacks_are_refused_with_what_to_write(layers, message):
    with pytest.raises(ValueError) as err:
        Sequential(layers).stack        # a list is checked at once; an empty one (for add) on use
    assert message in str(err.value)


def test_bad_layer_settings_name_the_argument_and_value():
    for make, message in [(lambda: Dense(0), "Dense units must be a positive integer"),
                          (lambda: Dense(5, activation="tanh"), "got 'tanh'"),
                          (lambda: Dropout(1.0), "Dropout rate must be a number in [0, 1)"),
                          (lambda: BatchNorm(momentum=2), "got 2"),
                          (lambda: Dense(5, kernel_initializer="orthogonal"), "got 'orthogonal'"),
                          (lambda: CyclicLR(1e-2, 1e-3, step_size=5), "eta_min <= eta_max"),
                          (lambda: CyclicLR(1e-5, 1e-1), "exactly one")]:
        with pytest.raises(ValueError, match=None) as err:
            make()
        assert message in str(err.value)


def test_labels_must_be_class_ids_and_the_model_compiled(sample):
    d = sample
    model = study_model(0.0)
    with pytest.raises(ValueError, match=r"not compiled; call model.compile"):
        model.fit(d.X_train, d.y_train)
    model.compile()
    names = np.array(d.label_names)[d.y_train]
    with pytest.raises(ValueError, match=r"integer class ids 0\.\.9 \(the last Dense has 10 units\)"):
        model.fit(d.X_train, names, verbose=0)
    with pytest.raises(ValueError, match=r"integer class ids 0\.\.9 .* got 10 at row 3"):
        model.fit(d.X_train[:10], np.array([0, 1, 2, 10, 4, 5, 6, 7, 8, 9]), verbose=0)
    with pytest.raises(ValueError, match=r"one-hot .* Pass y.argmax\(axis=1\)"):
        model.fit(d.X_train, np.eye(10)[d.y_train], verbose=0)
    with pytest.raises(ValueError, match=r"augment='flip=0.5' needs image_shape"):
        model.fit(d.X_train, d.y_train, augment="flip", verbose=0)
    with pytest.raises(ValueError, match=r"no weights yet"):
        model.predict(d.X_test)


def test_augmentation_and_batch_clipping(sample):
    d = sample
    X, y = d.X_train[:600], d.y_train[:600]
    runs = {}
    for aug in (None, "flip,translate=2"):
        model = study_model(0.0)
        model.compile(schedule=CyclicLR(1e-5, 0.1, step_size=6))
        # the sample is standardised per pixel, whose border stds are tiny: fit warns
        with pytest.warns(UserWarning, match="standardised per pixel") if aug else contextlib.nullcontext():
            history = model.fit(X, y, epochs=2, batch_size=1000, augment=aug, image_shape=d.image_shape,
                                standardization=(d.mean, d.std), seed=0, verbose=0)
        assert history.params["batch_size"] == 600 and history.params["steps"] == 1
        runs[aug] = model.net.theta.copy()
    assert not np.array_equal(runs[None], runs["flip,translate=2"])   # augmentation reached the steps


def test_summary_and_build():
    model = Sequential([Input(3072), Dense(50), BatchNorm(), ReLU(), Dense(50), BatchNorm(), ReLU(),
                        Dense(10)])
    model.compile(optimizer="adagrad", schedule=0.05, l2=0.005)
    text = model.summary(print_fn=None)
    assert "Trainable params: 156,910" in text          # the study's 3072-50-50-10 BN net
    assert "Network(3072-50-50-10, batch_norm=True" in text
    net = model.build(seed=3)
    assert np.array_equal(net.theta, Network([3072, 50, 50, 10], seed=3).theta)


def test_a_second_fit_draws_new_masks_and_shuffles(sample):
    """fit keys its shuffles and dropout masks on the seed and the steps already taken: calling
    fit again goes on with new draws instead of repeating the first fit's."""
    d = sample
    model = Sequential([Dense(20), ReLU(), Dropout(0.3), Dense(10)])
    model.compile(optimizer="sgd", schedule=0.01)
    keys = []
    for _ in range(2):
        model.fit(d.X_train[:500], d.y_train[:500], epochs=1, batch_size=100, seed=0, verbose=0)
        keys.append(int(model.net.drop_key))
    assert keys[0] != keys[1]


def test_load_model_of_a_train_run_restores_the_adam_memory(tmp_path):
    """fastmlp train's model.npz keeps the optimiser memory; a model loaded from it continues
    with it (or, without it, restarts Adam's step count with fresh moments)."""
    from fastmlp.run import load_data, train
    config = TrainConfig(dataset="sample", optimizer="adam", eta_max=0.005, ns=10, cycles=1,
                         out=str(tmp_path / "run"))
    result = train(config, load_data(config))
    loaded = fastmlp.load_model(tmp_path / "run" / "model.npz")
    assert loaded.optimizer.t == result.metrics["steps"] == 20
    assert loaded.optimizer.state.any()
    path = tmp_path / "no-memory.npz"
    checkpoint.save(path, result.net, config, step=20)
    assert fastmlp.load_model(path).optimizer.t == 0
