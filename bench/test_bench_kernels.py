"""Each kernel family, forward and backward, against its NumPy twin on the shapes of the
study's first layer (batch 100, 3072 -> 50, float32).  Every benchmark checks its result first
and calls the kernel once before timing, so JIT compilation is never measured.

    python -m pytest bench -k kernels --benchmark-group-by=param:family
"""
import numpy as np
import pytest

from fastmlp.kernels import batchnorm, linear, relu, softmax_xent

N, I, O, C = 100, 3072, 50, 10
DT = np.float32


def inputs(rng):
    return {
        "X": rng.standard_normal((N, I)).astype(DT),
        "W": (rng.standard_normal((I, O)) * 0.02).astype(DT),
        "b": rng.standard_normal(O).astype(DT),
        "H": rng.standard_normal((N, O)).astype(DT),
        "dH": rng.standard_normal((N, O)).astype(DT),
        "Z": rng.standard_normal((N, C)).astype(DT),
        "y": rng.integers(0, C, N),
        "gamma": np.ones(O, DT), "beta": np.zeros(O, DT),
    }


def fastmlp_impl(family, a):
    """(function to time, function returning the result to check)."""
    if family == "linear_forward":
        Y = np.empty((N, O), DT)
        return lambda: linear.linear_forward(Y, a["X"], a["W"], a["b"], False), lambda: Y
    if family == "linear_backward":
        dW, db, dX = np.empty_like(a["W"]), np.empty_like(a["b"]), np.empty_like(a["X"])
        WT = np.empty((O, I), DT)
        return (lambda: linear.linear_backward(dW, db, dX, WT, a["dH"], a["X"], a["W"], 0.005, True),
                lambda: (dW, db, dX))
    if family == "relu_forward_backward":
        Y, dX = np.empty_like(a["H"]), np.empty_like(a["H"])
        def run():
            relu.relu_forward(Y, a["H"])
            relu.relu_backward(dX, a["dH"], Y)
        return run, lambda: (Y, dX)
    if family == "softmax_xent_forward_backward":
        P, losses, dZ = np.empty_like(a["Z"]), np.empty(N, DT), np.empty_like(a["Z"])
        def run():
            softmax_xent.softmax_xent_forward(P, losses, a["Z"], a["y"])
            softmax_xent.softmax_xent_backward(dZ, P, a["y"])
        return run, lambda: (P, dZ)
    if family == "batchnorm_forward_backward":
        Y, Xhat, dX = (np.empty_like(a["H"]) for _ in range(3))
        mean, inv, rm, rv, dg, dbt = (np.zeros(O, DT) for _ in range(6))
        def run():
            batchnorm.bn_forward_train(Y, Xhat, mean, inv, rm, rv, a["H"], a["gamma"], a["beta"],
                                       1e-5, 0.9, False, True)
            batchnorm.bn_backward(dX, dg, dbt, a["dH"], Xhat, inv, a["gamma"], Y, True)
        return run, lambda: (Y, dX)
    raise KeyError(family)


def numpy_impl(family, a):
    X, W, b, H, dH, Z, y = (a[k] for k in ("X", "W", "b", "H", "dH", "Z", "y"))
    if family == "linear_forward":
        return lambda: X @ W + b
    if family == "linear_backward":
        return lambda: (X.T @ dH + 2 * 0.005 * W, dH.sum(axis=0), dH @ W.T)
    if family == "relu_forward_backward":
        def run():
            Y = np.maximum(H, 0)
            return Y, dH * (Y > 0)
        return run
    if family == "softmax_xent_forward_backward":
        def run():
            E = np.exp(Z - Z.max(axis=1, keepdims=True))
            P = E / E.sum(axis=1, keepdims=True)
            dZ = P.copy()
            dZ[np.arange(N), y] -= 1
            return P, dZ / N
        return run
    if family == "batchnorm_forward_backward":
        def run():
            mu, var = H.mean(axis=0), H.var(axis=0)
            inv = 1 / np.sqrt(var + 1e-5)
            xh = (H - mu) * inv
            Y = np.maximum(xh, 0)
            g = dH * (Y > 0)
            dX = inv / N * (N * g - g.sum(axis=0) - xh * (g * xh).sum(axis=0))
            return Y, dX
        return run
    raise KeyError(family)


FAMILIES = ["linear_forward", "linear_backward", "relu_forward_backward",
            "softmax_xent_forward_backward", "batchnorm_forward_backward"]


@pytest.mark.parametrize("impl", ["fastmlp", "numpy"])
@pytest.mark.parametrize("family", FAMILIES)
def test_kernels(benchmark, rng, family, impl):
    a = inputs(rng)
    expected = numpy_impl(family, a)()
    if impl == "fastmlp":
        run, result = fastmlp_impl(family, a)
        run()                                   # compile (or load from cache) before timing
        got = result()
        got, expected = (got, expected) if isinstance(got, tuple) else ((got,), (expected,))
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4 * (np.abs(e).max() + 1))
        benchmark.extra_info["family"] = family
        benchmark(run)
    else:
        benchmark(numpy_impl(family, a))


AUGMENT = {"gather": None, "augment_flip_translate": "flip,translate=2",
           "augment_flip_translate_edge": "flip,translate=2:edge"}


@pytest.mark.parametrize("case", list(AUGMENT))
def test_augment_rows(benchmark, rng, case):
    """A batch of 100 CIFAR-shaped rows gathered from a 5000-row float32 training set, plain
    (tasks.gather, what a step does without augmentation) or flipped and translated on the way
    (augment_rows), with the threads the run has; the augmentation's cost is the difference."""
    import sys
    from pathlib import Path
    from fastmlp.augment import Augmenter
    from fastmlp.kernels.rng import stream_key
    from fastmlp.kernels.tasks import gather
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from reference import augment_rows_ref
    raw = rng.integers(0, 256, (5000, I)).astype(np.float64)
    mean, std = raw.mean(axis=0), raw.std(axis=0)
    X = ((raw - mean) / std).astype(DT)
    rows = rng.integers(0, len(X), N)
    out = np.empty((N, I), DT)
    key = stream_key(0, 1, 2)
    if AUGMENT[case] is None:
        run = lambda: gather(out, X, rows)
        expected = X[rows]
    else:
        aug = Augmenter(AUGMENT[case], (3, 32, 32), mean, std)
        shape = np.array([3, 32, 32], np.int64)
        run = lambda: aug_kernel(out, X, rows, mean, std, shape, aug.params, key)
        from fastmlp.kernels.augment import augment_rows as aug_kernel
        expected = augment_rows_ref(X, rows, mean, std, shape, aug.params, key)
    run()                                       # compile (or load from cache) before timing
    np.testing.assert_allclose(out, expected, rtol=2.5e-7, atol=2.5e-7)
    benchmark.extra_info["family"] = "augment"
    benchmark(run)
