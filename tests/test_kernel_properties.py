"""Property tests over shapes and values (hypothesis): each kernel agrees with its NumPy twin
for any batch size, width and scale, including a single row and a single feature."""
import numpy as np
from hypothesis import given, settings, strategies as st

import kernel_calls as call
import reference as ref
from fastmlp.kernels import batchnorm, linear, softmax_xent

SETTINGS = settings(max_examples=40, deadline=None)
dtypes = st.sampled_from([np.float32, np.float64])
TOL = {np.float32: 1e-5, np.float64: 1e-12}


@st.composite
def arrays(draw, shape, dtype, scale=1.0):
    seed = draw(st.integers(0, 2**32 - 1))
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


@SETTINGS
@given(st.integers(1, 40), st.integers(1, 70), st.integers(1, 20), dtypes, st.booleans(), st.data())
def test_linear_any_shape(N, I, O, dtype, relu_on, data):
    X = data.draw(arrays((N, I), dtype))
    W = data.draw(arrays((I, O), dtype, 0.3))
    b, dY = data.draw(arrays(O, dtype)), data.draw(arrays((N, O), dtype))
    lam = data.draw(st.sampled_from([0.0, 1e-3, 0.5]))
    scale = float((np.abs(X.astype(np.float64)) @ np.abs(W)).max() + np.abs(b).max()) + 1
    tol = TOL[dtype]
    Y = call.linear_forward(linear.linear_forward, X, W, b, relu_on)
    np.testing.assert_allclose(Y, ref.linear_forward(X, W, b, relu_on), rtol=tol, atol=tol * scale)
    dW, db, dX = call.linear_backward(linear.linear_backward, dY, X, W, lam)
    rW, rb, rX = ref.linear_backward(dY, X, W, lam)
    gscale = float(np.abs(X).max() * np.abs(dY).max() * N + np.abs(W).max() * np.abs(dY).max() * O) + 1
    for got, want in ((dW, rW), (db, rb), (dX, rX)):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * gscale)


@SETTINGS
@given(st.integers(1, 60), st.integers(2, 15), dtypes, st.sampled_from([0.1, 10.0, 500.0]), st.data())
def test_softmax_xent_any_shape(N, C, dtype, spread, data):
    Z = data.draw(arrays((N, C), dtype, spread))
    y = np.asarray(data.draw(st.lists(st.integers(0, C - 1), min_size=N, max_size=N)), np.int64)
    P, losses, mean = call.softmax_xent_forward(softmax_xent.softmax_xent_forward, Z, y)
    rP, rlosses, rmean = ref.softmax_xent(Z, y)
    tol = TOL[dtype]
    np.testing.assert_allclose(P, rP, rtol=tol * 10, atol=tol)
    np.testing.assert_allclose(losses, rlosses, rtol=tol * 10, atol=tol * spread)
    np.testing.assert_allclose(P.sum(axis=1), 1, rtol=tol * 10)
    assert abs(mean - rmean) <= tol * 10 * spread + tol


@SETTINGS
@given(st.integers(2, 60), st.integers(1, 30), dtypes, st.booleans(), st.data())
def test_batchnorm_any_shape(N, D, dtype, relu_on, data):
    X = data.draw(arrays((N, D), dtype, 2.0))
    gamma, beta = data.draw(arrays(D, dtype)), data.draw(arrays(D, dtype))
    dY = data.draw(arrays((N, D), dtype))
    rm, rv = np.zeros(D, dtype), np.ones(D, dtype)
    Y, Xhat, mean, inv_std = call.bn_forward_train(batchnorm.bn_forward_train, X, gamma, beta,
                                                   rm, rv, relu=relu_on)
    rY, cache = ref.bn_forward_train(X, gamma, beta, relu=relu_on)
    # float32 BN divides by a std that can be tiny for a near-constant column: scale by inv_std
    tol = TOL[dtype] * (1 + float(inv_std.max())) * 10
    np.testing.assert_allclose(Y, rY, rtol=tol, atol=tol * (1 + np.abs(gamma).max()))
    dX, dgamma, dbeta = call.bn_backward(batchnorm.bn_backward, dY, Xhat, inv_std, gamma, Y, relu_on)
    rX, rgamma, rbeta = ref.bn_backward(dY, cache)
    g = float(np.abs(dY).max() * N) + 1
    np.testing.assert_allclose(dgamma, rgamma, rtol=tol, atol=tol * g)
    np.testing.assert_allclose(dbeta, rbeta, rtol=tol, atol=tol * g)
    np.testing.assert_allclose(dX, rX, rtol=tol, atol=tol * g * (1 + float(np.abs(gamma).max())))
