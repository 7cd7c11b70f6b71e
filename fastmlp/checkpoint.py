"""Checkpoints and saved models: one .npz file, no pickles.

A file holds the parameters and BN running statistics (exact bytes), the network's shape, the
TrainConfig as a JSON string, the data's mean/std (so `fastmlp predict` can standardise raw rows),
label names, the step reached, the history so far and the seconds spent: all that `--resume`
needs to finish a run bit-identical to an uninterrupted one.  Files are written to a temporary
file in the same folder and renamed over the target, so a crash never leaves a half-written file.
"""
import contextlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import TrainConfig
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


class CheckpointError(ValueError):
    """A model or checkpoint file that cannot be used; the message names the file and what to do."""


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


def atomic_write(path, write):
    """Call write(f) on a binary file that replaces `path` only once it is complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)            # mkstemp makes it 0600
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename is None and e.errno is not None:
            # a full disk raises ENOSPC without a file name; name the file that was being written
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise


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
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load(path):
    """Read a file written by `save`; every problem is a CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file; give the model.npz (or checkpoint.npz) "
                              f"that `fastmlp train` wrote in its --out folder.")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise CheckpointError(f"{path}: not a readable .npz model ({e}); give a model.npz written by "
                              f"`fastmlp train`.") from None
    if "format" not in arrays or str(arrays["format"]) not in (FORMAT,) + OLD_FORMATS:
        raise CheckpointError(f"{path}: not a fastmlp model (format {_get(arrays, 'format')!r}, expected "
                              f"{FORMAT!r}); give a model.npz written by `fastmlp train`.")
    try:
        config = TrainConfig.from_dict(json.loads(str(arrays["config"])), where=f"{path} config")
        net = _network(json.loads(str(arrays["network"])))
        net.set_state({k.split(".", 1)[1]: v for k, v in arrays.items()
                       if k.startswith(("param.", "stat."))})
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: damaged or from an incompatible version ({e}); train the "
                              f"model again.") from None
    has_data = "data.mean" in arrays
    return Checkpoint(
        net=net, config=config, step=int(arrays["step"]),
        history={k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("history.")},
        mean=arrays["data.mean"] if has_data else None,
        std=arrays["data.std"] if has_data else None,
        label_names=[str(s) for s in arrays["data.label_names"]] if has_data else None,
        image_shape=tuple(int(s) for s in arrays["data.image_shape"]) if has_data else None,
        source=str(arrays["source"]), seconds=json.loads(str(arrays["seconds"])),
        optimizer_state=(optimizer_state_from_v1(net, arrays["optimizer.state"])
                         if "optimizer.state" in arrays and str(arrays["format"]) in OLD_FORMATS
                         else arrays.get("optimizer.state")))


def _network_spec(net):
    return {"sizes": net.sizes, "batch_norm": net.batch_norm, "init": net.init,
            "dtype": net.dtype.name, "seed": net.seed, "bn_eps": net.bn_eps, "bn_alpha": net.bn_alpha,
            "dropout": list(net.dropout)}


def _network(spec):
    return Network(spec["sizes"], spec["batch_norm"], spec["init"], spec["dtype"], spec["seed"],
                   spec["bn_eps"], spec["bn_alpha"], spec.get("dropout", 0.0))


def _get(arrays, key):
    return str(arrays[key]) if key in arrays else None
