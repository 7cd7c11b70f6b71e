"""Fashion-MNIST from its four IDX files: strict parsing, the search places, the real Debian files."""
import gzip
import hashlib

import numpy as np
import pytest

from data_helpers import debian_fashion, fashion_files, idx_bytes, isolated_home, write_files  # noqa: F401
from fastmlp.data import DataError, find_fashion_mnist, load_fashion_mnist
from fastmlp.data import fashion_mnist
from fastmlp.data.fashion_mnist import read_idx

pytestmark = pytest.mark.usefixtures("isolated_home")


@pytest.fixture
def no_system_copy(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "SYSTEM_FOLDER", tmp_path / "not-installed")


def test_reads_the_four_files(tmp_path):
    files, arrays = fashion_files(n_train=30, n_test=20)
    write_files(tmp_path / "fashion-mnist", files)
    raw = load_fashion_mnist(tmp_path)
    np.testing.assert_array_equal(raw.x_train, arrays["train-images-idx3-ubyte.gz"].reshape(30, 784))
    np.testing.assert_array_equal(raw.y_test, arrays["t10k-labels-idx1-ubyte.gz"])
    assert raw.x_train.dtype == np.uint8 and raw.y_train.dtype == np.int64 and raw.x_train.flags.writeable
    assert raw.image_shape == (1, 28, 28) and raw.label_names[9] == "Ankle boot" and raw.batch_sizes is None


def test_decompressed_files_are_accepted_too(tmp_path):
    files, arrays = fashion_files()
    write_files(tmp_path, {name[:-3]: gzip.decompress(data) for name, data in files.items()})
    expected = arrays["t10k-images-idx3-ubyte.gz"].reshape(20, 784)
    np.testing.assert_array_equal(load_fashion_mnist(tmp_path).x_test, expected)


def test_search_order(tmp_path, isolated_home, monkeypatch, no_system_copy):
    files, _ = fashion_files()
    system = write_files(tmp_path / "system", files)
    monkeypatch.setattr(fashion_mnist, "SYSTEM_FOLDER", system)
    assert find_fashion_mnist() == system
    cache = write_files(isolated_home / ".cache" / "fastmlp" / "fashion-mnist", files)
    assert find_fashion_mnist() == cache
    env = write_files(tmp_path / "env" / "fashion-mnist", files)
    monkeypatch.setenv("FASTMLP_DATA", str(tmp_path / "env"))
    assert find_fashion_mnist() == env
    root = write_files(tmp_path / "root", files)  # a root may hold the files itself
    assert find_fashion_mnist(root) == root


def test_missing_error_lists_every_place_and_how_to_get_it(tmp_path, isolated_home, no_system_copy):
    with pytest.raises(DataError) as err:
        load_fashion_mnist(tmp_path / "root")
    message = str(err.value)
    for place in (tmp_path / "root", isolated_home / ".cache" / "fastmlp" / "fashion-mnist",
                  tmp_path / "not-installed"):
        assert str(place) in message
    assert "fastmlp download fashion-mnist" in message and "download=True" in message
    assert "apt-get install dataset-fashion-mnist" in message


def write_idx(tmp_path, content: bytes):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(content))
    return path


GOOD = idx_bytes(np.zeros((2, 28, 28), np.uint8))


@pytest.mark.parametrize("content, expected", [
    (GOOD[:3], "magic number 000008 is not 00000803"),
    (bytes([0, 0, 0x0D]) + GOOD[3:], "magic number 00000d03 is not 00000803"),  # floats, not bytes
    (bytes([0, 0, 8, 1]) + GOOD[4:], "magic number 00000801 is not 00000803"),
    (GOOD[:10], "10 bytes is too short for the 16-byte header"),
    (GOOD[:-1], r"holds 1567 values but its header says \(2, 28, 28\)"),
    (GOOD + b"\0", r"holds more than 1568 values but its header says \(2, 28, 28\)"),
])
def test_idx_header_is_checked_strictly(tmp_path, content, expected):
    path = write_idx(tmp_path, content)
    with pytest.raises(DataError, match=expected) as err:
        read_idx(path, ndim=3)
    assert str(path) in str(err.value) and "download Fashion-MNIST again" in str(err.value)


def test_idx_reads_a_good_file(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path, idx_bytes(a)), ndim=3), a)


@pytest.mark.parametrize("content", [b"", b"not gzip", gzip.compress(GOOD)[:-20]])
def test_broken_gzip_names_the_file(tmp_path, content):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(content)
    with pytest.raises(DataError, match="not a valid Fashion-MNIST file") as err:
        read_idx(path, ndim=3)
    assert str(path) in str(err.value)


def test_labels_must_match_images_and_be_0_to_9(tmp_path):
    files, arrays = fashion_files(n_train=30)
    files["train-labels-idx1-ubyte.gz"] = gzip.compress(idx_bytes(np.zeros(29, np.uint8)))
    write_files(tmp_path, files)
    with pytest.raises(DataError, match="29 labels for 30 images"):
        load_fashion_mnist(tmp_path)
    files["train-labels-idx1-ubyte.gz"] = gzip.compress(idx_bytes(np.full(30, 10, np.uint8)))
    write_files(tmp_path, files)
    with pytest.raises(DataError, match=r"labels must be 0\.\.9; got 10"):
        load_fashion_mnist(tmp_path)


def test_debian_files_hold_the_official_content():
    # Debian recompresses the .gz files (other MD5s than the published ones); their content is official.
    folder = debian_fashion()
    for name, (_, content_md5) in fashion_mnist.FILES.items():
        data = gzip.decompress((folder / name).read_bytes())
        assert hashlib.md5(data).hexdigest() == content_md5, name


def test_loads_the_real_debian_files():
    folder = debian_fashion()
    raw = load_fashion_mnist(folder)
    assert raw.x_train.shape == (60000, 784) and raw.x_test.shape == (10000, 784)
    np.testing.assert_array_equal(np.bincount(raw.y_train), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(raw.y_test), [1000] * 10)
