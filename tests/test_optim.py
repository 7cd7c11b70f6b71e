"""Optimisers: the fused update kernel against the NumPy twin (tests/reference.py) and against
PyTorch's optimiser of the same name (skipped where torch is not installed), step for step with
the same gradients in, float64, 1e-12 relative; the fused training step against the per-kernel
path; hyperparameter validation."""
import numpy as np
import pytest

import fastmlp
from fastmlp import optim
from fastmlp.kernels import optim as k
from fastmlp.kernels._config import serial_twin
from fastmlp.schedules import Cyclic

import reference as ref

CASES = [("sgd", {}), ("momentum", {"momentum": 0.9}), ("momentum", {"momentum": 0.8, "nesterov": True}),
         ("adagrad", {}), ("adam", {}), ("adam", {"beta1": 0.8, "beta2": 0.99, "eps": 1e-6})]
STEPS = 25


def trajectory(rng, P=5000):
    theta0 = rng.standard_normal(P)
    grads = [rng.standard_normal(P) * 10.0 ** rng.uniform(-3, 1) for _ in range(STEPS)]
    grads[3][:100] = 0.0                      # exact zeros (AdaGrad's and Adam's 0 / eps)
    etas = Cyclic(1e-5, 1e-1, 5, 3).eta(np.arange(STEPS))
    return theta0, grads, etas


def run_fastmlp(name, kw, theta0, grads, etas, kernel=k.update, dtype=np.float64):
    opt = optim.make(name, **kw).bind(len(theta0), dtype)
    theta = theta0.astype(dtype)
    for t, (g, eta) in enumerate(zip(grads, etas)):
        kernel(theta, g.astype(dtype), opt.state, opt.kind, dtype(eta), opt.hyper(t))
    return theta


@pytest.mark.parametrize("name, kw", CASES)
def test_update_kernel_matches_numpy_twin(name, kw):
    theta0, grads, etas = trajectory(np.random.default_rng(0))
    got = run_fastmlp(name, kw, theta0, grads, etas)
    eps = kw.get("eps", 1e-10 if name == "adagrad" else 1e-8)
    want = ref.optimizer_steps(name, theta0, grads, etas, **{**kw, "eps": eps})
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    assert not np.array_equal(got, theta0)


@pytest.mark.parametrize("name, kw", CASES)
def test_update_kernel_matches_pytorch(name, kw):
    torch = pytest.importorskip("torch", reason="PyTorch is an optional extra: pip install torch==2.13.0")
    theta0, grads, etas = trajectory(np.random.default_rng(1))
    got = run_fastmlp(name, kw, theta0, grads, etas)
    p = torch.nn.Parameter(torch.tensor(theta0, dtype=torch.float64))
    if name == "sgd":
        opt = torch.optim.SGD([p], lr=1.0)
    elif name == "momentum":
        opt = torch.optim.SGD([p], lr=1.0, momentum=kw["momentum"], nesterov=kw.get("nesterov", False))
    elif name == "adagrad":
        opt = torch.optim.Adagrad([p], lr=1.0)
    else:
        opt = torch.optim.Adam([p], lr=1.0, betas=(kw.get("beta1", 0.9), kw.get("beta2", 0.999)),
                               eps=kw.get("eps", 1e-8))
    for g, eta in zip(grads, etas):
        for group in opt.param_groups:
            group["lr"] = float(eta)           # the cyclical schedule drives every optimiser
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    want = p.detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name, kw", CASES)
def test_serial_twin_and_range_updates_equal_parallel_build(name, kw):
    """The step updates each layer's slice with update_range; the whole-buffer kernel, its serial
    twin and slice-by-slice updates give the same bits."""
    theta0, grads, etas = trajectory(np.random.default_rng(2), P=9001)
    a = run_fastmlp(name, kw, theta0, grads, etas)
    b = run_fastmlp(name, kw, theta0, grads, etas, kernel=serial_twin(k.update))

    def by_slices(theta, g, state, kind, eta, hp):
        P = len(theta)
        for lo, hi in ((0, 17), (17, 5000), (5000, P)):
            k.update_range(theta, g, state[:P], state[P:], lo, hi, kind, eta, hp)
    c = run_fastmlp(name, kw, theta0, grads, etas, kernel=by_slices)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, kw", CASES)
