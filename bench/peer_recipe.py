"""Peer check: does fastmlp train the study's recipe as well as an independent PyTorch version of it?

The recipe (DD2424 Assignment 3): in-50-50-out, Linear -> BatchNorm -> ReLU per hidden layer, last
Linear -> softmax cross-entropy (`--hidden 50-30-20-20-10-10-10-10` for other hidden widths, e.g.
the depth study's 9-layer net; `--no-batch-norm` for Linear -> ReLU hidden layers); He init N(0, 2/fan_in) weights, zero biases, BN gamma=1 beta=0;
cost = mean cross-entropy + lam * sum ||W||^2 over the weight matrices only (lam = 0.005); plain
mini-batch SGD (no momentum); triangular cyclical learning rate eta_min=1e-5 .. eta_max=1e-1 with
n_s = 5 epochs = 5 * (n_train // 100) update steps, 2 cycles, batch 100; a fresh shuffle each epoch
with the last partial batch dropped; BN eps 1e-5, running statistics run = 0.9 run + 0.1 batch;
evaluation with the running statistics.

fastmlp is trained through its library API (TrainConfig + Network + Trainer, no checkpoint file).
The PyTorch peer shares nothing with it but the standardised splits from fastmlp.data.load_dataset
(the data layer is not what is compared): its own parameters, init RNG (torch.Generator), shuffles
(torch.randperm), schedule, loop and BN.

Without BN (`--no-batch-norm`) both sides are Linear -> ReLU with the same He init and the same
L2 term; the hidden biases then get a real gradient.

BN in the peer: by default it is computed by hand (`--torch-bn manual`) so that, like fastmlp, the
running variance is updated with the *biased* batch variance.  `--torch-bn builtin` uses
torch.nn.BatchNorm1d(momentum=0.1) instead, which updates the running variance with the unbiased
batch variance (a factor N/(N-1) = 100/99 at batch 100, i.e. ~1% larger running variances, a
~0.5% change of the normalised activations at evaluation time).

The two implementations run interleaved per seed: fastmlp seed s, torch seed s, fastmlp seed s+1...
Seeds do not give the two the same initial weights or shuffles: the comparison is of mean test
accuracies over seeds.  `--check-step` first compares one training step of both on the same
initial weights and batch (loss, every gradient, BN running statistics).  `--torch-rng fastmlp`
makes the peer start from fastmlp's initial weights and use fastmlp's epoch shuffles: a paired
diagnostic (the trajectories agree to float32 rounding until a ReLU pre-activation within rounding
of 0 flips sign in one of them, after which they drift apart like any two chaotic SGD runs).

    python bench/peer_recipe.py --dataset cifar-subset --seeds 0 1 2 3 4 --impl both --threads 2
    python bench/peer_recipe.py --dataset fashion-mnist --seeds 0 1 2 --impl both --threads 2
    python bench/peer_recipe.py --dataset fashion-mnist --n-val 6000 --hidden 50-30-20-20-10-10-10-10 \
        --no-batch-norm --seeds 0 1 2 --threads 1

JAX (`--impl jax`, or `--impl fastmlp torch jax`, or `--impl all`; `both` stays fastmlp torch):
bench/recipe_jax.py, the same recipe as a JAX user writes it at their best (data on the device
once, the whole step under one `jax.jit` with parameters and BN running statistics donated, the
batch gathered on the device from an on-device epoch permutation, eta an argument; biased running
variance as fastmlp), with its own He init and shuffles from jax.random.  `--jax-loop step`: one
jit call per update step; `--jax-loop scan` (default): one per epoch, `jax.lax.scan` over its
steps; `--jax-loop step scan`: a run of each per seed, reported as jax-step and jax-scan.  JAX is
compiled in an untimed warm-up on the run's shapes; it runs on --threads cores
(recipe_jax.limit_threads: the process is pinned to them before JAX starts).  Every run reports
`seconds_train`, the training loop alone (shuffles and update steps; no evaluation, no
compilation), and the summary compares those.

    python bench/peer_recipe.py --dataset fashion-mnist --seeds 0 1 2 --impl all \
        --jax-loop step scan --threads 2

The one-cycle recipe (784-512-256-10 with dropout, Nesterov SGD, OneCycleLR, all 60,000
Fashion-MNIST training rows; fastmlp, PyTorch and JAX) is bench/recipe_onecycle.py, reachable
from here; every flag after `--recipe onecycle` is its own (see its docstring, or add --help):

    python bench/peer_recipe.py --recipe onecycle --seeds 0 1 2 --impl fastmlp torch jax --threads 2

`--n-val 6000` on Fashion-MNIST is the split `fastmlp study` uses there (a tenth of the 60,000
training rows); the default here, 5000, is the one of the first runs of this check.

Timing: with --threads 2 on a 2-core machine, any other busy process makes both Numba's and
PyTorch's thread pools wait on a descheduled thread (seen here: 30-100x slower steps); the load
average is printed with every run so contaminated timings can be recognised.
"""
import argparse
import os
import statistics
import sys
import time

