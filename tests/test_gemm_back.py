"""kernels/gemm_back.py: a hidden layer's input gradient and its weights' product in one pass over
its weights (gemm's DGRAD_SGD and DGRAD_GRAD, the fused step's path at a batch of a few rows)
against the two products apart (DGRAD, then SGD_STEP or GRAD: the same bits, for any thread
cut) and their NumPy twin, and the step that takes them against the per-kernel path."""
import numba
import numpy as np
import pytest

import fastmlp
from fastmlp import optim
from fastmlp.kernels import gemm, gemm_back, gemm_packed, tasks
from fastmlp.kernels.simd import SIMD, VECTOR_BYTES, vsplat, vstore_part

pytestmark = pytest.mark.skipif(not SIMD, reason="the register-blocked products need AVX2 and FMA "
                                "(tests/test_blas_build.py checks the BLAS build)")

DTYPES = [np.float32, np.float64]
TOL = {np.float32: 3e-6, np.float64: 1e-14}
# (N, I, O): one pass (N <= CH) and several (copied blocks), short chunks of rows (N % 8),
# short blocks of units (O % 8), a short last strip of columns (I % 16, on every vector width),
# a copied block of fewer than SB strips, rows of WT a multiple of 4 KB apart (1024 float32), a
# lone unit, and O = KP, the most a run of k holds
SHAPES = [(2, 1000, 1000), (8, 50, 50), (3, 17, 33), (9, 65, 24), (16, 1024, 64),
          (23, 100, 31), (40, 33, 7), (64, 200, 130), (5, 3, 1), (70, 20, 9),
          (12, 40, gemm_packed.KP)]


@pytest.fixture
def rng():
    return np.random.default_rng(5)


def apart(dY, WT, X, lam, eta, nb):
    """The two products the fused task replaces: DGRAD from the old WT, then SGD_STEP."""
    dX, W = np.empty_like(X), WT.copy()
    tasks.input_grad(dX, dY, W, nb)
    tasks.weight_sgd_step(W, X, dY, lam, eta, nb)
    return dX, W


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_one_pass_over_the_weights_gives_the_bits_of_the_two_products(rng, dtype, shape):
    """dH and the stepped WT equal DGRAD then SGD_STEP bit for bit in every thread cut (every
    element is the same chain of fused multiply-adds in both), and their NumPy twin to
    rounding; with L2 and without, and at 1 - 2 eta lam = 0 (the old WT not read)."""
    N, I, O = shape
    X = rng.standard_normal((N, I)).astype(dtype)
    WT = rng.standard_normal((O, I)).astype(dtype)
    dY = rng.standard_normal((N, O)).astype(dtype)
    for lam, eta in ((0.005, 0.1), (0.0, 0.01), (1.0, 0.5)):    # 1 - 2 eta lam = 0 exactly
        want_dX, want_W = apart(dY, WT, X, lam, eta, 1)
        x64, w64, d64 = X.astype(np.float64), WT.astype(np.float64), dY.astype(np.float64)
        scale = np.abs(d64) @ np.abs(w64)
        np.testing.assert_allclose(want_dX, d64 @ w64, rtol=0,
                                   atol=TOL[dtype] * 10 * (scale.max() + 1))
        twin = (1 - 2 * eta * lam) * w64 - eta * d64.T @ x64
        size = np.abs(w64) + eta * np.abs(d64).T @ np.abs(x64)
        np.testing.assert_allclose(want_W, twin, rtol=0, atol=TOL[dtype] * 10 * (size.max() + 1))
        for nb in (1, 2, 3, 8):
            dX, W = np.full_like(X, np.nan), WT.copy()
            tasks.input_grad_sgd_step(dX, W, X, dY, lam, eta, nb)
            np.testing.assert_array_equal(dX, want_dX)
            np.testing.assert_array_equal(W, want_W)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_one_pass_gives_the_bits_of_the_input_and_weight_gradients(rng, dtype, shape):
    """DGRAD_GRAD (the other rules' path): dH and dWT equal DGRAD and GRAD bit for bit in every
    thread cut and their NumPy twin to rounding, with L2 and without; WT is left as it was."""
    N, I, O = shape
    X = rng.standard_normal((N, I)).astype(dtype)
    WT = rng.standard_normal((O, I)).astype(dtype)
    dY = rng.standard_normal((N, O)).astype(dtype)
    for lam in (0.005, 0.0):
        want_dX, want_G = np.empty_like(X), np.empty_like(WT)
        tasks.input_grad(want_dX, dY, WT, 1)
        tasks.weight_grad(want_G, X, dY, WT, lam, 0.0, False, 1, *tasks._no_state(X))
        x64, w64, d64 = X.astype(np.float64), WT.astype(np.float64), dY.astype(np.float64)
        size = np.abs(d64).T @ np.abs(x64) + 2 * lam * np.abs(w64)
        np.testing.assert_allclose(want_G, d64.T @ x64 + 2 * lam * w64, rtol=0,
                                   atol=TOL[dtype] * 10 * (size.max() + 1))
        for nb in (1, 2, 3, 8):
            dX, G, W = np.full_like(X, np.nan), np.full_like(WT, np.nan), WT.copy()
            tasks.input_and_weight_grad(dX, G, W, X, dY, lam, nb)
            np.testing.assert_array_equal(dX, want_dX)
            np.testing.assert_array_equal(G, want_G)
            np.testing.assert_array_equal(W, WT)


