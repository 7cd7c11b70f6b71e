"""What a model or checkpoint file must hold, checked entry by entry before anything is built.

checkpoint.load reads the arrays (fastmlp.npyfile: headers checked against real sizes, no
pickles) and `parse` turns them into the fields of a Checkpoint, or raises CheckpointError naming
the file and the entry.  A file is refused when it would give a network that cannot predict
(non-finite weights, negative running variances, shapes that disagree with the stored network
or config), when an entry is missing, unexpected or of the wrong type, and when a JSON entry
is not the flat table fastmlp writes: a damaged or hand-made file fails here, in one line,
instead of as a KeyError deep inside or as a network that predicts one class for every row.
"""
import dataclasses
import json
import numbers

import numpy as np

from .config import TrainConfig, parse_sizes
from .network import Network, check_dropout

MAX_STEP = 10**12               # update steps: far beyond any run, far below int64's limit
SPEC_KEYS = {"sizes", "batch_norm", "init", "dtype", "seed", "bn_eps", "bn_alpha", "dropout"}
HISTORY = ("eta", "batch_loss", "evals")
DATA = ("mean", "std", "label_names", "image_shape")
SECONDS = ("compile", "train", "eval", "checkpoint")
N_EVAL_COLUMNS = (8, 11)        # history.EVAL_COLUMNS; 8: files written before the test columns


class CheckpointError(ValueError):
    """A model or checkpoint file that cannot be used; the message names the file and what to do."""


def parse(arrays, path, formats):
    """The keyword arguments of a checkpoint.Checkpoint from the `arrays` of the file `path`.
    formats: the format strings this version reads."""
    e = _Entries(arrays, path)
    fmt = e.text("format")
    if fmt not in formats:
        e.fail("format", f"is {fmt!r}, not one of {', '.join(map(repr, formats))}: not a fastmlp model "
                         f"file, or one from another version")
    config = _config(e)
    net = _network(e)
    for key in sorted(arrays):          # arrays of another network (e.g. BN ones without BN)
        if key.startswith(("param.", "stat.")) and key not in e.used:
            e.fail(key, f"is not part of a fastmlp model of sizes {net.sizes} with batch norm "
                        f"{'on' if net.batch_norm else 'off'}")
    fields = dict(net=net, config=config, step=_step(e), source=e.text("source"),
                  seconds=_seconds(e), history=_history(e), optimizer_state=_optimizer_state(e, net, config))
    fields.update(_data(e, net))
    unexpected = sorted(set(arrays) - e.used)
    if unexpected:
        e.fail(unexpected[0], "is not part of a fastmlp model file")
    return fields


class _Entries:
    """The file's arrays, read one named entry at a time; records which entries were used."""

    def __init__(self, arrays, path):
        self.arrays, self.path, self.used = arrays, path, set()

    def fail(self, key, problem):
        raise CheckpointError(f"{self.path}: entry {key!r} {problem}; give a model.npz or checkpoint.npz "
                              f"as `fastmlp train` wrote it (train again if it is damaged).")

    def has(self, key):
        return key in self.arrays

    def get(self, key, dtype=None, shape=None, ndim=None):
        """The entry, checked: dtype a dtype (exactly), "int" (any integer type) or "text"."""
        if key not in self.arrays:
            self.fail(key, "is missing")
        self.used.add(key)
        a = self.arrays[key]
        kinds = {"int": ("iu", "an integer type"), "text": ("U", "text")}
        ok, want = kinds[dtype] if dtype in kinds else (None, str(np.dtype(dtype or a.dtype)))
        if (a.dtype.kind not in ok) if ok else (dtype is not None and a.dtype != np.dtype(dtype)):
            self.fail(key, f"has dtype {a.dtype}, expected {want}")
        if shape is not None and a.shape != tuple(shape):
            self.fail(key, f"has shape {a.shape}, expected {tuple(shape)}")
        if ndim is not None and a.ndim != ndim:
            self.fail(key, f"has shape {a.shape}, expected a {ndim}-D array")
        return a

    def text(self, key):
        return str(self.get(key, "text", shape=()))

    def json(self, key, what):
        """A JSON object whose values are numbers, strings, booleans, null or lists of those."""
        text = self.text(key)
        try:
            value = json.loads(text, parse_constant=_no_constant)
        except (ValueError, RecursionError) as err:
            self.fail(key, f"is not valid JSON ({' '.join(str(err).split())[:120]})")
        if not isinstance(value, dict):
            self.fail(key, f"must be a JSON object ({what}); got {type(value).__name__}")
        for k, v in value.items():
            items = v if isinstance(v, list) else [v]
            if not all(x is None or isinstance(x, (str, bool, int, float)) for x in items):
                self.fail(key, f"holds a nested value at {k!r}; {what} is a flat table")
        return value

    def finite(self, key, a, low=None, strict=False):
        bad = ~np.isfinite(a)
        if low is not None:
            bad |= (a <= low) if strict else (a < low)
        if bad.any():
            at = np.unravel_index(int(np.argmax(bad)), a.shape)
            rule = "finite" if low is None else f"finite and {'>' if strict else '>='} {low}"
            self.fail(key, f"must be {rule}; holds {a[at].item():.6g} at index {tuple(int(i) for i in at)}")
        return a