import numba
import numpy as np

DEFAULT_CIFAR_SUBSET = "/work/shared/data/cifar10-subset.npz"
HIDDEN = (50, 50)                   # default hidden widths (--hidden)
LAM = 0.005
ETA_MIN, ETA_MAX = 1e-5, 1e-1
NS_EPOCHS, CYCLES, BATCH = 5, 2, 100
BN_EPS, BN_MOMENTUM = 1e-5, 0.1     # run = (1 - 0.1) * run + 0.1 * batch


# ---------------------------------------------------------------------------------------------- data
def load_splits(dataset, path, n_val=None):
    from fastmlp.data import load_dataset
    if dataset == "cifar-subset":
        return load_dataset(path or DEFAULT_CIFAR_SUBSET, n_val=500 if n_val is None else n_val)
    return load_dataset(path or "fashion-mnist", n_val=5000 if n_val is None else n_val)


def parse_hidden(text):
    """'50-30-20' -> (50, 30, 20): the hidden widths, inputs and classes excluded."""
    try:
        widths = tuple(int(w) for w in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"hidden widths joined by '-', e.g. 50-50; got {text!r}")
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"hidden widths must be positive integers; got {text!r}")
    return widths


def arch_name(hidden, batch_norm):
    return f"in-{'-'.join(map(str, hidden))}-out ({len(hidden) + 1} layers), " + \
        ("Linear -> BN -> ReLU" if batch_norm else "Linear -> ReLU (no BN)")


def n_steps(n_train):
    spe = n_train // BATCH
    ns = NS_EPOCHS * spe
    return spe, ns, 2 * ns * CYCLES


# ------------------------------------------------------------------------------------------ fastmlp
def fastmlp_config(seed, threads, hidden=HIDDEN, batch_norm=True):
    from fastmlp import TrainConfig
    return TrainConfig(sizes="auto-" + "-".join(map(str, hidden)) + "-auto", batch_norm=batch_norm, init="he", dtype="float32",
                       lam=LAM, schedule="cyclic", eta_min=ETA_MIN, eta_max=ETA_MAX,
                       ns_epochs=float(NS_EPOCHS), cycles=CYCLES, batch=BATCH, seed=seed,
                       threads=threads)


def run_fastmlp(splits, seed, threads, hidden=HIDDEN, batch_norm=True):
    from fastmlp import Network, Trainer
    config = fastmlp_config(seed, threads, hidden, batch_norm)
    numba.set_num_threads(threads)
    tic = time.perf_counter()
    sizes = config.check_data(len(splits.X_train), splits.X_train.shape[1], splits.n_classes)
    net = Network(sizes, config.batch_norm, config.init, config.dtype, config.seed)
    trainer = Trainer(net, config, checkpoint_path=None, data=splits)
    trainer.fit(splits.X_train, splits.y_train, splits.X_val, splits.y_val)
    acc = net.accuracy(splits.X_test, splits.y_test)
    wall = time.perf_counter() - tic
    spe, ns, total = n_steps(len(splits.X_train))
    assert trainer.step_ == total and trainer.steps_per_epoch_ == spe, (trainer.step_, total)
    return {"acc": acc, "val_acc": net.accuracy(splits.X_val, splits.y_val), "seconds": wall,
            "seconds_train": trainer.seconds_["train"], "seconds_eval": trainer.seconds_["eval"],
            "final_batch_loss": float(trainer.history_.batch_loss[-1]), "steps": trainer.step_}


