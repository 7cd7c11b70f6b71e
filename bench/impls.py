"""The training step of the study's networks in three implementations, for side-by-side timing:
fastmlp (fused step), a textbook NumPy implementation and PyTorch eager (optional).

All three do the same work per step: Linear -> BatchNorm -> ReLU hidden layers (or Linear ->
ReLU), softmax cross-entropy, cost = loss + lam * sum ||W||^2, plain SGD (or, with `rule`,
another rule of bench/rules.py).  Each `make_*` returns (step, model) where step() runs one
update on the fixed batch and returns its loss.
"""
import contextlib
import random
import time

import numpy as np

import rules

NETS = {
    "A": ([3072, 50, 50, 10], True),
    "B": ([3072, 50, 30, 20, 20, 10, 10, 10, 10, 10], True),
    "C": ([3072, 50, 50, 10], False),
}
LAM, ETA = 0.005, 0.01
# seconds each implementation runs untimed before its timed block: the thread pools of the one
# that ran before (OpenBLAS's spin for ~0.1 s after their last call) would otherwise be timed
# as part of whichever comes next (measured: fastmlp right after NumPy 2.7x slower)
WARM = 0.15


def timed(step, single_blas, steps=1, seconds=0.0):
    """Seconds per call of step(): WARM seconds untimed, then at least `steps` calls and
    `seconds` seconds timed.  single_blas: fastmlp's own calls, with the BLAS held at one thread
    as its training loop holds it."""
    from fastmlp.threads import blas_single_threaded
    with blas_single_threaded() if single_blas else contextlib.nullcontext():
        until = time.perf_counter() + WARM
        while time.perf_counter() < until:
            step()
        n, tic = 0, time.perf_counter()
        while n < steps or time.perf_counter() - tic < seconds:
            step()
            n += 1
        return (time.perf_counter() - tic) / n


def interleaved(runs, rounds, **block):
    """Median seconds per call of each of runs {name: (step, single_blas)}: every round runs each
    one timed(**block) once, in a fresh random order."""
    for step, single in runs.values():          # compile, fill caches and allocators
        timed(step, single, steps=3)
    times = {name: [] for name in runs}
    order = list(runs)
    for _ in range(rounds):
        random.shuffle(order)
        for name in order:
            times[name].append(timed(*runs[name], **block))
    return {name: float(np.median(t)) for name, t in times.items()}


def host_gemm(threads, n=2048, repeats=5):
    """This machine's own float32 GEMM rate in GFLOP/s: NumPy's BLAS on an n x n x n product with
    `threads` threads, the median of `repeats`.  Printed beside a table so its ratios can be read
    against what the host does at that moment (the same 2 cores ran it at 200-450 GFLOP/s on
    different hosts, and one host drifts by up to 1.5x within minutes)."""
    from threadpoolctl import threadpool_limits
    a = np.ones((n, n), np.float32)
    with threadpool_limits(threads, user_api="blas"):
        a @ a
        times = []
        for _ in range(repeats):
            tic = time.perf_counter()
            a @ a
            times.append(time.perf_counter() - tic)
    return 2 * n ** 3 / float(np.median(times)) / 1e9


def host_gemm_line(threads, when=""):
    """host_gemm as the line the benchmarks print (`when`: e.g. " before the table")."""
    return (f"host float32 GEMM (NumPy's BLAS, 2048^3, {threads} threads){when}: "
            f"{host_gemm(threads):.0f} GFLOP/s")


def blas_lines():
    """The BLAS libraries loaded, each with the kernel it chose, and a warning for each
    environment variable that pins OpenBLAS's kernel (benchmarks print these above a table)."""
    import os
    from pathlib import Path
    import threadpoolctl
    import scipy.linalg.cython_blas  # noqa: F401  the BLAS fastmlp's kernels call
    lines = []
    for info in threadpoolctl.threadpool_info():
        if info["user_api"] == "blas":
            lines.append(f"BLAS {info['internal_api']} {info.get('version')} kernel "
                         f"{info.get('architecture')} ({Path(info['filepath']).name})")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            lines.append(f"WARNING: {var}={os.environ[var]} pins OpenBLAS to that kernel (not what a "
                         f"user's machine runs); rerun with `env -u OPENBLAS_CORETYPE -u "
                         f"OPENBLAS_L2_SIZE`.")
    return lines


