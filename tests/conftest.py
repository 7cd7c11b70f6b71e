import contextlib
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


# ---- cheaper runs for the tests of searches, studies and reports -----------------------------------
# A tiny run trains in milliseconds but draws its four PNGs (cost, loss, accuracy, curves) in about
# 1.5 s, and a spawned worker pool costs seconds to start: together most of the time of the search
# and report tests.  The figures are tested in test_curves.py / test_train.py and the process pool
# in test_studies_search.py / test_search_faults.py; tests of what a search or report does with its
# runs use these instead.
PNG_1X1 = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108000000003a7e9b55"     # white, grey
                        "0000000a49444154789c63f80f0001010100b138f6140000000049454e44ae426082")


@contextlib.contextmanager
def plain_run_figures():
    """Each run's figures written as a 1x1 PNG under their own names (the files are there, the
    drawing is skipped); a study's and a search's own figures are still drawn."""
    from fastmlp import plots

    def history(_, out_dir, *args, **kwargs):
        paths = [Path(out_dir) / f"{name}.png" for name, _, _ in plots.PLOTS]
        for path in paths:
            path.write_bytes(PNG_1X1)
        return paths

    def overview(_, path, *args, **kwargs):
        Path(path).write_bytes(PNG_1X1)
        return Path(path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plots, "plot_history", history)
        mp.setattr(plots, "plot_overview", overview)
        yield


@contextlib.contextmanager
def pool_in_threads():
    """Local worker pools as threads of this process instead of spawned processes."""
    import concurrent.futures
    from fastmlp.studies import executors
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(executors.LocalPool, "_new", lambda self: concurrent.futures.ThreadPoolExecutor(self.workers))
        yield
