"""Datasets as plain arrays: `RawData`, in-memory (X, y), and .npz files."""
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._checks import MAX_WIDTH
from . import limits
from .errors import DataError

MAX_CLASSES = MAX_WIDTH  # the output layer is a layer like the others

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
NPZ_OPTIONAL_KEYS = ("label_names", "image_shape")


@dataclass
class RawData:
    """A dataset as loaded: raw rows, before any split or standardisation; checked on creation.

    Rows are (N, D) with D == prod(image_shape). An image is stored as its channel planes one after
    another, each row-major (the CIFAR-10 layout), so image_shape is (C, H, W); (D,) means plain features.
    """

    x_train: np.ndarray  # (N, D), any real dtype (uint8 for the image sets)
    y_train: np.ndarray  # (N,) int64 in 0..n_classes-1
    x_test: np.ndarray  # (M, D); M may be 0 when no test set was given
    y_test: np.ndarray  # (M,) int64
    label_names: list  # one str per class; None gives "0".."C-1", C = largest label + 1
    image_shape: tuple
    name: str  # "cifar10", "fashion-mnist", "sample", or the file name
    source: str  # where the data came from, for people: "CIFAR-10 from /data/cifar-10-batches-py"
    batch_sizes: tuple = None  # rows per CIFAR-10 training batch, in order; split "a2" needs them

    def __post_init__(self):
        where = self.source
        self.x_train = _check_rows(where, "x_train", self.x_train)
        self.x_test = _check_rows(where, "x_test", self.x_test)
        if self.x_test.shape[1] != self.x_train.shape[1]:
            raise DataError(
                f"{where}: x_test has {self.x_test.shape[1]} features per row but x_train has "
                f"{self.x_train.shape[1]}; both must come from the same kind of data"
            )
        if len(self.x_train) < 2:
            raise DataError(f"{where}: x_train must hold at least 2 rows; got {len(self.x_train)}")
        self.y_train = _check_labels(where, "y_train", self.y_train, len(self.x_train))
        self.y_test = _check_labels(where, "y_test", self.y_test, len(self.x_test))
        self.label_names = _class_names(where, self.label_names, self.y_train, self.y_test)
        self.image_shape = tuple(int(s) for s in self.image_shape)
        if int(np.prod(self.image_shape)) != self.x_train.shape[1]:
            raise DataError(
                f"{where}: image_shape {self.image_shape} holds {int(np.prod(self.image_shape))} values "
                f"but rows have {self.x_train.shape[1]}; give an image_shape whose product is the row length"
            )
        if self.batch_sizes is not None and sum(self.batch_sizes) != len(self.x_train):
            raise DataError(f"{where}: batch_sizes {self.batch_sizes} do not add up to {len(self.x_train)} rows")

    @property
    def n_classes(self) -> int:
        return len(self.label_names)


