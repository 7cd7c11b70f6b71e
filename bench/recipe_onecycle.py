"""The one-cycle recipe: fastmlp, PyTorch and JAX train the same modern MLP recipe; accuracy and
training time side by side.

The recipe: all of Fashion-MNIST, 60,000 training rows (no validation rows: fastmlp.data's
make_splits(..., merge_val=True), standardised per pixel with the 60,000 rows' statistics), 10,000
test rows.  Net 784-512-256-10 (`--hidden 512-256`): each hidden layer Linear -> BatchNorm ->
ReLU -> inverted Dropout(p = 0.2, `--dropout`), last Linear -> softmax cross-entropy; cost = mean
CE + lam * sum ||W||^2 over the weight matrices only (lam = 5e-4, `--lam`; gradient 2 lam W).
SGD with Nesterov momentum under PyTorch's OneCycleLR policy: max_lr = 0.1 (`--eta-max`),
pct_start 0.3, cosine annealing, div_factor 25 (eta starts at 0.004), final_div_factor 1e4 (ends
at 4e-7), two phases, cycle_momentum with base 0.85 / max 0.95 (momentum 0.95 -> 0.85 while eta
rises, back to 0.95 while it falls).  Batch 100, a fresh shuffle each epoch, the last partial
batch dropped; 20 epochs (`--epochs`) = 12,000 update steps.  He init N(0, 2/fan_in) weights, zero
biases, BN gamma 1 beta 0, eps 1e-5, running statistics run = 0.9 run + 0.1 batch; test accuracy
at the end with the running statistics and no dropout.

- fastmlp: its library API (TrainConfig(schedule="onecycle", epochs, pct_start, div_factor,
  final_div_factor, cycle_momentum, optimizer="momentum", nesterov=True, dropout) + Network +
  Trainer); the running variance from the biased batch variance.
- PyTorch: eager, nn.Sequential of nn.Linear / nn.BatchNorm1d / nn.ReLU / nn.Dropout,
  kaiming_normal_ init, torch.optim.SGD(momentum=0.9, nesterov=True) driven by
  torch.optim.lr_scheduler.OneCycleLR(max_lr, total_steps, ...) stepped after every update,
  torch.randperm shuffles, the L2 term added to the loss; the running variance from the unbiased
  batch variance (nn.BatchNorm1d: x 100/99 at batch 100).
- JAX: bench/recipe_jax.py (jit step or lax.scan per epoch, data on the device, donated state,
  Nesterov and dropout by hand); eta and momentum of every step computed on the host by
  fastmlp.schedules.OneCycle (`onecycle` below: equal to torch's OneCycleLR, which
  tests/test_schedules.py and --check-step check); the biased running variance.

Each implementation draws its own initial weights, shuffles and dropout masks: compare the mean
test accuracies over seeds.  They run interleaved per seed (fastmlp seed s, torch seed s, jax
seed s, fastmlp seed s+1, ...), each after an untimed warm-up (Numba / JAX compilation, torch's
first calls).  `seconds_train` is the training loop only: shuffles, update steps (fastmlp's
per-epoch evaluations, every compilation and the final test evaluation are excluded).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/peer_recipe.py --recipe onecycle \\
        --seeds 0 1 2 --impl fastmlp torch jax --jax-loop scan --threads 2
    python bench/recipe_onecycle.py --check-step --impl fastmlp torch jax --seeds 0 --epochs 1

`--check-step` first compares the implementations on the same start: the schedules (OneCycleLR's
own eta and momentum for every step against fastmlp's, which the JAX peer uses too), the first-step loss on
fastmlp's initial weights, and a 40-step paired run without dropout on 2,000 rows (fastmlp's
weights and shuffles for all three).  The weights after it agree to float32 rounding amplified by
the 40 steps at rates up to 0.1: measured ~3e-7 after 20 steps, ~1e-4 (fastmlp or JAX against
torch; 3e-7 fastmlp against JAX) after 40; the same 40 steps in float64 put fastmlp and torch
1e-15 apart, so the float32 gap is rounding, not a difference of recipe.  `--n-train N` trains on
the first N rows only (smoke runs).
"""
import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

