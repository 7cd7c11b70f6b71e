"""Data files that look valid but are not, or claim more than they hold or than fits: each refused
in one line naming the file, before anything big is allocated (issue 14, items 4 and 5)."""
import gzip
import io
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_helpers import idx_bytes
from fastmlp.data import DataError, fashion_mnist, from_arrays, limits, load_npz
from fastmlp.data.arrays import MAX_CLASSES

rng = np.random.default_rng(0)


def save(path, **arrays):
    np.savez(path, **arrays)
    return path


def rows(n, d=12):
    return rng.integers(0, 256, (n, d), dtype=np.uint8)


# ---- item 4: one layout for both splits ------------------------------------------------------------
def test_images_for_training_and_rows_for_testing_are_refused(tmp_path):
    """(N, 32, 32, 3) images are flattened channel plane first, flat rows as they are: mixed, the
    network saw test pixels in another order (9 % test accuracy, silently)."""
    path = save(tmp_path / "mixed.npz", x_train=rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8),
                y_train=np.arange(20) % 2, x_test=rows(6, 3072), y_test=np.arange(6) % 2)
    with pytest.raises(DataError, match=r"mixed.npz: x_train has layout \(32, 32, 3\) per sample but x_test "
                                        r"has \(3072,\); save both splits the same way"):
        load_npz(path)


def test_same_layouts_and_an_empty_test_split_load(tmp_path):
    images = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    raw = from_arrays(images, np.arange(20) % 2, images[:4], np.arange(4) % 2)
    np.testing.assert_array_equal(raw.x_test, raw.x_train[:4])      # both flattened alike
    raw = load_npz(save(tmp_path / "no-test.npz", x_train=rows(20), y_train=np.arange(20) % 2,
                        x_test=np.zeros((0, 12), np.uint8), y_test=np.zeros(0, np.int64)))
    assert raw.x_test.shape == (0, 12)                             # was "cannot reshape array of size 0"


@pytest.mark.parametrize("x_train, expected", [
    (np.zeros((0, 12), np.uint8), "x_train must hold at least 2 rows; got 0"),
    (np.zeros((5, 0), np.uint8), r"x_train has no features \(shape \(5, 0\)\)"),
])
def test_empty_training_splits_name_the_file(tmp_path, x_train, expected):
    path = save(tmp_path / "empty.npz", x_train=x_train, y_train=np.arange(len(x_train)) % 2,
                x_test=rows(4), y_test=np.arange(4) % 2)
    with pytest.raises(DataError, match="empty.npz: " + expected):
        load_npz(path)


# ---- item 5: labels are checked before anything is built from them ---------------------------------
@pytest.mark.parametrize("label, dtype", [(10**8, np.int64), (2**40, np.int64), (2**64 - 1, np.uint64),
                                          (MAX_CLASSES, np.int64), (-3, np.int64)])
def test_a_huge_or_negative_label_is_refused_with_its_value_and_index(tmp_path, label, dtype):
    """One label of 1e8 without label names made 1e8 class names and an 8 GB output layer."""
    y = (np.arange(30) % 3).astype(dtype)
    y[17] = label
    path = save(tmp_path / "labels.npz", x_train=rows(30), y_train=y, x_test=rows(4), y_test=np.arange(4) % 3)
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=rf"labels.npz: y_train\[17\] is {label}, but labels must be class "
                                            rf"indices 0\.\.C-1 with at most {MAX_CLASSES} classes"):
            load_npz(path)
        assert tracemalloc.get_traced_memory()[1] < 1_000_000       # nothing built from the label
    finally:
        tracemalloc.stop()


def test_the_most_classes_load(tmp_path):
    y = np.arange(MAX_CLASSES + 10) % MAX_CLASSES
    raw = from_arrays(rows(len(y), 2), y)
    assert raw.n_classes == MAX_CLASSES


