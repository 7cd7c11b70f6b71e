"""JAX peers of the recipes of bench/peer_recipe.py (the DD2424 study recipe) and
bench/recipe_onecycle.py (784-512-256-10 with dropout, Nesterov SGD and OneCycle), written as a
JAX user would at their best, without optax (the updates are a few lines of jax.numpy):

- the standardised splits are put on the device once (`device_splits`, cached per Splits object);
- the whole training step (gather of the batch's rows X[idx] from the on-device training set,
  forward, `jax.value_and_grad`, the SGD or Nesterov update, the BN running statistics) is one
  `jax.jit` call with the parameters, BN running statistics and momentum buffers donated
  (`donate_argnums`); the rate eta (and momentum mu) of the step are arguments;
- each epoch draws its permutation on the device (`jax.random.permutation` of a key folded with
  the epoch) and drops the last partial batch;
- loop "step": one jit call per update step (the step's offset into the permutation is an
  argument, the batch is sliced from it inside the call); loop "scan": one jit call per epoch,
  `jax.lax.scan` over the epoch's steps (the epoch's etas and mus as arrays).

The network: Linear -> [BatchNorm] -> ReLU -> [inverted dropout] per hidden layer, last Linear ->
softmax cross-entropy; cost = mean CE + lam * sum ||W||^2 over the weight matrices only.  BN:
batch mean and *biased* batch variance in training, running = (1 - 0.1) running + 0.1 batch (the
biased variance, as fastmlp; nn.BatchNorm1d would use the unbiased one), eps 1e-5, evaluation
with the running statistics.  He init N(0, 2/fan_in) weights from jax.random, zero biases, BN
gamma 1 beta 0.  Nesterov as torch.optim.SGD(nesterov=True, dampening=0): buf = mu buf + g
(buf = g on the first step: the buffer starts at 0), p -= eta (g + mu buf).  Dropout masks from
jax.random.bernoulli with a key folded with the step index and the layer.

Time: `seconds_train` is the training loop only (permutations, steps, up to the last update being
ready: `jax.block_until_ready`); compilation happens in `warm_up` on the same shapes and the same
jitted functions (cached per configuration), so the timed run compiles nothing.  With --threads 1
call `limit_threads(1)` before JAX starts: XLA's CPU client reads XLA_FLAGS once.
"""
import functools
import os
import time
from collections import namedtuple

import numpy as np

BN_EPS, BN_MOMENTUM = 1e-5, 0.1
LOOPS = ("step", "scan")

# What the compiled functions depend on (hashable: the cache key of `compiled`)
Spec = namedtuple("Spec", "sizes batch_norm dropout lam nesterov batch n_train")


def limit_threads(threads):
    """Hold JAX to `threads` cores, as every implementation of a comparison is held (bench/grid.py
    and the recipes call this before JAX starts its backend; without effect after).
    XLA's CPU client sizes its thread pool from the process's CPU affinity and ignores XLA_FLAGS'
    thread counts (JAX 0.10, a 2048^3 product with `intra_op_parallelism_threads=1`: 1.97
    CPU-seconds a second on 2 cores), so where the OS can, this thread (and every thread started
    after it: JAX's, Numba's, PyTorch's pools) is pinned to `threads` of the CPUs it may use; the
    flags stay for an OS without affinity.  With as many threads as CPUs, nothing changes."""
    flags = os.environ.get("XLA_FLAGS", "")
    if threads == 1 and "multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1").strip()
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        if 0 < threads < len(cpus):
            os.sched_setaffinity(0, cpus[:threads])


_DEVICE = {}


def device_splits(splits):
    """The splits' arrays on the device, put there once per Splits object (labels as int32)."""
    import jax
    if _DEVICE.get("key") is not splits:
        _DEVICE.clear()
        _DEVICE["key"] = splits
        _DEVICE["arrays"] = {
            part: (jax.device_put(getattr(splits, f"X_{part}")),
                   jax.device_put(np.asarray(getattr(splits, f"y_{part}"), np.int32)))
            for part in ("train", "val", "test")}
        jax.block_until_ready(_DEVICE["arrays"])
    return _DEVICE["arrays"]


