"""Compile flags for every kernel, in one place.

fastmath: `contract` lets LLVM fuse multiply-adds, `nsz`/`arcp` allow cheaper signed-zero and
reciprocal handling.  `nnan` and `ninf` are left out on purpose: softmax and batch norm must
see NaN/inf so the trainer can report them.  `reassoc` is left out too: it lets LLVM reorder
reductions differently in the parallel and the serial build (measured: 1-ulp differences in
float64 softmax), and every output here must be the same bits whatever the build or thread count.

Numba's on-disk cache is keyed on each kernel's own file only; kernels/__init__.py drops the
cache whenever any file here (this one included) changes.
"""
import types

import numba

FASTMATH = frozenset({"contract", "nsz", "arcp"})
# error_model "numpy": a float division by zero gives inf/nan as in NumPy instead of raising.
# Kernels trust their inputs (the public layer checks them), and Python's model tests every
# divisor for zero, which keeps loops with a division scalar (measured 4x slower; the Adam and
# AdaGrad updates divide per element).
ERROR_MODEL = "numpy"


def parallel_kernel(fn):
    """Compile `fn` as a multithreaded kernel (its `prange` loops run on Numba's pool)."""
    return numba.njit(parallel=True, cache=True, fastmath=set(FASTMATH), nogil=True,
                      error_model=ERROR_MODEL)(fn)


def serial_kernel(fn):
    """Compile `fn` single-threaded: for kernels too small to pay for a thread hand-off."""
    return numba.njit(parallel=False, cache=True, fastmath=set(FASTMATH), nogil=True,
                      error_model=ERROR_MODEL)(fn)


def internal_kernel(fn):
    """serial_kernel for a helper that only compiled code calls: built without the wrappers
    that let Python (and first-class function pointers) call it, ~40 ms of the first run's
    compile per function (measured on 30 small functions: 3.2 -> 2.1 s)."""
    return numba.njit(parallel=False, cache=True, fastmath=set(FASTMATH), nogil=True,
                      error_model=ERROR_MODEL, no_cpython_wrapper=True,
                      no_cfunc_wrapper=True)(fn)


def inlined_kernel(fn):
    """A helper of one compiled caller, inlined into it by Numba itself rather than compiled as
    a function of its own: every compiled function is optimised again inside each function
    that calls it, so a helper that is its own function costs its compile at least twice."""
    return numba.njit(parallel=False, cache=True, fastmath=set(FASTMATH), nogil=True,
                      error_model=ERROR_MODEL, inline="always")(fn)


def serial_twin(kernel, internal=False):
    """A single-threaded build of a parallel kernel, from the same Python source (`internal`:
    callable from compiled code only, see internal_kernel).

    The fused training step calls these for arrays too small to pay for waking the thread
    pool, and the tests check them equal to the parallel builds.  The twin is compiled from a
    copy of the function under its own name: Numba's disk cache is keyed by the function's
    name and source, not by its compile flags, so the same function compiled twice would
    load the other build's machine code.
    """
    fn = kernel.py_func
    # the internal build gets a name of its own too: without wrappers, it must never be what
    # a Python caller loads from the cache (it crashes)
    suffix = "_serial_internal" if internal else "_serial"
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix,
                              fn.__defaults__, fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + suffix
    twin.__doc__ = fn.__doc__
    return (internal_kernel if internal else serial_kernel)(twin)
