"""Bad input at the public boundary: a ValueError that names the argument, the rule and the
value."""
import numpy as np
import pytest

import fastmlp


@pytest.fixture(scope="module")
def net():
    return fastmlp.Network([6, 5, 3], seed=0)


def good():
    X = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    return X, np.array([0, 1, 2, 0])


@pytest.mark.parametrize("sizes, pattern", [
    ([3072], r"sizes must list at least two widths .*got \[3072\]"),
    ([], r"sizes must list at least two widths"),
    (5, r"sizes must be a list of layer widths .*got 5"),
    ([3072, 0, 10], r"sizes\[1\] must be a positive integer width; got 0"),
    ([3072, -50, 10], r"sizes\[1\] must be a positive integer width; got -50"),
    ([3072, 50.5, 10], r"sizes\[1\] must be a positive integer width; got 50.5"),
    ([3072, True, 10], r"sizes\[1\] must be a positive integer width; got True"),
    ([3072, 50, 1], r"sizes\[-1\] \(the number of classes\) must be at least 2; got 1"),
])
def test_bad_sizes(sizes, pattern):
    with pytest.raises(ValueError, match=pattern):
        fastmlp.Network(sizes)


@pytest.mark.parametrize("dtype", [np.float16, np.int32, "complex128", object])
def test_bad_network_dtype(dtype):
    with pytest.raises(ValueError, match=r"dtype must be float32 or float64; got"):
        fastmlp.Network([6, 3], dtype=dtype)


@pytest.mark.parametrize("init", ["glorot", -0.1, 0.0, float("nan"), None])
def test_bad_init(init):
    with pytest.raises(ValueError, match=r"init must be one of he, he_uniform, xavier, xavier_normal, xavier_uniform, lecun or a positive float sigma"):
        fastmlp.Network([6, 3], init=init)


@pytest.mark.parametrize("X, pattern", [
    (np.zeros((4, 7), np.float32), r"X must have 6 columns .*got shape \(4, 7\)"),
    (np.zeros(6, np.float32), r"X must be 2-D, \(n_samples, 6\); got shape \(6,\)"),
    (np.zeros((0, 6), np.float32), r"X is an empty batch \(shape \(0, 6\)\)"),
    (np.zeros((4, 6), np.uint8), r"X must hold float32 or float64 values; got dtype uint8"),
    (np.zeros((4, 6), np.float16), r"X must hold float32 or float64 values; got dtype float16"),
    (np.array([[0, 0, np.nan, 0, 0, 0]] * 4), r"X must be finite; got nan at \(0, 2\)"),
    (np.array([[0, 0, 0, 0, 0, np.inf]] * 4), r"X must be finite; got inf at \(0, 5\)"),
])
def test_bad_X(net, X, pattern):
    y = np.zeros(len(X), int) if X.ndim == 2 else np.zeros(1, int)
    for call in (lambda: net.predict(X), lambda: net.loss_and_grad(X, y),
                 lambda: net.accuracy(X, y)):
        with pytest.raises(ValueError, match=pattern):
            call()


@pytest.mark.parametrize("y, pattern", [
    (np.array([0, 1, 3, 0]), r"y must lie in \[0, 3\) for a 3-class network; got 3"),
    (np.array([0, -1, 2, 0]), r"y must lie in \[0, 3\) .*got -1"),
    (np.array([0., 1., 2., 0.]), r"y must hold integer class indices; got dtype float64"),
    (np.array([0, 1, 2]), r"y must have one label per row of X \(4\); got 3"),
    (np.eye(4, 3, dtype=int), r"y must be 1-D, one class index per sample; got shape \(4, 3\)"),
    (np.array([True, False, True, True]), r"y must hold integer class indices; got dtype bool"),
])
def test_bad_labels(net, y, pattern):
    X, _ = good()
    with pytest.raises(ValueError, match=pattern):
        net.loss_and_grad(X, y)
    with pytest.raises(ValueError, match=pattern):
        net.accuracy(X, y)


@pytest.mark.parametrize("lam", [-0.1, float("nan"), float("inf"), "0.1"])
def test_bad_lambda(net, lam):
    X, y = good()
    with pytest.raises(ValueError, match=r"lam must be a finite number >= 0; got"):
        net.loss_and_grad(X, y, lam=lam)
    with pytest.raises(ValueError, match=r"lam must be a finite number >= 0"):
        fastmlp.gradcheck(net, X, y, lam=lam)


def test_bad_gradcheck_arguments(net):
    X, y = good()
    with pytest.raises(ValueError, match=r"h must be > 0"):
        fastmlp.gradcheck(net, X, y, h=0.0)
    with pytest.raises(ValueError, match=r"max_entries must be None or a positive integer; got 0"):
        fastmlp.gradcheck(net, X, y, max_entries=0)


def test_backward_needs_a_training_forward():
    with pytest.raises(ValueError, match=r"backward needs a training forward first"):
        fastmlp.Network([6, 3]).backward(np.array([0]))


def test_unknown_parameter_name_lists_the_real_ones(net):
    with pytest.raises(KeyError, match=r"'W9' is not a parameter of this network; it has W1, b1"):
        net["W9"]


def test_float64_input_is_converted_for_a_float32_network(net):
    X, y = good()
    assert net.loss(X.astype(np.float64), y) == pytest.approx(net.loss(X, y), rel=1e-6)
