"""Matrix products through the BLAS that Numba itself links (SciPy's), on the calling thread:
the products of the build for CPUs without AVX2 and FMA (kernels/gemm.py's `_blas`).  On other
CPUs every product uses kernels/gemm.py's own kernels, because OpenBLAS's bits depend on where
an element falls in its tiles.  Callers keep the BLAS at one thread while these run
(fastmlp.threads.blas_single_threaded): a multithreaded BLAS beside Numba's pool would put two
pools on the same cores (measured 10-20x slower inside `prange`).

The calls go through Numba's exported helper `numba_xxgemm`, resolved by symbol name, so
kernels that use it can be cached on disk (a ctypes function pointer would prevent that).

Row-major arrays are passed to the column-major BLAS as their transposes: a C-contiguous
(R, S) array is, to Fortran, an (S, R) matrix with leading dimension S.
Legend: M, N, K the product's sizes; A, B, C flat (1-D) views starting at the first element.
"""
import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  numba_xxgemm looks sgemm/dgemm up here
from numba import types
from numba.extending import overload

from ._config import serial_kernel



def _xxgemm(dtype):
    p = types.CPointer(dtype)
    sig = types.intc(types.char, types.char, types.char, types.intp, types.intp, types.intp,
                     p, p, types.intp, p, types.intp, p, p, types.intp)
    return types.ExternalFunction("numba_xxgemm", sig)


_SGEMM, _DGEMM = _xxgemm(types.float32), _xxgemm(types.float64)


def fgemm(transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
    """Fortran gemm: C (m, n) = alpha op(A) op(B) + beta C, on flat arrays (compiled only)."""
    raise NotImplementedError("fgemm is only callable from compiled code")


@overload(fgemm, jit_options={"cache": True})
def _fgemm(transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
    if C.dtype == types.float32:
        fn, kind, dt = _SGEMM, ord("s"), np.float32
    elif C.dtype == types.float64:
        fn, kind, dt = _DGEMM, ord("d"), np.float64
    else:
        return None

    def impl(transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
        scalars = np.empty(2, dt)
        scalars[0] = alpha
        scalars[1] = beta
        fn(kind, transa, transb, m, n, k, scalars.ctypes, A.ctypes, lda, B.ctypes, ldb,
           scalars[1:].ctypes, C.ctypes, ldc)
    return impl


@serial_kernel
def gemm(transa, transb, m, n, k, A, lda, B, ldb, beta, C, ldc):
    """fgemm with alpha = 1 (transa, transb: ord('N') = 78 or ord('T') = 84), as a compiled
    function of its own, which is what a `prange` body should call."""
    fgemm(transa, transb, m, n, k, 1.0, A, lda, B, ldb, beta, C, ldc)
