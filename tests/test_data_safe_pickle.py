"""The restricted unpickler: official CIFAR-10 batches load, anything that would run code does not."""
import os
import pickle

import numpy as np
import pytest

from data_helpers import cifar_batches, py2_pickle, shared_file
from fastmlp.data import DataError
from fastmlp.data.safe_pickle import load_batch


class WritesMarker:
    """Unpickling this calls os.system, which would create the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_official_py2_batch_loads_with_numpy_1_names(tmp_path):
    batch = cifar_batches()["data_batch_1"]
    path = tmp_path / "data_batch_1"
    path.write_bytes(py2_pickle(batch))
    assert b"numpy.core.multiarray\n_reconstruct" in path.read_bytes()  # the name numpy 1.x wrote
    loaded = load_batch(path)
    assert loaded[b"data"].dtype == np.uint8
    np.testing.assert_array_equal(loaded[b"data"], batch[b"data"])
    assert loaded[b"labels"] == batch[b"labels"]
    assert loaded[b"filenames"] == batch[b"filenames"] and loaded[b"batch_label"] == batch[b"batch_label"]


def test_python3_pickle_with_numpy_2_names_loads(tmp_path):
    # protocol 4 writes bytes as bytes and names numpy._core.multiarray._reconstruct on numpy 2
    batch = cifar_batches()["test_batch"]
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps(batch, protocol=4))
    np.testing.assert_array_equal(load_batch(path)[b"data"], batch[b"data"])


def malicious_batch(marker):
    return pickle.dumps({b"data": WritesMarker(marker), b"labels": [0]}, protocol=4)


def test_the_malicious_payload_is_real(tmp_path):
    # plain pickle runs it: so the next test's marker would appear if load_batch ever let it through
    pickle.loads(malicious_batch(tmp_path / "marker"))
    assert (tmp_path / "marker").exists()


def test_malicious_reduce_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "data_batch_1"
    path.write_bytes(malicious_batch(marker))
    with pytest.raises(DataError, match=r"refused .*(posix|os)\.system") as err:
        load_batch(path)
    assert str(path) in str(err.value) and "download" in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize("module, name", [
    ("builtins", "eval"), ("subprocess", "Popen"), ("numpy", "load"),
    ("numpy._core.numeric", "_frombuffer"), ("_codecs", "encode"), ("copyreg", "_reconstructor"),
])
def test_any_other_global_is_refused(tmp_path, module, name):
    path = tmp_path / "batch"
    path.write_bytes(b"\x80\x02c" + f"{module}\n{name}\n".encode() + b").")  # GLOBAL, empty tuple, STOP
    with pytest.raises(DataError, match=f"refused .*{module}.{name}"):
        load_batch(path)


def test_real_truncated_batch_names_the_file_and_says_what_to_do():
    path = shared_file("cifar10-truncated-data_batch_1")
    with pytest.raises(DataError) as err:
        load_batch(path)
    message = str(err.value)
    # the header holds the official globals, so it must fail as truncated, not as refused
    assert str(path) in message and "truncated or corrupt" in message and "refused" not in message
    assert "delete" in message and "fastmlp download cifar10" in message


@pytest.mark.parametrize("content, expected", [
    (b"", "truncated or corrupt"),
    (b"not a pickle at all", "truncated or corrupt"),
    (pickle.dumps([1, 2, 3], protocol=2), "must unpickle to a dict"),
])
def test_garbage_gives_a_clear_error(tmp_path, content, expected):
    path = tmp_path / "data_batch_3"
    path.write_bytes(content)
    with pytest.raises(DataError, match=expected) as err:
        load_batch(path)
    assert str(path) in str(err.value)