def batch(n, d=3072, classes=10, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(dtype), rng.integers(0, classes, n)


def net_spec(net):
    """(sizes, batch_norm) of a net: a name of NETS or such a pair itself."""
    return NETS[net] if isinstance(net, str) else (list(net[0]), bool(net[1]))


def make_fastmlp(net_name, X, y, fused=True, rule="sgd"):
    import fastmlp
    sizes, bn = net_spec(net_name)
    net = fastmlp.Network(sizes, batch_norm=bn, dtype=X.dtype, seed=0)
    net.fused = fused
    opt = rules.fastmlp_rule(rule)
    opt.bind(net.theta.size, net.theta.dtype)
    steps = [0]

    def step():         # t counts from 0 (fastmlp.optim.Optimizer.hyper)
        steps[0] += 1
        return net._train_step(X, y, LAM, ETA, None, opt, steps[0] - 1)
    return step, net


class NumpyMLP:
    """A textbook vectorised NumPy implementation (BLAS products, NumPy element-wise ops)."""

    def __init__(self, sizes, bn, seed=0, dtype=np.float32, rule="sgd"):
        self.opt = rules.NumpyRule(rule)
        rng = np.random.default_rng(seed)
        self.W = [(rng.standard_normal((i, o)) * np.sqrt(2 / i)).astype(dtype)
                  for i, o in zip(sizes[:-1], sizes[1:])]
        self.b = [np.zeros(o, dtype) for o in sizes[1:]]
        self.g = [np.ones(o, dtype) for o in sizes[1:-1]]
        self.be = [np.zeros(o, dtype) for o in sizes[1:-1]]
        self.bn = bn

    def step(self, X, y, lam=LAM, eta=ETA):
        k, n = len(self.W), X.shape[0]
        hs, caches = [X], []
        for l in range(k - 1):
            z = hs[-1] @ self.W[l] + self.b[l]
            if self.bn:
                mu, var = z.mean(axis=0), z.var(axis=0)
                inv = 1 / np.sqrt(var + 1e-5)
                xh = (z - mu) * inv
                s = self.g[l] * xh + self.be[l]
                caches.append((xh, inv))
            else:
                s = z
            hs.append(np.maximum(s, 0))
        z = hs[-1] @ self.W[-1] + self.b[-1]
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        p = e / e.sum(axis=1, keepdims=True)
        loss = -np.log(p[np.arange(n), y]).mean()
        g = p
        g[np.arange(n), y] -= 1
        g /= n
        opt = self.opt
        opt.begin()
        for l in range(k - 1, -1, -1):
            dW = hs[l].T @ g + 2 * lam * self.W[l]
            db = g.sum(axis=0)
            if l > 0:
                dh = g @ self.W[l].T
                dh *= hs[l] > 0
                if self.bn:
                    xh, inv = caches[l - 1]
                    dg, dbe = (dh * xh).sum(axis=0), dh.sum(axis=0)
                    g = self.g[l - 1] * inv / n * (n * dh - dbe - xh * dg)
                    opt.apply(("g", l), self.g[l - 1], dg, eta)
                    opt.apply(("be", l), self.be[l - 1], dbe, eta)
                else:
                    g = dh
            opt.apply(("W", l), self.W[l], dW, eta)
            opt.apply(("b", l), self.b[l], db, eta)
        return loss


    @classmethod
    def like(cls, net, rule="sgd"):
        """The same weights as a fastmlp Network."""
        m = cls(net.sizes, net.batch_norm, dtype=net.dtype, rule=rule)
        k = net.n_layers
        m.W = [net[f"W{l}"].copy() for l in range(1, k + 1)]
        m.b = [net[f"b{l}"].copy() for l in range(1, k + 1)]
        if net.batch_norm:
            m.g = [net[f"gamma{l}"].copy() for l in range(1, k)]
            m.be = [net[f"beta{l}"].copy() for l in range(1, k)]
        return m


def make_numpy(net_name, X, y, like=None, rule="sgd"):
    sizes, bn = net_spec(net_name)
    m = (NumpyMLP.like(like, rule) if like is not None
         else NumpyMLP(sizes, bn, dtype=X.dtype, rule=rule))
    return (lambda: m.step(X, y)), m


def make_torch(net_name, X, y, like=None, rule="sgd"):
    """PyTorch eager with torch.optim.SGD (or `rule`'s torch.optim); the L2 term is part of the
    loss, as in the study.
    like: a fastmlp Network whose weights to start from."""
    import torch
    sizes, bn = net_spec(net_name)
    layers = []
    for i, o in zip(sizes[:-2], sizes[1:-1]):
        layers.append(torch.nn.Linear(i, o))
        if bn:
            layers.append(torch.nn.BatchNorm1d(o, eps=1e-5, momentum=0.1))
        layers.append(torch.nn.ReLU())
    layers.append(torch.nn.Linear(sizes[-2], sizes[-1]))
    model = torch.nn.Sequential(*layers)
    weights = [m.weight for m in model if isinstance(m, torch.nn.Linear)]
    if like is not None:
        with torch.no_grad():
            for l, lin in enumerate(m for m in model if isinstance(m, torch.nn.Linear)):
                lin.weight.copy_(torch.from_numpy(like[f"W{l + 1}"].T.copy()))
                lin.bias.copy_(torch.from_numpy(like[f"b{l + 1}"]))
    opt = rules.torch_rule(rule, model.parameters(), ETA)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(np.asarray(y, np.int64))
    lossf = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = lossf(model(Xt), yt)
        cost = loss + LAM * sum((w * w).sum() for w in weights)
        cost.backward()
        opt.step()
        return loss.item()
    return step, model


def make_jax(net_name, X, y, like=None, rule="sgd"):
    """JAX as its users write it at its best: the whole step (forward, grad, the update of
    `rule`) under one `jax.jit`, parameters, the rule's memory and the batch on the device, the
    old ones donated.
    like: a fastmlp Network whose weights to start from."""
    import jax
    import jax.numpy as jnp
    sizes, bn = net_spec(net_name)
    k = len(sizes) - 1
    src = like if like is not None else NumpyMLP(sizes, bn, dtype=X.dtype)
    if like is not None:
        W = [like[f"W{l}"] for l in range(1, k + 1)]
        b = [like[f"b{l}"] for l in range(1, k + 1)]
        g = [like[f"gamma{l}"] for l in range(1, k)] if bn else []
        be = [like[f"beta{l}"] for l in range(1, k)] if bn else []
    else:
        W, b, g, be = src.W, src.b, src.g, src.be
    params = jax.device_put({"W": [np.array(w) for w in W], "b": [np.array(v) for v in b],
                             "g": [np.array(v) for v in g], "be": [np.array(v) for v in be]})
    Xd, yd = jax.device_put(X), jax.device_put(np.asarray(y, np.int32))

    def cost(p, X, y):
        h = X
        for l in range(k - 1):
            z = h @ p["W"][l] + p["b"][l]
            if bn:
                mu, var = z.mean(axis=0), z.var(axis=0)
                z = p["g"][l] * (z - mu) * jax.lax.rsqrt(var + 1e-5) + p["be"][l]
            h = jax.nn.relu(z)
        z = h @ p["W"][-1] + p["b"][-1]
        loss = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z), y[:, None], axis=1))
        return loss + LAM * sum(jnp.sum(w * w) for w in p["W"]), loss

    init, apply = rules.jax_rule(rule, ETA)

    def update(s, X, y):
        p, mem = s
        (_, loss), grads = jax.value_and_grad(cost, has_aux=True)(p, X, y)
        return apply(p, grads, mem), loss

    update = jax.jit(update, donate_argnums=0)
    state = {"s": (params, init(params))}

    def step():
        state["s"], loss = update(state["s"], Xd, yd)
        return float(loss)
    return step, state


