"""Matrix products through the BLAS that Numba itself links (SciPy's), called single-threaded
from inside Numba's own thread pool.

Why: OpenBLAS's sgemm kernels reach ~70-80 GFLOP/s per core on the first layer's shapes, 3-4x
what a scalar loop nest compiled by Numba reaches, and splitting a product into one row block
per Numba thread, each a single-threaded BLAS call, keeps one thread pool on the cores (measured
136-168 GFLOP/s on 2 cores for 100x3072x50, faster than OpenBLAS's own 2-thread split).  On
CPUs with AVX2 and FMA every product of the step uses kernels/gemm.py instead, because
OpenBLAS's bits depend on where an element falls in its tiles (kernels/gemm.py); BLAS is the
fallback elsewhere and the per-kernel reference path's.  A
multithreaded BLAS call inside `prange` would start a second pool on the same cores, which
was measured 10-20x slower: callers must keep the BLAS at one thread while these run
(fastmlp.threads.blas_single_threaded does it).

The calls go through Numba's exported helper `numba_xxgemm`, resolved by symbol name, so
kernels that use it can be cached on disk (a ctypes function pointer would prevent that).

Row-major arrays are passed to the column-major BLAS as their transposes: a C-contiguous
(R, S) array is, to Fortran, an (S, R) matrix with leading dimension S.
Legend: M, N, K the product's sizes; A, B, C flat (1-D) views starting at the first element.
"""
import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  numba_xxgemm looks sgemm/dgemm up here
from numba import prange, types
from numba.extending import overload

from ._config import parallel_kernel, serial_kernel

_NO, _T = 78, 84   # 'N', 'T'


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
def matmul(C, A, B, beta):
    """C (M, N) <- A (M, K) @ B (K, N) + beta * C, one BLAS call on this thread."""
    M, K = A.shape
    N = B.shape[1]
    if M == 0 or N == 0:
        return
    fgemm(_NO, _NO, N, M, K, 1.0, B.reshape(-1), N, A.reshape(-1), K, beta, C.reshape(-1), N)


@serial_kernel
def matmul_nt(C, A, B, beta):
    """C (M, K) <- A (M, N) @ B (K, N)^T + beta * C: the input gradient dY W^T."""
    M, N = A.shape
    K = B.shape[0]
    fgemm(_T, _NO, K, M, N, 1.0, B.reshape(-1), N, A.reshape(-1), N, beta, C.reshape(-1), K)


@serial_kernel
def gemm(transa, transb, m, n, k, A, lda, B, ldb, beta, C, ldc):
    """fgemm with alpha = 1 (transa, transb: ord('N') = 78 or ord('T') = 84), as a compiled
    function of its own, which is what a `prange` body should call."""
    fgemm(transa, transb, m, n, k, 1.0, A, lda, B, ldb, beta, C, ldc)


@parallel_kernel
def par_matmul_nt(C, A, B, beta, nb):
    """matmul_nt (C (M, K) <- A (M, N) @ B (K, N)^T + beta C) split into `nb` blocks of rows of
    C, each a single-threaded BLAS call, spread over the threads.  Each element comes from one
    call over the full N; OpenBLAS rounds it the same whatever the block's height, as long as
    blocks are not tiny (its small-matrix path sums in another order: seen for blocks of 10
    rows, not from 16 up)."""
    M, N = A.shape
    K = B.shape[0]
    Af, Bf, Cf = A.reshape(-1), B.reshape(-1), C.reshape(-1)
    for t in prange(nb):
        m0 = M * t // nb
        m1 = M * (t + 1) // nb
        if m1 > m0:
            gemm(_T, _NO, K, m1 - m0, N, Bf, N, Af[m0 * N:], N, beta, Cf[m0 * K:], K)
