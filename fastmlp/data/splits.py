"""The study's splits and standardisation with training statistics."""
from dataclasses import dataclass, field

import numpy as np

from .arrays import RawData
from .errors import DataError

SPLITS = ("a2", "a3")
CHUNK_VALUES = 1 << 22  # float64 values per chunk (32 MiB): statistics never hold a float copy of all data
# float64 values per chunk of `standardize` (2 MiB): its two temporaries of a chunk stay in the
# caches, where 32 MiB ones went to memory and back (interleaved medians of 5, float64 then one
# rounding to float32, the same bits: 50000 x 3072 uint8 0.43 -> 0.18 s, 60000 x 784 0.135 ->
# 0.052, 5000 x 3072 0.041 -> 0.017; 64K values as fast, 16K 5-15 % slower)
STANDARDIZE_VALUES = 1 << 18


@dataclass
class Splits:
    """Standardised, C-contiguous arrays ready for training, and what is needed to standardise new data."""

    X_train: np.ndarray = field(repr=False)  # (N_train, D) float of `dtype`
    y_train: np.ndarray = field(repr=False)  # (N_train,) int64
    X_val: np.ndarray = field(repr=False)
    y_val: np.ndarray = field(repr=False)
    X_test: np.ndarray = field(repr=False)  # (0, D) when the source has no test set
    y_test: np.ndarray = field(repr=False)
    mean: np.ndarray = field(repr=False)  # (D,) float64 of the training rows
    std: np.ndarray = field(repr=False)  # (D,) float64, 1 where a feature is constant
    n_classes: int
    label_names: list
    image_shape: tuple  # (C, H, W) of a row's channel planes, e.g. (3, 32, 32); (D,) for plain features
    name: str
    source: str  # where the data came from and how it was split, for people
    split: str


def float_dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype) if dtype is not None else None  # np.dtype(None) would be float64
    except TypeError:
        dt = None
    if dt not in (np.float32, np.float64):
        raise DataError(f"dtype must be float32 or float64; got {dtype!r}")
    return dt


def check_split(split) -> str:
    if split not in SPLITS:
        raise DataError(f"split must be 'a2' or 'a3'; got {split!r}")
    return split