def jax_available():
    try:
        import jax  # noqa: F401
        return True
    except ImportError:
        return False


def torch_available():
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        return False


# ---- one epoch of the study (45,000 training rows, 5,000 validation rows) ---------------------
def epoch_data(n_train=45000, n_val=5000, seed=0):
    X, y = batch(n_train + n_val, seed=seed)
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def epoch_fastmlp(X, y, Xv, yv, batch_size=100):
    """fastmlp's Trainer for exactly one epoch (n_s = half an epoch, one cycle): the epoch's
    shuffle, every step, and its evaluations of train and validation loss and accuracy (at
    step 0 and at the end of the epoch, on all training rows)."""
    import fastmlp
    from fastmlp.train import Trainer
    steps = X.shape[0] // batch_size
    config = fastmlp.TrainConfig(sizes="3072-50-50-10", ns=steps // 2, cycles=1, batch=batch_size,
                                 train_eval=0)
    net = fastmlp.Network([3072, 50, 50, 10], batch_norm=True, seed=0)

    def run():
        trainer = Trainer(net, config).fit(X, y, Xv, yv)
        return trainer.history_.evals[-1]
    return run


def epoch_torch(X, y, Xv, yv, batch_size=100):
    """The same epoch in PyTorch eager: a randperm shuffle, the steps, and evaluation (eval
    mode, no_grad) of loss and accuracy on all training and validation rows at the start and
    the end of the epoch."""
    import torch
    sizes, _ = NETS["A"]
    model = torch.nn.Sequential(torch.nn.Linear(3072, 50), torch.nn.BatchNorm1d(50), torch.nn.ReLU(),
                                torch.nn.Linear(50, 50), torch.nn.BatchNorm1d(50), torch.nn.ReLU(),
                                torch.nn.Linear(50, 10))
    weights = [m.weight for m in model if isinstance(m, torch.nn.Linear)]
    opt = torch.optim.SGD(model.parameters(), lr=ETA)
    lossf = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(np.asarray(y, np.int64))
    Xvt, yvt = torch.from_numpy(Xv), torch.from_numpy(np.asarray(yv, np.int64))
    gen = torch.Generator().manual_seed(0)
    steps = X.shape[0] // batch_size

    def evaluate():
        model.eval()
        with torch.no_grad():
            out = []
            for A, b in ((Xt, yt), (Xvt, yvt)):
                scores = model(A)
                out += [lossf(scores, b).item(), (scores.argmax(1) == b).float().mean().item()]
        model.train()
        return out

    def run():
        evaluate()
        order = torch.randperm(X.shape[0], generator=gen)
        Xs, ys = Xt[order], yt[order]
        for s in range(steps):
            xb, yb = Xs[s * batch_size:(s + 1) * batch_size], ys[s * batch_size:(s + 1) * batch_size]
            opt.zero_grad(set_to_none=True)
            loss = lossf(model(xb), yb)
            (loss + LAM * sum((w * w).sum() for w in weights)).backward()
            opt.step()
        return evaluate()
    return run