def warm_up_fastmlp(splits, threads, hidden=HIDDEN, batch_norm=True):
    """Load / compile the Numba kernels outside the timed runs (a few steps on 300 rows)."""
    from fastmlp import Network, TrainConfig, Trainer
    X, y = splits.X_train[:300], splits.y_train[:300]
    cfg = TrainConfig(sizes="auto-" + "-".join(map(str, hidden)) + "-auto", batch_norm=batch_norm,
                      ns=2, cycles=1, seed=0, threads=threads, train_eval=0)
    net = Network(cfg.check_data(300, X.shape[1], splits.n_classes), batch_norm, seed=0)
    Trainer(net, cfg).fit(X, y, splits.X_val[:50], splits.y_val[:50])
    net.accuracy(splits.X_test[:50], splits.y_test[:50])


# -------------------------------------------------------------------------------------------- torch
class TorchMLP:
    """The recipe's network in PyTorch: explicit parameters, x @ W + b, BN by hand or built in
    (or none: batch_norm=False gives Linear -> ReLU hidden layers)."""

    def __init__(self, sizes, seed, bn="manual", batch_norm=True):
        import torch
        self.torch, self.bn, self.batch_norm = torch, bn, batch_norm
        g = torch.Generator().manual_seed(10_000 + seed)
        self.W, self.b, self.gamma, self.beta = [], [], [], []
        self.run_mean, self.run_var, self.bn_modules = [], [], []
        for k in range(len(sizes) - 1):
            fan_in, fan_out = sizes[k], sizes[k + 1]
            W = torch.randn(fan_in, fan_out, generator=g, dtype=torch.float32) * (2.0 / fan_in) ** 0.5
            self.W.append(W.requires_grad_())
            self.b.append(torch.zeros(fan_out, requires_grad=True))
            if batch_norm and k < len(sizes) - 2:
                if bn == "builtin":
                    m = torch.nn.BatchNorm1d(fan_out, eps=BN_EPS, momentum=BN_MOMENTUM)
                    self.bn_modules.append(m)
                    self.gamma.append(m.weight)
                    self.beta.append(m.bias)
                else:
                    self.gamma.append(torch.ones(fan_out, requires_grad=True))
                    self.beta.append(torch.zeros(fan_out, requires_grad=True))
                    self.run_mean.append(torch.zeros(fan_out))
                    self.run_var.append(torch.ones(fan_out))

    def parameters(self):
        return self.W + self.b + self.gamma + self.beta

    def _bn(self, k, z, train):
        torch = self.torch
        if self.bn == "builtin":
            m = self.bn_modules[k]
            m.train(train)
            return m(z)
        if train:
            mu = z.mean(dim=0)
            var = z.var(dim=0, unbiased=False)
            with torch.no_grad():
                self.run_mean[k].mul_(1 - BN_MOMENTUM).add_(mu, alpha=BN_MOMENTUM)
                self.run_var[k].mul_(1 - BN_MOMENTUM).add_(var, alpha=BN_MOMENTUM)
        else:
            mu, var = self.run_mean[k], self.run_var[k]
        return self.gamma[k] * (z - mu) / torch.sqrt(var + BN_EPS) + self.beta[k]

    def scores(self, x, train):
        h = x
        for k in range(len(self.W) - 1):
            z = h @ self.W[k] + self.b[k]
            h = self.torch.relu(self._bn(k, z, train) if self.batch_norm else z)
        return h @ self.W[-1] + self.b[-1]

    def cost(self, x, y):
        """Training-mode (mean cross-entropy, cost with the L2 term on the weight matrices only)."""
        torch = self.torch
        loss = torch.nn.functional.cross_entropy(self.scores(x, True), y)
        return loss, loss + LAM * sum((W * W).sum() for W in self.W)

    def accuracy(self, x, y):
        with self.torch.no_grad():
            return (self.scores(x, False).argmax(dim=1) == y).float().mean().item()