def test_fused_step_updates_like_the_per_kernel_path(name, kw, dtype):
    """Whole training steps: the fused step (first layer updated inside its weight-gradient
    blocks, the others layer by layer) against backward-then-update-everything.  Compared
    without batch norm: in front of BN a bias's gradient is rounding noise, which AdaGrad and
    Adam scale up to a full step, so the two paths' biases there differ by design."""
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((100, 3072)).astype(dtype), rng.integers(0, 10, 100)
    fused = fastmlp.Network([3072, 50, 50, 10], batch_norm=False, dtype=dtype, seed=0)
    per_kernel = fused.copy()
    per_kernel.fused = False
    opts = [optim.make(name, **kw).bind(fused.theta.size, fused.dtype) for _ in range(2)]
    for t in range(4):
        a = fused._train_step(X, y, 0.005, dtype(0.01), None, opts[0], t)
        b = per_kernel._train_step(X, y, 0.005, dtype(0.01), None, opts[1], t)
        assert a == pytest.approx(b, rel=1e-5 if dtype == np.float32 else 1e-12)
    diff = np.abs(fused.theta - per_kernel.theta)
    if name in ("adagrad", "adam") and dtype == np.float32:
        # they divide each step by the gradient's own size, so a float32 rounding difference in
        # a near-zero gradient can move that parameter by up to a step (eta): bound the typical
        # difference tightly and the largest by the steps taken
        assert np.median(diff) < 1e-7 and diff.max() < 4 * 0.01
    else:
        tol = {np.float32: 1e-6, np.float64: 1e-11}[dtype]
        assert diff.max() < tol * 0.01 * 4 + tol * np.abs(per_kernel.theta).max()


def test_training_with_each_optimizer_learns(tmp_path):
    """Every optimiser, driven by the cyclical schedule, brings the training loss down on the
    embedded Fashion-MNIST sample."""
    from fastmlp.config import TrainConfig
    from fastmlp.run import load_data, train
    splits = None
    for name, eta_max in (("sgd", 0.1), ("momentum", 0.02), ("adagrad", 0.05), ("adam", 0.005)):
        config = TrainConfig(dataset="sample", optimizer=name, eta_max=eta_max, ns=20, cycles=1,
                             out=str(tmp_path / name))
        splits = splits or load_data(config)
        result = train(config, splits)
        losses = result.history.column("train_loss")
        assert losses[-1] < 0.75 * losses[0], (name, losses)
        assert result.metrics["config"]["optimizer"] == name


@pytest.mark.parametrize("bad, match", [
    (dict(name="rmsprop"), "optimizer must be one of sgd, momentum, adagrad, adam; got 'rmsprop'"),
    (dict(name="momentum", momentum=1.0), r"momentum must be a number in \(0.0, 1.0\); got 1.0"),
    (dict(name="adam", beta1=-0.1), r"beta1 must be a number in \[0.0, 1.0\); got -0.1"),
    (dict(name="adam", beta2=1.5), r"beta2 must be a number in \[0.0, 1.0\); got 1.5"),
    (dict(name="adagrad", eps=float("nan")), r"eps must be a number in \(0.0, 1.0\); got nan"),
    (dict(name="adam", eps=0.0), r"eps must be a number in \(0.0, 1.0\); got 0.0"),   # 0 / 0 where v = 0
])
def test_bad_hyperparameters_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        optim.make(**bad)


def test_config_refuses_bad_optimizer_settings():
    from fastmlp.config import TrainConfig
    with pytest.raises(ValueError, match="optimizer must be one of"):
        TrainConfig(optimizer="lbfgs").validate()
    with pytest.raises(ValueError, match="beta2 must be"):
        TrainConfig(optimizer="adam", beta2=2.0).validate()
