"""MLPClassifier's early_stopping, validation_fraction, n_iter_no_change and tol, as scikit-learn's
MLPClassifier defines them."""
import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.model_selection import train_test_split  # noqa: E402

import fastmlp  # noqa: E402
from train_helpers import blobs  # noqa: E402


@pytest.fixture(scope="module")
def data():
    X, y = blobs(600)
    return X, np.array(["ant", "bee", "cat"])[y]


def clf(**kw):
    # a constant rate of 3 makes the validation accuracy go up and down
    params = dict(hidden_layer_sizes=(16,), batch_size=20, learning_rate="constant", learning_rate_init=3.0,
                  max_iter=60, random_state=0)
    return fastmlp.MLPClassifier(**{**params, **kw})


def sklearn_count(scores, tol, n_iter_no_change):
    """scikit-learn's _update_no_improvement_count on validation scores: the epoch it stops after."""
    best, count = -np.inf, 0
    for epoch, s in enumerate(scores):
        count = count + 1 if s < best + tol else 0
        best = max(best, s)
        if count > n_iter_no_change:
            return epoch
    return None


def test_early_stopping_holds_out_stratified_rows_and_keeps_the_best_epoch(data):
    X, y = data
    est = clf(early_stopping=True, n_iter_no_change=2, validation_fraction=0.2).fit(X, y)
    scores = est.validation_scores_
    assert est.n_iter_ == len(scores) == len(est.loss_curve_) < 60
    assert sklearn_count(scores, est.tol, 2) == est.n_iter_ - 1
    assert est.best_validation_score_ == max(scores) and est.best_loss_ is None
    # the held-out rows are sklearn's stratified split of fit's rows with the estimator's seed
    ids = np.unique(y, return_inverse=True)[1]
    X_tr, X_val, _, y_val = train_test_split(X, ids, test_size=0.2, random_state=0, stratify=ids)
    assert np.array_equal(est.mean_, X_tr.mean(axis=0))
    assert est.score(X_val, est.classes_[y_val]) == pytest.approx(est.best_validation_score_)
    assert est.score(X_val, est.classes_[y_val]) > scores[-1]      # not the last epoch's weights


def test_without_early_stopping_tol_acts_on_the_training_loss(data):
    X, y = data
    est = clf(tol=0.05, n_iter_no_change=3).fit(X, y)
    curve = est.loss_curve_
    assert est.n_iter_ == len(curve) < 60 and est.validation_scores_ is None
    assert est.best_validation_score_ is None and est.best_loss_ == min(curve)
    best = np.minimum.accumulate(curve)
    assert all(curve[e] > best[e - 1] - 0.05 for e in range(len(curve) - 4, len(curve)))
    assert len(clf(tol=0.0, n_iter_no_change=1000).fit(X, y).loss_curve_) == 60     # never stops


@pytest.mark.parametrize("params, match", [
    ({"validation_fraction": 1.0}, "validation_fraction must be a number in"),
    ({"tol": -1e-4}, "tol must be a finite number >= 0"),
    ({"n_iter_no_change": 0}, "n_iter_no_change must be an integer >= 1"),
    ({"early_stopping": "yes"}, "early_stopping must be True or False"),
    ({"early_stopping": True, "validation_fraction": 0.001}, "early_stopping needs at least 2 validation rows|"
                                                             "early_stopping cannot hold out")])
def test_bad_parameters_are_refused(data, params, match):
    with pytest.raises(ValueError, match=match):
        clf(**params).fit(*data)


def test_partial_fit_refuses_early_stopping(data):
    X, y = data
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        clf(early_stopping=True).partial_fit(X, y, classes=np.unique(y))
