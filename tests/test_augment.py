"""Augmentation: the kernel against its NumPy twin (tests/reference.py), its properties (flip,
padding, identity, threads, keys), the spec parser and Augmenter's validation."""
import numba
import numpy as np
import pytest

from fastmlp.augment import Augment, Augmenter, augment_images, batch_key, parse_augment
from fastmlp.kernels import augment as K
from fastmlp.kernels.rng import stream_key, uniform
from reference import augment_rows_ref

OFF = dict(flip=0.0, s=0, edge=0, blur=0.0, lo=0.3, hi=1.0, b=0.0, c=0.0, plane=0.0)
CASES = {                                           # each transform alone, then together
    "off": {}, "flip": dict(flip=0.5), "flip_all": dict(flip=1.0), "translate_zero": dict(s=2),
    "translate_edge": dict(s=3, edge=1), "flip_translate": dict(flip=0.5, s=2),
    "blur": dict(blur=1.0), "blur_wide": dict(blur=1.0, lo=1.0, hi=2.5), "brightness": dict(b=0.2),
    "contrast": dict(c=0.4), "jitter": dict(b=0.1, c=0.2),
    "all_zero_pad": dict(flip=0.5, s=2, blur=0.5, b=0.1, c=0.2),
    "all_edge_pad": dict(flip=0.5, s=4, edge=1, blur=0.5, lo=0.5, hi=1.5, b=0.2, c=0.3),
}
SHAPES = [(3, 32, 32), (1, 28, 28), (2, 5, 7)]


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def params(**kw):
    p = {**OFF, **kw}
    return np.array([p["flip"], p["s"], p["edge"], p["blur"], p["lo"], p["hi"], p["b"], p["c"], 255.0,
                     p["plane"]])


def dataset(shape, rng, m=24, real=None):
    """Standardised rows of raw 0..255 images and their per-feature mean, std."""
    raw = real.astype(np.float64) if real is not None else \
        rng.integers(0, 256, (m, int(np.prod(shape)))).astype(np.float64)
    mean, std = raw.mean(axis=0), raw.std(axis=0)
    std[std == 0] = 1.0
    return (raw - mean) / std, mean, std


def plane_dataset(shape, rng, m=24):
    """Like dataset, standardised per channel plane (fastmlp.data.channel_stats)."""
    from fastmlp.data.splits import channel_stats
    raw = rng.integers(0, 256, (m, int(np.prod(shape)))).astype(np.float64)
    mean, std = channel_stats(raw, shape)
    return (raw - mean) / std, mean, std


def run(X, rows, mean, std, shape, p, key, dtype, parallel=True):
    out = np.full((len(rows), X.shape[1]), np.nan, dtype)
    kernel = K.augment_rows if parallel else K.augment_rows_s
    kernel(out, X.astype(dtype), rows, mean, std, np.array(shape, np.int64), p, np.uint64(key))
    return out


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("case", CASES)
def test_kernel_matches_numpy_twin(case, shape, rng):
    X, mean, std = dataset(shape, rng)
    rows = rng.integers(0, len(X), 40)
    p, key = params(**CASES[case]), stream_key(1, 2, 3)
    ref = augment_rows_ref(X, rows, mean, std, shape, p, key)
    got = run(X, rows, mean, std, shape, p, key, np.float64)
    # float64: the kernel fuses multiply-adds and multiplies by 1/std; a few ulp of values <= ~10
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-13)
    ref32 = augment_rows_ref(X.astype(np.float32), rows, mean, std, shape, p, key)
    got32 = run(X, rows, mean, std, shape, p, key, np.float32)
    np.testing.assert_allclose(got32, ref32.astype(np.float32), rtol=2.5e-7, atol=2.5e-7)


@pytest.mark.parametrize("case", ["flip_translate", "all_edge_pad", "all_zero_pad"])
def test_kernel_matches_numpy_twin_on_real_cifar_images(case, cifar_subset, rng):
    X, mean, std = dataset((3, 32, 32), rng, real=cifar_subset["x_train"][:200])
    rows = np.arange(0, 200, 5, dtype=np.int64)
    p, key = params(**CASES[case]), stream_key(0, 11, 5)
    ref = augment_rows_ref(X, rows, mean, std, (3, 32, 32), p, key)
    np.testing.assert_allclose(run(X, rows, mean, std, (3, 32, 32), p, key, np.float64), ref, rtol=0, atol=1e-12)


