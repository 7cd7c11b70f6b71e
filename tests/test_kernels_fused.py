"""The kernels the fused step is built from (the fallback's BLAS product, bias, weight gradient with its SGD
step, row gather, SGD update) against NumPy, their serial twins against the parallel builds,
and the fused step against the per-kernel path."""
import numba
import numpy as np
import pytest

import fastmlp
from fastmlp.kernels import blas, gemm, linear, optim, tasks
from fastmlp.kernels._config import serial_twin
from fastmlp.threads import blas_single_threaded

DTYPES = [np.float32, np.float64]
TOL = {np.float32: 1e-5, np.float64: 1e-12}


def sgd_args(dtype):
    """weight_grad's optimiser arguments for plain SGD: no memory, no hyperparameters."""
    return np.empty(0, dtype), np.empty(0, dtype), optim.SGD, np.zeros(optim.HP_SIZE)


def rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


@pytest.fixture
def rng():
    return np.random.default_rng(7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 33, 5), (100, 3072, 50), (64, 17, 64)])
def test_blas_gemm(rng, dtype, shape):
    """kernels/blas.gemm, the fallback build's product: row-major C (M, N) <- A B + beta C passed
    as the Fortran product of the transposes."""
    M, K, N = shape
    A, B = rand(rng, (M, K), dtype), rand(rng, (K, N), dtype)
    tol = TOL[dtype] * np.sqrt(K) * 10
    with blas_single_threaded():
        C = np.ones((M, N), dtype)
        blas.gemm(78, 78, N, M, K, B.reshape(-1), N, A.reshape(-1), K, 0.5, C.reshape(-1), N)
    np.testing.assert_allclose(C, A.astype(np.float64) @ B + 0.5, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("relu_on", [False, True])
def test_bias(rng, dtype, relu_on):
    Y, b = rand(rng, (30, 12), dtype), rand(rng, 12, dtype)
    out = Y.copy()
    linear.bias_forward(out, b, relu_on)
    want = Y + b
    np.testing.assert_array_equal(out, np.maximum(want, 0) if relu_on else want)
    db = np.empty(12, dtype)
    linear.bias_backward(db, Y)
    np.testing.assert_allclose(db, Y.astype(np.float64).sum(axis=0), rtol=TOL[dtype], atol=TOL[dtype] * 30)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nb", [1, 2, 5])
@pytest.mark.parametrize("update", [False, True])
def test_weight_grad_with_l2_and_sgd_step(rng, dtype, nb, update):
    """Weights stored (O, I), one row per output unit, as the network stores them."""
    X, dY, W = rand(rng, (40, 300), dtype), rand(rng, (40, 20), dtype), rand(rng, (20, 300), dtype)
    W0 = W.copy()
    dW = np.empty_like(W)
    with blas_single_threaded():
        tasks.weight_grad(dW, X, dY, W, 0.05, 0.1, update, nb, *sgd_args(dtype))
    want = dY.T.astype(np.float64) @ X + 2 * 0.05 * W0
    np.testing.assert_allclose(dW, want, rtol=TOL[dtype] * 10, atol=TOL[dtype] * 100)
    np.testing.assert_allclose(W, W0 - 0.1 * dW if update else W0, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nb", [1, 2, 5])
def test_weight_sgd_step_is_the_sgd_step_of_weight_grad(rng, dtype, nb):
    """The first layer's SGD step folded into its product: (1 - 2 eta lam) W - eta dY^T X (W
    stored (O, I)), the same as W - eta (dY^T X + 2 lam W) to rounding, and the same bits for
    any block count."""
    X, dY, W = rand(rng, (40, 300), dtype), rand(rng, (40, 20), dtype), rand(rng, (20, 300), dtype)
    want = W.astype(np.float64) - 0.1 * (dY.T.astype(np.float64) @ X + 2 * 0.05 * W)
    got = W.copy()
    with blas_single_threaded():
        tasks.weight_sgd_step(got, X, dY, 0.05, dtype(0.1), nb)
        one = W.copy()
        tasks.weight_sgd_step(one, X, dY, 0.05, dtype(0.1), 1)
    np.testing.assert_allclose(got, want, rtol=TOL[dtype] * 10, atol=TOL[dtype] * 100)
    np.testing.assert_allclose(one, got, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_gather_and_sgd_update(rng, dtype):
    X = rand(rng, (50, 9), dtype)
    idx = rng.permutation(50)[:20]
    for width in (9, 100):
        X = rand(rng, (50, width), dtype)
        for nb in (1, 2, 3):        # runs of columns, one per thread
            out = np.empty((20, width), dtype)
            tasks.gather(out, X, idx, nb)
            np.testing.assert_array_equal(out, X[idx])
    theta, dtheta = rand(rng, 10000, dtype), rand(rng, 10000, dtype)
    want = theta - dtype(0.01) * dtheta
    optim.update(theta, dtheta, np.empty(0, dtype), optim.SGD, dtype(0.01), np.zeros(optim.HP_SIZE))
    np.testing.assert_allclose(theta, want, rtol=TOL[dtype])


@pytest.mark.parametrize("N, I", [(100, 784), (32, 784), (37, 300), (100, 300)])
def test_a_gathered_batch_trains_as_the_same_batch_given_whole(rng, N, I):
    """Steps on rows of the training set (gathered inside the step: at 100 rows with the
    first layer's forward, gemm.GATHER_FORWARD, a block of 4 rows at a time, 37 rows leaving
    a short last block on one thread; at 32 rows, whose 50-unit forward is cut by columns on
    more, on its own; rows of 300 values do not start cache lines) give the bits that steps
    on the same rows, gathered first, give, on every thread count."""
    X, y = rand(rng, (300, I), np.float32), rng.integers(0, 10, 300)
    rows = rng.permutation(300)[:N]
    before = numba.get_num_threads()
    try:
        for nt in range(1, numba.config.NUMBA_NUM_THREADS + 1):
            numba.set_num_threads(nt)
            a = fastmlp.Network([I, 50, 50, 10], dtype=np.float32, seed=0)
            b = a.copy()
            for _ in range(3):
                la = a._train_step(X, y[rows], 0.005, np.float32(0.05), rows)
                lb = b._train_step(X[rows], y[rows], 0.005, np.float32(0.05))
                assert la == lb
            np.testing.assert_array_equal(a.theta, b.theta)
            np.testing.assert_array_equal(a.stats, b.stats)
    finally:
        numba.set_num_threads(before)


@pytest.mark.parametrize("dtype", DTYPES)
def test_serial_twins_equal_parallel_builds(rng, dtype):
    dY, W = rand(rng, (64, 30), dtype), rand(rng, (30, 200), dtype)
    outs = []
    for build in (lambda k: k, serial_twin):
        Y = dY.copy()
        build(linear.bias_forward)(Y, W[:, 0].copy(), True)
        db = np.empty(30, dtype)
        build(linear.bias_backward)(db, dY)
        outs.append((Y, db))
    for got, want in zip(*outs):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes, bn", [([3072, 50, 50, 10], True), ([3072, 50, 50, 10], False),
                                       ([3072, 50, 30, 20, 20, 10, 10, 10, 10, 10], True)])
def test_fused_step_equals_per_kernel_path(rng, dtype, sizes, bn):
    X, y = rand(rng, (100, 3072), dtype), rng.integers(0, 10, 100)
    rows = rng.permutation(100)
    fused = fastmlp.Network(sizes, batch_norm=bn, dtype=dtype, seed=0)
    ref = fused.copy()
    ref.fused = False
    tol = {np.float32: 2e-5, np.float64: 1e-12}[dtype]
    for t in range(3):
        a = fused._train_step(X, y[rows], 0.005, dtype(0.05), rows)
        b = ref._train_step(X[rows], y[rows], 0.005, dtype(0.05))
        assert a == pytest.approx(b, rel=tol)
    scale = np.abs(ref.theta).max()
    np.testing.assert_allclose(fused.theta, ref.theta, rtol=tol * 10, atol=tol * scale)
    np.testing.assert_allclose(fused.stats, ref.stats, rtol=tol * 10, atol=tol)
    np.testing.assert_allclose(fused.predict_proba(X), ref.predict_proba(X), rtol=tol * 10, atol=tol)
    assert fused.loss(X, y) == pytest.approx(ref.loss(X, y), rel=tol * 10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(100, 50), (500, 50), (7, 3), (2, 10), (33, 70)])
