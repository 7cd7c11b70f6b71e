"""Who owns the cores: Numba's thread pool does, and the BLAS that the kernels call is kept
at one thread while they run.

fastmlp's kernels split big matrix products into one block per Numba thread, each block a
single-threaded BLAS call (kernels/blas.py).  A BLAS left multithreaded there would start a
second pool on the same cores, measured 10-20x slower.  `blas_single_threaded` limits every
loaded BLAS to one thread (through threadpoolctl) for the duration of a fastmlp call and
restores it afterwards, so the user's own NumPy/SciPy code keeps its threads.
"""
import contextlib
import threading

import numba

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