HIDDEN = (512, 256)
DROPOUT, LAM, ETA_MAX, EPOCHS, BATCH = 0.2, 5e-4, 0.1, 20, 100
PCT_START, DIV_FACTOR, FINAL_DIV_FACTOR = 0.3, 25.0, 1e4
BASE_MOMENTUM, MAX_MOMENTUM = 0.85, 0.95
BN_EPS, BN_MOMENTUM = 1e-5, 0.1
IMPLS = ("fastmlp", "torch", "jax")


def load_splits(n_train=None):
    """All 60,000 Fashion-MNIST training rows (load_dataset refuses n_val=0: merge_val instead)."""
    from fastmlp.data import load_raw, make_splits
    splits = make_splits(load_raw("fashion-mnist"), "a3", n_val=1, merge_val=True)
    return splits if not n_train else subset(splits, n_train)


def subset(splits, n):
    return dataclasses.replace(splits, X_train=splits.X_train[:n], y_train=splits.y_train[:n],
                               source=f"{splits.source}; the first {n} rows only")


def onecycle(total, eta_max=ETA_MAX):
    """(eta, momentum) of update steps 0 .. total-1 for the JAX peer: fastmlp's OneCycle with
    OneCycleLR's defaults, equal to torch's step for step (tests/test_schedules.py)."""
    from fastmlp.schedules import OneCycle
    s = OneCycle(eta_max, total, PCT_START, DIV_FACTOR, FINAL_DIV_FACTOR, BASE_MOMENTUM,
                 MAX_MOMENTUM)
    t = np.arange(total)
    return s.eta(t), s.momentum(t)


def sizes_of(splits, a):
    return [splits.X_train.shape[1], *a.hidden, splits.n_classes]


# ------------------------------------------------------------------------------------------ fastmlp
def fastmlp_config(seed, threads, a, dropout=None):
    from fastmlp import TrainConfig
    return TrainConfig(sizes="auto-" + "-".join(map(str, a.hidden)) + "-auto", batch_norm=True,
                       init="he", dtype="float32", dropout=a.dropout if dropout is None else dropout,
                       optimizer="momentum", nesterov=True, lam=a.lam, schedule="onecycle",
                       eta_max=a.eta_max, epochs=a.epochs, pct_start=PCT_START,
                       div_factor=DIV_FACTOR, final_div_factor=FINAL_DIV_FACTOR,
                       cycle_momentum=True, batch=BATCH, seed=seed, threads=threads)


def run_fastmlp(splits, seed, threads, a, dropout=None):
    import numba
    from fastmlp import Network, Trainer
    config = fastmlp_config(seed, threads, a, dropout)
    numba.set_num_threads(threads)
    tic = time.perf_counter()
    sizes = config.check_data(len(splits.X_train), splits.X_train.shape[1], splits.n_classes)
    net = Network(sizes, True, "he", "float32", seed, dropout=config.dropout)
    trainer = Trainer(net, config, checkpoint_path=None, data=splits)
    trainer.fit(splits.X_train, splits.y_train)
    acc = net.accuracy(splits.X_test, splits.y_test)
    spe = len(splits.X_train) // BATCH
    assert trainer.step_ == a.epochs * spe, (trainer.step_, a.epochs * spe)
    return {"acc": acc, "seconds": time.perf_counter() - tic, "seconds_train": trainer.seconds_["train"],
            "final_batch_loss": float(trainer.history_.batch_loss[-1]), "steps": trainer.step_,
            "net": net}


def warm_up_fastmlp(splits, threads, a):
    run_fastmlp(subset(splits, 1000), 0, threads, argparse.Namespace(**{**vars(a), "epochs": 2}))


# -------------------------------------------------------------------------------------------- torch
def torch_model(sizes, dropout):
    import torch
    nn = torch.nn
    layers = []
    for i, o in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(i, o), nn.BatchNorm1d(o, eps=BN_EPS, momentum=BN_MOMENTUM), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    model = nn.Sequential(*layers)
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return model