def test_all_off_is_an_exact_copy(rng):
    X, mean, std = dataset((3, 32, 32), rng)
    rows = rng.integers(0, len(X), 30)
    for dtype in (np.float32, np.float64):
        got = run(X, rows, mean, std, (3, 32, 32), params(), 7, dtype)
        assert got.tobytes() == X.astype(dtype)[rows].tobytes()


def test_parallel_equals_serial_and_does_not_depend_on_threads(rng):
    X, mean, std = dataset((3, 32, 32), rng, m=50)
    rows = rng.integers(0, 50, 100)
    p, key = params(**CASES["all_edge_pad"]), stream_key(4, 5, 6)
    serial = run(X, rows, mean, std, (3, 32, 32), p, key, np.float32, parallel=False)
    before = numba.get_num_threads()
    try:
        for nt in range(1, numba.config.NUMBA_NUM_THREADS + 1):
            numba.set_num_threads(nt)
            assert run(X, rows, mean, std, (3, 32, 32), p, key, np.float32).tobytes() == serial.tobytes()
    finally:
        numba.set_num_threads(before)


def test_same_key_same_draws_different_keys_different_draws(rng):
    X, mean, std = dataset((3, 32, 32), rng)
    rows = np.arange(len(X), dtype=np.int64)
    p = params(**CASES["all_zero_pad"])
    a = run(X, rows, mean, std, (3, 32, 32), p, stream_key(0, 1, 2), np.float32)
    b = run(X, rows, mean, std, (3, 32, 32), p, stream_key(0, 1, 2), np.float32)
    c = run(X, rows, mean, std, (3, 32, 32), p, stream_key(0, 2, 2), np.float32)
    assert a.tobytes() == b.tobytes()
    assert (np.abs(a - c).max(axis=1) > 0.1).mean() > 0.8      # nearly every image changes


def _draws(key, n, s):
    """(flip?, dy, dx) of row n as the kernel draws them."""
    i, key = n * K.DRAWS, np.uint64(key)
    return (uniform(key, i + K.U_FLIP), K.shift_draw(uniform(key, i + K.U_DY), s),
            K.shift_draw(uniform(key, i + K.U_DX), s))


def test_flip_twice_is_the_identity_and_flips_columns(rng):
    images = rng.integers(0, 256, (10, 3, 32, 32)).astype(np.uint8)
    once = augment_images(images, "flip=1", seed=3)
    assert np.array_equal(once, images[:, :, :, ::-1])          # mirror of columns, planes kept apart
    twice = augment_images(once, "flip=1", seed=4)
    assert np.array_equal(twice, images)


def test_translate_zero_padding_is_raw_black(rng):
    shape, s = (3, 32, 32), 3
    X, mean, std = dataset(shape, rng, m=60)
    rows = np.arange(60, dtype=np.int64)
    key = stream_key(9, 9, 9)
    out = run(X, rows, mean, std, shape, params(s=s), key, np.float64)
    raw_in = (X * std + mean).reshape(-1, *shape)
    raw_out = (out * std + mean).reshape(-1, *shape)
    shifts = set()
    for n in range(60):
        _, dy, dx = _draws(key, n, s)
        shifts.add((dy, dx))
        expected = np.zeros(shape)
        ys, xs = slice(max(dy, 0), 32 + min(dy, 0)), slice(max(dx, 0), 32 + min(dx, 0))
        yi, xi = slice(max(-dy, 0), 32 + min(-dy, 0)), slice(max(-dx, 0), 32 + min(-dx, 0))
        expected[:, ys, xs] = raw_in[n][:, yi, xi]
        np.testing.assert_allclose(raw_out[n], expected, rtol=0, atol=1e-10)
    assert len(shifts) > 20                                     # most of the 49 shifts were seen


def test_translate_edge_padding_repeats_the_border(rng):
    images = rng.integers(0, 256, (40, 1, 28, 28)).astype(np.float64)
    out = augment_images(images, "translate=4:edge", seed=5)
    key = batch_key(5, 0)
    for n in range(40):
        _, dy, dx = _draws(key, n, 4)
        iy = np.clip(np.arange(28) - dy, 0, 27)
        ix = np.clip(np.arange(28) - dx, 0, 27)
        assert np.array_equal(out[n, 0], images[n, 0][iy][:, ix])


def test_jitter_stays_in_the_value_range_and_blur_keeps_the_mean_of_a_flat_image(rng):
    images = rng.integers(0, 256, (30, 3, 8, 8)).astype(np.float64)
    out = augment_images(images, "brightness=0.5,contrast=0.9", seed=1)
    assert out.min() >= 0 and out.max() <= 255 and not np.array_equal(out, images)
    flat = np.full((5, 1, 9, 9), 100.0)
    np.testing.assert_allclose(augment_images(flat, "blur=1:0.5-3", seed=2), flat, rtol=1e-14)