def _no_constant(name):
    raise ValueError(f"{name} is not a number JSON allows")


def _config(e):
    values = e.json("config", "the training settings")
    try:
        config = TrainConfig.from_dict(values, where="config")
        # threads is bounded by this machine's cores, and does not change what was trained
        dataclasses.replace(config, threads=None).validate()
    except (ValueError, TypeError) as err:
        e.fail("config", f"does not hold valid training settings ({' '.join(str(err).split())})")
    return config


def _network(e):
    """The Network the file describes, built only once every array has the shape and dtype
    the description gives it (so a description of a huge network cannot allocate one)."""
    spec = e.json("network", "the network's shape")
    missing = sorted(SPEC_KEYS - {"dropout"} - set(spec))
    if missing or set(spec) - SPEC_KEYS:
        e.fail("network", f"must have the keys {', '.join(sorted(SPEC_KEYS))}; "
                          + (f"{missing[0]!r} is missing" if missing else
                             f"got {sorted(set(spec) - SPEC_KEYS)[0]!r}"))
    sizes, bn, dtype = spec["sizes"], spec["batch_norm"], spec["dtype"]
    if not isinstance(sizes, list) or len(sizes) < 2 or not all(
            isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in sizes):
        e.fail("network", f"sizes must be a list of at least two positive widths; got {sizes!r}")
    if not isinstance(bn, bool) or dtype not in ("float32", "float64"):
        e.fail("network", f"batch_norm must be true or false and dtype float32 or float64; got "
                          f"{bn!r} and {dtype!r}")
    seed = spec["seed"]
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        e.fail("network", f"seed must be an integer in [0, 2**63); got {seed!r}")
    state = {}
    for name, shape in _state_shapes(sizes, bn).items():
        key = ("stat." if name.startswith("run_") else "param.") + name
        state[name] = e.finite(key, e.get(key, dtype, shape),
                               low=0.0 if name.startswith("run_var") else None)
    try:
        net = Network(sizes, bn, spec["init"], dtype, seed, spec["bn_eps"], spec["bn_alpha"],
                      spec.get("dropout", 0.0))
    except (ValueError, TypeError) as err:
        e.fail("network", f"does not describe a network ({' '.join(str(err).split())})")
    if bn and net.bn_eps == 0:      # a zero variance with a zero epsilon divides by zero
        for name in (n for n in state if n.startswith("run_var")):
            e.finite(f"stat.{name}", state[name], low=0.0, strict=True)
    net.set_state(state)
    _check_output(e, net, state)
    return net


def _check_output(e, net, state):
    """Finite weights can still overflow (any W * 1e38 in float32): a network whose output is
    not finite for standardised rows predicts class 0 for them.  Probed on the mean row, rows
    of +-1 and seeded N(0, 1) rows, as standardised data looks; 16 rows cost microseconds."""
    probe = np.random.default_rng(0).standard_normal((16, net.n_features)).astype(net.dtype)
    probe[0], probe[1], probe[2] = 0, 1, -1
    with np.errstate(all="ignore"):
        out = net.predict_proba(probe)
    if not np.isfinite(out).all():
        name = max(state, key=lambda n: float(np.abs(state[n]).max(initial=0)))
        key = ("stat." if name.startswith("run_") else "param.") + name
        e.fail(key, f"(largest magnitude {float(np.abs(state[name]).max()):.3g}) makes the network's "
                    f"output overflow to NaN or inf for ordinary standardised rows")


def _state_shapes(sizes, batch_norm):
    """{name: shape} of Network(sizes, batch_norm).get_state(), without building it."""
    shapes, L = {}, len(sizes) - 1
    for k in range(1, L + 1):
        shapes[f"W{k}"], shapes[f"b{k}"] = (sizes[k - 1], sizes[k]), (sizes[k],)
        if batch_norm and k < L:
            for name in ("gamma", "beta", "run_mean", "run_var"):
                shapes[f"{name}{k}"] = (sizes[k],)
    return shapes