def warm_up_torch(splits, threads, bn, hidden=HIDDEN, batch_norm=True):
    """First calls of PyTorch's kernels and allocator outside the timed runs."""
    import torch
    torch.set_num_threads(threads)
    model = TorchMLP([splits.X_train.shape[1], *hidden, splits.n_classes], 0, bn, batch_norm)
    x, y = torch.from_numpy(splits.X_train[:BATCH]), torch.from_numpy(splits.y_train[:BATCH].astype(np.int64))
    opt = torch.optim.SGD(model.parameters(), lr=ETA_MIN, momentum=0.0, weight_decay=0.0)
    for _ in range(20):     # the optimiser's first step imports more of torch (~1 s)
        opt.zero_grad(set_to_none=True)
        model.cost(x, y)[1].backward()
        opt.step()
    for _ in range(2):      # the first gather of the whole set pays for fresh pages (~1 s)
        torch.from_numpy(splits.X_train)[torch.randperm(len(splits.X_train))]
    model.accuracy(torch.from_numpy(splits.X_test), torch.from_numpy(splits.y_test.astype(np.int64)))


def torch_eta(t, ns):
    """Triangular cyclical rate at update step t (eta(0)=eta_min, eta(ns)=eta_max, eta(2ns)=eta_min)."""
    pos = t % (2 * ns)
    frac = pos / ns if pos <= ns else (2 * ns - pos) / ns
    return ETA_MIN + frac * (ETA_MAX - ETA_MIN)