# ---- item 5: headers that claim more than the file holds, or than fits ------------------------------
def npz_with_header(path, shape, dtype="<u1", data=b""):
    """An .npz whose x_train.npy has a hand-written header claiming `shape` over `data`."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + data
    buf = io.BytesIO()
    np.savez(buf, y_train=np.arange(4) % 2, x_test=rows(2), y_test=np.arange(2) % 2)
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name in src.namelist():
            z.writestr(name, src.read(name))
        z.writestr("x_train.npy", npy)
    return path


@pytest.mark.parametrize("shape", [(10**12, 3072), (2**62, 2), (4, 12 + 1)])
def test_an_npz_header_claiming_more_than_its_bytes_is_refused_from_the_header(tmp_path, shape):
    path = npz_with_header(tmp_path / "claims.npz", shape, data=bytes(48))
    with pytest.raises(DataError, match=rf"claims.npz: x_train claims shape \({shape[0]}, {shape[1]}\) of uint8 "
                                        rf"\([\d,]+ bytes\) in its header but holds 48 bytes"):
        load_npz(path)


def test_an_npz_that_inflates_past_the_memory_there_is_is_refused(tmp_path, monkeypatch):
    """A zip bomb: the header is honest, the data compresses 1000:1, and it does not fit."""
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x_train=np.zeros((4000, 250), np.uint8), y_train=np.arange(4000) % 2,
                        x_test=rows(2, 250), y_test=np.arange(2) % 2)
    monkeypatch.setattr(limits, "memory_budget", lambda: 500_000)     # as under ulimit -v
    with pytest.raises(DataError, match=r"bomb.npz: the data its headers claim is 0.00103 GB but this process "
                                        r"can allocate only 0.0005 GB"):
        load_npz(path)


def test_memory_budget_sees_ulimit_v(monkeypatch):
    import resource
    real = resource.getrlimit
    monkeypatch.setattr(resource, "getrlimit", lambda which: (limits._status("VmSize") + 10**6, -1)
                        if which == resource.RLIMIT_AS else real(which))
    assert limits.memory_budget() <= 10**6
    assert limits.memory_budget() >= 0


GOOD_NPZ = io.BytesIO()
np.savez(GOOD_NPZ, x_train=rows(20), y_train=np.arange(20) % 3, x_test=rows(5), y_test=np.arange(5) % 3,
         label_names=np.array(["a", "b", "c"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, len(GOOD_NPZ.getvalue()) - 1), st.integers(0, 255)),
                min_size=1, max_size=8))
def test_mutated_npz_files_load_or_fail_with_one_data_error(tmp_path, edits):
    """Bytes of a valid .npz overwritten at random (headers, zip directory, data): it loads, or
    fails with one DataError naming the file -- never another exception."""
    data = bytearray(GOOD_NPZ.getvalue())
    for at, value in edits:
        data[at] = value
    path = tmp_path / "mutated.npz"
    path.write_bytes(bytes(data))
    try:
        raw = load_npz(path)
    except DataError as e:
        assert "mutated.npz" in str(e) and "\n" not in str(e)
    else:
        assert raw.x_train.ndim == 2 and 2 <= raw.n_classes <= MAX_CLASSES


# ---- item 5: a gzip bomb as Fashion-MNIST --------------------------------------------------------
class CountingGzip(gzip.GzipFile):
    """Counts the bytes inflated (readinto goes through read)."""
    inflated = 0

    def read(self, size=-1):
        out = super().read(size)
        CountingGzip.inflated += len(out)
        return out


def test_a_gzip_bomb_is_never_inflated_past_its_header(tmp_path, monkeypatch):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:             # header says 2 images; 64 MB of zeros follow
        f.write(idx_bytes(np.zeros((2, 28, 28), np.uint8)))
        for _ in range(64):
            f.write(bytes(1 << 20))
    assert path.stat().st_size < 200_000
    monkeypatch.setattr(fashion_mnist.gzip, "open", lambda p, mode: CountingGzip(p, mode))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: not a valid Fashion-MNIST file \(it holds "
                                        r"more than 1568 values but its header says \(2, 28, 28\)\)"):
        fashion_mnist.read_idx(path, 3)
    assert CountingGzip.inflated <= 16 + 1568 + 1


def test_an_idx_header_claiming_terabytes_is_refused_before_reading(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">3I", 2**32 - 1, 2**16, 2**16)))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz: the data its header claims, shape "
                                        r"\(4294967295, 65536, 65536\), is [\d.e+]+ GB but this process can "
                                        r"allocate only"):
        fashion_mnist.read_idx(path, 3)


def test_a_recompressed_bomb_never_passes_the_content_checksum(tmp_path):
    path = tmp_path / "bomb.gz"
    with gzip.open(path, "wb") as f:
        for _ in range(fashion_mnist.MAX_CONTENT_BYTES // (1 << 20) + 2):
            f.write(bytes(1 << 20))
    assert fashion_mnist._gunzip_md5(path) is None
    assert not fashion_mnist._checksum_ok(path, "0" * 32, "1" * 32, "2" * 32)