def test_the_step_fuses_a_hidden_layer_at_a_few_rows_or_a_small_one():
    """The rule, by measurement (gemm_back.py): from 3 rows (with 32-byte vectors, only layers
    of at most FEW_WEIGHTS weights), at most KP units (one run of k), and up to BACK_ROWS
    rows (64 with AVX-512's 32 registers, one pass of CH rows with 16) or BACK_MACS
    multiply-adds (the study nets' small layers at batch 100 and 500, 64-byte vectors only)."""
    fuses = gemm_back.fused_shape.py_func     # (gemm.fuses_back: this, where SIMD)
    most = 64 if VECTOR_BYTES >= 64 else gemm_back.CH
    assert gemm_back.BACK_ROWS == most
    # one or two rows: kernels/gemm_thin.py streams WT by rows
    assert not fuses(1, 1000, 1000) and not fuses(2, 1000, 1000)
    assert fuses(most, 5, 1)
    # a wide layer from 3 rows with 64-byte vectors, never with 32-byte ones; a layer of up to
    # FEW_WEIGHTS weights from 3 rows everywhere
    wide = VECTOR_BYTES >= 64
    assert fuses(3, 1000, 1000) == wide and fuses(most, 129, 128) == wide
    assert fuses(most, 4096, gemm_packed.KP) == wide
    assert fuses(3, 128, 128) and fuses(most, 128, 128) and fuses(3, 50, 50)
    assert not fuses(most + 1, 1000, 1000) and not fuses(16, 10, gemm_packed.KP + 1)
    # a small layer at more rows: the study's 50 -> 50 and 50 -> 10 at batch 100 and 500
    small = VECTOR_BYTES >= 64
    assert all(fuses(N, 50, O) == small for N in (100, 500) for O in (50, 10))
    assert not fuses(100, 1000, 1000) and not fuses(500, 512, 256)
    # an output layer of 10 units: up to SHORT_MACS multiply-adds
    assert fuses(8, 4096, 10) and fuses(64, 1000, 10) == (most >= 64)
    assert not fuses(64, 2048, 10) and not fuses(8, 20000, 10)
    # a batch of more than KP rows: SGD_STEP sums it in runs, which one chain would not repeat
    assert not fuses(gemm_packed.KP + 1, 8, 16) and fuses(gemm_packed.KP, 8, 16) == (most >= 64)


