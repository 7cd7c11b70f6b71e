"""The build a CPU without AVX2 and FMA gets: every product one BLAS call instead of
register-blocked (kernels/gemm.SIMD is False).  Run here by compiling for another CPU
(NUMBA_CPU_NAME=nehalem: SSE4.2, no AVX) in a subprocess, whose Numba cache entries are kept
apart from this CPU's by their CPU name.  It checks the products against NumPy, and that net
A trained 5 steps in that build ends where this process's build does, to float32 rounding."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np

import fastmlp

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import fastmlp
    from fastmlp.kernels import gemm, optim, tasks
    assert not gemm.SIMD, "expected the BLAS build"
    rng = np.random.default_rng(5)
    errors = []
    for N, K, O in [(100, 3072, 50), (37, 300, 13), (16, 20, 3)]:
        X = rng.standard_normal((N, K)).astype(np.float32)
        WT = rng.standard_normal((O, K)).astype(np.float32)
        dY = rng.standard_normal((N, O)).astype(np.float32)
        want = X.astype(np.float64) @ WT.T.astype(np.float64)
        for nb in (1, 2, 3):
            Y = np.empty((N, O), np.float32)
            tasks.dot_nt(Y, X, WT, nb)
            errors.append(float(np.abs(Y - want).max() / np.abs(want).max()))
            D = np.empty((N, K), np.float32)
            tasks.input_grad(D, dY, WT, nb)
            ref = dY.astype(np.float64) @ WT
            errors.append(float(np.abs(D - ref).max() / np.abs(ref).max()))
            G = np.empty((O, K), np.float32)
            tasks.weight_grad(G, X, dY, WT, 0.05, 0.0, False, nb, np.empty(0, np.float32),
                             np.empty(0, np.float32), 0, np.zeros(optim.HP_SIZE))
            ref = dY.T.astype(np.float64) @ X + 0.1 * WT
            errors.append(float(np.abs(G - ref).max() / np.abs(ref).max()))
            # the fused backward's task (the step asks for it only with SIMD): two BLAS calls
            D2, W2 = np.empty((N, K), np.float32), WT.copy()
            tasks.input_grad_sgd_step(D2, W2, X, dY, 0.05, 0.01, nb)
            ref = dY.astype(np.float64) @ WT
            errors.append(float(np.abs(D2 - ref).max() / np.abs(ref).max()))
            ref = 0.999 * WT.astype(np.float64) - 0.01 * (dY.T.astype(np.float64) @ X)
            errors.append(float(np.abs(W2 - ref).max() / np.abs(ref).max()))
            D3, G3 = np.empty((N, K), np.float32), np.empty((O, K), np.float32)
            tasks.input_and_weight_grad(D3, G3, WT, X, dY, 0.05, nb)
            ref = dY.astype(np.float64) @ WT
            errors.append(float(np.abs(D3 - ref).max() / np.abs(ref).max()))
            ref = dY.T.astype(np.float64) @ X + 0.1 * WT
            errors.append(float(np.abs(G3 - ref).max() / np.abs(ref).max()))
    X = np.random.default_rng(0).standard_normal((100, 3072)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 10, 100)
    net = fastmlp.Network([3072, 50, 50, 10], seed=0)
    losses = [net._train_step(X, y, 0.005, 0.05) for _ in range(5)]
    np.save(sys.argv[1], net.theta)
    print(json.dumps({"errors": errors, "losses": losses}))
""")


def test_blas_build_matches_numpy_and_this_build(tmp_path):
    env = dict(os.environ, NUMBA_CPU_NAME="nehalem")
    env.pop("NUMBA_CPU_FEATURES", None)
    out = tmp_path / "theta.npy"
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(out)], env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert max(result["errors"]) < 1e-5, result["errors"]
    X = np.random.default_rng(0).standard_normal((100, 3072)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 10, 100)
    net = fastmlp.Network([3072, 50, 50, 10], seed=0)
    losses = [net._train_step(X, y, 0.005, 0.05) for _ in range(5)]
    np.testing.assert_allclose(losses, result["losses"], rtol=1e-5)
    theta = np.load(out)
    np.testing.assert_allclose(net.theta, theta, rtol=1e-4, atol=1e-5 * np.abs(theta).max())
