"""Fashion-MNIST (Zalando Research, MIT licence) from its four official IDX files.

https://github.com/zalandoresearch/fashion-mnist. The Debian/Ubuntu package dataset-fashion-mnist
installs the same files in /usr/share/datasets/fashion-mnist.
"""
import gzip
import hashlib
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .arrays import RawData
from .download import CHUNK_BYTES, destination, fetch, install, md5_mismatch, staging
from .errors import DataError
from .limits import check_fits
from .places import search_roots

FOLDER = "fashion-mnist"
SYSTEM_FOLDER = Path("/usr/share/datasets/fashion-mnist")
URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
ENV_URL = "FASTMLP_FASHION_MNIST_URL"  # base URL of a mirror, or of a local server in the tests
# file -> (MD5 of the .gz as published, MD5 of its decompressed content). Debian recompresses the
# files (its own gzip header), so there only the content MD5 matches; either one identifies the data.
FILES = {
    "train-images-idx3-ubyte.gz": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
    "train-labels-idx1-ubyte.gz": ("25c81989df183df01b3e8a0aad5dffbe", "9018921c3c673c538a1fc5bad174d6f9"),
    "t10k-images-idx3-ubyte.gz": ("bef4ecab320f06d8554ea6380940ec79", "8181f5470baa50b63fa0f6fddb340f0a"),
    "t10k-labels-idx1-ubyte.gz": ("bb300cfdad3c16e7a12a480ee83cd310", "15d484375f8d13e6eb1aabb0c3f46965"),
}
LABEL_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
IDX_UBYTE = 0x08  # the IDX type code of unsigned bytes, the only type these files use
MAX_CONTENT_BYTES = 64 << 20  # the largest official file, train-images, is 47,040,016 bytes decompressed
HOW_TO_GET = (
    "get it with `fastmlp download fashion-mnist` (--data-dir DIR to choose where), or "
    "load_fashion_mnist(download=True), or `apt-get install dataset-fashion-mnist` on Debian/Ubuntu"
)


def _file(folder: Path, name: str) -> Path:
    """The file as published (.gz), or decompressed beside it (as torchvision's raw/ folder keeps them)."""
    gz = folder / name
    return gz if gz.is_file() or not (folder / name[:-3]).is_file() else folder / name[:-3]


def missing_files(folder: Path) -> list:
    return [name for name in FILES if not _file(folder, name).is_file()]


def _candidates(root) -> list:
    return [c for r in search_roots(root) for c in (r / FOLDER, r)] + [SYSTEM_FOLDER]


def find_fashion_mnist(root=None):
    """The first folder with all four files: root[/fashion-mnist], $FASTMLP_DATA/fashion-mnist,
    ~/.cache/fastmlp/fashion-mnist, /usr/share/datasets/fashion-mnist; else None."""
    return next((c for c in _candidates(root) if c.is_dir() and not missing_files(c)), None)


def load_fashion_mnist(root=None, download=False) -> RawData:
    """Load Fashion-MNIST as uint8 rows (N, 784) with int64 labels; download it first if asked and absent."""
    folder = find_fashion_mnist(root) or (download_fashion_mnist(root) if download else None)
    if folder is None:
        looked = ", ".join(str(c) for c in _candidates(root))
        raise DataError(f"Fashion-MNIST not found: looked for its four files in {looked}; {HOW_TO_GET}")
    return read_fashion_mnist(folder)


def read_fashion_mnist(folder: Path) -> RawData:
    x_train, y_train = _read_pair(folder, "train")
    x_test, y_test = _read_pair(folder, "t10k")
    if x_test.shape[1:] != x_train.shape[1:]:
        raise DataError(f"{folder}: test images are {x_test.shape[1:]} but training images {x_train.shape[1:]}")
    return RawData(
        x_train=x_train.reshape(len(x_train), -1),
        y_train=y_train,
        x_test=x_test.reshape(len(x_test), -1),
        y_test=y_test,
        label_names=LABEL_NAMES,
        image_shape=(1,) + x_train.shape[1:],
        name="fashion-mnist",
        source=f"Fashion-MNIST from {folder}",
    )


