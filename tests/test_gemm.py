"""The products of kernels/gemm.py (every layer's forward, weight gradient, folded SGD step and
input gradient, each a task of gemm.products) against their NumPy twins, on the study's shapes,
wide layers, and shapes that leave every kind of remainder (rows, output units, vectors, single
columns, runs of KC columns, cache blocks), in float32 and float64; the same bits for any thread
cut and for a row wherever it stands in the batch; and a float64 gradient check of a full-width
network, which is where the fused step uses them."""
import numba
import numpy as np
import pytest

import fastmlp
from fastmlp.kernels import gemm, gemm_packed, gemm_small, gemm_thin, optim, pack, parts, tasks
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


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_row_gets_the_same_bits_wherever_it_stands(rng, dtype):
    """Rows permuted, or taken alone, give the same bits in every product: so a prediction
    does not depend on the other rows of its batch (scikit-learn's check_methods_sample_order_
    invariance; OpenBLAS fails it, see kernels/gemm.py)."""
    N, K, O = 50, 700, 70
    X, WT, dY = rand(rng, (N, K), dtype), rand(rng, (O, K), dtype), rand(rng, (N, O), dtype)
    p = rng.permutation(N)
    Y, Yp, Y1 = np.empty((N, O), dtype), np.empty((N, O), dtype), np.empty((1, O), dtype)
    tasks.dot_nt(Y, X, WT, 2)
    tasks.dot_nt(Yp, X[p].copy(), WT, 3)
    tasks.dot_nt(Y1, X[7:8].copy(), WT, 1)
    np.testing.assert_array_equal(Yp, Y[p])
    np.testing.assert_array_equal(Y1, Y[7:8])
    D, Dp = np.empty((N, K), dtype), np.empty((N, K), dtype)
    tasks.input_grad(D, dY, WT, 2)
    tasks.input_grad(Dp, dY[p].copy(), WT, 3)
    np.testing.assert_array_equal(Dp, D[p])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("K", [1024, 1030, 2048, 2085])
def test_a_lone_row_of_a_wide_forward_gets_the_bits_it_gets_in_a_batch(rng, dtype, K):
    """A lone row, or a pair, of a wide layer's forward (a prediction for one sample; up to
    gemm_thin.FWD_ROWS rows go through gemm_thin.forward_rows, a batch through the packed
    kernel) gets the bits it gets among others: K in one run or several (gemm.KP), with a tail
    of k shorter than a vector or none, rows of WT 4 KB apart or not; 300 units end in a short
    strip."""
    X, WT = rand(rng, (9, K), dtype), rand(rng, (300, K), dtype)
    full = np.empty((9, 300), dtype)
    tasks.dot_nt(full, X, WT, 1)
    for n in range(1, gemm_thin.FWD_ROWS + 1):
        for r in (0, 9 - n):
            for nb in (1, 2, 3):
                few = np.full((n, 300), np.nan, dtype)
                tasks.dot_nt(few, X[r:r + n].copy(), WT, nb)
                np.testing.assert_array_equal(few, full[r:r + n])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("K", [70, gemm.KP + 37])