def _check_rows(where, key, x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise DataError(f"{where}: {key} must be 2-D (rows, features); got shape {x.shape}")
    if x.shape[1] == 0:
        raise DataError(f"{where}: {key} has no features (shape {x.shape}); each row needs at least one value")
    if x.dtype.kind not in "uif":
        raise DataError(f"{where}: {key} must hold real numbers; got dtype {x.dtype}")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise DataError(f"{where}: {key} holds NaN or infinite values; remove or impute them first")
    return x


def _check_labels(where, key, y, n_rows) -> np.ndarray:
    """int64 class indices, after checking their range on the stored dtype (a uint64 label would
    wrap negative as int64; a huge one would make millions of class names)."""
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n_rows:
        raise DataError(f"{where}: {key} must be 1-D with one label per row ({n_rows}); got shape {y.shape}")
    if y.dtype.kind not in "iu":
        raise DataError(
            f"{where}: {key} must hold integer labels 0..C-1; got dtype {y.dtype}; "
            "encode the classes as integers (e.g. np.unique(y, return_inverse=True)[1])"
        )
    if len(y) and (y.min() < 0 or y.max() >= MAX_CLASSES):
        at = int(y.argmin()) if y.min() < 0 else int(y.argmax())
        raise DataError(
            f"{where}: {key}[{at}] is {y[at]}, but labels must be class indices 0..C-1 with at most {MAX_CLASSES} "
            "classes (the widest output layer fastmlp builds); encode the classes as integers "
            "(e.g. np.unique(y, return_inverse=True)[1])"
        )
    return y.astype(np.int64)


def _class_names(where, label_names, y_train, y_test) -> list:
    """label_names as str, or "0".."C-1" with C = largest label + 1; every label must be below C."""
    if label_names is None:  # labels are in 0..MAX_CLASSES-1 here (_check_labels)
        label_names = [str(i) for i in range(max(int(y.max()) for y in (y_train, y_test) if len(y)) + 1)]
    if not 2 <= len(label_names) <= min(MAX_CLASSES, len(y_train)):
        raise DataError(
            f"{where}: needs 2 to {min(MAX_CLASSES, len(y_train))} (at most the training rows and {MAX_CLASSES}) "
            f"classes; got {len(label_names)}; encode the labels as integers 0..C-1"
        )
    label_names = [str(s) for s in label_names]
    n_classes = len(label_names)
    for key, y in (("y_train", y_train), ("y_test", y_test)):
        if len(y) and (y.min() < 0 or y.max() >= n_classes):
            raise DataError(
                f"{where}: {key} labels must be integers 0..{n_classes - 1}; got values from {y.min()} to {y.max()}"
            )
    return label_names


def from_arrays(x_train, y_train, x_test=None, y_test=None, label_names=None, image_shape=None,
                name="arrays", source="arrays given in memory") -> RawData:
    """Build RawData from arrays: rows (N, D), images (N, H, W), or images (N, C, H, W) / (N, H, W, C).

    Without label_names the classes are "0".."C-1", C = largest label + 1. Without image_shape it is
    read from image-shaped arrays; for rows, 3072 features mean a CIFAR-10 row (3, 32, 32) and 784 a
    28x28 grey image (1, 28, 28); anything else is (D,). No test set gives empty (0, D) test arrays.
    """
    layout = np.shape(x_train)[1:]
    x_train, shape = _as_rows(source, "x_train", x_train)
    if x_test is None and y_test is None:
        x_test = np.empty((0, x_train.shape[1]), x_train.dtype)
        y_test = np.empty(0, np.int64)
    elif x_test is None or y_test is None:
        raise DataError(f"{source}: give both x_test and y_test, or neither")
    else:
        test_layout = np.shape(x_test)[1:]   # an empty test set is no test set; rows vs rows: RawData checks
        if len(x_test) and test_layout != layout and max(len(layout), len(test_layout)) > 1:
            # rows and images are flattened differently (images go to channel planes first):
            # mixing them would feed the network test pixels in another order, silently
            raise DataError(
                f"{source}: x_train has layout {layout} per sample but x_test has {np.shape(x_test)[1:]}; "
                "save both splits the same way: both as images (N, H, W, C) / (N, C, H, W) or both as rows (N, D)"
            )
        x_test, _ = _as_rows(source, "x_test", x_test)
    return RawData(x_train, y_train, x_test, y_test, label_names,
                   image_shape if image_shape is not None else shape, name, source)


def _as_rows(where, key, x):
    """Flatten images to rows in channel-plane order and return (rows, image_shape)."""
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[3] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W): rows become channel planes
    if x.ndim == 4:
        shape = x.shape[1:]
    elif x.ndim == 3:
        shape = (1,) + x.shape[1:]
    elif x.ndim == 2:
        shape = {3072: (3, 32, 32), 784: (1, 28, 28)}.get(x.shape[1], (x.shape[1],))
    else:
        raise DataError(f"{where}: {key} must be rows (N, D) or images (N, H, W) / (N, C, H, W); got shape {x.shape}")
    return np.ascontiguousarray(x).reshape(len(x), int(np.prod(shape))), shape  # -1 fails for 0 rows


def load_npz(path) -> RawData:
    """Load an .npz holding x_train, y_train, x_test, y_test (optionally label_names, image_shape)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{path}: no such file; a dataset is cifar10, fashion-mnist, sample, or an .npz file "
            "holding x_train, y_train, x_test, y_test"
        )
    limits.npz_arrays(path, NPZ_KEYS + NPZ_OPTIONAL_KEYS)  # before numpy allocates what headers claim
    try:
        with np.load(path, allow_pickle=False) as npz:
            present = list(npz.files)
            missing = [k for k in NPZ_KEYS if k not in present]
            arrays = {} if missing else {k: npz[k] for k in NPZ_KEYS + NPZ_OPTIONAL_KEYS if k in present}
    except Exception as e:  # not a zip, a truncated zip, object arrays (refused: they would unpickle)...
        raise DataError(
            f"{path}: cannot read it as an .npz of plain arrays ({e}); save it with "
            "np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"
        ) from e
    if missing:
        raise DataError(
            f"{path}: missing {', '.join(missing)}; it holds {', '.join(present) or 'nothing'}; "
            f"an .npz dataset needs {', '.join(NPZ_KEYS)}"
        )
    names = arrays.get("label_names")
    if names is not None:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist()]
    return from_arrays(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                       names, arrays.get("image_shape"), name=path.name, source=f"arrays from {path}")