def check_trains(net, config, path):
    """Refuse a checkpoint whose network is not the one its config trains: a resumed run builds
    the network from the config and loads the stored arrays into it.  (A model file may pair
    any network with any config: `checkpoint.save` takes both from its caller.)"""
    widths, sizes = parse_sizes(config.sizes), net.sizes
    same = len(widths) == len(sizes) and all(w in ("auto", s) for w, s in zip(widths, sizes))
    try:
        same = same and check_dropout(config.dropout, len(sizes) - 2) == net.dropout
    except ValueError:
        same = False
    if not (same and config.batch_norm == net.batch_norm and config.dtype == net.dtype.name):
        raise CheckpointError(
            f"{path}: entry 'network' (sizes {sizes}, batch_norm {net.batch_norm}, dtype {net.dtype}, "
            f"dropout {list(net.dropout)}) is not what its entry 'config' trains (sizes {config.sizes!r}, "
            f"batch_norm {config.batch_norm}, dtype {config.dtype}, dropout {config.dropout!r}), so the "
            f"run cannot be resumed; start it again.")


def _step(e):
    step = e.get("step", "int", shape=())
    if not 0 <= int(step) <= MAX_STEP:
        e.fail("step", f"must be a count of update steps in [0, {MAX_STEP:.0e}]; got {int(step)}")
    return int(step)


def _seconds(e):
    seconds = e.json("seconds", "seconds spent by activity")
    for k, v in seconds.items():
        if k not in SECONDS or isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1e12:
            e.fail("seconds", f"must map {', '.join(SECONDS)} to seconds >= 0; got {k!r}: {v!r}")
    return seconds


def _history(e):
    if not any(e.has(f"history.{k}") for k in HISTORY):
        return {}
    eta = e.finite("history.eta", e.get("history.eta", np.float64, ndim=1), low=0.0)
    batch_loss = e.get("history.batch_loss", np.float64, shape=eta.shape)
    evals = e.get("history.evals", np.float64, ndim=2)
    if evals.shape[1] not in N_EVAL_COLUMNS:
        e.fail("history.evals", f"has shape {evals.shape}, expected (evaluations, "
                                f"{' or '.join(map(str, N_EVAL_COLUMNS))})")
    for key, a in (("history.batch_loss", batch_loss), ("history.evals", evals)):
        if np.isinf(a).any():       # NaN marks a step not yet taken or a part not measured
            e.fail(key, "holds an infinite value; a run that diverged stops before saving it")
    steps = evals[:, 0]
    if not (np.isfinite(steps).all() and (steps >= 0).all() and (steps <= len(eta)).all()):
        e.fail("history.evals", f"has steps outside [0, {len(eta)}] in its first column")
    return {"eta": eta, "batch_loss": batch_loss, "evals": evals}


def _optimizer_state(e, net, config):
    if not e.has("optimizer.state"):
        return None
    P = net.theta.size
    state = e.finite("optimizer.state", e.get("optimizer.state", net.dtype, ndim=1))
    if state.size not in (P, 2 * P):
        e.fail("optimizer.state", f"has {state.size} values; the optimiser's memory of this network "
                                  f"holds {2 * P} (two per parameter)")
    # AdaGrad's sums of squared gradients and Adam's second moments (the second half) are
    # square roots' arguments: a negative one would make every update NaN
    squares = {"adagrad": state[P:], "adam": state[P:]}.get(config.optimizer)
    if squares is not None and squares.size and (squares < 0).any():
        e.fail("optimizer.state", f"holds a negative sum of squares ({squares.min()!r}) for "
                                  f"{config.optimizer}")
    return state


def _data(e, net):
    """mean, std, label_names, image_shape (all or none) and data_digest."""
    if not any(e.has(f"data.{k}") for k in DATA):
        return {}
    D = net.n_features
    mean = e.finite("data.mean", e.get("data.mean", np.float64, shape=(D,)))
    std = e.finite("data.std", e.get("data.std", np.float64, shape=(D,)), low=0.0, strict=True)
    names = e.get("data.label_names", "text", ndim=1)
    if len(names) != net.n_classes:
        e.fail("data.label_names", f"holds {len(names)} names for the network's {net.n_classes} classes")
    shape = e.get("data.image_shape", "int", ndim=1)
    if not 1 <= shape.size <= 3 or (shape < 1).any() or int(np.prod(shape.astype(object))) != D:
        e.fail("data.image_shape", f"is {tuple(shape.tolist())}; it must be 1 to 3 positive sizes "
                                   f"whose product is the network's {D} inputs")
    digest = e.text("data.digest") if e.has("data.digest") else None
    return dict(mean=mean, std=std, label_names=[str(s) for s in names],
                image_shape=tuple(int(s) for s in shape), data_digest=digest)
