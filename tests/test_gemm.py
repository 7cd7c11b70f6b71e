"""The products of kernels/gemm.py (every layer's forward, weight gradient, folded SGD step and
input gradient, each a task of gemm.products) against their NumPy twins, on the study's shapes,
wide layers, and shapes that leave every kind of remainder (rows, output units, vectors, single
columns, runs of KC columns, cache blocks), in float32 and float64; the same bits for any thread
cut (tests/test_gemm_bits.py: for a row wherever it stands, and on every path of a product); and
a float64 gradient check of a full-width network, which is where the fused step uses them."""
import numba
import numpy as np
import pytest

import fastmlp
from fastmlp.kernels import gemm, gemm_packed, optim, pack, parts, tasks
from fastmlp.kernels.simd import SIMD, VECTOR_BYTES

import reference as ref

pytestmark = pytest.mark.skipif(not SIMD, reason="the register-blocked products need AVX2 and FMA "
                                "(tests/test_blas_build.py checks the BLAS build)")

DTYPES = [np.float32, np.float64]
TOL = {np.float32: 3e-6, np.float64: 1e-14}
# (N, K, O): the study's first layer (CIFAR and Fashion-MNIST), then remainders of each kind
SHAPES = [(100, 3072, 50), (500, 784, 50), (7, 37, 13), (12, 784, 23), (5, 16, 5), (1, 3, 1),
          (103, 300, 50), (6, 33, 11), (64, 1030, 130), (20, 515, 257),
          # a lone last row in a packed forward (13 = 2 x 6 + 1); a weight gradient of at least
          # gemm_packed.BAND_AREA values, walked in bands on one thread and by strips in parts (a
          # batch of more than gemm_thin.THIN_K rows, so packed), and the same streamed
          (13, 200, 300), (7, 1100, 1000), (3, 1100, 1000),
          # a packed forward whose rows of WT lie a multiple of 4 KB apart: pack.pack_b copies
          # its columns first (float32 and float64 alike at 1024 and 2048 inputs)
          (5, 1024, 150), (2, 2048, 130),
          # the study's 50 -> 10 layer: input gradient and weight step read in place (gemm_small)
          (100, 50, 10),
          # a packed forward of 3 groups of rows (A packed whole, gemm_packed.GROUPS_FEW) and of 4
          (140, 300, 200), (150, 260, 140),
          # an input gradient of one group of rows in blocks of gemm_packed.JS_ROWS strips (B by
          # rows), its k = 1100 units in two runs
          (9, 700, 1100),
          # a weight gradient whose dZ rows lie 4 KB apart (1024 float32 units): its A packed a
          # group at a time (pack.pack_a_rows)
          (70, 40, 1024),
          # a forward of dot products whose tiles are one pair of units (gemm_dot._tile_pairs),
          # with a short last group of k; weight steps and input gradients of 1-2 rows of C
          (33, 301, 2), (45, 300, 1)]
# parts a product is cut into: one side's cut alone (2, 3, 7) and grids of both (4, 6: gemm._grid)
CUTS = (1, 2, 3, 4, 6, 7)


def test_a_product_takes_a_part_per_million_multiply_adds_up_to_the_thread_count():
    """kernels/parts.py: by size, so that 64 threads do not cut a 50-unit layer in 64 slivers."""
    cut = parts.parts.py_func
    assert cut(100 * 784 * 50, parts.PART_FLOPS, 64) == 3
    assert cut(100 * 784 * 50, parts.PART_FLOPS, 2) == 2
    assert cut(2 * parts.PART_FLOPS - 1, parts.PART_FLOPS, 8) == 1
    assert cut(10 ** 12, parts.PART_FLOPS, 8) == 8
    assert cut(0, parts.PART_WEIGHTS, 8) == 1


def test_parts_are_a_grid_of_rows_and_columns_with_the_least_packing():
    """gemm._grid: 2 parts cut the longer side; more parts cut both sides where each part then
    packs less (16 parts of 1024 x 1000: 4 x 4, not 16 slivers that each pack all of B); a side
    with fewer blocks than its parts is not cut that much.  The tests below take 4 and 6 parts,
    so they cover grids of both sides."""
    grid = gemm._grid.py_func
    assert grid(1024, 1000, 6, 32, 2) == (2, 1) and grid(100, 1024, 6, 32, 2) == (1, 2)
    assert grid(1024, 1000, 6, 32, 16) == (4, 4)
    assert grid(100, 50, 4, 6, 4) == (4, 1)         # a tie keeps the longer side's cut
    assert grid(3, 1100, 6, 32, 4) == (1, 4)         # one block of rows
    covered = set()
    for N, K, O in SHAPES:
        for R, J in ((N, O), (N, K), (O, K)):
            for nb in CUTS:
                pr, pc = grid(R, J, 6, 32, nb)
                assert pr * pc == nb
                covered.add(pr > 1 and pc > 1)
    assert covered == {True, False}