def test_the_fused_tasks_refuse_more_units_or_rows_than_one_run_of_k(rng):
    calls = (lambda dX, WT, X, dY: tasks.input_grad_sgd_step(dX, WT, X, dY, 0.0, 0.1, 1),
             lambda dX, WT, X, dY: tasks.input_and_weight_grad(dX, np.empty_like(WT), WT, X, dY,
                                                              0.0, 1))
    for fused in calls:
        X, WT = np.ones((4, 3), np.float32), np.ones((gemm_packed.KP + 1, 3), np.float32)
        with pytest.raises(ValueError, match="WT must have 1 to 1024 rows"):
            fused(np.empty_like(X), WT, X, np.ones((4, len(WT)), np.float32))
        X, WT = np.ones((gemm_packed.KP + 1, 3), np.float32), np.ones((5, 3), np.float32)
        with pytest.raises(ValueError, match="X must have 1 to 1024 rows"):
            fused(np.empty_like(X), WT, X, np.ones((len(X), 5), np.float32))


@pytest.mark.parametrize("rule", ["sgd", "nesterov", "adam"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N", [4, 16, 40, 200])
def test_a_step_with_the_fused_backward_equals_the_per_kernel_path(rng, dtype, N, rule):
    """A network whose hidden layers take DGRAD_SGD (plain SGD) or DGRAD_GRAD then OPT_STEP
    (Nesterov, Adam) at batch N (one pass at 4 rows, several at 16, 40 and 200, a small net)
    trains as the per-kernel path (each kernel a call of its own from Python), with and without
    batch norm, and to the same bits on 1 thread and on all of them (tests/test_network.py: 1,
    2, 3 and 8 threads)."""
    if not gemm_back.fused_shape.py_func(N, 70, 33):
        pytest.skip(f"batch {N} does not fuse with {VECTOR_BYTES}-byte vectors (gemm_back.py)")
    X, y = rng.standard_normal((N, 60)).astype(dtype), rng.integers(0, 10, N)
    tol = {np.float32: 2e-5, np.float64: 1e-12}[dtype]
    before = numba.get_num_threads()
    for bn in (True, False):
        net = fastmlp.Network([60, 70, 33, 10], batch_norm=bn, dtype=dtype, seed=0)
        layers = ((70, 33), (33, 10))       # the layers with an input gradient
        assert all(gemm_back.fused_shape.py_func(N, i, o) for i, o in layers)
        ref = net.copy()
        ref.fused = False
        thetas = []

        def train(n):
            opt = optim.make("momentum", nesterov=True) if rule == "nesterov" else optim.make(rule)
            opt.bind(n.theta.size, n.theta.dtype)
            for t in range(3):
                n._train_step(X, y, 0.005, dtype(0.05 if rule != "adam" else 0.001), None, opt, t)
            return opt.state
        try:
            for threads in sorted({1, before}):
                numba.set_num_threads(threads)
                fused = net.copy()
                state = train(fused)
                thetas.append(np.concatenate([fused.theta, fused.stats, state]))
        finally:
            numba.set_num_threads(before)
        train(ref)
        np.testing.assert_array_equal(thetas[-1], thetas[0])
        scale = np.abs(ref.theta).max()
        got, want = thetas[0][:len(ref.theta)], ref.theta.copy()
        if rule == "adam" and bn:
            # a hidden bias under batch norm has a gradient of exactly 0, here rounding only,
            # which Adam's step (m / sqrt(v)) scales to a step of eta either way
            for off, O in net.layout[:-1, [3, 1]]:
                got[off:off + O] = want[off:off + O] = 0
        np.testing.assert_allclose(got, want, rtol=tol * 10, atol=tol * scale)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_partial_store_writes_its_lanes_and_no_others(dtype):
    """simd.vstore_part, which every kernel here stores through: the first w lanes from i and
    nothing past them, for every w (without AVX-512 a whole vector takes a plain store and an
    edge the masked one: simd.py)."""
    @numba.njit
    def put(a, i, w):
        vstore_part(a, i, vsplat(a, 7.0), w)
    lanes = VECTOR_BYTES // np.dtype(dtype).itemsize
    for w in range(lanes + 1):
        a = np.zeros(3 * lanes, dtype)
        put(a, 1, w)
        want = np.zeros_like(a)
        want[1:1 + w] = 7
        np.testing.assert_array_equal(a, want, err_msg=f"w = {w}")
