"""Allocate outputs and call a kernel build (parallel or serial) the way the network does.
Each function takes the kernel as its first argument so one test can run both builds."""
import numpy as np


def linear_forward(kernel, X, W, b, relu=False):
    Y = np.empty((X.shape[0], W.shape[1]), X.dtype)
    kernel(Y, X, W, b, relu)
    return Y


def linear_backward(kernel, dY, X, W, lam=0.0, need_dX=True):
    dW, db = np.empty_like(W), np.empty(W.shape[1], W.dtype)
    dX = np.empty_like(X) if need_dX else np.empty((0, 0), X.dtype)
    WT = np.empty(W.shape[::-1], W.dtype) if need_dX else np.empty((0, 0), X.dtype)
    kernel(dW, db, dX, WT, dY, X, W, lam, need_dX)
    return dW, db, dX


def relu_forward(kernel, X):
    Y = np.empty_like(X)
    kernel(Y, X)
    return Y


def relu_backward(kernel, dY, Y):
    dX = np.empty_like(dY)
    kernel(dX, dY, Y)
    return dX


def softmax_xent_forward(kernel, Z, y):
    P, losses = np.empty_like(Z), np.empty(Z.shape[0], Z.dtype)
    mean = kernel(P, losses, Z, y)
    return P, losses, mean


def softmax_forward(kernel, Z):
    P = np.empty_like(Z)
    kernel(P, Z)
    return P


def softmax_xent_backward(kernel, P, y):
    dZ = np.empty_like(P)
    kernel(dZ, P, y)
    return dZ


def bn_forward_train(kernel, X, gamma, beta, run_mean, run_var, eps=1e-5, alpha=0.9,
                     update_running=True, relu=False):
    """Returns (Y, Xhat, mean, inv_std); run_mean and run_var are updated in place."""
    Y, Xhat = np.empty_like(X), np.empty_like(X)
    mean, inv_std = np.empty_like(gamma), np.empty_like(gamma)
    kernel(Y, Xhat, mean, inv_std, run_mean, run_var, X, gamma, beta, eps, alpha,
           update_running, relu)
    return Y, Xhat, mean, inv_std


def bn_forward_infer(kernel, X, gamma, beta, run_mean, run_var, eps=1e-5, relu=False):
    Y = np.empty_like(X)
    kernel(Y, X, gamma, beta, run_mean, run_var, eps, relu)
    return Y


def bn_backward(kernel, dY, Xhat, inv_std, gamma, Y, relu=False):
    dX, dgamma, dbeta = np.empty_like(dY), np.empty_like(gamma), np.empty_like(gamma)
    kernel(dX, dgamma, dbeta, dY, Xhat, inv_std, gamma, Y, relu)
    return dX, dgamma, dbeta
