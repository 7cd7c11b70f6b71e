"""The same bits from every path of kernels/gemm.py's products: for a row wherever it stands in
the batch, for a lone row of a wide forward, for a few rows streamed (gemm_thin) or a small
product read in place (gemm_small) against the packed kernel, and for a short block of rows or
a remainder of columns against a full one (tests/test_gemm.py: the products against NumPy)."""
import numpy as np
import pytest

from fastmlp.kernels import gemm, gemm_small, gemm_thin, optim, pack, tasks
from fastmlp.kernels.simd import SIMD, VECTOR_BYTES

from test_gemm import DTYPES, no_state, rand

pytestmark = pytest.mark.skipif(not SIMD, reason="the register-blocked products need AVX2 and FMA "
                                "(tests/test_blas_build.py checks the BLAS build)")


@pytest.fixture
def rng():
    return np.random.default_rng(11)


def gemm_lanes(dtype):
    return VECTOR_BYTES // np.dtype(dtype).itemsize


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
