"""A full epoch of the study for net A (45,000 CIFAR-shaped training rows, 5,000 validation
rows, batch 100, float32): the shuffle, 450 steps and the train/validation evaluation, with
fastmlp's Trainer and an equivalent PyTorch loop.  Slow: about 1-3 s a round.

    python -m pytest bench -k epoch
"""
import pytest

import impls
from fastmlp.history import TEST_COLUMNS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data():
    return impls.epoch_data()


@pytest.mark.parametrize("impl", ["fastmlp", "torch"])
def test_epoch(benchmark, data, impl):
    if impl == "torch" and not impls.torch_available():
        pytest.skip("PyTorch is not installed (pip install torch==2.13.0)")
    run = impls.epoch_fastmlp(*data) if impl == "fastmlp" else impls.epoch_torch(*data)
    last = run()                                  # warm up (compilation) and check the result
    # fastmlp's row ends with the test set's columns (history.TEST_COLUMNS), NaN without one
    scores = last[2:len(last) - len(TEST_COLUMNS)] if impl == "fastmlp" else last[2:]
    assert all(0 <= v < 10 for v in scores) and len(scores) >= 2
    benchmark.extra_info["impl"] = impl
    benchmark.pedantic(run, rounds=3, iterations=1)
