"""CIFAR-10 from the official python batches (https://www.cs.toronto.edu/~kriz/cifar.html)."""
import os
from pathlib import Path

import numpy as np

from .arrays import RawData
from .download import destination, fetch, install, md5_mismatch, safe_extract, staging
from .errors import DataError
from .places import search_roots
from .safe_pickle import load_batch

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
FILES = TRAIN_FILES + (TEST_FILE, META_FILE)
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE = "cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
ENV_URL = "FASTMLP_CIFAR10_URL"  # a mirror, or a local server in the tests
ROW_LENGTH = 3072
IMAGE_SHAPE = (3, 32, 32)  # a row is 1024 red, then 1024 green, then 1024 blue values, each plane row-major
HOW_TO_GET = (
    "get it with `fastmlp download cifar10` (--data-dir DIR to choose where), or load_cifar10(download=True), "
    f"or point --data-dir at the folder that holds {FOLDER}/"
)


def missing_files(folder: Path) -> list:
    return [name for name in FILES if not (folder / name).is_file()]


def _candidates(root) -> list:
    """Each search root may hold cifar-10-batches-py/ or be that folder itself (as torchvision's root)."""
    return [c for r in search_roots(root) for c in (r / FOLDER, r)]


def find_cifar10(root=None):
    """The first complete cifar-10-batches-py folder under `root`, $FASTMLP_DATA or ~/.cache/fastmlp; else None."""
    return next((c for c in _candidates(root) if c.is_dir() and not missing_files(c)), None)


def load_cifar10(root=None, download=False) -> RawData:
    """Load CIFAR-10 as uint8 rows (N, 3072) with int64 labels; download it first if asked and absent."""
    folder = find_cifar10(root) or (download_cifar10(root) if download else None)
    if folder is None:
        raise DataError(f"CIFAR-10 not found: no {FOLDER}/ in {_looked_in(root)}; {HOW_TO_GET}")
    return read_cifar10(folder)


def _looked_in(root) -> str:
    """The search roots, naming what is missing where a batch folder is there but incomplete."""
    places = []
    for r in search_roots(root):
        folder = r / FOLDER if (r / FOLDER).is_dir() else r
        gaps = missing_files(folder)
        partial = folder.is_dir() and gaps and (folder.name == FOLDER or len(gaps) < len(FILES))
        places.append(f"{folder} (incomplete: missing {', '.join(gaps)})" if partial else str(r))
    return ", ".join(places)


def read_cifar10(folder: Path) -> RawData:
    batches = [_read_batch(folder / name) for name in TRAIN_FILES]
    x_test, y_test = _read_batch(folder / TEST_FILE)
    return RawData(
        x_train=np.concatenate([x for x, _ in batches]),
        y_train=np.concatenate([y for _, y in batches]),
        x_test=x_test,
        y_test=y_test,
        label_names=_read_label_names(folder / META_FILE),
        image_shape=IMAGE_SHAPE,
        name="cifar10",
        source=f"CIFAR-10 from {folder}",
        batch_sizes=tuple(len(y) for _, y in batches),
    )


def _corrupt(path: Path, what: str) -> DataError:
    return DataError(
        f"{path}: not an official CIFAR-10 batch ({what}); delete the folder {path.parent} and download "
        "CIFAR-10 again (`fastmlp download cifar10`)"
    )


def _read_batch(path: Path):
    batch = load_batch(path)
    x, labels = batch.get(b"data"), batch.get(b"labels")
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != ROW_LENGTH:
        got = f"{x.dtype} array of shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise _corrupt(path, f"b'data' must be a uint8 array of shape (N, {ROW_LENGTH}); got {got}")
    if not isinstance(labels, list) or len(labels) != len(x) or not all(type(v) is int for v in labels):
        raise _corrupt(path, f"b'labels' must be a list of {len(x)} ints, one per image")
    return np.array(x, order="C"), np.array(labels, dtype=np.int64)


def _read_label_names(path: Path) -> list:
    names = load_batch(path).get(b"label_names")
    if not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, (bytes, str)) for n in names):
        raise _corrupt(path, "b'label_names' must be a list of names")
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names]


def download_cifar10(data_dir=None, url=None, md5=None) -> Path:
    """Download, check and unpack CIFAR-10 into <data_dir>/cifar-10-batches-py; return that folder.

    data_dir defaults to $FASTMLP_DATA, then ~/.cache/fastmlp; url to $FASTMLP_CIFAR10_URL, then the
    official archive; md5 to the official archive's. A complete folder already there is returned as is.
    """
    final = destination(data_dir, FOLDER, missing_files)
    if final.exists():
        return final
    url = url or os.environ.get(ENV_URL) or URL
    with staging(final) as tmp:
        archive = tmp / ARCHIVE
        got = fetch(url, archive)
        if got != (md5 or MD5):
            raise md5_mismatch(url, got, md5 or MD5)
        safe_extract(archive, tmp / "extracted")
        staged = tmp / "extracted" / FOLDER
        gaps = missing_files(staged) if staged.is_dir() else [FOLDER + "/"]
        if gaps:
            raise DataError(f"{url}: the archive lacks {', '.join(gaps)}; it is not CIFAR-10's python version")
        read_cifar10(staged)  # everything loads before anything is put in place
        install(staged, final, missing_files)
    return final