@pytest.mark.parametrize("nb", [1, 2, 3, 8])
def test_batch_norm_tasks_equal_the_column_kernels_however_cut(rng, dtype, shape, nb):
    """The fused step's batch norm (gemm's BN_FORWARD and BN_BACKWARD: the bias and its
    gradient too, row loops outside so that the feature loops vectorise, in nb runs of whole
    64-byte lines of columns) against the kernels one by one (bias, then the column kernels):
    the same arithmetic per column in the same order, so the same bits, whatever the cut (8
    parts of 3 or 10 columns leave parts without a line; 70 columns end in a part of a line)."""
    from fastmlp.kernels import batchnorm as bn
    N, D = shape
    Z0 = rand(rng, shape, dtype) * 3 + 1
    b, g, be, dY = rand(rng, D, dtype), rand(rng, D, dtype), rand(rng, D, dtype), rand(rng, shape, dtype)
    outs = []
    for task in (False, True):
        Z, Y, Xh, dX = Z0.copy(), np.empty_like(Z0), np.empty_like(Z0), np.empty_like(Z0)
        m, iv, dg, dbe, db = (np.empty(D, dtype) for _ in range(5))
        rm, rv = np.full(D, 0.5, dtype), np.full(D, 2.0, dtype)
        if task:
            tasks.batch_norm(Y, Xh, m, iv, rm, rv, Z, b, g, be, 1e-5, 0.9, True, True, nb)
            tasks.batch_norm_backward(dX, db, dg, dbe, dY, Xh, iv, g, Y, True, nb)
        else:
            linear.bias_forward(Z, b, False)
            bn.bn_forward_train(Y, Xh, m, iv, rm, rv, Z, g, be, 1e-5, 0.9, True, True)
            bn.bn_backward(dX, dg, dbe, dY, Xh, iv, g, Y, True)
            linear.bias_backward(db, dX)
        outs.append((Z, Y, Xh, m, iv, rv, dX, dg, dbe, db, rm))
    for got, want in zip(outs[1], outs[0]):
        np.testing.assert_array_equal(got, want)
    # evaluation's (BN_INFER, in runs of rows; each column's root taken once): the same bits
    rm, rv = rand(rng, D, dtype), np.abs(rand(rng, D, dtype)) + 0.5
    (Z, Y), (Zt, Yt) = (Z0.copy(), np.empty_like(Z0)), (Z0.copy(), np.empty_like(Z0))
    linear.bias_forward(Z, b, False)
    bn.bn_forward_infer(Y, Z, g, be, rm, rv, 1e-5, True)
    tasks.batch_norm_infer(Yt, Zt, b, g, be, rm, rv, 1e-5, True, nb)
    np.testing.assert_array_equal(Zt, Z)
    np.testing.assert_array_equal(Yt, Y)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(100, 50), (7, 3), (33, 70), (300, 1100)])