def test_a_few_rows_streamed_get_the_bits_the_packed_kernel_gives(rng, dtype, K):
    """A batch of at most gemm_thin.THIN_K rows takes the streamed weight step, and of at most
    THIN_ROWS the streamed input gradient (kernels/gemm_thin.py); a larger batch the packed
    kernel (or gemm_small's, with the same bits, at 64 columns or fewer: float64 on AVX2).  Every element is the same chain in both: a batch with a row of zeros put first
    (the chain's first multiply-add then adds 0 to 0) is packed and gives the same bits, and a
    lone row's input gradient is the one it gets in a batch.  Columns in runs of 4 vectors
    and a masked rest; K (units, for the input gradient) in one run of k or two (gemm.KP)."""
    V = gemm_lanes(dtype)
    I = 8 * V + 5
    W = rand(rng, (K, I), dtype)
    for N in (1, 2, gemm.THIN_K):
        X, dY = rand(rng, (N, I), dtype), rand(rng, (N, K), dtype)
        X0 = np.vstack([rand(rng, (gemm.THIN_K + 1 - N, I), dtype), X])
        dY0 = np.vstack([np.zeros((gemm.THIN_K + 1 - N, K), dtype), dY])
        for nb in (1, 2, 3):
            thin, packed = W.copy(), W.copy()
            tasks.weight_sgd_step(thin, X, dY, 0.001, 0.1, nb)
            tasks.weight_sgd_step(packed, X0, dY0, 0.001, 0.1, nb)
            np.testing.assert_array_equal(thin, packed)
            thin, packed = np.empty_like(W), np.empty_like(W)
            tasks.weight_grad(thin, X, dY, W, 0.0, 0.0, False, nb, *no_state(dtype))
            tasks.weight_grad(packed, X0, dY0, W, 0.0, 0.0, False, nb, *no_state(dtype))
            np.testing.assert_array_equal(thin, packed)
    dY = rand(rng, (gemm.THIN_ROWS + 5, K), dtype)
    full = np.empty((dY.shape[0], I), dtype)
    tasks.input_grad(full, dY, W, 1)
    for r in (0, gemm.THIN_ROWS + 4):
        for n in range(1, gemm.THIN_ROWS + 1):
            for nb in (1, 2, 3):
                few = np.full((n, I), np.nan, dtype)
                tasks.input_grad(few, dY[r:r + 1].repeat(n, 0), W, nb)
                np.testing.assert_array_equal(few, full[r:r + 1].repeat(n, 0))


def test_an_empty_batch_takes_no_optimiser_step(rng):
    """No rows, no gradient written and no step taken, streamed (gemm_thin) as packed."""
    X, dY = np.empty((0, 20), np.float32), np.empty((0, 3), np.float32)
    W = rand(rng, (3, 20), np.float32)
    G, m, v = np.full((3, 20), 7.0, np.float32), np.zeros(60, np.float32), np.zeros(60, np.float32)
    hp = np.array([0.9, 0.9, 0.999, 1e-8, 1.0])
    for nb in (1, 2):
        Wn = W.copy()
        tasks.weight_grad(G, X, dY, Wn, 0.01, 0.5, True, nb, m, v, optim.MOMENTUM, hp)
        np.testing.assert_array_equal(Wn, W)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(100, 50, 50), (100, 50, 10), (33, 29, 15), (500, 16, 20)])