def test_augmenter_apply_uses_the_kernel_and_gathers_when_off(rng):
    X, mean, std = dataset((3, 32, 32), rng)
    X = X.astype(np.float32)
    rows = rng.integers(0, len(X), 16)
    out = np.empty((16, X.shape[1]), np.float32)
    aug = Augmenter("flip,translate=2", (3, 32, 32), mean, std)
    assert aug.enabled
    for threads in (1, 2):
        aug.apply(out, X, rows, 123, threads)
        assert out.tobytes() == run(X, rows, mean, std, (3, 32, 32), aug.params, 123, np.float32).tobytes()
    off = Augmenter("none", (3, 32, 32), mean, std)
    assert not off.enabled
    off.apply(out, X, rows, 123)
    assert out.tobytes() == X[rows].tobytes()


@pytest.mark.parametrize("bad, message", [
    (dict(out=np.empty((4, 10), np.float32)), "out must be"),
    (dict(out=np.empty((4, 3072), np.float64)), "share a dtype"),
    (dict(rows=np.array([0, 1, 2, 3], np.int32)), "rows must be an int64"),
    (dict(rows=np.array([0, 1, 2, 99], np.int64)), "rows must be row numbers of X"),
])
def test_augmenter_apply_rejects_bad_arrays(bad, message, rng):
    X = rng.standard_normal((8, 3072)).astype(np.float32)
    args = dict(out=np.empty((4, 3072), np.float32), X=X, rows=np.arange(4, dtype=np.int64))
    args.update(bad)
    aug = Augmenter("flip", (3, 32, 32), np.zeros(3072), np.ones(3072))
    with pytest.raises(ValueError, match=message):
        aug.apply(args["out"], args["X"], args["rows"], 1)


def test_augmenter_rejects_bad_settings():
    with pytest.raises(ValueError, match="needs images"):
        Augmenter("flip", (50,), np.zeros(50), np.ones(50))
    Augmenter("none", (50,), np.zeros(50), np.ones(50))               # plain features, no augmentation
    with pytest.raises(ValueError, match="translate must be smaller than the image"):
        Augmenter("translate=28", (1, 28, 28), np.zeros(784), np.ones(784))
    with pytest.raises(ValueError, match=r"mean and std must have shape \(784,\)"):
        Augmenter("flip", (1, 28, 28), np.zeros(783), np.ones(784))
    with pytest.raises(ValueError, match="std must be finite and > 0"):
        Augmenter("flip", (1, 28, 28), np.zeros(784), np.zeros(784))


@pytest.mark.parametrize("text, expected", [
    ("flip,translate=2,blur,jitter", Augment(flip=0.5, translate=2, blur=0.5, brightness=0.1, contrast=0.2)),
    ("flip=0.3,translate=4:edge,blur=0.5,brightness=0.1,contrast=0.2",
     Augment(flip=0.3, translate=4, pad="edge", blur=0.5, brightness=0.1, contrast=0.2)),
    ("blur=0.25:0.5-2, translate", Augment(blur=0.25, blur_sigma=(0.5, 2.0), translate=2)),
    ("jitter=0.05:0.1", Augment(brightness=0.05, contrast=0.1)),
    ("none", Augment()), ("", Augment()), (None, Augment()),
])
def test_parse_augment_and_round_trip(text, expected):
    a = parse_augment(text)
    assert a == expected
    assert parse_augment(a.spec()) == a
    assert a.spec() == parse_augment(a.spec()).spec()
    assert a.enabled == (a != Augment())


def test_canonical_spec():
    assert parse_augment("jitter,blur,translate=3:edge,flip").spec() == \
        "flip=0.5,translate=3:edge,blur=0.5:0.3-1,brightness=0.1,contrast=0.2"
    assert parse_augment("none").spec() == "none"


@pytest.mark.parametrize("text, message", [
    ("flop", "unknown item 'flop'"), ("flip=1.5", "flip must be a number in"),
    ("flip=x", "expected a number"), ("translate=-1", "whole number of pixels"),
    ("translate=2:wrap", "must be 'edge' or 'zero'"), ("blur=0.5:2-1", "0 <= lo <= hi"),
    ("blur=0.5:1", "LO-HI"), ("flip,flip=0.2", "sets 'flip' twice"),
    ("jitter,contrast=0.1", "twice"), ("none,flip", "combines 'none'"), ("flip,,blur", "empty item"),
    ("brightness", "needs a value"), ("contrast=2", "contrast must be a number in"),
    ("jitter=0.1", "BRIGHTNESS:CONTRAST"), ("blur=nan", "finite"),
])
def test_parse_augment_rejects_bad_specs(text, message):
    with pytest.raises(ValueError, match=message):
        parse_augment(text)


