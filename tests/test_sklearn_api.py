"""fastmlp.MLPClassifier: the scikit-learn estimator over Network + Trainer."""
import sys

import numpy as np
import pytest

import fastmlp
from fastmlp import Network, TrainConfig, Trainer
from fastmlp.data import load_dataset


@pytest.fixture(scope="module")
def sample():
    """The embedded Fashion-MNIST sample: 5,000 training, 500 validation, 1,000 test rows."""
    return load_dataset("sample", n_val=500)


def test_missing_scikit_learn_is_a_clear_import_error(monkeypatch):
    for name in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")] + ["sklearn"]:
        monkeypatch.setitem(sys.modules, name, None)      # None in sys.modules: "not installed"
    monkeypatch.delitem(sys.modules, "fastmlp.sklearn", raising=False)
    with pytest.raises(ImportError, match=r'pip install "fastmlp\[sklearn\]"'):
        fastmlp.MLPClassifier
    with pytest.raises(AttributeError, match="no attribute 'MLPClassifer'"):
        fastmlp.MLPClassifer


@pytest.mark.parametrize("params", [
    {},
    {"batch_norm": False, "dropout": 0.1, "optimizer": "adam", "learning_rate": "constant",
     "learning_rate_init": 0.01, "dtype": "float64"},
], ids=["default", "adam-dropout-float64"])
def test_check_estimator(params):
    pytest.importorskip("sklearn")
    from sklearn.utils.estimator_checks import check_estimator
    check_estimator(fastmlp.MLPClassifier(**params))


def test_pipeline_and_grid_search_over_alpha(sample):
    pytest.importorskip("sklearn")
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    d = sample
    raw = lambda X: X * d.std + d.mean       # noqa: E731 - back to raw pixels 0..255
    X, y = raw(d.X_train[:2000]), d.y_train[:2000]
    pipe = Pipeline([("scale", StandardScaler()),
                     ("mlp", fastmlp.MLPClassifier(standardize=False, max_iter=8, random_state=0))])
    search = GridSearchCV(pipe, {"mlp__alpha": [1e-4, 1e-2]}, cv=3)
    search.fit(X, y)
    assert search.best_params_["mlp__alpha"] in (1e-4, 1e-2)
    assert len(search.cv_results_["mean_test_score"]) == 2
    assert search.score(raw(d.X_test), d.y_test) > 0.75


def test_accuracy_and_bit_identity_with_network_and_trainer(sample):
    pytest.importorskip("sklearn")
    d = sample
    clf = fastmlp.MLPClassifier(standardize=False, random_state=3).fit(d.X_train, d.y_train)
    assert clf.score(d.X_test, d.y_test) > 0.75             # measured: 0.84
    assert clf.n_iter_ == 20 and len(clf.loss_curve_) == 20 and clf.t_ == 1000
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert clf.n_features_in_ == 784 and list(clf.classes_) == list(range(10))
    # the study's recipe with the same seed: the very same parameters
    net = Network([784, 50, 50, 10], seed=3)
    Trainer(net, TrainConfig(seed=3, train_eval=0)).fit(d.X_train, d.y_train)
    assert np.array_equal(clf.network_.theta, net.theta)
    assert np.array_equal(clf.network_.stats, net.stats)
    same = fastmlp.MLPClassifier(standardize=False, random_state=3).fit(d.X_train, d.y_train)
    assert np.array_equal(same.predict_proba(d.X_test), clf.predict_proba(d.X_test))


def test_string_labels_give_the_same_model_as_class_ids(sample):
    pytest.importorskip("sklearn")
    d = sample
    X, y = d.X_train[:1000], d.y_train[:1000]
    names = np.array([f"{k:02d}-{d.label_names[k]}" for k in range(10)])   # sorts as the ids do
    by_id = fastmlp.MLPClassifier(max_iter=4, random_state=0).fit(X, y)
    by_name = fastmlp.MLPClassifier(max_iter=4, random_state=0).fit(X, names[y])
    assert list(by_name.classes_) == list(names)
    assert np.array_equal(by_name.predict(d.X_test), names[by_id.predict(d.X_test)])
    assert by_name.score(d.X_test, names[d.y_test]) == by_id.score(d.X_test, d.y_test)