def test_a_small_product_read_in_place_gets_the_bits_the_packed_kernel_gives(rng, dtype, shape):
    """The input gradient and weight step of a small layer read their operands in place
    (kernels/gemm_small.py), of a wide one packed (gemm_packed.outer). Every element is the
    same chain in both: the small layer's elements, computed on one thread inside a product
    widened by columns of its input until it is packed, come out the same in any thread cut.
    29 inputs leave a short last strip of one or two vectors on every vector width, 33 rows and
    15 units a block of 3 rows; with and without L2 (no S read) and with Adam's step."""
    N, I, O = shape
    is_small = gemm_small.small_product.py_func     # a kernel without a Python wrapper
    size = np.dtype(dtype).itemsize
    # packed once widened: past SMALL_COLS and SMALL_MACS, and (two blocks of rows, O <= 12)
    # rows of B of SMALL_ROW_BYTES or more
    E = max(gemm_small.SMALL_COLS + gemm_small.SMALL_MACS // (N * O),
            gemm_small.SMALL_ROW_BYTES // size)
    assert is_small(O, I, N, I * size) and is_small(N, I, O, I * size)
    assert not is_small(O, I + E, N, (I + E) * size) and not is_small(N, I + E, O, (I + E) * size)
    X, dY = rand(rng, (N, I + E), dtype), rand(rng, (N, O), dtype)
    W = rand(rng, (O, I + E), dtype)
    Xs, Ws = X[:, :I].copy(), W[:, :I].copy()
    hp = np.array([0.9, 0.9, 0.999, 1e-8, 3.0])
    sgd, adam = W.copy(), W.copy()
    tasks.weight_sgd_step(sgd, X, dY, 0.001, 0.1, 1)
    m, v = np.full(W.size, 0.1, dtype), np.full(W.size, 0.2, dtype)
    dW = np.empty_like(W)
    tasks.weight_grad(dW, X, dY, adam, 0.001, 0.01, True, 1, m, v, optim.ADAM, hp)
    grads = {}
    for lam in (0.0, 0.01):
        grads[lam] = np.empty_like(W)
        tasks.weight_grad(grads[lam], X, dY, W, lam, 0.0, False, 1, *no_state(dtype))
    dX = np.empty((N, I + E), dtype)
    tasks.input_grad(dX, dY, W, 1)
    for nb in (1, 2, 3):
        narrow = Ws.copy()
        tasks.weight_sgd_step(narrow, Xs, dY, 0.001, 0.1, nb)
        np.testing.assert_array_equal(narrow, sgd[:, :I])
        narrow, dWs = Ws.copy(), np.empty_like(Ws)
        ms, vs = np.full(Ws.size, 0.1, dtype), np.full(Ws.size, 0.2, dtype)
        tasks.weight_grad(dWs, Xs, dY, narrow, 0.001, 0.01, True, nb, ms, vs, optim.ADAM, hp)
        for got, want in ((narrow, adam), (dWs, dW), (ms, m), (vs, v)):
            np.testing.assert_array_equal(got.reshape(O, I), want.reshape(O, I + E)[:, :I])
        for lam, want in grads.items():
            got = np.empty_like(Ws)
            tasks.weight_grad(got, Xs, dY, Ws, lam, 0.0, False, nb, *no_state(dtype))
            np.testing.assert_array_equal(got, want[:, :I])
        got = np.empty((N, I), dtype)
        tasks.input_grad(got, dY, Ws, nb)
        np.testing.assert_array_equal(got, dX[:, :I])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [1, 3, 6, 10])