# ---- the bonus toolbox: dropout, augmentation, optimisers through the Trainer ----------------
BONUS_STEPS = 50


def bonus_data(n=BONUS_STEPS * 100, seed=0):
    """CIFAR-shaped standardised rows and what the augmentation needs to see them as images:
    image_shape and the raw mean and std (raw = X * std + mean, pixels around 0..255)."""
    from types import SimpleNamespace
    X, y = batch(n, seed=seed)
    images = SimpleNamespace(image_shape=(3, 32, 32), mean=np.full(3072, 120.0), std=np.full(3072, 60.0),
                             label_names=[str(c) for c in range(10)], source="bench")
    return X, y, images


def bonus_steps(data, **changes):
    """BONUS_STEPS training steps of net A at batch 100 through the Trainer (one epoch of
    data, one cycle; evaluation on 100 rows only), with TrainConfig `changes`; returns a callable
    that runs them and returns the last batch loss."""
    import fastmlp
    from fastmlp.train import Trainer
    X, y, images = data
    config = fastmlp.TrainConfig(sizes="3072-50-50-10", ns=BONUS_STEPS // 2, cycles=1, batch=100,
                                 train_eval=100, eta_max=0.01 if changes.get("optimizer") in
                                 ("adam", "adagrad") else 0.1, **changes)
    net = fastmlp.Network([3072, 50, 50, 10], batch_norm=True, seed=0, dropout=config.dropout)

    def run():
        trainer = Trainer(net, config, data=images).fit(X, y)
        return float(trainer.history_.batch_loss[-1])
    return run
