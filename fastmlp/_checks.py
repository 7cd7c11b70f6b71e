"""Validation at the public boundary.  Every error names the argument, the rule and the value,
and says what to do; kernels below this layer trust their inputs."""
import math
import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# The widest hidden or output layer (so also the most classes) fastmlp builds: the range its kernels
# are tested and benchmarked on; it keeps a mistyped width or a stray huge label from allocating GBs.
MAX_WIDTH = 4096


def check_dtype(dtype, name="dtype"):
    """Return dtype as np.dtype if it is float32 or float64."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be float32 or float64; got {dtype!r}. "
                         f"Pass np.float32 (fast) or np.float64 (gradient checks).")
    return dt


def check_sizes(sizes):
    """Layer widths [n_features, hidden..., n_classes]: at least two positive integers."""
    try:
        widths = list(sizes)
    except TypeError:
        raise ValueError(f"sizes must be a list of layer widths such as [3072, 50, 50, 10]; "
                         f"got {sizes!r}.") from None
    if len(widths) < 2:
        raise ValueError(f"sizes must list at least two widths (inputs and classes), "
                         f"e.g. [3072, 50, 10]; got {widths!r}.")
    for k, w in enumerate(widths):
        if isinstance(w, (bool, np.bool_)) or not isinstance(w, numbers.Integral) or w <= 0:
            raise ValueError(f"sizes[{k}] must be a positive integer width; got {w!r} "
                             f"in sizes={widths!r}.")
    if widths[-1] < 2:
        raise ValueError(f"sizes[-1] (the number of classes) must be at least 2; "
                         f"got {widths[-1]} in sizes={widths!r}.")
    return [int(w) for w in widths]


def finite(value):
    """math.isfinite for any real, Python ints of any size included (np.isfinite raises TypeError
    on an int beyond int64; an int beyond float's range is not finite here)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def check_nonnegative(value, name):
    """A finite float >= 0 (lam, h ...)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
            or not finite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0; got {value!r}.")
    return float(value)


def check_X(X, n_features, dtype, name="X"):
    """A non-empty, finite, 2-D float array with `n_features` columns, returned C-contiguous
    and writeable in `dtype` (float32 data is widened for a float64 network and vice versa;
    a read-only array, e.g. a memory map, is copied)."""
    arr = np.asarray(X)
    if arr.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name} must hold float32 or float64 values; got dtype {arr.dtype}. "
                         f"Convert and standardise raw pixels first, e.g. "
                         f"fastmlp.data.standardize(X, mean, std).")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, (n_samples, {n_features}); got shape "
                         f"{arr.shape}. Flatten each sample into one row.")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {arr.shape}); pass at least one row.")
    if arr.shape[1] != n_features:
        raise ValueError(f"{name} must have {n_features} columns (the network's input width); "
                         f"got shape {arr.shape}.")
    # the sum is finite when every value is (NaN and inf propagate), and summing costs half of
    # isfinite().all() without its bool copy of the data (24 vs 49 ms for 45,000 CIFAR rows);
    # only a non-finite sum (or one that overflowed) pays for the exact search
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.add.reduce(arr, axis=None)
    if not np.isfinite(total) and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name} must be finite; got {arr[tuple(bad)]} at {tuple(int(i) for i in bad)}. "
                         f"Remove or impute NaN/inf values.")
    # writeable too: Numba types a read-only array as another type, which would compile the
    # whole step again (and the step writes its gathered batch into the array it reads)
    return np.require(arr, dtype=dtype, requirements=["C", "W"])


def check_y(y, n_classes, n_samples, name="y"):
    """Integer class indices in [0, n_classes), one per sample, returned as int64."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, one class index per sample; got shape {arr.shape}.")
    if arr.shape[0] != n_samples:
        raise ValueError(f"{name} must have one label per row of X ({n_samples}); "
                         f"got {arr.shape[0]}.")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class indices; got dtype {arr.dtype}. "
                         f"Convert one-hot labels with y.argmax(axis=1).")
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        bad = arr[(arr < 0) | (arr >= n_classes)][0]
        raise ValueError(f"{name} must lie in [0, {n_classes}) for a {n_classes}-class network; "
                         f"got {int(bad)}.")
    return np.ascontiguousarray(arr, dtype=np.int64)


def check_dropout(dropout, n_hidden):
    """One rate for every hidden layer or one per hidden layer, each in [0, 1); returns them
    as a tuple of n_hidden floats."""
    rates = [dropout] if isinstance(dropout, numbers.Real) else dropout
    try:
        rates = [r for r in rates]
    except TypeError:
        rates = None
    ok = rates is not None and all(isinstance(r, numbers.Real) and not isinstance(r, bool)
                                   and 0 <= r < 1 for r in rates)
    if ok and len(rates) == 1:
        rates = rates * n_hidden
    if not ok or len(rates) != n_hidden:
        raise ValueError(f"dropout must be a rate in [0, 1) (the probability of dropping a unit) "
                         f"or a list of {n_hidden} such rates, one per hidden layer; got {dropout!r}.")
    if n_hidden == 0 and ok and any(r > 0 for r in ([dropout] if isinstance(dropout, numbers.Real)
                                                    else dropout)):
        raise ValueError(f"dropout acts after hidden layers, and this network has none; got "
                         f"dropout={dropout!r}. Add a hidden layer or set dropout to 0.")
    return tuple(float(r) for r in rates)
