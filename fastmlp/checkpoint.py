"""Checkpoints and saved models: one .npz file, no pickles.

A file holds the parameters and BN running statistics (exact bytes), the network's shape, the
TrainConfig as a JSON string, the data's mean/std (so `fastmlp predict` can standardise raw rows),
label names, a digest of the training data, the step reached, the history so far and the seconds
spent: all that `--resume` needs to finish a run bit-identical to an uninterrupted one, and to
check that it continues on the same data.  Loading checks every entry (fastmlp.modelfile) after
checking every array's header against the bytes really there (fastmlp.npyfile).

Files are written to a temporary file in the same folder and renamed over the target, so a crash
never leaves a half-written file; a writer holds an flock on its temporary file, so that one
left behind by a killed process (and only such a one) can be told apart and removed.
"""
import contextlib
import hashlib
import json
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import lock, modelfile, npyfile
from .config import TrainConfig
from .modelfile import CheckpointError
from .network import Network

FORMAT = "fastmlp-checkpoint/2"
# /1 stored each W (fan_in, fan_out) row-major inside the flat parameter order that the
# optimiser's memory mirrors; /2 stores it (fan_out, fan_in).  Parameters are saved by name
# and load either way; the optimiser's memory of a /1 file is reordered on load.
OLD_FORMATS = ("fastmlp-checkpoint/1",)