def _chunk_rows(n_features: int, values=None) -> int:
    """Rows of n_features per chunk of `values` values (default CHUNK_VALUES), at least one."""
    return max(1, (CHUNK_VALUES if values is None else values) // max(1, n_features))


def feature_stats(x, keep_zero=False):
    """Per-feature mean and (population) std of rows x (N, D) in float64, in two passes over chunks.

    Two passes rather than E[x^2] - E[x]^2, which cancels badly for features far from zero. A feature
    with std 0 gets std 1, so it standardises to 0 instead of NaN (keep_zero: leave it 0).
    """
    x = np.asarray(x)
    rows = _chunk_rows(x.shape[1])
    total = np.zeros(x.shape[1])
    for i in range(0, len(x), rows):
        total += x[i:i + rows].sum(axis=0, dtype=np.float64)
    mean = total / len(x)
    squares = np.zeros(x.shape[1])
    for i in range(0, len(x), rows):
        centred = x[i:i + rows] - mean  # float64, since mean is
        squares += np.einsum("ij,ij->j", centred, centred)
    std = np.sqrt(squares / len(x))
    if not keep_zero:
        std[std == 0] = 1.0
    return mean, std


def channel_stats(x, image_shape):
    """Mean and (population) std of each channel plane of rows x (N, D), pooled over the plane's
    pixels and all rows, returned per feature as (D,) float64 arrays constant over each plane.

    Why: augmentation moves pixels, and with per-pixel statistics a pixel shifted onto a spot
    whose std is tiny is blown up (Fashion-MNIST's border pixels have std 0.014: a shifted-in
    stroke standardises to ~1,000 instead of at most ~70).  With one mean and std per plane a
    moved pixel keeps its standardised value.  Plain feature rows (image_shape (D,)) are one plane.
    """
    mean_px, std_px = feature_stats(x, keep_zero=True)
    planes = image_shape[0] if len(image_shape) == 3 else 1
    mean = np.empty_like(mean_px)
    std = np.empty_like(std_px)
    for c, (m, sd) in enumerate(zip(np.split(mean_px, planes), np.split(std_px, planes))):
        m_c = m.mean()                                        # the planes' pixels have equal counts
        var_c = (sd ** 2 + (m - m_c) ** 2).mean()             # pooled: within plus between pixels
        at = slice(c * len(m), (c + 1) * len(m))
        mean[at] = m_c
        std[at] = np.sqrt(var_c) if var_c > 0 else 1.0
    return mean, std


def standardize(X_raw, mean, std, dtype=np.float32) -> np.ndarray:
    """(X_raw - mean) / std as a new C-contiguous array of `dtype`, computed in float64 and rounded once."""
    dtype = float_dtype(dtype)
    x = np.asarray(X_raw)
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    if x.ndim != 2 or mean.shape != (x.shape[1],) or std.shape != (x.shape[1],):
        raise DataError(
            f"standardize needs rows (N, D) and mean, std of shape (D,); got X {x.shape}, "
            f"mean {mean.shape}, std {std.shape}"
        )
    if not (np.isfinite(std).all() and (std > 0).all() and np.isfinite(mean).all()):
        raise DataError("standardize needs a finite mean and a finite std > 0 for every feature; use feature_stats")
    out = np.empty(x.shape, dtype)
    rows = _chunk_rows(x.shape[1], STANDARDIZE_VALUES)
    for i in range(0, len(x), rows):
        out[i:i + rows] = (x[i:i + rows] - mean) / std
    return out


def make_splits(raw: RawData, split="a3", n_val=5000, dtype=np.float32, merge_val=False,
                per_channel=False, n_train=None) -> Splits:
    """Split `raw` and standardise every part with the training part's statistics: per pixel
    (the study's), or per channel plane with per_channel (for augmentation, see channel_stats).

    a2: train on CIFAR-10's data_batch_1, validate on data_batch_2 (n_val is not used).
    a3: train on all training rows but the last n_val, validate on those last n_val.
    merge_val: train on the training and validation rows of that split together (standardised with
    the statistics of both), leaving no validation rows (X_val is (0, D)): a final run on all the
    labelled rows, scored on the test set only.
    n_train: train on only the first n_train rows of the split's training part (standardised with
    their own statistics); the validation and test rows are the same as without it.
    """
    dtype = float_dtype(dtype)
    train, val, how = _split_rows(raw, check_split(split), n_val)
    if n_train is not None:
        train, how = _first_rows(train, n_train, how, raw.name)
    if merge_val:   # both splits put the validation rows right after the training rows (unless n_train)
        train = slice(train.start, val.stop) if train.stop == val.start else np.r_[train, val]
        val, how = slice(val.stop, val.stop), f"{how}; trained on both, no validation rows"
    if per_channel:
        mean, std = channel_stats(raw.x_train[train], raw.image_shape)
        how += "; standardised per channel"
    else:
        mean, std = feature_stats(raw.x_train[train])
    return Splits(
        X_train=standardize(raw.x_train[train], mean, std, dtype),
        y_train=raw.y_train[train].copy(),
        X_val=standardize(raw.x_train[val], mean, std, dtype),
        y_val=raw.y_train[val].copy(),
        X_test=standardize(raw.x_test, mean, std, dtype),
        y_test=raw.y_test.copy(),
        mean=mean,
        std=std,
        n_classes=raw.n_classes,
        label_names=list(raw.label_names),
        image_shape=raw.image_shape,
        name=raw.name,
        source=f"{raw.source}; split {split}: {how}",
        split=split,
    )


def _split_rows(raw: RawData, split: str, n_val):
    n = len(raw.x_train)
    if split == "a2":
        if raw.batch_sizes is None or len(raw.batch_sizes) < 2:
            raise DataError(
                f"split 'a2' (train on data_batch_1, validate on data_batch_2) needs CIFAR-10's training "
                f"batches; {raw.source} has one training set: use split 'a3'"
            )
        first, second = raw.batch_sizes[:2]
        return slice(0, first), slice(first, first + second), "train data_batch_1, validate data_batch_2"
    if isinstance(n_val, bool) or not isinstance(n_val, (int, np.integer)) or not 1 <= n_val <= n - 1:
        raise DataError(
            f"n_val must be an integer in [1, {n - 1}] (the {n} training rows of {raw.name} minus one); got {n_val!r}"
        )
    return slice(0, n - n_val), slice(n - n_val, n), f"train the first {n - n_val} rows, validate the last {n_val}"


def _first_rows(train, n_train, how, name):
    """The slice of the first n_train rows of the training slice `train`."""
    available = train.stop - train.start
    if isinstance(n_train, bool) or not isinstance(n_train, (int, np.integer)) or not 1 <= n_train <= available:
        raise DataError(
            f"n_train must be an integer in [1, {available}] (the training rows of {name} in this split); got "
            f"{n_train!r}; use a smaller --n-train, or leave it unset to train on them all"
        )
    return slice(train.start, train.start + int(n_train)), f"{how}; trained on the first {n_train} of them"