def init_state(spec, seed, weights=None):
    """(params, BN running statistics, momentum buffers) on the device.  weights: a list of
    (fan_in, fan_out) arrays to start from instead of the He draws of jax.random (key seed)."""
    import jax
    import jax.numpy as jnp
    sizes, k = spec.sizes, len(spec.sizes) - 1
    keys = jax.random.split(jax.random.key(30_000 + seed), k)
    if weights is None:
        weights = [jax.random.normal(keys[l], (sizes[l], sizes[l + 1]), jnp.float32)
                   * np.float32((2.0 / sizes[l]) ** 0.5) for l in range(k)]
    hidden = sizes[1:-1] if spec.batch_norm else []
    params = {"W": [jnp.asarray(w, jnp.float32) for w in weights],
              "b": [jnp.zeros(o, jnp.float32) for o in sizes[1:]],
              "g": [jnp.ones(o, jnp.float32) for o in hidden],
              "be": [jnp.zeros(o, jnp.float32) for o in hidden]}
    stats = {"mean": [jnp.zeros(o, jnp.float32) for o in hidden],
             "var": [jnp.ones(o, jnp.float32) for o in hidden]}
    buf = jax.tree_util.tree_map(jnp.zeros_like, params) if spec.nesterov else {}
    return jax.block_until_ready((params, stats, buf))


@functools.lru_cache(maxsize=None)
def compiled(spec, steps_per_epoch):
    """The jitted functions of one configuration: perm, step, epoch, accuracy, cost_loss."""
    import jax
    import jax.numpy as jnp
    from types import SimpleNamespace
    k, bn, p_drop, batch = len(spec.sizes) - 1, spec.batch_norm, float(spec.dropout), spec.batch
    lam, spe = np.float32(spec.lam), steps_per_epoch

    def forward(p, stats, x, train, key):
        h, new = x, {"mean": [], "var": []}
        for l in range(k - 1):
            z = h @ p["W"][l] + p["b"][l]
            if bn:
                if train:
                    mu = z.mean(axis=0)
                    var = jnp.mean(jnp.square(z - mu), axis=0)          # biased
                    new["mean"].append((1 - BN_MOMENTUM) * stats["mean"][l] + BN_MOMENTUM * mu)
                    new["var"].append((1 - BN_MOMENTUM) * stats["var"][l] + BN_MOMENTUM * var)
                else:
                    mu, var = stats["mean"][l], stats["var"][l]
                z = p["g"][l] * (z - mu) * jax.lax.rsqrt(var + BN_EPS) + p["be"][l]
            h = jax.nn.relu(z)
            if train and p_drop > 0:
                keep = jax.random.bernoulli(jax.random.fold_in(key, l), 1.0 - p_drop, h.shape)
                h = jnp.where(keep, h * np.float32(1.0 / (1.0 - p_drop)), 0.0)
        return h @ p["W"][-1] + p["b"][-1], new

    def cost(p, stats, x, y, key):
        scores, new = forward(p, stats, x, True, key)
        loss = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(scores), y[:, None], axis=1))
        return loss + lam * sum(jnp.sum(W * W) for W in p["W"]), (loss, new)

    def update(p, stats, buf, X, y, idx, eta, mu, key):
        (_, (loss, new)), g = jax.value_and_grad(cost, has_aux=True)(p, stats, X[idx], y[idx], key)
        tm = jax.tree_util.tree_map
        if spec.nesterov:
            buf = tm(lambda m, d: mu * m + d, buf, g)
            p = tm(lambda a, d, m: a - eta * (d + mu * m), p, g, buf)
        else:
            p = tm(lambda a, d: a - eta * d, p, g)
        return p, new, buf, loss

    def step(p, stats, buf, X, y, perm, b, eta, mu, key, t):
        idx = jax.lax.dynamic_slice_in_dim(perm, b * batch, batch)
        return update(p, stats, buf, X, y, idx, eta, mu, jax.random.fold_in(key, t))

    def epoch(p, stats, buf, X, y, perm, etas, mus, key, t0):
        def body(carry, xs):
            idx, eta, mu, t = xs
            p, stats, buf, loss = update(*carry, X, y, idx, eta, mu, jax.random.fold_in(key, t))
            return (p, stats, buf), loss
        steps = (perm.reshape(spe, batch), etas, mus, t0 + jnp.arange(spe, dtype=jnp.int32))
        (p, stats, buf), losses = jax.lax.scan(body, (p, stats, buf), steps)
        return p, stats, buf, losses

    def perm(key, e):
        return jax.random.permutation(jax.random.fold_in(key, e), spec.n_train)[:spe * batch] \
            .astype(jnp.int32)

    def cost_loss(p, stats, x, y):
        """(cost, mean loss) of a training-mode forward without dropout (the one-step checks)."""
        c, (loss, _) = cost(p, stats, x, y, None)
        return c, loss

    def accuracy(p, stats, X, y):
        return jnp.mean(jnp.argmax(forward(p, stats, X, False, None)[0], axis=1) == y)

    return SimpleNamespace(
        perm=jax.jit(perm), step=jax.jit(step, donate_argnums=(0, 1, 2)),
        epoch=jax.jit(epoch, donate_argnums=(0, 1, 2)), accuracy=jax.jit(accuracy),
        cost_loss=jax.jit(cost_loss))


