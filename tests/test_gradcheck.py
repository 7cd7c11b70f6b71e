"""Analytic gradients against float64 centred differences for every parameter of 2-, 3-, 4-
and 9-layer nets, with and without batch norm, lam = 0 and lam > 0, on real CIFAR-10 pixels.

Bounds: rel_error <= 1e-7 per parameter; where the true gradient is identically zero (the
bias of a layer followed by batch norm), max_abs_error <= 1e-9.  A float64 PyTorch autograd
reference gives ~1e-9 / ~1e-10 here, so these leave room for rounding only."""
import numpy as np
import pytest

import fastmlp
from fastmlp.gradcheck import KEYS

NETS = {
    2: [50, 50, 10],
    3: [50, 50, 50, 10],
    4: [50, 50, 30, 20, 10],
    9: [50, 50, 30, 20, 20, 10, 10, 10, 10, 10],
}


def assert_exact(rows, net):
    assert [r["param"] for r in rows] == net.param_names
    for r in rows:
        assert set(KEYS) <= set(r)
        # a kink crossing removes an entry from the comparison; it must stay rare
        assert r["n_checked"] >= 0.98 * np.prod(r["shape"]), r
        zero_grad = net.batch_norm and r["param"] == f"b{r['layer']}" and r["layer"] < net.n_layers
        assert r["zero_gradient"] == zero_grad
        if zero_grad:
            assert r["max_abs_error"] <= 1e-9, r
        else:
            assert r["rel_error"] <= 1e-7, r


@pytest.mark.parametrize("lam", [0.0, 0.05])
@pytest.mark.parametrize("batch_norm", [True, False])
@pytest.mark.parametrize("depth", sorted(NETS))
def test_gradients_exact_on_real_cifar(cifar_small, depth, batch_norm, lam):
    X, y = cifar_small                    # 20 real images, first 50 pixel values
    net = fastmlp.Network(NETS[depth], batch_norm=batch_norm, init="he", dtype=np.float64, seed=3)
    assert_exact(fastmlp.gradcheck(net, X, y, lam=lam), net)


@pytest.mark.parametrize("depth, batch_norm", [(3, True), (9, False)])
def test_per_kernel_path_gradients_exact(cifar_small, depth, batch_norm):
    """The reference path (one kernel call per operation) passes the same check as the
    fused step the trainer uses."""
    X, y = cifar_small
    net = fastmlp.Network(NETS[depth], batch_norm=batch_norm, dtype=np.float64, seed=3)
    net.fused = False
    assert_exact(fastmlp.gradcheck(net, X, y, lam=0.05), net)


@pytest.mark.parametrize("batch_norm", [True, False])
def test_gradients_exact_on_synthetic_data(batch_norm):
    """The same check without ../shared, so it always runs."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((16, 30)), rng.integers(0, 7, 16)
    net = fastmlp.Network([30, 20, 15, 7], batch_norm=batch_norm, dtype=np.float64, seed=1)
    assert_exact(fastmlp.gradcheck(net, X, y, lam=0.01), net)


def test_float32_network_is_checked_in_float64(cifar_small):
    X, y = cifar_small
    net = fastmlp.Network(NETS[2], batch_norm=True, dtype=np.float32, seed=0)
    theta = net.theta.copy()
    rows = fastmlp.gradcheck(net, X, y, lam=0.01)
    assert_exact(rows, net)
    np.testing.assert_array_equal(net.theta, theta)      # the caller's network is untouched


def test_subset_of_entries_is_seeded(cifar_small):
    X, y = cifar_small
    net = fastmlp.Network(NETS[2], dtype=np.float64)
    a = fastmlp.gradcheck(net, X, y, max_entries=100, seed=5)
    b = fastmlp.gradcheck(net, X, y, max_entries=100, seed=5)
    assert a == b
    assert a[0]["n_checked"] <= 100 and a[1]["n_checked"] == 50   # b1 (50 entries) in full


def test_check_catches_the_constant_statistics_shortcut(cifar_small, monkeypatch):
    """A backward that treats the batch mean and variance as constants (dX = gamma*inv_std*dY),
    the mistake behind the study's 1e-2 BN errors, must fail the check by a wide margin."""
    from fastmlp import unfused
    from fastmlp.kernels import batchnorm

    def shortcut(dX, dgamma, dbeta, dY, Xhat, inv_std, gamma, Y, relu):
        batchnorm.bn_backward(dX, dgamma, dbeta, dY, Xhat, inv_std, gamma, Y, relu)
        g = np.where(Y > 0, dY, 0) if relu else dY
        dX[...] = gamma * inv_std * g

    monkeypatch.setattr(unfused, "bn_backward", shortcut)
    X, y = cifar_small
    net = fastmlp.Network(NETS[3], batch_norm=True, dtype=np.float64)
    net.fused = False             # the per-kernel path, where the shortcut is swapped in
    rows = {r["param"]: r for r in fastmlp.gradcheck(net, X, y)}
    assert rows["W1"]["rel_error"] > 1e-3
    assert rows["W3"]["rel_error"] < 1e-7          # layers above the first BN stay right


def test_kinks_are_detected_and_excluded():
    """Put a hidden pre-activation within h of 0: the entry whose nudge crosses it is left
    out of the comparison and counted."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((4, 3)), np.array([0, 1, 0, 1])
    net = fastmlp.Network([3, 4, 2], batch_norm=False, dtype=np.float64, seed=0)
    z = X @ net["W1"] + net["b1"]
    net["b1"][0] -= z[0, 0] - 1e-7 * np.sign(z[0, 0])    # unit 0 of row 0 now sits at +-1e-7
    if np.all(X @ net["W1"] + net["b1"] <= 0, axis=0)[0]:
        pytest.skip("unit inactive for every row")
    rows = {r["param"]: r for r in fastmlp.gradcheck(net, X, y)}
    assert rows["b1"]["n_kinks"] == 1
    assert rows["b1"]["rel_error"] <= 1e-7


def test_format_table(cifar_small):
    X, y = cifar_small
    net = fastmlp.Network(NETS[2], dtype=np.float64)
    text = fastmlp.format_table(fastmlp.gradcheck(net, X, y, max_entries=20))
    lines = text.splitlines()
    assert lines[0].startswith("| layer | param") and len(lines) == 2 + len(net.param_names)
    assert "| 1 | W1 | 50x50 | 20 |" in text
    assert "| 1 | b1 | 50 | 20 | 0 | (grad = 0) |" in text