def optimizer_state_from_v1(net, state):
    """The optimiser's memory saved by format /1 (each W block (fan_in, fan_out) row-major),
    reordered for `net`'s layout (each W block (fan_out, fan_in)); state holds one or more
    copies of the flat parameter order (m, then v)."""
    state = np.array(state, copy=True)
    P = net.theta.size
    if state.size % P:
        return state
    for c in range(state.size // P):
        for k in range(1, net.n_layers + 1):
            fan_in, fan_out = net.sizes[k - 1], net.sizes[k]
            at = c * P + net._offsets[f"W{k}"]
            block = state[at:at + fan_in * fan_out]
            block[...] = block.reshape(fan_in, fan_out).T.reshape(-1)
    return state


@dataclass
class Checkpoint:
    net: Network
    config: TrainConfig
    step: int = 0                                   # update steps done
    history: dict = field(default_factory=dict)     # arrays from History.to_arrays()
    mean: np.ndarray = None                         # (D,) float64 raw-data mean, or None
    std: np.ndarray = None                          # (D,) float64 raw-data std, or None
    label_names: list = None
    image_shape: tuple = None
    source: str = ""                                # where the training data came from
    seconds: dict = field(default_factory=dict)     # time spent so far, by activity
    optimizer_state: np.ndarray = None              # the optimiser's memory (momentum, Adam's m, v)
    data_digest: str = None                         # data_digest() of the training data, or None


MAX_BYTES = 2**31       # a model file's arrays, uncompressed: ~500 million float32 parameters
# the temporary files of atomic_write: mkstemp's 8 random characters between target and suffix
TEMPORARY = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp")


def atomic_write(path, write):
    """Call write(f) on a binary file that replaces `path` only once it is complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, path.name)
    fd, tmp = _locked_temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
            os.chmod(tmp, 0o644)        # mkstemp makes it 0600
            os.replace(tmp, path)       # still holding the lock: a cleaner never sees it free
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename is None and e.errno is not None:
            # a full disk raises ENOSPC without a file name; name the file that was being written
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise


def _locked_temporary(path):
    """(fd, name) of a new temporary file next to `path`, flock'ed for as long as fd is open
    (the kernel drops the lock when the process dies, however it dies)."""
    while True:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        lock.lock_file(fd)
        if os.fstat(fd).st_nlink:   # else a cleaner took it for stale between mkstemp and flock
            return fd, tmp
        os.close(fd)


def remove_stale_temporaries(folder, target=None):
    """Delete the temporary files that atomic_write left in `folder` (for `target`, or for any
    file) when its process was killed mid-write: those that match its naming scheme and that no
    live writer holds locked.  Returns the paths removed."""
    removed = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in os.scandir(folder):
            m = TEMPORARY.fullmatch(entry.name)
            if not m or (target is not None and m["target"] != target) or not entry.is_file(follow_symlinks=False):
                continue
            try:
                fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                if lock.abandoned(fd):  # else locked by a live writer
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
            except OSError:             # gone already
                pass
            finally:
                os.close(fd)
    return removed


def atomic_write_text(path, text):
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def save(path, net, config, step=0, history=None, data=None, seconds=None, optimizer_state=None):
    """Write `net` and the run's state to `path` (.npz).  `data`: anything with mean, std,
    label_names, image_shape and source (a fastmlp.data.Splits), or None.  optimizer_state:
    the optimiser's memory, needed to resume a momentum, AdaGrad or Adam run exactly."""
    arrays = {
        "format": np.array(FORMAT),
        "config": np.array(json.dumps(config.to_dict())),
        "network": np.array(json.dumps(_network_spec(net))),
        "step": np.array(step, np.int64),
        "seconds": np.array(json.dumps(seconds or {})),
        "source": np.array(getattr(data, "source", "")),
    }
    arrays.update({f"param.{k}": v for k, v in net.params.items()})
    arrays.update({f"stat.{k}": v for k, v in net.running.items()})
    arrays.update({f"history.{k}": np.asarray(v) for k, v in (history or {}).items()})
    if optimizer_state is not None and optimizer_state.size:
        arrays["optimizer.state"] = optimizer_state
    if data is not None:
        arrays["data.mean"] = np.asarray(data.mean, np.float64)
        arrays["data.std"] = np.asarray(data.std, np.float64)
        arrays["data.label_names"] = np.array([str(s) for s in data.label_names], dtype=str)
        arrays["data.image_shape"] = np.array(data.image_shape, np.int64)
        digest = data_digest(data)
        if digest is not None:
            arrays["data.digest"] = np.array(digest)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load(path):
    """Read a file written by `save`; every problem is a CheckpointError naming the file (and
    the entry), whatever the file holds."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file; give the model.npz (or checkpoint.npz) "
                              f"that `fastmlp train` wrote in its --out folder.")
    arrays = npyfile.load_npz(path, "model file", CheckpointError, MAX_BYTES)
    fields = modelfile.parse(arrays, path, (FORMAT,) + OLD_FORMATS)
    if str(arrays["format"]) in OLD_FORMATS and fields["optimizer_state"] is not None:
        fields["optimizer_state"] = optimizer_state_from_v1(fields["net"], fields["optimizer_state"])
    return Checkpoint(**fields)


def data_digest(data):
    """A digest of the training data `data` holds (X_train, y_train), or None without them.

    It hashes the shapes, every label and 256 evenly spaced rows: cheap enough for every
    checkpoint (hashing all 553 MB of CIFAR-10's rows takes about a second).  The rows
    left out are covered by the stored mean and std, which sum every value of every row."""
    X, y = getattr(data, "X_train", None), getattr(data, "y_train", None)
    if not isinstance(X, np.ndarray) or not isinstance(y, np.ndarray) or X.ndim != 2:
        return None
    h = hashlib.sha256(repr((X.shape, X.dtype.str, y.shape, y.dtype.str)).encode())
    h.update(np.ascontiguousarray(y).tobytes())
    rows = np.unique(np.linspace(0, len(X) - 1, min(len(X), 256)).astype(np.int64))
    h.update(np.ascontiguousarray(X[rows]).tobytes())
    return h.hexdigest()


def check_resume(ckpt, data, path):
    """Refuse to resume `ckpt` (loaded from `path`) on data other than the run started on, or
    from a step outside its run.  data: the Splits to continue on, or None."""
    path = path or "the checkpoint"
    eta = ckpt.history.get("eta")
    if eta is None:
        raise CheckpointError(f"{path}: holds no training history, so it cannot be resumed; give the "
                              f"checkpoint.npz of an interrupted `fastmlp train` run.")
    if ckpt.step > len(eta):
        raise CheckpointError(f"{path}: entry 'step' is {ckpt.step}, beyond the run's {len(eta)} "
                              f"steps; the file is damaged: start the run again.")
    modelfile.check_trains(ckpt.net, ckpt.config, path)
    if data is None or ckpt.mean is None:
        return
    digest, differ = data_digest(data), []
    if ckpt.data_digest is None:
        warnings.warn(f"{path} predates data digests: only the data's mean and std are compared "
                      f"with those the run started on.", stacklevel=3)
    elif digest is not None and digest != ckpt.data_digest:
        differ.append("rows or labels")
    if not (np.array_equal(ckpt.mean, data.mean) and np.array_equal(ckpt.std, data.std)):
        differ.append("mean and std")
    if differ:
        raise CheckpointError(f"{path}: --resume must continue on the data the run started on, but "
                              f"this data's {' and its '.join(differ)} differ from those stored there; "
                              f"resume with the same data files, or start a new run with another --out.")


def _network_spec(net):
    return {"sizes": net.sizes, "batch_norm": net.batch_norm, "init": net.init,
            "dtype": net.dtype.name, "seed": net.seed, "bn_eps": net.bn_eps, "bn_alpha": net.bn_alpha,
            "dropout": list(net.dropout)}


def _network(spec):
    return Network(spec["sizes"], spec["batch_norm"], spec["init"], spec["dtype"], spec["seed"],
                   spec["bn_eps"], spec["bn_alpha"], spec.get("dropout", 0.0))