def test_partial_fit_one_epoch_per_call(sample):
    pytest.importorskip("sklearn")
    d = sample
    clf = fastmlp.MLPClassifier(learning_rate="constant", learning_rate_init=0.05, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(d.X_train[:500], d.y_train[:500])
    halves = [(d.X_train[:2500], d.y_train[:2500]), (d.X_train[2500:], d.y_train[2500:])]
    for epoch in range(4):
        for X, y in halves:
            clf.partial_fit(X, y, classes=np.arange(10) if epoch == 0 else None)
    assert clf.n_iter_ == 8 and len(clf.loss_curve_) == 8 and clf.t_ == 8 * 25
    assert clf.score(d.X_test, d.y_test) > 0.75
    with pytest.raises(ValueError, match=r"labels that are not in classes_ .*\[11\]"):
        clf.partial_fit(d.X_train[:3], np.array([0, 1, 11]))
    with pytest.raises(ValueError, match="X has 783 features"):
        clf.partial_fit(d.X_train[:10, 1:], d.y_train[:10])


def test_tiny_data_int_inputs_and_big_batches():
    pytest.importorskip("sklearn")
    X = np.array([[0], [1], [10], [11]])                     # int64, one feature
    y = np.array(["low", "low", "high", "high"])
    clf = fastmlp.MLPClassifier(hidden_layer_sizes=(4,), batch_size=100, max_iter=50,
                                learning_rate="constant", learning_rate_init=0.1, random_state=0)
    clf.fit(X, y)                                           # batch clipped to the 4 rows
    assert clf.t_ == 50 and list(clf.predict([[0], [11]])) == ["low", "high"]
    assert clf.predict_proba(X).dtype == np.float64
    two = fastmlp.MLPClassifier(hidden_layer_sizes=(), random_state=0).fit([[0.0], [1.0]], [0, 1])
    assert two.predict_proba([[0.5]]).shape == (1, 2)
    with pytest.raises(ValueError, match="1 class"):
        fastmlp.MLPClassifier().fit([[0.0], [1.0]], [3, 3])


@pytest.mark.parametrize("params, message", [
    ({"hidden_layer_sizes": (50, 0)}, "hidden_layer_sizes must be a tuple of positive integer widths"),
    ({"alpha": -1.0}, "alpha must be a finite number >= 0; got -1.0"),
    ({"dropout": 1.5}, "dropout must be a rate in [0, 1)"),
    ({"optimizer": "rmsprop"}, "optimizer must be one of sgd, momentum, adagrad, adam; got 'rmsprop'"),
    ({"eta_min": 0.5, "eta_max": 0.1}, "eta_min must be <= eta_max"),
    ({"learning_rate": "adaptive"}, "learning_rate must be 'cyclic' or 'constant'"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1; got 0"),
    ({"dtype": "float16"}, "dtype must be float32 or float64"),
])
def test_bad_parameters_are_refused_at_fit(params, message):
    pytest.importorskip("sklearn")
    clf = fastmlp.MLPClassifier(**params)                    # set_params/__init__ never validate
    with pytest.raises(ValueError) as err:
        clf.fit([[0.0], [1.0]], [0, 1])
    assert message in str(err.value)


def test_fit_never_trains_more_epochs_than_max_iter():
    """The cyclic schedule fits n_cycles whole cycles into max_iter epochs, or refuses."""
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 5)), rng.integers(0, 3, 40)
    clf = fastmlp.MLPClassifier(hidden_layer_sizes=(8,), batch_size=10, max_iter=1, n_cycles=2).fit(X, y)
    assert clf.n_iter_ <= 1 and clf.t_ == 4
    clf = fastmlp.MLPClassifier(hidden_layer_sizes=(8,), batch_size=10, max_iter=3, n_cycles=2).fit(X, y)
    assert clf.n_iter_ <= 3
    with pytest.raises(ValueError, match=r"needs at least 2 \* n_cycles update steps .*got max_iter=1, "
                                         r"n_cycles=2 and 1 step\(s\) per epoch"):
        fastmlp.MLPClassifier(hidden_layer_sizes=(8,), batch_size=40, max_iter=1, n_cycles=2).fit(X, y)
