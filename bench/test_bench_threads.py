"""Thread scaling: net A's fused step at batch 500 with 1 thread and with every thread, and
the check that both give the same parameters.

    python -m pytest bench -k threads --benchmark-group-by=param:batch
"""
import numba
import numpy as np
import pytest

import impls
from fastmlp.threads import blas_single_threaded


@pytest.mark.parametrize("batch", [100, 500])
@pytest.mark.parametrize("threads", sorted({1, numba.config.NUMBA_NUM_THREADS}))
def test_threads(benchmark, threads, batch):
    X, y = impls.batch(batch)
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        step, net = impls.make_fastmlp("A", X, y)
        with blas_single_threaded():
            for _ in range(3):
                step()
            # the same three steps on one thread give the same bits
            numba.set_num_threads(1)
            one = impls.make_fastmlp("A", X, y)[1]
            for _ in range(3):
                one._train_step(X, y, impls.LAM, impls.ETA)
            numba.set_num_threads(threads)
            np.testing.assert_array_equal(net.theta, one.theta)
            benchmark.extra_info.update(threads=threads, batch=batch)
            benchmark(step)
    finally:
        numba.set_num_threads(before)
