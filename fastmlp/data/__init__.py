"""Datasets for fastmlp: CIFAR-10, Fashion-MNIST, an embedded sample, and any arrays or .npz file.

load_dataset(name, ...) returns standardised train/validation/test arrays; every data problem raises
DataError with a one-line message that says what to do.
"""
from .arrays import RawData, from_arrays, load_npz
from .cifar10 import find_cifar10, load_cifar10
from .datasets import NAMES, download, load_dataset, load_raw
from .errors import DataError
from .fashion_mnist import find_fashion_mnist, load_fashion_mnist
from .sample import load_sample
from .splits import Splits, feature_stats, make_splits, standardize

__all__ = [
    "DataError", "NAMES", "RawData", "Splits", "download", "feature_stats", "find_cifar10",
    "find_fashion_mnist", "from_arrays", "load_cifar10", "load_dataset", "load_fashion_mnist",
    "load_npz", "load_raw", "load_sample", "make_splits", "standardize",
]
