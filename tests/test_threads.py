import os
import subprocess
import sys

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


def test_pool_runs_on_tbb_when_it_is_installed():
    """fastmlp depends on tbb (fastmlp/threads.py says why); a fresh process starts the pool on it,
    and the kernels give the same bits as on OpenMP or the workqueue."""
    code = "import fastmlp.threads as t; print(t.threading_layer())"
    forced = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, NUMBA_THREADING_LAYER="tbb"),
                            capture_output=True, text=True)
    if forced.returncode:
        pytest.skip(f"Numba's TBB layer cannot load here: {forced.stderr.strip().splitlines()[-1]}")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "tbb", out


def test_same_bits_on_every_threading_layer():
    """One training step on each layer Numba can load, 2 threads: the same parameters."""
    code = ("import hashlib, numpy as np, fastmlp, fastmlp.threads as t\n"
            "net = fastmlp.Network([300, 64, 32, 10], True, 'he', 'float32', 0)\n"
            "X = np.random.default_rng(1).standard_normal((200, 300)).astype(np.float32)\n"
            "net._train_step(X, np.arange(200) % 10, 0.01, 0.1)\n"
            "print(t.threading_layer(), hashlib.sha256(net.theta.tobytes()).hexdigest(), float(net.theta.sum()))")
    seen = {}
    for layer in ("tbb", "omp", "workqueue"):
        env = dict(os.environ, NUMBA_THREADING_LAYER=layer, NUMBA_NUM_THREADS="2")
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        if out.returncode == 0:
            name, *bits = out.stdout.split()
            seen[name] = bits
    assert "workqueue" in seen, seen
    assert all(bits == seen["workqueue"] for bits in seen.values()), {k: v[-1] for k, v in seen.items()}