def run_torch(splits, seed, threads, a, dropout=None, weights=None, perm_of=None):
    """weights: (fan_in, fan_out) arrays to start from; perm_of: epoch -> row order (the checks)."""
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(10_000 + seed)
    tic = time.perf_counter()
    X, y = torch.from_numpy(splits.X_train), torch.from_numpy(splits.y_train.astype(np.int64))
    n = X.shape[0]
    spe = n // BATCH
    model = torch_model(sizes_of(splits, a), a.dropout if dropout is None else dropout)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    if weights is not None:
        with torch.no_grad():
            for lin, W in zip(linears, weights):
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
    W = [lin.weight for lin in linears]
    opt = torch.optim.SGD(model.parameters(), lr=a.eta_max, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=a.eta_max, total_steps=a.epochs * spe, pct_start=PCT_START, anneal_strategy="cos",
        cycle_momentum=True, base_momentum=BASE_MOMENTUM, max_momentum=MAX_MOMENTUM,
        div_factor=DIV_FACTOR, final_div_factor=FINAL_DIV_FACTOR, three_phase=False)
    lossf = torch.nn.CrossEntropyLoss()
    model.train()
    tic_train = time.perf_counter()
    for e in range(a.epochs):
        perm = (torch.randperm(n) if perm_of is None else torch.from_numpy(perm_of(e)))[:spe * BATCH]
        Xs, ys = X[perm], y[perm]
        for b in range(spe):
            rows = slice(b * BATCH, (b + 1) * BATCH)
            opt.zero_grad(set_to_none=True)
            loss = lossf(model(Xs[rows]), ys[rows])
            (loss + a.lam * sum((w * w).sum() for w in W)).backward()
            opt.step()
            sched.step()
    loss = loss.item()
    seconds_train = time.perf_counter() - tic_train
    model.eval()
    with torch.no_grad():
        scores = model(torch.from_numpy(splits.X_test))
        acc = (scores.argmax(1) == torch.from_numpy(splits.y_test.astype(np.int64))).float().mean().item()
    return {"acc": acc, "seconds": time.perf_counter() - tic, "seconds_train": seconds_train,
            "final_batch_loss": loss, "steps": a.epochs * spe, "model": model}


def warm_up_torch(splits, threads, a):
    import torch
    run_torch(subset(splits, 1000), 0, threads, argparse.Namespace(**{**vars(a), "epochs": 1}))
    for _ in range(2):      # the first gather of the whole set pays for fresh pages
        torch.from_numpy(splits.X_train)[torch.randperm(len(splits.X_train))]


