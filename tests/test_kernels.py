"""Every kernel against its plain-NumPy twin (tests/reference.py), float32 and float64, and the
parallel build against a serial build of the same source."""
import numpy as np
import pytest

import reference as ref
import kernel_calls as call
from fastmlp.kernels import batchnorm, l2, linear, relu, softmax_xent
from fastmlp.kernels._config import serial_twin

DTYPES = [np.float32, np.float64]
# Relative tolerance per dtype, applied to the sum of absolute terms that make an output
# (a float32 sum of 3072 products carries ~1e-6 of that in rounding, float64 ~1e-15).
TOL = {np.float32: 1e-5, np.float64: 1e-12}


def close(out, expected, dtype, scale=1.0):
    assert out.dtype == dtype
    np.testing.assert_allclose(out, expected, rtol=TOL[dtype], atol=TOL[dtype] * scale)


def rand(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("relu_on", [False, True])
@pytest.mark.parametrize("shape", [(100, 3072, 50), (7, 33, 5), (1, 1, 1), (13, 20, 10)])
def test_linear_forward(rng, dtype, relu_on, shape):
    N, I, O = shape
    X, W, b = rand(rng, (N, I), dtype), rand(rng, (I, O), dtype, 0.05), rand(rng, O, dtype)
    Y = call.linear_forward(linear.linear_forward, X, W, b, relu_on)
    scale = (np.abs(X.astype(np.float64)) @ np.abs(W) + np.abs(b)).max()
    close(Y, ref.linear_forward(X, W, b, relu_on), dtype, scale)
    if relu_on:
        assert (Y >= 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lam", [0.0, 0.01])
@pytest.mark.parametrize("shape", [(100, 3072, 50), (7, 33, 5), (1, 1, 1), (100, 20, 10)])
def test_linear_backward(rng, dtype, lam, shape):
    N, I, O = shape
    X, W, dY = rand(rng, (N, I), dtype), rand(rng, (I, O), dtype, 0.05), rand(rng, (N, O), dtype)
    dW, db, dX = call.linear_backward(linear.linear_backward, dY, X, W, lam)
    rW, rb, rX = ref.linear_backward(dY, X, W, lam)
    aX, aW, adY = (np.abs(a.astype(np.float64)) for a in (X, W, dY))
    close(dW, rW, dtype, (aX.T @ adY + 2 * lam * aW).max())
    close(db, rb, dtype, adY.sum(axis=0).max())
    close(dX, rX, dtype, (adY @ aW.T).max())


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_backward_first_layer_skips_dX(rng, dtype):
    X, W, dY = rand(rng, (10, 40, ), dtype), rand(rng, (40, 6), dtype), rand(rng, (10, 6), dtype)
    dW, db, dX = call.linear_backward(linear.linear_backward, dY, X, W, 0.0, need_dX=False)
    assert dX.size == 0
    close(dW, ref.linear_backward(dY, X, W)[0], dtype, 100.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu(rng, dtype):
    X = rand(rng, (37, 21), dtype)
    X[0, :5] = 0
    Y = call.relu_forward(relu.relu_forward, X)
    np.testing.assert_array_equal(Y, ref.relu_forward(X))
    dY = rand(rng, X.shape, dtype)
    dX = call.relu_backward(relu.relu_backward, dY, Y)
    np.testing.assert_array_equal(dX, ref.relu_backward(dY, Y))
    assert (dX[0, :5] == 0).all()      # derivative at the kink is taken as 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spread", [1.0, 30.0, 1000.0])
def test_softmax_xent(rng, dtype, spread):
    """Scores of +-1000 would overflow a naive exp(); the loss must stay finite and exact."""
    Z = rand(rng, (64, 10), dtype, spread)
    y = rng.integers(0, 10, 64)
    P, losses, mean = call.softmax_xent_forward(softmax_xent.softmax_xent_forward, Z, y)
    rP, rlosses, rmean = ref.softmax_xent(Z, y)
    assert np.isfinite(losses).all()
    close(P, rP, dtype, 1.0)
    close(losses, rlosses, dtype, spread)
    assert abs(mean - rmean) <= TOL[dtype] * spread * 10
    close(call.softmax_forward(softmax_xent.softmax_forward, Z), rP, dtype, 1.0)
    dZ = call.softmax_xent_backward(softmax_xent.softmax_xent_backward, P, y)
    close(dZ, ref.softmax_xent_backward(rP, y), dtype, 1.0 / 64)


def test_softmax_xent_reports_nan():
    Z = np.zeros((3, 4))
    Z[1, 2] = np.nan
    P, losses, mean = call.softmax_xent_forward(softmax_xent.softmax_xent_forward, Z,
                                                np.array([0, 1, 2]))
    assert np.isnan(losses[1]) and np.isnan(mean)
    assert np.isfinite(losses[[0, 2]]).all()


def bn_inputs(rng, dtype, N=50, D=20):
    X = rand(rng, (N, D), dtype, 3.0) + 5           # offset: a naive E[x^2]-E[x]^2 would suffer
    gamma, beta = rand(rng, D, dtype) + 1, rand(rng, D, dtype)
    return X, gamma, beta


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("relu_on", [False, True])
def test_bn_forward_train_and_running_update(rng, dtype, relu_on):
    X, gamma, beta = bn_inputs(rng, dtype)
    run_mean, run_var = rand(rng, 20, dtype), np.abs(rand(rng, 20, dtype)) + 0.5
    rm0, rv0 = run_mean.astype(np.float64), run_var.astype(np.float64)
    Y, Xhat, mean, inv_std = call.bn_forward_train(batchnorm.bn_forward_train, X, gamma, beta,
                                                   run_mean, run_var, relu=relu_on)
    rY, (_, mu, var, xhat, *_rest) = ref.bn_forward_train(X, gamma, beta, relu=relu_on)
    close(Y, rY, dtype, 10.0)
    close(Xhat, xhat, dtype, 10.0)
    close(mean, mu, dtype, 10.0)
    close(inv_std, 1 / np.sqrt(var + 1e-5), dtype, 1.0)
    erm, erv = ref.bn_running_update(rm0, rv0, mu, var, 0.9)
    close(run_mean, erm, dtype, 10.0)
    close(run_var, erv, dtype, 10.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bn_forward_train_without_update_leaves_running_stats(rng, dtype):
    X, gamma, beta = bn_inputs(rng, dtype)
    run_mean, run_var = np.zeros(20, dtype), np.ones(20, dtype)
    call.bn_forward_train(batchnorm.bn_forward_train, X, gamma, beta, run_mean, run_var,
                          update_running=False)
    assert (run_mean == 0).all() and (run_var == 1).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("relu_on", [False, True])
def test_bn_forward_infer_uses_running_stats(rng, dtype, relu_on):
    X, gamma, beta = bn_inputs(rng, dtype)
    run_mean, run_var = rand(rng, 20, dtype), np.abs(rand(rng, 20, dtype)) + 0.5
    Y = call.bn_forward_infer(batchnorm.bn_forward_infer, X, gamma, beta, run_mean, run_var,
                              relu=relu_on)
    close(Y, ref.bn_forward_infer(X, gamma, beta, run_mean, run_var, relu=relu_on), dtype, 30.0)
    # and not the batch's own statistics
    Yb = ref.bn_forward_train(X, gamma, beta, relu=relu_on)[0]
    assert np.abs(Y - Yb).max() > 0.1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("relu_on", [False, True])
def test_bn_backward_matches_graph_derivation(rng, dtype, relu_on):
    X, gamma, beta = bn_inputs(rng, dtype)
    run_mean, run_var = np.zeros(20, dtype), np.ones(20, dtype)
    Y, Xhat, _, inv_std = call.bn_forward_train(batchnorm.bn_forward_train, X, gamma, beta,
                                                run_mean, run_var, relu=relu_on)
    dY = rand(rng, X.shape, dtype)
    dX, dgamma, dbeta = call.bn_backward(batchnorm.bn_backward, dY, Xhat, inv_std, gamma, Y, relu_on)
    _, cache = ref.bn_forward_train(X, gamma, beta, relu=relu_on)
    rX, rgamma, rbeta = ref.bn_backward(dY, cache)
    close(dX, rX, dtype, 10.0)
    close(dgamma, rgamma, dtype, 50.0)
    close(dbeta, rbeta, dtype, 50.0)
    # the full formula: the input gradient of a column sums to zero (the mean is subtracted)
    assert np.abs(dX.astype(np.float64).sum(axis=0)).max() < TOL[dtype] * 500


@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_squares(rng, dtype):
    W = rand(rng, (300, 50), dtype)
    assert l2.sum_squares(W) == pytest.approx(np.sum(W.astype(np.float64) ** 2), rel=1e-12)


# ---- parallel build == serial build of the same source, bit for bit ------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_parallel_equals_serial(rng, dtype):
    N, I, O = 100, 300, 50
    X, W, b = rand(rng, (N, I), dtype), rand(rng, (I, O), dtype, 0.05), rand(rng, O, dtype)
    dY = rand(rng, (N, O), dtype)
    y = rng.integers(0, O, N)
    for relu_on in (False, True):
        np.testing.assert_array_equal(
            call.linear_forward(linear.linear_forward, X, W, b, relu_on),
            call.linear_forward(serial_twin(linear.linear_forward), X, W, b, relu_on))
    for got, want in zip(call.linear_backward(linear.linear_backward, dY, X, W, 0.1),
                         call.linear_backward(serial_twin(linear.linear_backward), dY, X, W, 0.1)):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(call.relu_forward(relu.relu_forward, X),
                                  call.relu_forward(serial_twin(relu.relu_forward), X))
    np.testing.assert_array_equal(call.relu_backward(relu.relu_backward, X, dY[:, :1].repeat(I, 1)),
                                  call.relu_backward(serial_twin(relu.relu_backward), X,
                                                     dY[:, :1].repeat(I, 1)))
    Z = dY
    for got, want in zip(call.softmax_xent_forward(softmax_xent.softmax_xent_forward, Z, y),
                         call.softmax_xent_forward(serial_twin(softmax_xent.softmax_xent_forward), Z, y)):
        np.testing.assert_array_equal(got, want)
    P = call.softmax_forward(softmax_xent.softmax_forward, Z)
    np.testing.assert_array_equal(P, call.softmax_forward(serial_twin(softmax_xent.softmax_forward), Z))
    np.testing.assert_array_equal(
        call.softmax_xent_backward(softmax_xent.softmax_xent_backward, P, y),
        call.softmax_xent_backward(serial_twin(softmax_xent.softmax_xent_backward), P, y))
    gamma, beta = rand(rng, O, dtype) + 1, rand(rng, O, dtype)
    outs = []
    for build in (lambda k: k, serial_twin):
        rm, rv = np.zeros(O, dtype), np.ones(O, dtype)
        fwd = call.bn_forward_train(build(batchnorm.bn_forward_train), Z, gamma, beta, rm, rv,
                                    relu=True)
        inf = call.bn_forward_infer(build(batchnorm.bn_forward_infer), Z, gamma, beta, rm, rv,
                                    relu=True)
        bwd = call.bn_backward(build(batchnorm.bn_backward), dY, fwd[1], fwd[3], gamma, fwd[0], True)
        outs.append(fwd + (rm, rv, inf) + bwd)
    for got, want in zip(*outs):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_task_in_runs_of_rows_gives_the_kernels_bits(rng, dtype):
    """The step's softmax (gemm's SOFTMAX task: P, the losses and, with dZ, their gradient,
    cut into runs of rows) against softmax_xent_forward and softmax_xent_backward: the same
    bits in 1, 2, 3 and 7 parts, for extreme scores, a row with a NaN and one with -inf too,
    and the mean loss summed in the same order."""
    from fastmlp.kernels import tasks
    N, C = 203, 10
    Z = rand(rng, (N, C), dtype, 4.0)
    Z[5] *= 1e4                     # exp underflows to 0 for all but the row's maximum
    Z[6, 3] = np.nan
    Z[7, 2] = -np.inf
    y = rng.integers(0, C, N)
    wP, wl, wmean = call.softmax_xent_forward(softmax_xent.softmax_xent_forward, Z, y)
    wdZ = call.softmax_xent_backward(softmax_xent.softmax_xent_backward, wP, y)
    for nb in (1, 2, 3, 7):
        P, losses, dZ = np.empty_like(Z), np.empty(N, dtype), np.empty_like(Z)
        mean = tasks.softmax_xent(P, losses, Z, y, dZ, nb)
        np.testing.assert_array_equal(P, wP)
        np.testing.assert_array_equal(losses, wl)
        np.testing.assert_array_equal(dZ, wdZ)
        assert np.isnan(mean) and np.isnan(wmean)
        P2, l2_ = np.empty_like(Z[8:]), np.empty(N - 8, dtype)
        tasks.softmax_xent(P2, l2_, Z[8:], y[8:], np.empty((0, 0), dtype), nb)    # no NaN rows
        np.testing.assert_array_equal(P2, wP[8:])
        np.testing.assert_array_equal(l2_, wl[8:])
    finite = tasks.softmax_xent(np.empty_like(Z[8:]), np.empty(N - 8, dtype), Z[8:], y[8:],
                               np.empty((0, 0), dtype), 2)
    assert finite == call.softmax_xent_forward(softmax_xent.softmax_xent_forward, Z[8:], y[8:])[2]
    with pytest.raises(ValueError, match="labels must be in"):
        tasks.softmax_xent(P, losses, Z, np.full(N, C), dZ, 1)
