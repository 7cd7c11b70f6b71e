"""Fuzzing the model-file loader: a corpus of byte-level mutations of a real model file, and
hypothesis-drawn mutations of its entries.  Every load either gives a model that predicts exactly
as the original does, or raises CheckpointError (one line naming the file) -- never another
exception, never a model that predicts something else."""
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastmlp import checkpoint
from fastmlp.checkpoint import CheckpointError
from model_helpers import entries, trained_file, write


class _Original(tuple):
    def __repr__(self):             # hypothesis prints its arguments when a case fails
        return "original"


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """(file bytes, entries, X, the original's predictions, a scratch folder)."""
    folder = tmp_path_factory.mktemp("fuzz")
    path, splits = trained_file(folder / "model.npz")
    X = splits.X_val
    return _Original((path.read_bytes(), entries(path), X, checkpoint.load(path).net.predict(X), folder))


def _loads_as_the_original_or_is_refused(path, X, labels):
    try:
        loaded = checkpoint.load(path)
    except CheckpointError as e:
        assert str(e).startswith(f"{path}: ") and "\n" not in str(e), str(e)
        return False
    assert loaded.net.predict(X).tolist() == labels.tolist()
    return True


def _byte_mutations(data, seed=0):
    """(name, bytes): truncations, single-byte changes anywhere (denser in the zip directory at
    the end), zeroed and repeated ranges."""
    rng = np.random.default_rng(seed)
    n = len(data)
    for cut in sorted(set(np.linspace(0, n - 1, 40).astype(int)) | {n - 1, n - 22}):
        yield f"truncated at {cut}", data[:cut]
    spots = np.concatenate([rng.integers(0, n, 120), rng.integers(max(0, n - 1500), n, 120)])
    for at in spots:
        flipped = bytearray(data)
        flipped[at] ^= int(rng.integers(1, 256))
        yield f"byte {at} changed", bytes(flipped)
    for _ in range(20):
        at, length = int(rng.integers(0, n)), int(rng.integers(1, 64))
        yield f"{length} bytes zeroed at {at}", data[:at] + bytes(length) + data[at + length:]
        yield f"{length} bytes repeated at {at}", data[:at] + data[at:at + length] * 2 + data[at + length:]


def test_byte_level_corpus(original):
    data, _, X, labels, folder = original
    path = folder / "mutated.npz"
    outcomes = []
    for name, mutated in _byte_mutations(data):
        path.write_bytes(mutated)
        try:
            outcomes.append(_loads_as_the_original_or_is_refused(path, X, labels))
        except AssertionError as e:
            raise AssertionError(f"{name}: {e}") from None
    assert 0 < sum(outcomes) < len(outcomes) // 2        # the corpus reaches both outcomes


NON_FINITE = st.sampled_from([np.nan, np.inf, -np.inf])
JSON_SCALARS = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=12)


@st.composite
def entry_mutations(draw, arrays):
    """(key, mutate) where mutate(arrays) changes one entry in a way a valid file never has or
    in a way that cannot change the predictions."""
    key = draw(st.sampled_from(sorted(arrays)))
    value = arrays[key]
    kind = draw(st.sampled_from(["drop", "dtype", "shape", "scalar", "json", "text", "non-finite"]))
    if kind == "drop":
        return key, lambda a: a.pop(key, None)
    if kind == "dtype":
        dtype = draw(st.sampled_from(["int8", "int64", "uint16", "float16", "float32", "float64", "bool",
                                      "complex64", "U3", "S4"]))
        return key, lambda a: a.update({key: _cast(value, dtype)})
    if kind == "shape":
        shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
        return key, lambda a: a.update({key: np.resize(value, shape)})
    if kind == "scalar":
        scalar = draw(st.integers(-2**63, 2**63 - 1) | st.floats())
        return key, lambda a: a.update({key: np.array(scalar)})
    if kind == "json":
        text = json.dumps(draw(JSON_VALUES))
        return key, lambda a: a.update({key: np.array(text)})
    if kind == "text":
        text = draw(st.text(max_size=40))
        return key, lambda a: a.update({key: np.array(text)})
    at, bad = draw(st.integers(0, max(value.size - 1, 0))), draw(NON_FINITE)
    return key, lambda a: a.update({key: _poke(value, at, bad)})


def _cast(value, dtype):
    with np.errstate(all="ignore"):
        try:
            return value.astype(dtype)
        except (ValueError, TypeError, OverflowError):
            return np.zeros(value.shape, dtype)


def _poke(value, at, bad):
    if value.dtype.kind not in "biuf":      # text: a non-finite number in its place
        return np.array(bad)
    out = value.astype(np.float64) if value.dtype.kind != "f" else value.copy()
    if out.size:
        out.flat[at] = bad
    return out


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
def test_entry_level_mutations(original, data):
    _, arrays, X, labels, folder = original
    changes = data.draw(st.lists(entry_mutations(arrays), min_size=1, max_size=3))
    mutated = dict(arrays)
    for _, change in changes:
        change(mutated)
    path = write(folder / "entries.npz", mutated)
    _loads_as_the_original_or_is_refused(path, X, labels)