def test_one_or_two_blocks_of_rows_read_in_place_get_the_packed_kernels_bits(rng, dtype, rows):
    """A weight step of a layer of at most 6 units (or an input gradient of at most 6 rows) reads
    its operands in place at any width (gemm_small.small_product), and so does one of 7-12 units
    (or rows) on rows of B shorter than SMALL_ROW_BYTES; a product of 13 rows is packed.  The
    rows they share are the same chains, whatever the cut into parts: 203 columns leave a short
    last strip on every vector width, 40 rows of batch keep the weight step off gemm_thin."""
    is_small = gemm_small.small_product.py_func
    size = np.dtype(dtype).itemsize
    N, I, wide = 40, 203, 13
    assert is_small(rows, I, N, I * size) and not is_small(wide, I, N, I * size)
    assert not is_small(wide, I, 7, I * size)
    if rows > 6:    # two blocks: on short rows of B only
        long_row = gemm_small.SMALL_ROW_BYTES
        assert not is_small(rows, long_row // size, N, long_row)
    X, dY = rand(rng, (N, I), dtype), rand(rng, (N, wide), dtype)
    W = rand(rng, (wide, I), dtype)
    sgd = W.copy()
    tasks.weight_sgd_step(sgd, X, dY, 0.001, 0.1, 1)
    grad = np.empty_like(W)
    tasks.weight_grad(grad, X, dY, W, 0.01, 0.0, False, 1, *no_state(dtype))
    dYr, dZ = dY[:, :rows].copy(), rand(rng, (wide, 7), dtype)
    WTi = rand(rng, (7, I), dtype)
    dX = np.empty((wide, I), dtype)
    tasks.input_grad(dX, dZ, WTi, 1)     # 13 rows over k = 7 units: packed
    for nb in (1, 2, 3):
        got = W[:rows].copy()
        tasks.weight_sgd_step(got, X, dYr, 0.001, 0.1, nb)
        np.testing.assert_array_equal(got, sgd[:rows])
        got = np.empty((rows, I), dtype)
        tasks.weight_grad(got, X, dYr, W[:rows].copy(), 0.01, 0.0, False, nb, *no_state(dtype))
        np.testing.assert_array_equal(got, grad[:rows])
        # an input gradient of as many rows (1-2 take gemm_thin: the same bits), its WT's
        # rows 203 values long
        got = np.empty((rows, I), dtype)
        tasks.input_grad(got, dZ[:rows].copy(), WTi, nb)
        np.testing.assert_array_equal(got, dX[:rows])


@pytest.mark.parametrize("dtype", DTYPES)
def test_block_and_remainder_kernels_give_the_same_bits(rng, dtype):
    """An element comes out the same whether a full block or a remainder kernel computed it,
    so where a cut falls never changes a result."""
    K = gemm.KP + 37                                  # two runs of k
    X, WT = rand(rng, (8, K), dtype), rand(rng, (9, K), dtype)
    full = np.empty((8, 9), dtype)
    tasks.dot_nt(full, X, WT, 1)                       # a block of 6 rows and a short one
    part = np.empty((2, 3), dtype)
    tasks.dot_nt(part, X[4:6].copy(), WT[5:8].copy(), 1)   # short blocks and strips only
    np.testing.assert_array_equal(part, full[4:6, 5:8])
    # a layer of 128 units or more takes the packed forward (gemm_dot.dot_form): short
    # blocks of rows, a strip that starts elsewhere and a short last strip
    dot_form = gemm.dot_form.py_func    # a kernel without a Python wrapper: its source
    assert not dot_form(3072, 129) and dot_form(3072, 9) and dot_form(784, 50)
    assert not dot_form(50, 50) and not dot_form(192, 100) and dot_form(100, 10)
    X, WT = rand(rng, (8, K), dtype), rand(rng, (160, K), dtype)
    full = np.empty((8, 160), dtype)
    tasks.dot_nt(full, X, WT, 1)
    part = np.empty((2, 129), dtype)
    tasks.dot_nt(part, X[4:6].copy(), WT[16:145].copy(), 1)
    np.testing.assert_array_equal(part, full[4:6, 16:145])
    # a short block of 1-5 rows (up to 4 multiply only 4 rows, gemm_packed._k6) gives its rows
    # the bits a full block gives them
    X = rand(rng, (12, K), dtype)
    full = np.empty((12, 160), dtype)
    tasks.dot_nt(full, X, WT, 1)                       # two full blocks
    for r in range(1, pack.MR):
        part = np.empty((pack.MR + r, 160), dtype)
        tasks.dot_nt(part, X[:pack.MR + r].copy(), WT, 1)
        np.testing.assert_array_equal(part[pack.MR:], full[pack.MR:pack.MR + r], err_msg=f"{r}")

    V = gemm_lanes(dtype)
    # wider than gemm_small.SMALL_COLS and more than two blocks of rows, so that the whole
    # product is packed (the part below is read in place by gemm_small: the two kernels' blocks
    # and remainders against each other)
    X, dY = rand(rng, (9, gemm_small.SMALL_COLS + 4 * V), dtype), rand(rng, (9, 13), dtype)
    assert not gemm_small.small_product.py_func(13, X.shape[1], 9, X.shape[1] * X.itemsize)
    full = np.zeros((13, X.shape[1]), dtype)
    tasks.weight_grad(full, X, dY, np.zeros_like(full), 0.0, 0.0, False, 1, *no_state(dtype))
    cols = 3 * V + 1                                  # a pair, a lone vector, a lone column
    part = np.zeros((3, cols), dtype)
    tasks.weight_grad(part, X[:, :cols].copy(), dY[:, 2:5].copy(), np.zeros_like(part), 0.0,
                     0.0, False, 1, *no_state(dtype))
    np.testing.assert_array_equal(part[:, :3 * V], full[2:5, :3 * V])
    # the lone column sums in row order without vectors: rounding apart, the same value
    np.testing.assert_allclose(part[:, 3 * V], full[2:5, 3 * V], rtol=1e-5 if dtype == np.float32 else 1e-13)


def gemm_lanes(dtype):
    from fastmlp.kernels.simd import VECTOR_BYTES
    return VECTOR_BYTES // np.dtype(dtype).itemsize


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