def run_torch(splits, seed, threads, bn, rng="own", hidden=HIDDEN, batch_norm=True):
    """rng "own": torch's initial weights and shuffles; "fastmlp": fastmlp's (same seed), for a
    paired comparison of the two implementations on identical draws."""
    import torch
    torch.set_num_threads(threads)
    tic = time.perf_counter()
    X = torch.from_numpy(splits.X_train)
    y = torch.from_numpy(splits.y_train.astype(np.int64))
    n = X.shape[0]
    spe, ns, total = n_steps(n)
    sizes = [X.shape[1], *hidden, splits.n_classes]
    model = TorchMLP(sizes, seed, bn, batch_norm)
    if rng == "fastmlp":
        from fastmlp import Network
        init = Network(sizes, batch_norm, "he", np.float32, seed)
        with torch.no_grad():
            for k, W in enumerate(model.W):
                W.copy_(torch.from_numpy(init[f"W{k + 1}"]))
    opt = torch.optim.SGD(model.parameters(), lr=ETA_MIN, momentum=0.0, weight_decay=0.0)
    shuffle = torch.Generator().manual_seed(20_000 + seed)
    t, loss = 0, float("nan")
    tic_train = time.perf_counter()
    while t < total:
        if rng == "fastmlp":    # fastmlp's epoch permutation (train.py)
            perm = torch.from_numpy(np.random.default_rng([seed, 0, t // spe]).permutation(n)[:spe * BATCH])
        else:                   # last partial batch dropped
            perm = torch.randperm(n, generator=shuffle)[:spe * BATCH]
        Xs, ys = X[perm], y[perm]
        for b in range(spe):
            if t >= total:
                break
            rows = slice(b * BATCH, (b + 1) * BATCH)
            for group in opt.param_groups:
                group["lr"] = torch_eta(t, ns)
            opt.zero_grad(set_to_none=True)
            loss, cost = model.cost(Xs[rows], ys[rows])
            cost.backward()
            opt.step()
            t += 1
    loss = loss.item()
    seconds_train = time.perf_counter() - tic_train
    acc = model.accuracy(torch.from_numpy(splits.X_test), torch.from_numpy(splits.y_test.astype(np.int64)))
    wall = time.perf_counter() - tic
    val = model.accuracy(torch.from_numpy(splits.X_val), torch.from_numpy(splits.y_val.astype(np.int64)))
    return {"acc": acc, "val_acc": val, "seconds": wall, "seconds_train": seconds_train,
            "final_batch_loss": float(loss), "steps": t}


# ---------------------------------------------------------------------------------------------- jax
def recipe_module(name):
    """bench/<name>.py (recipe_jax, recipe_onecycle), imported only when asked for: this script
    runs without JAX."""
    import importlib
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    return importlib.import_module(name)


def jax_study(splits, hidden=HIDDEN, batch_norm=True):
    """bench/recipe_jax.py, this recipe's Spec for it and the eta of every update step: warm_up(
    spec, splits, etas, None, loop) and run(spec, splits, seed, etas, None, loop) (its own He init
    and on-device shuffles; loop step | scan)."""
    rj = recipe_module("recipe_jax")
    n = len(splits.X_train)
    spe, ns, total = n_steps(n)
    spec = rj.Spec((splits.X_train.shape[1], *hidden, splits.n_classes), batch_norm, 0.0, LAM,
                   False, BATCH, n)
    return rj, spec, np.array([torch_eta(t, ns) for t in range(total)])


# ---------------------------------------------------------------------------- one-step cross-check
def check_step(splits, threads, bn, hidden=HIDDEN, batch_norm=True):
    """Same initial weights, same batch: one training step of each; print the differences."""
    import torch
    from fastmlp import Network
    torch.set_num_threads(threads)
    numba.set_num_threads(threads)
    sizes = [splits.X_train.shape[1], *hidden, splits.n_classes]
    net = Network(sizes, batch_norm, "he", np.float32, seed=0)
    model = TorchMLP(sizes, 0, bn, batch_norm)
    with torch.no_grad():
        for k in range(len(model.W)):
            model.W[k].copy_(torch.from_numpy(net[f"W{k + 1}"]))
    Xb, yb = splits.X_train[:BATCH], splits.y_train[:BATCH]
    cost_f, loss_f = net.loss_and_grad(Xb, yb, LAM)
    loss_t, cost_t = model.cost(torch.from_numpy(Xb), torch.from_numpy(yb.astype(np.int64)))
    cost_t.backward()
    print(f"one-step check on the same initial weights and batch "
          f"({f'{bn} BN in torch' if batch_norm else 'no BN'}):")
    print(f"  loss  fastmlp {loss_f:.7f}  torch {loss_t.item():.7f}")
    print(f"  cost  fastmlp {cost_f:.7f}  torch {cost_t.item():.7f}")
    pairs = []
    for k in range(len(model.W)):
        pairs += [(f"W{k + 1}", model.W[k]), (f"b{k + 1}", model.b[k])]
        if k < len(model.gamma):
            pairs += [(f"gamma{k + 1}", model.gamma[k]), (f"beta{k + 1}", model.beta[k])]
    worst = 0.0
    for name, p in pairs:
        gf, gt = net.grads[name], p.grad.numpy()
        diff, scale = np.abs(gf - gt).max(), np.abs(gt).max()
        if name[0] == "b" and name[1:].isdigit() and int(name[1:]) <= len(model.gamma):
            # a bias before BN has a true gradient of 0 (BN subtracts the batch mean): both
            # sides hold rounding noise, so only the absolute size is meaningful
            print(f"  d{name:7s} max|diff| = {diff:.2e} (true gradient 0; max|g| fastmlp "
                  f"{np.abs(gf).max():.1e}, torch {scale:.1e})")
            continue
        rel = diff / max(scale, 1e-12)
        worst = max(worst, rel)
        print(f"  d{name:7s} max|diff|/max|g| = {rel:.2e}")
    for k in range(len(model.gamma)):
        if bn == "builtin":
            rm, rv = model.bn_modules[k].running_mean.numpy(), model.bn_modules[k].running_var.numpy()
        else:
            rm, rv = model.run_mean[k].numpy(), model.run_var[k].numpy()
        print(f"  run_mean{k + 1} max|diff| = {np.abs(net[f'run_mean{k + 1}'] - rm).max():.2e}   "
              f"run_var{k + 1} max rel diff = "
              f"{(np.abs(net[f'run_var{k + 1}'] - rv) / rv).max():.2e}")
    ns = n_steps(len(splits.X_train))[1]
    sched = fastmlp_config(0, threads, hidden, batch_norm).make_schedule(len(splits.X_train) // BATCH)
    ts = np.arange(sched.total_steps)
    etas = np.array([torch_eta(int(t), ns) for t in ts])
    print(f"  schedule: {sched!r}; max |eta_fastmlp - eta_torch| over {len(ts)} steps = "
          f"{np.abs(sched.eta(ts) - etas).max():.2e}")
    return worst


def check_step_jax(splits, hidden=HIDDEN, batch_norm=True):
    """JAX's training-mode loss and cost on fastmlp's initial weights and the first batch."""
    from fastmlp import Network
    rj, spec, _ = jax_study(splits, hidden, batch_norm)
    net = Network(list(spec.sizes), batch_norm, "he", np.float32, seed=0)
    Xb, yb = splits.X_train[:BATCH], splits.y_train[:BATCH]
    cost_j, loss_j = rj.first_cost(spec, [net[f"W{k + 1}"] for k in range(net.n_layers)], Xb, yb)
    cost_f, loss_f = net.loss_and_grad(Xb, yb, LAM)
    print(f"  jax on the same weights and batch: loss {loss_j:.7f} (fastmlp {loss_f:.7f}), cost "
          f"{cost_j:.7f} (fastmlp {cost_f:.7f}); rel diff {abs(cost_j - cost_f) / cost_f:.1e}")


# ------------------------------------------------------------------------------- code fingerprint
def fastmlp_fingerprint():
    """What fastmlp code is being measured: the git commit, whether its sources differ from it,
    and a hash of every .py file of the fastmlp and fastmlp.kernels packages as imported."""
    import hashlib
    import subprocess
    from pathlib import Path
    import fastmlp
    import fastmlp.kernels
    roots = [Path(fastmlp.__file__).parent, Path(fastmlp.kernels.__file__).parent]
    h = hashlib.sha256()
    for root in roots:
        for f in sorted(root.rglob("*.py")):
            h.update(str(f.relative_to(root.parent)).encode())
            h.update(f.read_bytes())
    repo = roots[0].parent
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--", *map(str, roots)],
                               capture_output=True, text=True, check=True).stdout.split("\n")
        dirty = [line[3:] for line in dirty if line.strip()]
    except (OSError, subprocess.CalledProcessError):
        head, dirty = "?", []
    return f"commit {head}" + (f" + uncommitted changes in {', '.join(dirty)}" if dirty else "") + \
        f"; sources sha256 {h.hexdigest()[:12]}"


# --------------------------------------------------------------------------------------------- main
def mean_std(values):
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


IMPLS = ("fastmlp", "torch", "jax")


def parse_impls(names, jax_loops):
    """--impl names -> the runs' labels: both = fastmlp torch, all = fastmlp torch jax; jax is one
    run per --jax-loop (jax-step, jax-scan)."""
    out = []
    for name in names:
        for impl in {"both": ("fastmlp", "torch"), "all": IMPLS}.get(name, (name,)):
            for label in ([f"jax-{loop}" for loop in jax_loops] if impl == "jax" else [impl]):
                if label not in out:
                    out.append(label)
    return tuple(out)


def main(argv=None):
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--recipe", choices=("study", "onecycle"), default="study")
    known, rest = pre.parse_known_args(argv)
    if known.recipe == "onecycle":          # bench/recipe_onecycle.py, with its own flags
        return recipe_module("recipe_onecycle").main(rest)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", choices=("study", "onecycle"), default="study",
                   help="study: this docstring's recipe; onecycle: bench/recipe_onecycle.py's "
                        "(784-512-256-10, dropout, Nesterov, OneCycle; its own flags, see "
                        "--recipe onecycle --help)")
    p.add_argument("--dataset", choices=("cifar-subset", "fashion-mnist"), default="cifar-subset")
    p.add_argument("--path", default=None, help=f"dataset file / name (default: {DEFAULT_CIFAR_SUBSET} "
                                                "for cifar-subset, 'fashion-mnist' for fashion-mnist)")
    p.add_argument("--n-val", type=int, default=None,
                   help="validation rows held out of the training set (default: 500 for cifar-subset, "
                        "5000 for fashion-mnist; fastmlp study uses 6000 on fashion-mnist)")
    p.add_argument("--hidden", type=parse_hidden, default=HIDDEN, metavar="50-50",
                   help="hidden widths joined by '-', e.g. 50-30-20-20-10-10-10-10 for the depth "
                        "study's 9-layer net (default: 50-50)")
    p.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=True,
                   help="Linear -> BN -> ReLU hidden layers; --no-batch-norm: Linear -> ReLU "
                        "(default: on)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--impl", nargs="+", choices=(*IMPLS, "both", "all"), default=["both"],
                   help="one or more of fastmlp torch jax; both: fastmlp torch; all: the three "
                        "(default: both)")
    p.add_argument("--jax-loop", nargs="+", choices=("step", "scan"), default=["scan"],
                   help="JAX: one jit call per update step (step) or per epoch with lax.scan over "
                        "its steps (scan); both: a run of each per seed (default: scan)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--torch-bn", choices=("manual", "builtin"), default="manual",
                   help="manual: BN by hand, running variance from the biased batch variance (as "
                        "fastmlp); builtin: nn.BatchNorm1d (unbiased running variance)")
    p.add_argument("--torch-rng", choices=("own", "fastmlp"), default="own",
                   help="own: torch draws its own initial weights and shuffles (the independent "
                        "comparison); fastmlp: torch starts from fastmlp's initial weights and uses "
                        "fastmlp's epoch shuffles for the same seed (a paired diagnostic)")
    p.add_argument("--check-step", action="store_true",
                   help="first compare one step of both on the same weights and batch")
    args = p.parse_args(argv)
    impls = parse_impls(args.impl, args.jax_loop)
    if any(i.startswith("jax") for i in impls):
        recipe_module("recipe_jax").limit_threads(args.threads)     # before JAX starts

    import torch
    torch.set_num_threads(args.threads)
    numba.set_num_threads(args.threads)

    tic = time.perf_counter()
    splits = load_splits(args.dataset, args.path, args.n_val)
    arch = dict(hidden=args.hidden, batch_norm=args.batch_norm)
    n_train = len(splits.X_train)
    spe, ns, total = n_steps(n_train)
    print(f"# {args.dataset}: {splits.source}")
    print(f"# train {n_train} x {splits.X_train.shape[1]}, val {len(splits.X_val)}, test "
          f"{len(splits.X_test)}; {spe} steps/epoch, n_s = {ns}, {total} steps per run; "
          f"threads {args.threads} (torch {torch.get_num_threads()}, numba {numba.get_num_threads()}); "
          f"torch {torch.__version__}, numba {numba.__version__}; "
          f"network {arch_name(args.hidden, args.batch_norm)}; "
          f"torch BN: {args.torch_bn if args.batch_norm else 'none'}, "
          f"torch init/shuffles: {args.torch_rng}; "
          f"data loaded in {time.perf_counter() - tic:.1f} s", flush=True)
    fingerprint = fastmlp_fingerprint()
    print(f"# fastmlp: {fingerprint}; load average {os.getloadavg()[0]:.2f}", flush=True)
    import impls as bench_impls     # `impls` below: the implementations this run compares
    for line in bench_impls.blas_lines():
        print(f"# {line}")
    print(f"# {bench_impls.host_gemm_line(args.threads)}", flush=True)
    if "fastmlp" in impls:
        warm_up_fastmlp(splits, args.threads, **arch)
    if "torch" in impls:
        warm_up_torch(splits, args.threads, args.torch_bn, **arch)
    for impl in impls:
        if impl.startswith("jax"):
            rj, spec, etas = jax_study(splits, **arch)
            print(f"# {impl}: compiled and warmed up in "
                  f"{rj.warm_up(spec, splits, etas, None, impl[4:]):.1f} s", flush=True)
    if args.check_step:
        check_step(splits, args.threads, args.torch_bn, **arch)
        if any(i.startswith("jax") for i in impls):
            check_step_jax(splits, **arch)

    results = {impl: {} for impl in impls}
    for seed in args.seeds:
        for impl in impls:
            if impl == "fastmlp":
                r = run_fastmlp(splits, seed, args.threads, **arch)
            elif impl == "torch":
                r = run_torch(splits, seed, args.threads, args.torch_bn, args.torch_rng, **arch)
            else:
                rj, spec, etas = jax_study(splits, **arch)
                r = rj.run(spec, splits, seed, etas, None, impl[4:])
            results[impl][seed] = r
            print(f"# seed {seed} {impl:8s}: test {100 * r['acc']:.2f}%  val {100 * r['val_acc']:.2f}%  "
                  f"final batch loss {r['final_batch_loss']:.4f}  {r['seconds']:.1f} s (training loop "
                  f"{r['seconds_train']:.1f} s)  (load average {os.getloadavg()[0]:.2f})", flush=True)

    if fastmlp_fingerprint() != fingerprint:
        print(f"# WARNING: fastmlp's sources changed during the runs: now {fastmlp_fingerprint()}")
    print()
    print("| seed |" + "".join(f" {i} test acc (%) | {i} val acc (%) | {i} s/run |" for i in impls))
    print("|---:|" + "---:|---:|---:|" * len(impls))
    for seed in args.seeds:
        print(f"| {seed} |" + "".join(f" {100 * results[i][seed]['acc']:.2f} | "
                                     f"{100 * results[i][seed]['val_acc']:.2f} | "
                                     f"{results[i][seed]['seconds']:.1f} |" for i in impls))
    stats = {}
    for i in impls:
        stats[i] = {key: mean_std([scale * results[i][s][key] for s in args.seeds])
                    for key, scale in (("acc", 100), ("val_acc", 100), ("seconds", 1))}
    print("| mean ± std |" + "".join(f" {stats[i]['acc'][0]:.2f} ± {stats[i]['acc'][1]:.2f} | "
                                    f"{stats[i]['val_acc'][0]:.2f} ± {stats[i]['val_acc'][1]:.2f} | "
                                    f"{stats[i]['seconds'][0]:.1f} ± {stats[i]['seconds'][1]:.1f} |"
                                    for i in impls))
    k = len(args.seeds)
    peers = [i for i in impls if i != "fastmlp"]
    if "fastmlp" in impls and peers:
        print()
    for peer in peers if "fastmlp" in impls else []:
        diff = stats["fastmlp"]["acc"][0] - stats[peer]["acc"][0]
        se = ((stats["fastmlp"]["acc"][1] ** 2 + stats[peer]["acc"][1] ** 2) / k) ** 0.5
        val_diff = stats["fastmlp"]["val_acc"][0] - stats[peer]["val_acc"][0]
        paired = peer == "torch" and args.torch_rng == "fastmlp"
        if paired:      # same draws, so the SE of the paired differences
            se = mean_std([100 * (results["fastmlp"][s]["acc"] - results[peer][s]["acc"])
                           for s in args.seeds])[1] / k ** 0.5
        print(f"difference of the mean test accuracies (fastmlp - {peer}): {diff:+.2f} pp, standard "
              f"error {se:.2f} pp over {k} seeds{' (paired)' if paired else ''} "
              f"({'within' if abs(diff) <= 1.5 else 'OUTSIDE'} the 1.5 pp criterion); "
              f"on validation: {val_diff:+.2f} pp")
    if "fastmlp" in impls and peers:
        fm = [results["fastmlp"][s] for s in args.seeds]
        print(f"wall time per run: fastmlp {stats['fastmlp']['seconds'][0]:.1f} s (of which "
              f"{statistics.mean(r['seconds_train'] for r in fm):.1f} s training steps, "
              f"{statistics.mean(r['seconds_eval'] for r in fm):.1f} s its per-epoch evaluations), " +
              ", ".join(f"{peer} {stats[peer]['seconds'][0]:.1f} s ({peer} / fastmlp = "
                        f"{stats[peer]['seconds'][0] / stats['fastmlp']['seconds'][0]:.2f}x)"
                        for peer in peers) + " (the peers: no per-epoch evaluation)")
    train = {i: statistics.median(results[i][s]["seconds_train"] for s in args.seeds) for i in impls}
    print("training loop only (seconds_train, median over seeds; no evaluation, no compilation): " +
          ", ".join(f"{i} {train[i]:.2f} s" + (f" ({i} / fastmlp = {train[i] / train['fastmlp']:.2f}x)"
                                               if "fastmlp" in impls and i != "fastmlp" else "")
                    for i in impls))
    if "jax-step" in impls and "jax-scan" in impls:
        print(f"JAX: jit per step {train['jax-step']:.2f} s, lax.scan per epoch {train['jax-scan']:.2f} s: "
              f"{'scan' if train['jax-scan'] < train['jax-step'] else 'step'} is faster "
              f"({max(train['jax-step'], train['jax-scan']) / min(train['jax-step'], train['jax-scan']):.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
