import numba
import pytest
from threadpoolctl import threadpool_info

import fastmlp
from fastmlp.threads import blas_single_threaded


def blas_threads():
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_blas_is_single_threaded_inside_and_restored_after():
    before = blas_threads()
    with blas_single_threaded():
        assert set(blas_threads()) == {1}
        with blas_single_threaded():             # nested: still one thread, no new limit
            assert set(blas_threads()) == {1}
        assert set(blas_threads()) == {1}
    assert blas_threads() == before


def test_set_num_threads():
    before = numba.get_num_threads()
    try:
        fastmlp.set_num_threads(1)
        assert fastmlp.get_num_threads() == 1
    finally:
        numba.set_num_threads(before)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", numba.config.NUMBA_NUM_THREADS + 1])
def test_bad_thread_counts(bad):
    with pytest.raises(ValueError, match=r"threads must be an integer from 1 to \d+ "
                                         r"\(NUMBA_NUM_THREADS\); got"):
        fastmlp.set_num_threads(bad)
