import os
from pathlib import Path

import numpy as np
import pytest

# ../shared beside the repository; read in place, never copied into the repository.
SHARED_DATA = Path(os.environ.get("FASTMLP_SHARED_DATA",
                                  Path(__file__).resolve().parents[2] / "shared" / "data"))
CIFAR_SUBSET = SHARED_DATA / "cifar10-subset.npz"


@pytest.fixture(scope="session")
def cifar_subset():
    """The real CIFAR-10 subset as raw arrays (uint8 rows, int labels)."""
    if not CIFAR_SUBSET.is_file():
        pytest.skip(f"real CIFAR-10 subset not found at {CIFAR_SUBSET} (../shared/data beside the repo)")
    with np.load(CIFAR_SUBSET, allow_pickle=False) as d:
        return {k: d[k] for k in ("x_train", "y_train", "x_test", "y_test")}


@pytest.fixture(scope="session")
def cifar_small(cifar_subset):
    """20 real images, their first 50 pixel values, standardised, float64; integer labels."""
    X = cifar_subset["x_train"][:20, :50].astype(np.float64)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X, cifar_subset["y_train"][:20].astype(np.int64)
