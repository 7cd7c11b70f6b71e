"""A small trained model file and ways to take it apart, for the model-file and fuzz tests."""
import io
import zipfile

import numpy as np

from fastmlp import Network, checkpoint
from fastmlp.train import Trainer
from train_helpers import tiny_config, tiny_splits


def trained_file(path, optimizer="adam", batch_norm=True):
    """Train a tiny network for a few steps and save it (with data, history and the optimiser's
    memory) at `path`; returns (path, splits)."""
    splits = tiny_splits()
    config = tiny_config(optimizer=optimizer, batch_norm=batch_norm, eta_max=0.01, ns=8)
    sizes = config.check_data(len(splits.X_train), splits.X_train.shape[1], splits.n_classes)
    net = Network(sizes, config.batch_norm, config.init, config.dtype, config.seed)
    t = Trainer(net, config, data=splits).fit(splits.X_train, splits.y_train, splits.X_val, splits.y_val)
    checkpoint.save(path, t.net, config, t.step_, t.history_.to_arrays(), splits, t.seconds_,
                    t.optimizer_.state)
    return path, splits


def entries(path):
    """The file's arrays by name (as np.load reads a trusted file)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def write(path, arrays):
    np.savez(path, **arrays)
    return path


def npy_bytes(header_shape, dtype="<f8", data=b""):
    """An .npy file whose header claims `header_shape` of `dtype`, followed by `data`."""
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False,
                                             "shape": tuple(header_shape)})
    return f.getvalue() + data


def zip_members(path, members, compression=zipfile.ZIP_STORED):
    """An .npz written member by member: {name: bytes of an .npy file}."""
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name + ".npy", data)
    return path
