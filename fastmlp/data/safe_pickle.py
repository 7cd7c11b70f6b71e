"""Load the official CIFAR-10 python batches without ever running code from a file.

A pickle can call any importable function while it loads (`__reduce__` -> `os.system`). A CIFAR-10
batch needs only the three globals that rebuild a numpy array; everything else in it (dicts, lists,
ints, byte strings) is plain pickle data that calls nothing. So `find_class` admits those three and
refuses the rest, before anything is called.
"""
import pickle
from pathlib import Path

import numpy as np

from .errors import DataError

try:  # numpy >= 2 keeps it in numpy._core; the official batches name numpy.core (numpy 1.x).
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct

# The globals an official batch names, mapped to the objects themselves: importing the names would
# import numpy.core, which warns on numpy 2.
ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global outside ALLOWED."""


class SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise RefusedGlobal(f"{module}.{name}") from None


def load_batch(path: Path) -> dict:
    """Unpickle one CIFAR-10 batch file (a Python-2 pickle, hence encoding="bytes")."""
    try:
        with open(path, "rb") as f:
            obj = SafeUnpickler(f, encoding="bytes").load()
    except RefusedGlobal as e:
        raise DataError(
            f"{path}: refused to load it because it asks to call {e}, and a CIFAR-10 batch holds only "
            "numpy arrays, lists, ints and byte strings; it is not an official batch, so delete it "
            "and download CIFAR-10 again (`fastmlp download cifar10`)"
        ) from None
    except OSError as e:
        raise DataError(f"{path}: cannot read it ({e})") from e
    except Exception as e:  # truncated or garbled pickles raise many types (EOFError, ValueError, ...)
        raise DataError(
            f"{path}: truncated or corrupt CIFAR-10 batch ({type(e).__name__}: {e}); delete the folder "
            f"{path.parent} and download CIFAR-10 again (`fastmlp download cifar10`)"
        ) from e
    if not isinstance(obj, dict):
        raise DataError(
            f"{path}: a CIFAR-10 batch must unpickle to a dict, got {type(obj).__name__}; delete the "
            f"folder {path.parent} and download CIFAR-10 again (`fastmlp download cifar10`)"
        )
    return obj
