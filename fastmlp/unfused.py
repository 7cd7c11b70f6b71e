"""The reference path of a Network (net.fused = False): one kernel call per operation, in the
order a reader follows on paper.  The fused step (kernels/step.py) must give the same numbers;
tests compare the two, and the gradient check swaps kernels in here to show that it catches a
wrong backward.  `ws` is the network's workspace for the batch (fastmlp/workspace.py)."""
import numpy as np

from .kernels.batchnorm import bn_backward, bn_forward_infer, bn_forward_train
from .kernels.dropout import dropout_backward, dropout_forward
from .kernels.linear import linear_backward, linear_forward
from .kernels.relu import relu_backward
from .kernels.rng import sub_key
from .kernels.softmax_xent import softmax_forward, softmax_xent_backward, softmax_xent_forward


def forward_train(net, ws, X, y, update_stats):
    """Training-mode forward of the checked batch X (labels y) into ws: batch statistics in BN
    (updating the running ones if update_stats), dropout with the masks of net.drop_key.
    Returns the mean cross-entropy loss."""
    h = X
    k_last = net.n_layers
    for k in range(1, k_last):
        W, b = net.params[f"W{k}"], net.params[f"b{k}"]
        if net.batch_norm:
            linear_forward(ws.Z[k - 1], h, W, b, False)
            bn_forward_train(ws.H[k - 1], ws.Xhat[k - 1], ws.mean[k - 1], ws.inv_std[k - 1],
                             net.running[f"run_mean{k}"], net.running[f"run_var{k}"],
                             ws.Z[k - 1], net.params[f"gamma{k}"], net.params[f"beta{k}"],
                             net.bn_eps, net.bn_alpha, update_stats, True)
        else:
            linear_forward(ws.H[k - 1], h, W, b, True)
        if net._drop[k - 1] > 0:
            dropout_forward(ws.H[k - 1], net._drop[k - 1], np.uint64(sub_key(net.drop_key, k - 1)))
        h = ws.H[k - 1]
    linear_forward(ws.Z[-1], h, net.params[f"W{k_last}"], net.params[f"b{k_last}"], False)
    loss = softmax_xent_forward(ws.P, ws.losses, ws.Z[-1], y)
    return float(loss)


def backward(net, ws, y, lam):
    """Fill net.grads from the training forward in ws: d(loss + lam * sum ||W||^2)."""
    g = net.grads
    k_last = net.n_layers
    softmax_xent_backward(ws.dZ[-1], ws.P, y)
    for k in range(k_last, 0, -1):
        if k < k_last:  # back through dropout, ReLU (and BN) of hidden layer k
            if net._drop[k - 1] > 0:
                dropout_backward(ws.dH[k - 1], net._drop[k - 1], np.uint64(sub_key(net.drop_key, k - 1)))
            if net.batch_norm:
                bn_backward(ws.dZ[k - 1], g[f"gamma{k}"], g[f"beta{k}"], ws.dH[k - 1],
                            ws.Xhat[k - 1], ws.inv_std[k - 1], net.params[f"gamma{k}"],
                            ws.H[k - 1], True)
            else:
                relu_backward(ws.dZ[k - 1], ws.dH[k - 1], ws.H[k - 1])
        x_in = ws.H[k - 2] if k > 1 else ws.X
        dx_in = ws.dH[k - 2] if k > 1 else ws.no_dX
        linear_backward(g[f"W{k}"], g[f"b{k}"], dx_in, net._WT[k - 1], ws.dZ[k - 1], x_in,
                        net.params[f"W{k}"], lam, k > 1)


def evaluate(net, ws, X, y):
    """Evaluation-mode forward (running BN statistics) of the checked chunk X into ws, the class
    probabilities in ws.P; returns (sum of losses, correct count), (0, 0) when y is empty (no
    labels: probabilities only)."""
    h = X
    for k in range(1, net.n_layers):
        W, b = net.params[f"W{k}"], net.params[f"b{k}"]
        if net.batch_norm:
            linear_forward(ws.Z[k - 1], h, W, b, False)
            bn_forward_infer(ws.H[k - 1], ws.Z[k - 1], net.params[f"gamma{k}"],
                             net.params[f"beta{k}"], net.running[f"run_mean{k}"],
                             net.running[f"run_var{k}"], net.bn_eps, True)
        else:
            linear_forward(ws.H[k - 1], h, W, b, True)
        h = ws.H[k - 1]
    k = net.n_layers
    linear_forward(ws.Z[-1], h, net.params[f"W{k}"], net.params[f"b{k}"], False)
    if len(y) == 0:
        softmax_forward(ws.P, ws.Z[-1])
        return 0.0, 0
    mean = softmax_xent_forward(ws.P, ws.losses, ws.Z[-1], y)
    return mean * len(y), int((ws.Z[-1].argmax(axis=1) == y).sum())