def _read_pair(folder: Path, part: str):
    images = read_idx(_file(folder, f"{part}-images-idx3-ubyte.gz"), ndim=3)
    labels_path = _file(folder, f"{part}-labels-idx1-ubyte.gz")
    labels = read_idx(labels_path, ndim=1)
    if len(labels) != len(images):
        raise _corrupt(labels_path, f"it has {len(labels)} labels for {len(images)} images")
    if labels.max(initial=0) >= len(LABEL_NAMES):
        raise _corrupt(labels_path, f"labels must be 0..{len(LABEL_NAMES) - 1}; got {labels.max()}")
    return images, labels.astype(np.int64)


def _corrupt(path: Path, what: str) -> DataError:
    return DataError(
        f"{path}: not a valid Fashion-MNIST file ({what}); delete it and download Fashion-MNIST again "
        "(`fastmlp download fashion-mnist`)"
    )


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse an IDX file of unsigned bytes with `ndim` dimensions, checking its header strictly.

    IDX: two zero bytes, a type byte (0x08 = unsigned byte), a byte with the number of dimensions,
    one big-endian uint32 per dimension, then the values in row-major order, and nothing after them.
    The header is read first and the values are decompressed into an array of the size it gives,
    plus one byte to see that nothing follows: a gzip bomb is never inflated past that.
    """
    header = 4 + 4 * ndim
    expected_magic = bytes([0, 0, IDX_UBYTE, ndim])
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            head = f.read(header)
            if head[:4] != expected_magic:
                raise _corrupt(path, f"magic number {head[:4].hex()} is not {expected_magic.hex()} "
                                     f"(unsigned bytes, {ndim} dimensions)")
            if len(head) < header:
                raise _corrupt(path, f"{len(head)} bytes is too short for the {header}-byte header")
            shape = struct.unpack(f">{ndim}I", head[4:])
            size = int(np.prod(shape, dtype=object))
            check_fits(path, size, f"the data its header claims, shape {shape},")
            values = np.empty(size, np.uint8)
            got = _read_into(f, values)
            extra = f.read(1)
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise _corrupt(path, f"{type(e).__name__}: {e}") from e
    if got != size or extra:
        held = f"{got}" if got != size else f"more than {size}"
        raise _corrupt(path, f"it holds {held} values but its header says {shape}")
    return values.reshape(shape)


def _read_into(f, buffer) -> int:
    """Fill `buffer` from the binary stream `f` as far as it goes; return the bytes read."""
    view, got = memoryview(buffer).cast("B"), 0
    while got < len(view):
        n = f.readinto(view[got:got + CHUNK_BYTES])
        if not n:
            break
        got += n
    return got


def _gunzip_md5(path: Path):
    """The MD5 of the decompressed content of `path`, or None if it is not gzip or inflates past
    MAX_CONTENT_BYTES (no official file does)."""
    digest, size = hashlib.md5(usedforsecurity=False), 0
    try:
        with gzip.open(path, "rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                size += len(chunk)
                if size > MAX_CONTENT_BYTES:
                    return None
                digest.update(chunk)
    except (OSError, EOFError, zlib.error):
        return None
    return digest.hexdigest()


def _checksum_ok(path: Path, got: str, gz_md5: str, content_md5: str) -> bool:
    # a mirror that recompressed the files still serves the official content
    return got == gz_md5 or _gunzip_md5(path) == content_md5


def download_fashion_mnist(data_dir=None, url=None, md5=None) -> Path:
    """Download and check the four files into <data_dir>/fashion-mnist; return that folder.

    data_dir defaults to $FASTMLP_DATA, then ~/.cache/fastmlp; url (the base, ending in /) to
    $FASTMLP_FASHION_MNIST_URL, then the official one; md5 maps file names to the MD5 expected in
    place of the official ones. A complete folder already there is returned as is.
    """
    final = destination(data_dir, FOLDER, missing_files)
    if final.exists():
        return final
    base = url or os.environ.get(ENV_URL) or URL
    base = base if base.endswith("/") else base + "/"
    with staging(final) as tmp:
        staged = tmp / FOLDER
        staged.mkdir()
        for name, (gz_md5, content_md5) in FILES.items():
            file_url = base + name
            got = fetch(file_url, staged / name)
            expected = (md5 or {}).get(name)
            if expected is not None and got != expected:
                raise md5_mismatch(file_url, got, expected)
            if expected is None and not _checksum_ok(staged / name, got, gz_md5, content_md5):
                raise md5_mismatch(file_url, got, f"{gz_md5} (or {content_md5} once decompressed)")
        read_fashion_mnist(staged)  # everything parses before anything is put in place
        install(staged, final, missing_files)
    return final