# ---------------------------------------------------------------------------------------------- jax
def jax_setup(splits, a, dropout=None):
    import recipe_jax
    n = len(splits.X_train)
    spec = recipe_jax.Spec(tuple(sizes_of(splits, a)), True, a.dropout if dropout is None else dropout,
                           a.lam, True, BATCH, n)
    return recipe_jax, spec, *onecycle(a.epochs * (n // BATCH), a.eta_max)


def run_jax(splits, seed, loop, a):
    rj, spec, etas, mus = jax_setup(splits, a)
    return rj.run(spec, splits, seed, etas, mus, loop)


def warm_up_jax(splits, loop, a):
    rj, spec, etas, mus = jax_setup(splits, a)
    return rj.warm_up(spec, splits, etas, mus, loop)


# ---------------------------------------------------------------------------------------- checks
def check_step(splits, threads, a, jax_loop):
    """The schedules, the first-step loss on the same weights, a 40-step paired run (no dropout)."""
    import torch
    from fastmlp import Network
    total = a.epochs * (len(splits.X_train) // BATCH)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=a.eta_max, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.eta_max, total_steps=total)
    lr_t, mu_t = [], []
    for _ in range(total):
        lr_t.append(opt.param_groups[0]["lr"])
        mu_t.append(opt.param_groups[0]["momentum"])
        opt.step()
        sched.step()
    fs = fastmlp_config(0, threads, a).make_schedule(len(splits.X_train) // BATCH)
    ts = np.arange(total)
    print(f"check: schedule over {total} steps, OneCycleLR (defaults) vs fastmlp's {fs!r} (the "
          f"JAX peer's too): max |d eta| {np.abs(fs.eta(ts) - lr_t).max():.1e}, max |d momentum| "
          f"{np.abs(fs.momentum(ts) - mu_t).max():.1e}")

    sizes = sizes_of(splits, a)
    net = Network(sizes, True, "he", np.float32, seed=0)
    W0 = [net[f"W{k + 1}"].copy() for k in range(len(sizes) - 1)]
    Xb, yb = splits.X_train[:BATCH], splits.y_train[:BATCH]
    cost_f, loss_f = net.loss_and_grad(Xb, yb, a.lam)
    model = torch_model(sizes, 0.0)
    with torch.no_grad():
        for lin, W in zip([m for m in model if isinstance(m, torch.nn.Linear)], W0):
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
        loss_t = torch.nn.functional.cross_entropy(model(torch.from_numpy(Xb)),
                                                   torch.from_numpy(yb.astype(np.int64))).item()
    rj, spec, _, _ = jax_setup(splits, a, 0.0)
    loss_j = rj.first_cost(spec, W0, Xb, yb)[1]
    print(f"check: first-step loss on fastmlp's weights (no dropout): fastmlp {loss_f:.7f}, torch "
          f"{loss_t:.7f}, jax {loss_j:.7f}; max rel diff "
          f"{max(abs(loss_t - loss_f), abs(loss_j - loss_f)) / loss_f:.1e}")

    small = subset(splits, 2000)
    b = argparse.Namespace(**{**vars(a), "epochs": 2})
    n, spe = 2000, 2000 // BATCH
    perm_of = lambda e: np.random.default_rng([0, 0, e]).permutation(n)[:spe * BATCH]  # fastmlp's
    fm = run_fastmlp(small, 0, threads, b, dropout=0.0)
    W_f = [fm["net"][f"W{k + 1}"] for k in range(len(sizes) - 1)]
    tr = run_torch(small, 0, threads, b, dropout=0.0, weights=W0, perm_of=perm_of)
    W_t = [m.weight.detach().numpy().T for m in tr["model"] if isinstance(m, torch.nn.Linear)]
    rj, spec, etas, mus = jax_setup(small, b, 0.0)
    data = {"train": rj.device_splits(small)["train"]}
    (pj, _, _), loss_j, _, _ = rj.train(spec, rj.init_state(spec, 0, W0), data, etas, mus, 0,
                                        jax_loop, perm_of=perm_of)
    W_j = [np.asarray(w) for w in pj["W"]]
    rel = lambda A, B: max(np.abs(x - y).max() / np.abs(y).max() for x, y in zip(A, B))
    print(f"check: {spe * 2} steps without dropout on {n} rows from fastmlp's weights and shuffles: "
          f"final batch loss fastmlp {fm['final_batch_loss']:.6f}, torch {tr['final_batch_loss']:.6f}, "
          f"jax {float(loss_j):.6f}; max |W - W'| / max |W'| over layers: fastmlp-torch "
          f"{rel(W_f, W_t):.1e}, jax-torch {rel(W_j, W_t):.1e}, fastmlp-jax {rel(W_f, W_j):.1e} "
          f"(each moved from the start by {rel(W_t, W0):.1e})", flush=True)
    rj.device_splits(splits)        # the full set back on the device for the timed runs


# --------------------------------------------------------------------------------------------- main
def environment(threads):
    import numba
    import impls
    return [f"load average {os.getloadavg()[0]:.2f}; threads {threads}; numba {numba.__version__}",
            *impls.blas_lines(), impls.host_gemm_line(threads)]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--impl", nargs="+", choices=(*IMPLS, "all"), default=["all"],
                   help="fastmlp, torch, jax, or all of them (default), run in that order per seed")
    p.add_argument("--jax-loop", nargs="+", choices=("step", "scan"), default=["scan"],
                   help="JAX: one jit call per update step (step) or per epoch with lax.scan over "
                        "its steps (scan, the default); both: a run of each per seed")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=EPOCHS, help=f"run length (default {EPOCHS})")
    p.add_argument("--hidden", type=lambda s: tuple(int(w) for w in s.split("-")), default=HIDDEN,
                   metavar="512-256", help="hidden widths (default 512-256)")
    p.add_argument("--dropout", type=float, default=DROPOUT, help=f"(default {DROPOUT})")
    p.add_argument("--lam", type=float, default=LAM, help=f"L2 penalty (default {LAM})")
    p.add_argument("--eta-max", type=float, default=ETA_MAX, help=f"OneCycle's max_lr (default {ETA_MAX})")
    p.add_argument("--n-train", type=int, default=None, help="train on the first N rows (smoke runs)")
    p.add_argument("--check-step", action="store_true", help="first the checks of the docstring")
    return p.parse_args(argv)


def main(argv=None):
    a = parse_args(argv)
    names = IMPLS if "all" in a.impl else [i for i in IMPLS if i in a.impl]
    impls = [label for i in names for label in ([f"jax-{l}" for l in a.jax_loop] if i == "jax" else [i])]
    if "jax" in names:
        import recipe_jax
        recipe_jax.limit_threads(a.threads)
    import numba
    import torch
    torch.set_num_threads(a.threads)
    numba.set_num_threads(a.threads)
    tic = time.perf_counter()
    splits = load_splits(a.n_train)
    spe = len(splits.X_train) // BATCH
    print(f"# {splits.source}; train {len(splits.X_train)}, test {len(splits.X_test)}; net "
          f"{'-'.join(map(str, sizes_of(splits, a)))}, dropout {a.dropout}, lam {a.lam}, Nesterov, "
          f"OneCycle max {a.eta_max}; {a.epochs} epochs x {spe} = {a.epochs * spe} steps; torch "
          f"{torch.__version__}; data loaded in {time.perf_counter() - tic:.1f} s", flush=True)
    for line in environment(a.threads):
        print("# " + line)
    for impl in impls:
        tic = time.perf_counter()
        if impl == "fastmlp":
            warm_up_fastmlp(splits, a.threads, a)
        elif impl == "torch":
            warm_up_torch(splits, a.threads, a)
        else:
            warm_up_jax(splits, impl[4:], a)
        print(f"# {impl} warmed up in {time.perf_counter() - tic:.1f} s", flush=True)
    if a.check_step:
        check_step(splits, a.threads, a, a.jax_loop[0])
    results = {i: [] for i in impls}
    for seed in a.seeds:
        for impl in impls:
            r = (run_fastmlp(splits, seed, a.threads, a) if impl == "fastmlp" else
                 run_torch(splits, seed, a.threads, a) if impl == "torch" else
                 run_jax(splits, seed, impl[4:], a))
            results[impl].append(r)
            print(f"# seed {seed} {impl:8s}: test {100 * r['acc']:.2f}%  final batch loss "
                  f"{r['final_batch_loss']:.4f}  training loop {r['seconds_train']:.2f} s  (run "
                  f"{r['seconds']:.1f} s, load average {os.getloadavg()[0]:.2f})", flush=True)
    train = {i: statistics.median(r["seconds_train"] for r in results[i]) for i in impls}
    print()
    print("| impl | test accuracy (%) | seconds_train (median) | / fastmlp |")
    print("|---|---:|---:|---:|")
    for i in impls:
        accs = [100 * r["acc"] for r in results[i]]
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        ratio = f"{train[i] / train['fastmlp']:.2f}x" if "fastmlp" in impls else "-"
        print(f"| {i} | {statistics.mean(accs):.2f} ± {std:.2f} | {train[i]:.2f} | {ratio} |")
    print(f"\n{len(a.seeds)} seeds {a.seeds}, {a.threads} threads; load average now "
          f"{os.getloadavg()[0]:.2f}")
    if "jax-step" in impls and "jax-scan" in impls:
        fast = min(("jax-step", "jax-scan"), key=train.get)
        print(f"JAX: {fast} is faster ({train['jax-step']:.2f} s per-step jit, "
              f"{train['jax-scan']:.2f} s lax.scan per epoch)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
