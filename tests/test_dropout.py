"""Dropout: kernels against the NumPy twin (its own SplitMix64 in tests/reference.py), masks
seeded and thread-independent, gradient checks with a fixed mask (with and without BN), off at
evaluation, fused step against the per-kernel path, per-layer rates, validation."""
import numpy as np
import pytest

import fastmlp
from fastmlp.kernels import dropout, rng as krng, tasks
from fastmlp.kernels._config import serial_twin
from fastmlp.network import check_dropout

import reference as ref
from test_gradcheck import assert_exact

DTYPES = [np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_kernels_match_numpy_twin(dtype, rate):
    rng = np.random.default_rng(0)
    H = np.maximum(rng.standard_normal((64, 37)), 0).astype(dtype)
    dH = rng.standard_normal((64, 37)).astype(dtype)
    key = np.uint64(krng.stream_key(3, 17, 1))
    mask = ref.dropout_mask(key, H.shape, rate)
    tol = 1e-6 if dtype == np.float32 else 1e-15
    out, grad = H.copy(), dH.copy()
    dropout.dropout_forward(out, rate, key)
    dropout.dropout_backward(grad, rate, key)
    np.testing.assert_allclose(out, H * mask, rtol=tol)
    np.testing.assert_allclose(grad, dH * mask, rtol=tol)
    for kernel, arr in ((dropout.dropout_forward, H.copy()), (dropout.dropout_backward, dH.copy())):
        twin = arr.copy()
        kernel(arr, rate, key)
        serial_twin(kernel)(twin, rate, key)
        np.testing.assert_array_equal(arr, twin)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_gated_backward_equals_the_masked_one_after_the_gate(dtype, rate):
    """The fused step's backward skips the mask (dropout_backward_gated: dH / (1 - rate)) because
    the gate that follows (ReLU's, or batch norm's with relu) is 0 where the output after
    dropout is 0: through relu_backward and the step's batch norm backward it gives the bits of the masked
    backward, and alone it is dH scaled (the NumPy twin)."""
    from fastmlp.kernels import batchnorm, relu
    rng = np.random.default_rng(1)
    N, O = 64, 37
    key = np.uint64(krng.stream_key(3, 17, 1))
    H = np.maximum(rng.standard_normal((N, O)), 0).astype(dtype)
    dropout.dropout_forward(H, rate, key)            # the output after dropout, as stored
    dH = rng.standard_normal((N, O)).astype(dtype)
    dH[0, :] = np.inf                                # a non-finite gradient on dropped units too
    masked, gated = dH.copy(), dH.copy()
    dropout.dropout_backward(masked, rate, key)
    dropout.dropout_backward_gated(gated, rate)
    # the kernel scales in H's precision (scale = 1 / (1 - rate) rounded to it), as
    # dropout_forward does and PyTorch's dropout
    np.testing.assert_array_equal(gated, dH * dtype(1.0 / (1.0 - rate)))
    serial = dH.copy()
    serial_twin(dropout.dropout_backward_gated)(serial, rate)
    np.testing.assert_array_equal(serial, gated)
    a, b = np.empty_like(dH), np.empty_like(dH)
    relu.relu_backward(a, masked, H)
    relu.relu_backward(b, gated, H)
    np.testing.assert_array_equal(a, b)
    Xhat = rng.standard_normal((N, O)).astype(dtype)
    inv_std, gamma = rng.uniform(0.5, 2, O).astype(dtype), rng.uniform(0.5, 2, O).astype(dtype)
    outs = []
    for d in (masked, gated):
        for nb in (1, 2):       # the step's kernel (gemm's BN_BACKWARD), on one part and two
            dX, dgamma, dbeta = np.empty_like(d), np.empty(O, dtype), np.empty(O, dtype)
            tasks.batch_norm_backward(dX, np.empty(O, dtype), dgamma, dbeta, d, Xhat, inv_std,
                                      gamma, H, True, nb)
            outs.append((dX, dgamma, dbeta))
    for out in outs[1:]:
        for x, y in zip(out, outs[0]):
            np.testing.assert_array_equal(x, y)


def test_mask_rate_and_independence():
    """The share dropped is the rate; masks differ between steps and layers."""
    H = np.ones((1000, 200))
    keys = [np.uint64(krng.sub_key(krng.stream_key(0, step, 1), layer)) for step in (0, 1) for layer in (0, 1)]
    masks = []
    for key in keys:
        out = H.copy()
        dropout.dropout_forward(out, 0.3, key)
        assert abs((out == 0).mean() - 0.3) < 0.005
        assert out.mean() == pytest.approx(1.0, abs=0.01)       # inverted: the mean is kept
        masks.append(out == 0)
    for i in range(len(masks)):
        for j in range(i):
            assert abs((masks[i] & masks[j]).mean() - 0.09) < 0.005   # independent draws


@pytest.mark.parametrize("batch_norm", [True, False])
def test_gradients_exact_with_a_fixed_mask(cifar_small, batch_norm):
    """With the mask fixed (same drop_key for every forward of the check), dropout is a linear map
    and the analytic gradient must match the numerical one as tightly as without it."""
    X, y = cifar_small
    net = fastmlp.Network([50, 50, 30, 10], batch_norm=batch_norm, dtype=np.float64, seed=3,
                          dropout=[0.3, 0.2])
    net.drop_key = np.uint64(krng.stream_key(5, 9, 1))
    rows = fastmlp.gradcheck(net, X, y, lam=0.01)
    assert_exact(rows, net)
    net.forward(X, train=True)
    dropped = net._train_ws.H[0] == 0      # the same key as the check's forwards
    assert 0.35 < dropped.mean() < 0.85    # dropped (0.3) or not active (ReLU): dropout ran


def test_gradients_exact_with_dropout_on_synthetic_data():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((16, 30)), rng.integers(0, 7, 16)
    for fused in (True, False):
        net = fastmlp.Network([30, 20, 15, 7], dtype=np.float64, seed=1, dropout=0.25)
        net.fused = fused
        assert_exact(fastmlp.gradcheck(net, X, y, lam=0.01), net)


def test_dropout_changes_the_gradient():
    """Negative control: a gradient computed with one mask does not pass for another."""
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((16, 30)), rng.integers(0, 7, 16)
    net = fastmlp.Network([30, 20, 7], dtype=np.float64, seed=1, dropout=0.5, batch_norm=False)
    net.loss_and_grad(X, y)
    g1 = net.grads["W1"].copy()
    net.drop_key = np.uint64(12345)
    net.loss_and_grad(X, y)
    assert not np.allclose(g1, net.grads["W1"])


@pytest.mark.parametrize("dtype", DTYPES)
def test_off_at_evaluation(dtype):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((50, 40)).astype(dtype)
    with_drop = fastmlp.Network([40, 30, 20, 5], dtype=dtype, seed=0, dropout=0.5)
    without = fastmlp.Network([40, 30, 20, 5], dtype=dtype, seed=0)
    np.testing.assert_array_equal(with_drop.predict_proba(X), without.predict_proba(X))
    train_mode = with_drop.forward(X, train=True)
    assert not np.allclose(train_mode, without.forward(X, train=True))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bn", [True, False])
def test_fused_step_equals_per_kernel_path_with_dropout(dtype, bn):
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((100, 3072)).astype(dtype), rng.integers(0, 10, 100)
    fused = fastmlp.Network([3072, 50, 50, 10], batch_norm=bn, dtype=dtype, seed=0, dropout=[0.2, 0.1])
    per_kernel = fused.copy()
    per_kernel.fused = False
    tol = {np.float32: 2e-5, np.float64: 1e-12}[dtype]
    for t in range(3):
        for net in (fused, per_kernel):
            net.drop_key = np.uint64(krng.stream_key(0, t, 1))
        a = fused._train_step(X, y, 0.005, dtype(0.05))
        b = per_kernel._train_step(X, y, 0.005, dtype(0.05))
        assert a == pytest.approx(b, rel=tol)
    np.testing.assert_allclose(fused.theta, per_kernel.theta, rtol=tol * 10,
                               atol=tol * np.abs(per_kernel.theta).max())


def test_training_with_dropout_is_seeded_and_recorded(tmp_path):
    from fastmlp.config import TrainConfig
    from fastmlp.run import load_data, train
    config = TrainConfig(dataset="sample", dropout=0.2, ns=10, cycles=1, out=str(tmp_path / "a"))
    splits = load_data(config)
    a = train(config, splits)
    b = train(TrainConfig(**{**config.to_dict(), "out": str(tmp_path / "b")}), splits)
    c = train(TrainConfig(**{**config.to_dict(), "dropout": 0.0, "out": str(tmp_path / "c")}), splits)
    np.testing.assert_array_equal(a.net.theta, b.net.theta)
    assert not np.array_equal(a.net.theta, c.net.theta)
    assert a.metrics["config"]["dropout"] == 0.2
    assert a.net.dropout == (0.2, 0.2)


@pytest.mark.parametrize("bad, n_hidden, match", [
    (1.0, 2, r"dropout must be a rate in \[0, 1\).*got 1.0"),
    (-0.1, 2, "got -0.1"),
    ([0.1, 0.2, 0.3], 2, r"or a list of 2 such rates, one per hidden layer; got \[0.1, 0.2, 0.3\]"),
    ("0.1", 2, "got '0.1'"),
    (True, 2, "got True"),
])
def test_bad_rates_are_refused(bad, n_hidden, match):
    with pytest.raises(ValueError, match=match):
        check_dropout(bad, n_hidden)


def test_rates_per_layer():
    assert check_dropout(0.1, 3) == (0.1, 0.1, 0.1)
    assert check_dropout([0.1, 0, 0.5], 3) == (0.1, 0.0, 0.5)
    net = fastmlp.Network([10, 8, 6, 3], dropout=[0.5, 0.0])
    assert "dropout=[0.5, 0.0]" in repr(net)


def test_dropout_needs_a_hidden_layer():
    with pytest.raises(ValueError, match=r"dropout acts after hidden layers, and this network has none; "
                                         r"got dropout=0.3"):
        fastmlp.Network([10, 3], dropout=0.3)
    assert fastmlp.Network([10, 3], dropout=0.0).dropout == ()
