"""One entry point for every source: load_dataset(name, ...) -> Splits, and download(name, ...)."""
import os
from pathlib import Path

import numpy as np

from .arrays import RawData, load_npz
from .cifar10 import download_cifar10, load_cifar10
from .errors import DataError
from .fashion_mnist import download_fashion_mnist, load_fashion_mnist
from .sample import load_sample
from .splits import Splits, check_split, float_dtype, make_splits

NAMES = ("cifar10", "fashion-mnist", "sample")


def load_raw(name, data_dir=None, download=False) -> RawData:
    """The raw uint8 rows of a named dataset or of an .npz file, before splitting."""
    if name == "cifar10":
        return load_cifar10(data_dir, download)
    if name == "fashion-mnist":
        return load_fashion_mnist(data_dir, download)
    if name == "sample":
        return load_sample()
    if isinstance(name, (str, os.PathLike)) and str(name).endswith(".npz"):
        return load_npz(Path(name))
    raise DataError(f"dataset must be one of {', '.join(NAMES)} or a path ending in .npz; got {name!r}")


def load_dataset(name, data_dir=None, split="a3", n_val=5000, dtype=np.float32, download=False) -> Splits:
    """Load, split and standardise a dataset (see make_splits for the splits)."""
    check_split(split)  # cheap checks first: loading CIFAR-10 takes seconds
    float_dtype(dtype)
    return make_splits(load_raw(name, data_dir, download), split, n_val, dtype)


def download(name, data_dir=None, url=None, md5=None) -> Path:
    """`fastmlp download {cifar10,fashion-mnist} [--data-dir DIR]`: fetch, check, install; return the folder.

    url and md5 replace the official ones (a mirror; the tests' local server). For fashion-mnist url
    is the base URL and md5 maps file names to MD5s.
    """
    if name == "cifar10":
        return download_cifar10(data_dir, url, md5)
    if name == "fashion-mnist":
        return download_fashion_mnist(data_dir, url, md5)
    raise DataError(f"download takes cifar10 or fashion-mnist; got {name!r}")
