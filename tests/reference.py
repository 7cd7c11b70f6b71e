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


def dot_nt(X, WT):
    """kernels/tasks.py's dot_nt: X (N, K) times the transpose of WT (O, K)."""
    X, WT = f64(X, WT)
    return X @ WT.T


def outer_update(src, X, dY, alpha, beta):
    """kernels/gemm's weight tasks (GRAD, SGD_STEP): alpha dY^T X + beta src, src (O, K) one
    row per output unit."""
    src, X, dY = f64(src, X, dY)
    return alpha * (dY.T @ X) + beta * src


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


# ---- counter-based random numbers, dropout, optimisers ----------------------------------------
def _lowbias32(x):
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


def bits32(key, idx):
    """Draws idx (array) of 32-bit stream `key` (kernels/rng.py bits32): lowbias32(lowbias32(
    i * 0x9E3779B9 + high half of key) ^ low half of key); uint32 arithmetic wraps."""
    key = int(key)
    with np.errstate(over="ignore"):
        x = np.asarray(idx).astype(np.uint32) * np.uint32(0x9E3779B9) + np.uint32(key >> 32)
        return _lowbias32(_lowbias32(x) ^ np.uint32(key & 0xFFFFFFFF))


def dropout_mask(key, shape, rate):
    """The kernels' mask for an (N, O) layer: 1 / (1 - rate) where kept, 0 where dropped (a
    unit is dropped when its draw is below ceil(rate * 2**32))."""
    u = bits32(key, np.arange(np.prod(shape))).reshape(shape)
    return np.where(u < min(np.ceil(rate * 2.0 ** 32), 2.0 ** 32 - 1), 0.0, 1.0 / (1.0 - rate))


def optimizer_steps(name, theta, grads, etas, momentum=0.9, nesterov=False, beta1=0.9,
                    beta2=0.999, eps=1e-8):
    """theta after one update per gradient in `grads` with learning rates `etas`, following the
    update rules as the PyTorch documentation writes them (torch.optim.SGD, Adagrad, Adam)."""
    theta = np.array(theta, np.float64)
    buf = np.zeros_like(theta)
    sq = np.zeros_like(theta)
    for t, (g, eta) in enumerate(zip(grads, etas), start=1):
        g = np.asarray(g, np.float64)
        if name == "sgd":
            theta = theta - eta * g
        elif name == "momentum":
            buf = g.copy() if t == 1 else momentum * buf + g
            theta = theta - eta * (g + momentum * buf if nesterov else buf)
        elif name == "adagrad":
            sq = sq + g * g
            theta = theta - eta * g / (np.sqrt(sq) + eps)
        elif name == "adam":
            buf = beta1 * buf + (1 - beta1) * g
            sq = beta2 * sq + (1 - beta2) * g * g
            m_hat = buf / (1 - beta1 ** t)
            v_hat = sq / (1 - beta2 ** t)
            theta = theta - eta * m_hat / (np.sqrt(v_hat) + eps)
        else:
            raise ValueError(name)
    return theta


def augment_rows_ref(X, rows, mean, std, shape, params, key, draws=8):
    """Twin of kernels/augment.py augment_rows, in float64, with whole-image NumPy operations:
    the flip and shift move an index image (np.flip, np.pad), the blur sums shifted copies of an
    edge-padded image, the jitter is array arithmetic.  Draw j of row n is uniform(key,
    n * draws + j): 0 flip, 1 dy, 2 dx, 3 blur?, 4 sigma, 5 brightness, 6 contrast."""
    from fastmlp.kernels.rng import uniform
    X = np.asarray(X)
    mean, std = f64(mean, std)
    C, H, W = (int(v) for v in shape)
    # params[9] (statistics constant per plane) only picks the kernel's faster path
    flip_p, s, edge, blur_p, s_lo, s_hi, bright, contrast, vrange = (float(v) for v in params[:9])
    s = int(s)
    out = np.empty((len(rows), C * H * W))
    for n, r in enumerate(rows):
        u = [uniform(np.uint64(key), n * draws + j) for j in range(7)]
        flip = flip_p > 0 and u[0] < flip_p
        dy = dx = 0
        if s > 0:   # an integer in [-s, s]
            dy = min(int(np.floor(u[1] * (2 * s + 1))), 2 * s) - s
            dx = min(int(np.floor(u[2] * (2 * s + 1))), 2 * s) - s
        blur = blur_p > 0 and u[3] < blur_p
        jitter = bright > 0 or contrast > 0
        # where each output pixel comes from: -1 for raw 0
        src = np.arange(C * H * W).reshape(C, H, W)
        if flip:
            src = src[:, :, ::-1]
        pads = ((0, 0), (max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0)))
        src = np.pad(src, pads, mode="edge") if edge else np.pad(src, pads, constant_values=-1)
        src = src[:, max(-dy, 0):max(-dy, 0) + H, max(-dx, 0):max(-dx, 0) + W].ravel()
        raw = X[r].astype(np.float64) * std + mean
        img = np.where(src >= 0, raw[np.maximum(src, 0)], 0.0).reshape(C, H, W)
        if blur:
            sigma = s_lo + u[4] * (s_hi - s_lo)
            rad = int(np.ceil(3 * sigma))
            k = np.exp(-0.5 * ((np.arange(2 * rad + 1) - rad) / sigma) ** 2)
            k /= k.sum()
            p = np.pad(img, ((0, 0), (0, 0), (rad, rad)), mode="edge")
            img = sum(k[j] * p[:, :, j:j + W] for j in range(2 * rad + 1))
            p = np.pad(img, ((0, 0), (rad, rad), (0, 0)), mode="edge")
            img = sum(k[j] * p[:, j:j + H, :] for j in range(2 * rad + 1))
        if jitter:
            if bright > 0:
                img = img + (2 * u[5] - 1) * bright * vrange
            if contrast > 0:
                m = img.mean()
                img = (img - m) * (1 + (2 * u[6] - 1) * contrast) + m
            img = np.clip(img, 0, vrange)
        out[n] = (img.ravel() - mean) / std
        if not (blur or jitter):   # pixels that stay where they are keep X's value exactly
            same = src == np.arange(C * H * W)
            out[n, same] = X[r][same]
    return out