def first_cost(spec, weights, X, y):
    """(cost, mean loss) as floats of a training-mode forward from `weights` (zero biases, fresh
    BN), without dropout: the first-step checks."""
    params, stats, _ = init_state(spec, 0, weights)
    c, loss = compiled(spec._replace(dropout=0.0), spec.n_train // spec.batch).cost_loss(
        params, stats, X, np.asarray(y, np.int32))
    return float(c), float(loss)


def train(spec, state, data, etas, mus, seed, loop, max_steps=None, perm_of=None):
    """Run the schedule etas / mus (one entry per update step, whole epochs) from `state`; return
    (state, last batch loss (a device scalar), steps run, seconds).  max_steps: stop early (the
    step loop after that step, the scan loop after the epoch that reaches it).  perm_of: epoch ->
    its row order (host int array) instead of the on-device draws (the paired checks)."""
    import jax
    X, y = data["train"]
    spe = spec.n_train // spec.batch
    total = len(etas)
    assert total % spe == 0, f"{total} steps is not a whole number of {spe}-step epochs"
    f = compiled(spec, spe)
    etas32 = np.asarray(etas, np.float32)
    mus32 = np.asarray(mus if mus is not None else np.zeros(total), np.float32)
    shuffle_key, drop_key = jax.random.key(20_000 + seed), jax.random.key(40_000 + seed)
    stop = total if max_steps is None else min(total, max_steps)
    params, stats, buf = state
    loss, t = None, 0
    tic = time.perf_counter()
    for e in range(total // spe):
        if t >= stop:
            break
        perm = f.perm(shuffle_key, np.int32(e)) if perm_of is None else \
            jax.device_put(np.asarray(perm_of(e), np.int32))
        if loop == "scan":
            rows = slice(e * spe, (e + 1) * spe)
            params, stats, buf, losses = f.epoch(params, stats, buf, X, y, perm, etas32[rows],
                                                 mus32[rows], drop_key, np.int32(t))
            loss, t = losses[-1], t + spe
        else:
            for b in range(min(spe, stop - t)):
                params, stats, buf, loss = f.step(params, stats, buf, X, y, perm, np.int32(b),
                                                  etas32[t], mus32[t], drop_key, np.int32(t))
                t += 1
    jax.block_until_ready((params, stats, buf, loss))
    return (params, stats, buf), loss, t, time.perf_counter() - tic


def warm_up(spec, splits, etas, mus, loop):
    """Compile (and run once) every function a timed run calls, on the same shapes; return the
    seconds it took."""
    import jax
    tic = time.perf_counter()
    data = device_splits(splits)
    state = init_state(spec, 0)
    state, _, _, _ = train(spec, state, data, etas, mus, 0, loop, max_steps=3)
    f = compiled(spec, spec.n_train // spec.batch)
    for part in ("test", "val"):
        if len(getattr(splits, f"y_{part}")):
            jax.block_until_ready(f.accuracy(state[0], state[1], *data[part]))
    return time.perf_counter() - tic


def run(spec, splits, seed, etas, mus=None, loop="scan"):
    """One timed training run from fresh He weights; the dict peer_recipe's runs return."""
    tic = time.perf_counter()
    data = device_splits(splits)
    f = compiled(spec, spec.n_train // spec.batch)
    state = init_state(spec, seed)
    state, loss, steps, seconds_train = train(spec, state, data, etas, mus, seed, loop)
    params, stats, _ = state
    acc = float(f.accuracy(params, stats, *data["test"]))
    wall = time.perf_counter() - tic
    val = float(f.accuracy(params, stats, *data["val"])) if len(splits.y_val) else float("nan")
    return {"acc": acc, "val_acc": val, "seconds": wall, "seconds_train": seconds_train,
            "final_batch_loss": float(loss), "steps": steps}
