"""Compile flags for every kernel, in one place.

fastmath: `contract` lets LLVM fuse multiply-adds, `nsz`/`arcp` allow cheaper signed-zero and
reciprocal handling.  `nnan` and `ninf` are left out on purpose: softmax and batch norm must
see NaN/inf so the trainer can report them.  `reassoc` is left out too: it lets LLVM reorder
reductions differently in the parallel and the serial build (measured: 1-ulp differences in
float64 softmax), and every output here must be the same bits whatever the build or thread count.

Numba's on-disk cache is keyed on each kernel file, not on this one: after changing these
flags, delete the cached *.nbi/*.nbc files under kernels/__pycache__ (or touch kernels/*.py).
"""
import numba

FASTMATH = frozenset({"contract", "nsz", "arcp"})


def parallel_kernel(fn):
    """Compile `fn` as a multithreaded kernel (its `prange` loops run on Numba's pool)."""
    return numba.njit(parallel=True, cache=True, fastmath=set(FASTMATH), nogil=True)(fn)


def serial_kernel(fn):
    """Compile `fn` single-threaded: for kernels too small to pay for a thread hand-off."""
    return numba.njit(parallel=False, cache=True, fastmath=set(FASTMATH), nogil=True)(fn)


def serial_build(kernel):
    """A single-threaded build of a kernel from the same Python source (tests compare the two)."""
    return numba.njit(parallel=False, cache=False, fastmath=set(FASTMATH))(kernel.py_func)
