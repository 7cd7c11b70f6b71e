"""Who owns the cores: Numba's thread pool does, and the BLAS that the kernels call is kept
at one thread while they run.

fastmlp's kernels split big matrix products into one block per Numba thread, each block a
single-threaded BLAS call (kernels/blas.py).  A BLAS left multithreaded there would start a
second pool on the same cores, measured 10-20x slower.  `blas_single_threaded` limits every
loaded BLAS to one thread (through threadpoolctl) for the duration of a fastmlp call and
restores it afterwards, so the user's own NumPy/SciPy code keeps its threads.

Numba's pool runs on Intel TBB (the `tbb` dependency) rather than OpenMP.  OpenMP ends every
parallel region in a barrier that all its threads must reach, so a thread the OS has switched
out stalls the step until it runs again; TBB lets the calling thread take the parts no worker
has claimed.  Measured here (2 cores, 50 steps per call, ms per step): with a busy process on
one core, the study net 50 ms (OpenMP) against 1.2 (TBB) and the 784-512-256-10 net 83 against
13; two fastmlp trainings at once, 1.4-1.9 against 0.7 and 12-15 against 6.8; alone on a quiet
machine TBB is 0-6 % slower.  Results are the same bits: parts are cut by thread count, not by
which thread runs them.  NUMBA_THREADING_LAYER, when set, still decides.
"""
import contextlib
import os
import threading

import numba

if "NUMBA_THREADING_LAYER" not in os.environ:
    # Numba's default order already starts with tbb; stated here so that it stays the choice.
    numba.config.THREADING_LAYER_PRIORITY = ["tbb", "omp", "workqueue"]


def threading_layer():
    """The threading layer Numba's pool runs on ('tbb', 'omp' or 'workqueue'), starting the
    pool if it has not started yet."""
    try:
        return numba.threading_layer()
    except ValueError:              # no parallel region has run yet: start the pool
        from numba.np.ufunc.parallel import _launch_threads
        _launch_threads()
        return numba.threading_layer()

_state = threading.local()
_controller = None


def get_num_threads():
    """Threads fastmlp's kernels use (Numba's setting for the calling thread)."""
    return numba.get_num_threads()


def set_num_threads(n):
    """Use `n` threads, 1 <= n <= NUMBA_NUM_THREADS (the pool size, fixed when it starts;
    set that environment variable to allow more)."""
    limit = numba.config.NUMBA_NUM_THREADS
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= limit:
        raise ValueError(f"threads must be an integer from 1 to {limit} (NUMBA_NUM_THREADS); "
                         f"got {n!r}.")
    numba.set_num_threads(n)


def _blas():
    global _controller
    if _controller is None:
        import scipy.linalg.cython_blas  # noqa: F401  load the BLAS the kernels call
        from threadpoolctl import ThreadpoolController
        _controller = ThreadpoolController()
    return _controller


@contextlib.contextmanager
def blas_single_threaded():
    """Keep the BLAS at one thread inside this block.  Nested uses cost nothing, so a
    training loop enters it once and each step's call returns at once."""
    depth = getattr(_state, "depth", 0)
    if depth:
        _state.depth = depth + 1
        try:
            yield
        finally:
            _state.depth = depth
        return
    with _blas().limit(limits=1, user_api="blas"):
        _state.depth = 1
        try:
            yield
        finally:
            _state.depth = 0
