"""Plain-NumPy twins of every kernel, written for clarity, not speed, and computed in float64.

They share no code with fastmlp: batch-norm backward here walks the computational graph step
by step (cs231n style) rather than using the compact formula the kernel uses, so agreement is
evidence that both are right.
"""
import numpy as np


def f64(*arrays):
    return [np.asarray(a, dtype=np.float64) for a in arrays]


def linear_forward(X, W, b, relu=False):
    X, W, b = f64(X, W, b)
    Y = X @ W + b
    return np.maximum(Y, 0) if relu else Y


def linear_backward(dY, X, W, lam=0.0):
    dY, X, W = f64(dY, X, W)
    return X.T @ dY + 2 * lam * W, dY.sum(axis=0), dY @ W.T


def relu_forward(X):
    return np.where(X > 0, X, 0.0).astype(np.float64)


def relu_backward(dY, Y):
    dY, Y = f64(dY, Y)
    return dY * (Y > 0)


def softmax(Z):
    Z = np.asarray(Z, dtype=np.float64)
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def softmax_xent(Z, y):
    """(P, per-row losses, mean loss) with log-sum-exp for the loss."""
    Z = np.asarray(Z, dtype=np.float64)
    m = Z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(Z - m).sum(axis=1)) + m[:, 0]
    losses = lse - Z[np.arange(len(y)), y]
    return softmax(Z), losses, losses.mean()


def softmax_xent_backward(P, y):
    P = np.asarray(P, dtype=np.float64)
    onehot = np.zeros_like(P)
    onehot[np.arange(len(y)), y] = 1
    return (P - onehot) / len(y)


def bn_forward_train(X, gamma, beta, eps=1e-5, relu=False):
    """Returns (Y, cache) with batch statistics; var is the biased variance."""
    X, gamma, beta = f64(X, gamma, beta)
    mu = X.mean(axis=0)
    var = X.var(axis=0)
    xhat = (X - mu) / np.sqrt(var + eps)
    S = gamma * xhat + beta
    Y = np.maximum(S, 0) if relu else S
    return Y, (X, mu, var, xhat, gamma, eps, S, relu)


def bn_running_update(run_mean, run_var, mu, var, alpha=0.9):
    return alpha * run_mean + (1 - alpha) * mu, alpha * run_var + (1 - alpha) * var


def bn_forward_infer(X, gamma, beta, run_mean, run_var, eps=1e-5, relu=False):
    X, gamma, beta, run_mean, run_var = f64(X, gamma, beta, run_mean, run_var)
    S = gamma * (X - run_mean) / np.sqrt(run_var + eps) + beta
    return np.maximum(S, 0) if relu else S


def bn_backward(dY, cache):
    """Back through the graph x -> mu -> xc -> var -> std -> xhat -> gamma*xhat+beta (-> relu)."""
    X, mu, var, xhat, gamma, eps, S, relu = cache
    dY = np.asarray(dY, dtype=np.float64)
    N = X.shape[0]
    if relu:
        dY = dY * (S > 0)
    dbeta = dY.sum(axis=0)
    dgamma = (dY * xhat).sum(axis=0)
    dxhat = dY * gamma
    xc = X - mu
    std = np.sqrt(var + eps)
    dinvstd = (dxhat * xc).sum(axis=0)
    dstd = -dinvstd / std ** 2
    dvar = 0.5 * dstd / std
    dsq = np.ones_like(X) * dvar / N            # var = mean(xc**2)
    dxc = dxhat / std + 2 * xc * dsq
    dmu = -dxc.sum(axis=0)
    dX = dxc + dmu / N
    return dX, dgamma, dbeta


def network_loss_and_grads(params, X, y, lam, batch_norm, eps=1e-5):
    """Cost and gradients of a k-layer net with NumPy only.  params: dict W1, b1, gamma1, ...
    Returns (cost, loss, grads dict)."""
    X = np.asarray(X, dtype=np.float64)
    k_last = sum(1 for name in params if name.startswith("W"))
    h, caches = X, []
    for k in range(1, k_last):
        z = linear_forward(h, params[f"W{k}"], params[f"b{k}"])
        if batch_norm:
            out, bn_cache = bn_forward_train(z, params[f"gamma{k}"], params[f"beta{k}"], eps, relu=True)
        else:
            out, bn_cache = relu_forward(z), None
        caches.append((h, bn_cache, out))
        h = out
    z = linear_forward(h, params[f"W{k_last}"], params[f"b{k_last}"])
    P, _, loss = softmax_xent(z, y)
    l2 = sum(np.sum(np.asarray(params[f"W{k}"], np.float64) ** 2) for k in range(1, k_last + 1))
    grads = {}
    dz = softmax_xent_backward(P, y)
    grads[f"W{k_last}"], grads[f"b{k_last}"], dh = linear_backward(dz, h, params[f"W{k_last}"], lam)
    for k in range(k_last - 1, 0, -1):
        h_in, bn_cache, out = caches[k - 1]
        if batch_norm:
            dz, grads[f"gamma{k}"], grads[f"beta{k}"] = bn_backward(dh, bn_cache)
        else:
            dz = relu_backward(dh, out)
        grads[f"W{k}"], grads[f"b{k}"], dh = linear_backward(dz, h_in, params[f"W{k}"], lam)
    return loss + lam * l2, loss, grads
