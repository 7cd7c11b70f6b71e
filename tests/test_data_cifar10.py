"""CIFAR-10 from the official python batches: finding, reading, validating, the study's splits."""
import numpy as np
import pytest

from data_helpers import cifar_batches, isolated_home, write_cifar  # noqa: F401 (fixture)
from fastmlp.data import DataError, find_cifar10, load_cifar10, load_dataset, make_splits

pytestmark = pytest.mark.usefixtures("isolated_home")
N = 12  # images per batch


@pytest.fixture
def batches():
    return cifar_batches(N)


def test_reads_the_official_layout(tmp_path, batches):
    write_cifar(tmp_path / "cifar-10-batches-py", batches)
    raw = load_cifar10(tmp_path)
    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    np.testing.assert_array_equal(raw.x_train, np.concatenate([b[b"data"] for b in train]))
    np.testing.assert_array_equal(raw.y_train, np.concatenate([b[b"labels"] for b in train]))
    np.testing.assert_array_equal(raw.x_test, batches["test_batch"][b"data"])
    assert raw.x_train.dtype == np.uint8 and raw.y_train.dtype == np.int64 and raw.x_train.shape == (5 * N, 3072)
    assert raw.batch_sizes == (N,) * 5 and raw.image_shape == (3, 32, 32)
    assert raw.label_names[0] == "airplane" and raw.n_classes == 10 and raw.name == "cifar10"
    assert str(tmp_path / "cifar-10-batches-py") in raw.source


def test_the_batch_folder_itself_is_accepted(tmp_path, batches):
    folder = write_cifar(tmp_path / "cifar-10-batches-py", batches)
    assert find_cifar10(folder) == folder


def test_search_order_is_root_then_env_then_cache(tmp_path, batches, isolated_home, monkeypatch):
    cache = write_cifar(isolated_home / ".cache" / "fastmlp" / "cifar-10-batches-py", batches)
    assert find_cifar10() == cache
    env = write_cifar(tmp_path / "env" / "cifar-10-batches-py", batches)
    monkeypatch.setenv("FASTMLP_DATA", str(tmp_path / "env"))
    assert find_cifar10() == env
    root = write_cifar(tmp_path / "root" / "cifar-10-batches-py", batches)
    assert find_cifar10(tmp_path / "root") == root
    assert find_cifar10(tmp_path / "elsewhere") == env  # a root without it falls back


def test_missing_error_lists_every_place_and_how_to_get_it(tmp_path, isolated_home, monkeypatch):
    monkeypatch.setenv("FASTMLP_DATA", str(tmp_path / "env"))
    with pytest.raises(DataError) as err:
        load_cifar10(tmp_path / "root")
    message = str(err.value)
    for place in (tmp_path / "root", tmp_path / "env", isolated_home / ".cache" / "fastmlp"):
        assert str(place) in message
    assert "fastmlp download cifar10" in message and "download=True" in message and "--data-dir" in message


def test_incomplete_folder_is_named_with_what_it_lacks(tmp_path, batches):
    del batches["data_batch_3"]
    write_cifar(tmp_path / "cifar-10-batches-py", batches)
    assert find_cifar10(tmp_path) is None
    with pytest.raises(DataError, match="incomplete: missing data_batch_3"):
        load_cifar10(tmp_path)


@pytest.mark.parametrize("key, value, expected", [
    (b"data", np.zeros((N, 100), np.uint8), r"uint8 array of shape \(N, 3072\); got uint8 array of shape \(12, 100\)"),
    (b"data", [1, 2, 3], "got list"),
    (b"data", None, "got NoneType"),
    (b"labels", list(range(N - 1)), "list of 12 ints"),
    (b"labels", [b"x"] * N, "list of 12 ints"),
])
def test_malformed_batch_names_the_file(tmp_path, batches, key, value, expected):
    batches["data_batch_2"][key] = value
    folder = write_cifar(tmp_path / "cifar-10-batches-py", batches)
    with pytest.raises(DataError, match=expected) as err:
        load_cifar10(tmp_path)
    assert str(folder / "data_batch_2") in str(err.value) and "download" in str(err.value)


def test_labels_out_of_range_are_refused(tmp_path, batches):
    batches["test_batch"][b"labels"][0] = 10
    write_cifar(tmp_path / "cifar-10-batches-py", batches)
    with pytest.raises(DataError, match=r"y_test labels must be integers 0\.\.9; got values from 0 to 10"):
        load_cifar10(tmp_path)


def test_truncated_batch_in_a_folder(tmp_path, batches):
    folder = write_cifar(tmp_path / "cifar-10-batches-py", batches)
    data = (folder / "data_batch_4").read_bytes()
    (folder / "data_batch_4").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="data_batch_4: truncated or corrupt"):
        load_cifar10(tmp_path)


def test_split_a2_is_batch_1_then_batch_2(tmp_path, batches):
    write_cifar(tmp_path / "cifar-10-batches-py", batches)
    s = load_dataset("cifar10", data_dir=tmp_path, split="a2", dtype=np.float64)
    x1 = batches["data_batch_1"][b"data"].astype(np.float64)
    mean, std = x1.mean(axis=0), x1.std(axis=0)
    np.testing.assert_allclose(s.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(s.std, np.where(std == 0, 1, std), rtol=1e-12)
    np.testing.assert_allclose(s.X_train, (x1 - mean) / std, rtol=1e-12, atol=1e-12)
    x2 = batches["data_batch_2"][b"data"].astype(np.float64)
    np.testing.assert_allclose(s.X_val, (x2 - mean) / std, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(s.y_val, batches["data_batch_2"][b"labels"])
    assert s.X_test.shape == (N, 3072) and s.split == "a2" and "data_batch_2" in s.source


def test_split_a3_validates_on_the_last_n_val_of_all_five_batches(tmp_path, batches):
    write_cifar(tmp_path / "cifar-10-batches-py", batches)
    raw = load_cifar10(tmp_path)
    s = make_splits(raw, "a3", n_val=7)
    assert s.X_train.shape == (5 * N - 7, 3072) and s.X_val.shape == (7, 3072)
    np.testing.assert_array_equal(s.y_val, batches["data_batch_5"][b"labels"][-7:])
    np.testing.assert_allclose(s.mean, raw.x_train[:-7].mean(axis=0), rtol=1e-12)