def test_augment_fields_are_validated():
    with pytest.raises(ValueError, match="translate must be an integer"):
        Augment(translate=1.5)
    with pytest.raises(ValueError, match="pad must be 'zero' or 'edge'"):
        Augment(translate=2, pad="wrap")
    with pytest.raises(ValueError, match="blur_sigma must be a pair"):
        Augment(blur=0.5, blur_sigma=0.5)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("case", ["flip_all", "translate_zero", "translate_edge", "flip_translate",
                                  "all_edge_pad", "all_zero_pad"])
def test_per_plane_statistics_take_the_copy_path(case, shape, rng):
    """With mean and std constant over each plane (PER_PLANE), flips and shifts copy standardised
    values: the same result as the general path up to its rounding, moved pixels bit-equal to
    their sources, parallel equal to serial."""
    X, mean, std = plane_dataset(shape, rng)
    rows = rng.integers(0, len(X), 40)
    key = stream_key(2, 3, 4)
    general = run(X, rows, mean, std, shape, params(**CASES[case]), key, np.float32)
    fast = run(X, rows, mean, std, shape, params(**CASES[case], plane=1.0), key, np.float32)
    serial = run(X, rows, mean, std, shape, params(**CASES[case], plane=1.0), key, np.float32, parallel=False)
    np.testing.assert_allclose(fast, general, rtol=1e-6, atol=1e-6)
    assert fast.tobytes() == serial.tobytes()
    ref = augment_rows_ref(X.astype(np.float32), rows, mean, std, shape, params(**CASES[case]), key)
    np.testing.assert_allclose(fast, ref.astype(np.float32), rtol=2.5e-7, atol=2.5e-7)
    if CASES[case].get("blur", 0) == 0 and CASES[case].get("b", 0) == 0 and CASES[case].get("c", 0) == 0:
        values = set(np.float32(X).ravel().tolist()) | set(np.float32(-mean / std).tolist())
        assert set(fast.ravel().tolist()) <= values       # copies of inputs, or the zero pad


def test_augmenter_detects_per_plane_statistics(rng):
    X, mean, std = plane_dataset((3, 8, 8), rng)
    assert Augmenter("flip", (3, 8, 8), mean, std).params[K.PER_PLANE] == 1.0
    X, mean, std = dataset((3, 8, 8), rng)
    assert Augmenter("flip", (3, 8, 8), mean, std).params[K.PER_PLANE] == 0.0


def test_training_standardises_per_channel_when_augmenting(tmp_path):
    """auto standardisation is per pixel (the study's) without augmentation and per channel with
    it; forcing per-pixel statistics with tiny border stds warns."""
    from fastmlp.config import TrainConfig
    from fastmlp.run import load_data, train
    plain = TrainConfig(dataset="sample")
    augmented = TrainConfig(dataset="sample", augment="flip,translate=2", ns=4, cycles=1,
                            out=str(tmp_path / "a"))
    assert plain.standardization() == "pixel" and augmented.standardization() == "channel"
    splits = load_data(augmented)
    assert "standardised per channel" in splits.source
    plane = splits.std[:28 * 28]
    assert (plane == plane[0]).all()
    result = train(augmented, splits)
    assert result.metrics["standardize"] == "channel"
    assert result.metrics["augment"] == "flip=0.5,translate=2"
    forced = TrainConfig(**{**augmented.to_dict(), "standardize": "pixel", "out": str(tmp_path / "b")})
    with pytest.warns(UserWarning, match=r"scaled up to \d+x .*standardize='channel'"):
        train(forced, load_data(forced))


def test_a_blur_sigma_range_may_start_at_zero(rng):
    """The bonus report drew sigma ~ U(0, 0.5): 0 must parse, and sigma = 0 must be the identity,
    not the kernel's division by zero (NaN images)."""
    assert parse_augment("blur=0.5:0-0.5") == Augment(blur=0.5, blur_sigma=(0.0, 0.5))
    assert parse_augment("blur=0.5:0-0.5").spec() == "blur=0.5:0-0.5"
    images = rng.integers(0, 256, (20, 3, 8, 8)).astype(np.float64)
    np.testing.assert_array_equal(augment_images(images, "blur=1:0-0", seed=3), images)
    out = augment_images(images, "blur=1:0-0.5", seed=3)
    assert np.isfinite(out).all() and not np.array_equal(out, images)