@pytest.mark.parametrize("nb", [1, 2, 3, 8])
@pytest.mark.parametrize("rate", [0.0, 0.3])
def test_bias_tasks_equal_the_serial_kernels_however_cut(rng, dtype, shape, nb, rate):
    """A hidden layer without batch norm on threads (gemm's BIAS_FORWARD in runs of rows,
    BIAS_BACKWARD in runs of whole lines of columns) against the kernels the step runs on one
    part (bias and ReLU, dropout; dropout's scale, the ReLU gate, the bias's gradient): the
    same operations per element and each column's sum in row order, so the same bits."""
    from fastmlp.kernels import dropout, relu
    N, D = shape
    Z0, b, dH0 = rand(rng, shape, dtype), rand(rng, D, dtype), rand(rng, shape, dtype)
    key = np.uint64(0xDEADBEEF12345678)
    H, dH, dZ, db = Z0.copy(), dH0.copy(), np.empty_like(Z0), np.empty(D, dtype)
    linear.bias_forward(H, b, True)
    if rate > 0:
        dropout.dropout_forward(H, rate, key)
        dropout.dropout_backward_gated(dH, rate)
    relu.relu_backward(dZ, dH, H)
    linear.bias_backward_rows(db, dZ)
    Ht, dZt, dbt = Z0.copy(), np.full_like(Z0, np.nan), np.full(D, np.nan, dtype)
    tasks.bias_relu(Ht, b, rate, key, nb)
    tasks.bias_relu_backward(dZt, dbt, dH0, Ht, rate, nb)
    if N * D > 3000:        # the ReLU zeroes about half, dropout a share `rate` of the rest
        assert abs((Ht == 0).mean() - (0.5 + 0.5 * rate)) < 0.15
    for got, want in ((Ht, H), (dZt, dZ), (dbt, db)):
        np.testing.assert_array_equal(got, want)


def test_bias_tasks_check_their_rate():
    H, b = np.ones((4, 3), np.float32), np.ones(3, np.float32)
    with pytest.raises(ValueError, match=r"rate .* must lie in \[0, 1\); got 1.0"):
        tasks.bias_relu(H, b, 1.0, 7, 2)
    with pytest.raises(ValueError, match="got -0.1"):
        tasks.bias_relu_backward(H.copy(), b.copy(), H.copy(), H, -0.1, 2)


def test_batch_norm_tasks_check_their_shapes():
    X, v = np.ones((4, 3), np.float32), np.ones(3, np.float32)
    with pytest.raises(ValueError, match=r"every vector \(3,\)"):
        tasks.batch_norm(X, X.copy(), v, v, v, v, X.copy(), np.ones(2, np.float32), v, v, 1e-5,
                         0.9, True, True, 2)
    with pytest.raises(ValueError, match="one dtype"):
        tasks.batch_norm_backward(X, v, v, v, X.astype(np.float64), X, v, v, X, True, 2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(100, 3072, 50), (37, 300, 13), (16, 20, 3)])
def test_first_layer_forward_tasks(rng, dtype, shape):
    """gemm.products' forward task (this CPU's build; tests/test_blas_build.py runs the BLAS
    one) against NumPy, for any number of parts."""
    N, K, O = shape
    X, WT = rand(rng, (N, K), dtype), rand(rng, (O, K), dtype)
    want = X.astype(np.float64) @ WT.T.astype(np.float64)
    tol = TOL[dtype] * np.sqrt(K) * 10
    with blas_single_threaded():
        for nb in (1, 2, 3):
            Y = np.full((N, O), np.nan, dtype)
            tasks.dot_nt(Y, X, WT, nb)
            np.testing.assert_allclose(Y, want, rtol=tol, atol=tol)