def test_the_band_shapes_cross_the_band_area():
    """(7, 1100, 1000)'s weight gradient is walked in bands whole and by strips in two parts."""
    assert 1100 * 1000 >= gemm_packed.BAND_AREA > 1100 * 1000 // 2
    assert 7 > gemm.THIN_K


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [pack.LONG_K, pack.LONG_K + 1 + pack.CK // 2])
def test_b_by_rows_packs_a_block_of_strips_in_either_order(dtype, n):
    """pack.pack_b with tj == 1 (the input gradient's WT, the weight gradient's X): a block of
    whole strips and a short last one, from a run of k packed strip by strip (n <= LONG_K) or
    CK rows at a time (n > LONG_K, its last chunk short).  Each strip's k-th 2V values are B's
    row k0 + k from the strip's first column, zeros past the block's last column."""
    @numba.njit
    def pack_block(P, Q, Bf, k0, k1, j, w, tk):
        pack.pack_b(P, Q, Bf, k0, k1, j, w, tk, 1)
    V2 = 2 * VECTOR_BYTES // np.dtype(dtype).itemsize
    J, k0, j, w, strips = 7 * V2 + 5, 3, V2, 5 * V2 + 3, 6   # 5 whole strips, 3 columns of a 6th
    B = np.arange((k0 + n + 2) * J, dtype=dtype).reshape(-1, J)
    S2 = (n + 1) * V2       # strips a run longer than this one apart, as gemm_packed lays them
    P = np.full(strips * S2, -1, dtype)
    pack_block(P, np.empty(V2 * pack.QS, dtype), B.reshape(-1), k0, k0 + n, j, w, J)
    for s in range(strips):
        cols = min(V2, w - s * V2)
        want = np.zeros((n, V2), dtype)
        want[:, :cols] = B[k0:k0 + n, j + s * V2:j + s * V2 + cols]
        np.testing.assert_array_equal(P[s * S2:s * S2 + n * V2].reshape(n, V2), want,
                                      err_msg=f"strip {s}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows, avail, n, nk", [(48, 200, 70, 70), (40, 40, 33, 35),
                                                (17, 17, 5, 5), (6, 3, 2, 2), (48, 50, 1, 1)])
def test_a_group_packed_in_one_pass_holds_each_blocks_rows_k_by_k(dtype, rows, avail, n, nk):
    """pack.pack_a_rows (a group's blocks of the weight gradient's A, each k's scalars
    contiguous, in one pass over k) leaves at block b's k-th MR values A's rows of that block
    at k: a short last block, rows past A's end (avail: zeros, never the values there), a run
    shorter than the blocks' stride (n < nk) and runs of 1 and 2 values of k; and no vector's
    spill reaches the next block."""
    @numba.njit
    def one_pass(Ap, Af, m0, m1, k0, n, nk, sk, avail):
        pack.pack_a_rows(Ap, Af, m0, m0, m1, k0, n, nk, sk, avail)
    V = VECTOR_BYTES // np.dtype(dtype).itemsize
    if V < pack.MR:
        pytest.skip(f"{V} lanes hold less than a block's {pack.MR} rows: pack_a's scalar moves")
    m0, k0 = 5, 2
    sk = m0 + avail + 3                             # A (k, r) = Af[k sk + r]: rows of sk values
    Af = np.arange((k0 + n + 1) * sk, dtype=dtype)
    Af[m0 + avail::sk] = np.nan                     # past A's rows: never packed
    blocks = (rows + pack.MR - 1) // pack.MR
    got = np.full(blocks * nk * pack.MR + V, -1, dtype)
    one_pass(got, Af, m0, m0 + rows, k0, n, nk, sk, avail)
    A = Af.reshape(-1, sk)[k0:k0 + n, m0:m0 + rows]
    for b in range(blocks):
        own = min(pack.MR, rows - b * pack.MR)      # the rows _k6's stores use
        at = b * nk * pack.MR
        g = got[at:at + n * pack.MR].reshape(n, pack.MR)
        want = np.where(np.arange(own) < avail - b * pack.MR, A[:, b * pack.MR:b * pack.MR + own],
                        0)
        np.testing.assert_array_equal(g[:, :own], want, err_msg=f"block {b}")
        if b + 1 < blocks and n < nk:       # past its n values, up to the next block: untouched
            assert (got[at + n * pack.MR:at + nk * pack.MR] == -1).all()


@pytest.fixture
def rng():
    return np.random.default_rng(11)


def rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("kind", [optim.MOMENTUM, optim.NESTEROV, optim.ADAGRAD, optim.ADAM])
@pytest.mark.parametrize("shape", [(100, 784, 50), (1100, 40, 13), (20, 515, 257),
                                   (7, 1100, 1000), (3, 1100, 1000), (100, 50, 13)])
def test_optimiser_step_inside_the_product_equals_gradient_then_step(rng, kind, shape):
    """With `update`, momentum and Nesterov take their step inside the weights' product (task
    GRAD_STEP: as each tile of the gradient is final in the packed kernel, gemm_packed.
    _store_rule, or after a streamed or small part), the other rules in a pass after it: the
    same bits as the whole gradient followed by optim.update_range, for every thread cut, with
    one run of k or two (batch 1100 > KP), packed (in bands), streamed (3 rows) or read in
    place (13 units); the gradient itself is left in dWT only where the step is not folded."""
    N, K, O = shape
    dtype = np.float32
    X, dY, W = rand(rng, (N, K), dtype), rand(rng, (N, O), dtype) * 0.1, rand(rng, (O, K), dtype)
    hp = np.array([0.9, 0.9, 0.999, 1e-8, 3.0])
    m0, v0 = rand(rng, O * K, dtype) * 0.01, np.abs(rand(rng, O * K, dtype)) * 0.01
    G = np.empty((O, K), dtype)
    tasks.weight_grad(G, X, dY, W, 0.01, 0.0, False, 1, *no_state(dtype))
    want_w, want_m, want_v = W.copy().reshape(-1), m0.copy(), v0.copy()
    optim.update_range(want_w, G.reshape(-1), want_m, want_v, 0, O * K, kind, 0.05, hp)
    for nb in CUTS:
        Wn, mn, vn, Gn = W.copy(), m0.copy(), v0.copy(), np.empty((O, K), dtype)
        tasks.weight_grad(Gn, X, dY, Wn, 0.01, 0.05, True, nb, mn, vn, kind, hp)
        if not gemm.folds_step.py_func(kind):
            np.testing.assert_array_equal(Gn, G)
        np.testing.assert_array_equal(Wn.reshape(-1), want_w)
        np.testing.assert_array_equal(mn, want_m)
        np.testing.assert_array_equal(vn, want_v)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_dot_nt_matches_numpy_and_any_thread_cut(rng, dtype, shape):
    N, K, O = shape
    X, WT = rand(rng, (N, K), dtype), rand(rng, (O, K), dtype)
    want = ref.dot_nt(X, WT)
    got = []
    for nb in CUTS:
        Y = np.full((N, O), np.nan, dtype)
        tasks.dot_nt(Y, X, WT, nb)
        got.append(Y)
    scale = np.abs(want).max()
    np.testing.assert_allclose(got[0], want, rtol=0, atol=TOL[dtype] * scale * np.sqrt(K / 16))
    for Y in got[1:]:
        np.testing.assert_array_equal(Y, got[0])


def no_state(dtype):
    return np.empty(0, dtype), np.empty(0, dtype), 0, np.zeros(optim.HP_SIZE)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_weight_tasks_match_numpy_in_place_or_not(rng, dtype, shape):
    """The gradient (out = dWT, src = WT) and the folded SGD step (in place in WT)."""
    N, K, O = shape
    X, dY, W = rand(rng, (N, K), dtype), rand(rng, (N, O), dtype), rand(rng, (O, K), dtype)
    grads, steps = [], []
    for nb in CUTS:
        G = np.full((O, K), np.nan, dtype)
        tasks.weight_grad(G, X, dY, W, 0.05, 0.0, False, nb, *no_state(dtype))
        S = W.copy()
        tasks.weight_sgd_step(S, X, dY, 0.0005, 0.01, nb)
        grads.append(G)
        steps.append(S)
    tol = TOL[dtype] * np.sqrt(N)
    want = ref.outer_update(W, X, dY, 1.0, 0.1)
    np.testing.assert_allclose(grads[0], want, rtol=0, atol=tol * np.abs(want).max())
    want = ref.outer_update(W, X, dY, -0.01, 1 - 2 * 0.01 * 0.0005)
    np.testing.assert_allclose(steps[0], want, rtol=0, atol=tol * np.abs(want).max())
    for G, S in zip(grads[1:], steps[1:]):
        np.testing.assert_array_equal(G, grads[0])
        np.testing.assert_array_equal(S, steps[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_input_grad_matches_numpy_and_any_thread_cut(rng, dtype, shape):
    N, K, O = shape
    dY, WT = rand(rng, (N, O), dtype), rand(rng, (O, K), dtype)
    want = dY.astype(np.float64) @ WT.astype(np.float64)
    got = []
    for nb in CUTS:
        dX = np.full((N, K), np.nan, dtype)
        tasks.input_grad(dX, dY, WT, nb)
        got.append(dX)
    np.testing.assert_allclose(got[0], want, rtol=0,
                               atol=TOL[dtype] * np.abs(want).max() * np.sqrt(O))
    for dX in got[1:]:
        np.testing.assert_array_equal(dX, got[0])


def test_gradient_check_through_the_register_blocked_products(cifar_subset):
    """Full 3072-pixel rows of 100 real CIFAR images, so the first layer's forward and weight
    gradient run through kernels/gemm.py's shared (cut) path in float64; 40 sampled entries per
    parameter must match centred differences to 1e-7, as every other gradient check here."""
    raw = cifar_subset["x_train"][:100].reshape(100, -1).astype(np.float64)
    X = (raw - raw.mean(axis=0)) / raw.std(axis=0)
    y = cifar_subset["y_train"][:100].astype(np.int64)
    net = fastmlp.Network([3072, 50, 50, 10], batch_norm=True, dtype=np.float64, seed=1)
    assert gemm.SIMD and 100 * 3072 * 50 // parts.PART_FLOPS >= 2    # cut in 2 parts on 2 threads
    for r in fastmlp.gradcheck(net, X, y, lam=0.01, max_entries=40):
        if r["zero_gradient"]:
            assert r["max_abs_error"] <= 1e-9, r
        else:
            assert r["rel_error"] <= 1e-7, r


def test_weight_grad_refuses_optimiser_state_of_the_wrong_shape(rng):
    X, dY, W = rand(rng, (4, 20), np.float32), rand(rng, (4, 3), np.float32), rand(rng, (3, 20), np.float32)
    G, hp = np.empty((3, 20), np.float32), np.array([0.9, 0.9, 0.999, 1e-8, 1.0])
    ok, short = np.zeros(60, np.float32), np.zeros(59, np.float32)
    with pytest.raises(ValueError, match=r"shape \(60,\); got \(59,\)"):
        tasks.weight_grad(G, X, dY, W, 0.0, 0.1, True, 1, short, ok, optim.MOMENTUM, hp)
    with pytest.raises(ValueError, match=r"shape \(60,\); got \(59,\)"):
        tasks.weight_grad(G, X, dY, W, 0.0, 0.1, True, 1, ok, short, optim.ADAM, hp)
    with pytest.raises(ValueError, match="C-contiguous with one dtype"):
        tasks.weight_grad(G, X, dY, W, 0.0, 0.1, True, 1, ok.astype(np.float64), ok, optim.ADAGRAD, hp)
    with pytest.raises(ValueError, match="kind must be an optimiser"):
        tasks.weight_grad(G, X, dY, W, 0.0, 0.1, True, 1, ok, ok, 7, hp)
    with pytest.raises(ValueError, match=r"hp \(5,\) float32"):
        tasks.weight_grad(G, X, dY, W, 0.0, 0.1, True, 1, ok, ok, optim.SGD, hp.astype(np.float32))
    with pytest.raises(ValueError, match=r"hp \(4,\)"):
        tasks.weight_grad(G, X, dY, W, 0.0, 0.1, True, 1, ok, ok, optim.SGD, hp[:4])
    tasks.weight_grad(G, X, dY, W, 0.0, 0.1, True, 1, short, short, optim.SGD, hp)   # SGD reads neither
