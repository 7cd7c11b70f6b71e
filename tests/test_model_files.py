"""Model and checkpoint files are checked on load: every tampered entry, header bomb and wrong
input file gives one CheckpointError (or ValueError) line naming the file and the entry."""
import json
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest

from fastmlp import Network, checkpoint, load_model
from fastmlp.checkpoint import CheckpointError
from fastmlp.cli import main
from fastmlp.run import train
from fastmlp.train import Trainer
from model_helpers import entries, npy_bytes, trained_file, write, zip_members
from train_helpers import tiny_config, tiny_splits


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """(path, entries, splits) of a small trained Adam model with batch norm."""
    path, splits = trained_file(tmp_path_factory.mktemp("model") / "model.npz")
    return path, entries(path), splits


def _set(key, value):
    return lambda a: a.update({key: value})


def _drop(key):
    return lambda a: a.pop(key)


def _json(key, **changes):
    def change(a):
        value = json.loads(str(a[key]))
        value.update(changes)
        a[key] = np.array(json.dumps(value))
    return change


def _edit(key, f):
    return lambda a: a.update({key: f(a[key].copy())})


def _nan_at_0(x):
    x.flat[0] = np.nan
    return x


TAMPERED = [   # (what is done to the entries, the entry the error must name, words it must say)
    (_edit("param.W1", _nan_at_0), "param.W1", "must be finite; holds"),
    (_edit("param.b3", lambda x: x + np.inf), "param.b3", "must be finite"),
    (_edit("param.W1", lambda x: x.astype(np.int64)), "param.W1", "has dtype int64, expected float32"),
    (_edit("param.W2", lambda x: x.astype(np.float64)), "param.W2", "expected float32"),
    (_edit("param.W3", lambda x: x.T), "param.W3", "has shape (3, 16), expected (16, 3)"),
    (_edit("param.W1", lambda x: x[:5]), "param.W1", "has shape (5, 16), expected (12, 16)"),
    (_edit("param.W2", lambda x: x * 1e38), "param.W2", "makes the network's output overflow"),
    (_edit("stat.run_var1", lambda x: -x), "stat.run_var1", "must be finite and >= 0"),
    (_edit("stat.run_var2", _nan_at_0), "stat.run_var2", "must be finite"),
    (_edit("stat.run_mean1", lambda x: x - np.inf), "stat.run_mean1", "must be finite"),
    (_drop("param.b2"), "param.b2", "is missing"),
    (_drop("stat.run_mean1"), "stat.run_mean1", "is missing"),
    (_drop("config"), "config", "is missing"),
    (_drop("format"), "format", "is missing"),
    (_set("format", np.array("fastmlp-checkpoint/99")), "format", "not one of"),
    (_set("extra", np.zeros(3)), "extra", "is not part of a fastmlp model"),
    (_json("network", batch_norm=False), "param.beta1", "with batch norm off"),
    (_json("network", sizes=[10**9, 10**9, 10**9, 3]), "param.W1", "expected (1000000000, 1000000000)"),
    (_json("network", sizes=[12, 16, 16], dropout=[0.0]), "param.W3", "is not part of"),
    (_json("network", sizes="12-16"), "network", "sizes must be a list"),
    (_json("network", seed=-1), "network", "seed must be"),
    (_json("network", seed=2**64), "network", "seed must be"),
    (_json("network", dtype="int8"), "network", "dtype float32 or float64"),
    (_json("network", bn_alpha=7), "network", "bn_alpha"),
    (_json("network", init="zeros"), "network", "init must be"),
    (_json("network", dropout=[0.5, 0.5, 0.5]), "network", "dropout"),
    (_json("network", wings=2), "network", "must have the keys"),
    (_json("network", sizes=[[12]]), "network", "nested value"),
    (_json("config", lam={"a": 1}), "config", "nested value at 'lam'"),
    (_json("config", lam=-1), "config", "lam must be"),
    (_json("config", colour="red"), "config", "unknown config key 'colour'"),
    (_set("config", np.array("[" * 100_000 + "]" * 100_000)), "config", "not valid JSON"),
    (_set("config", np.array("{\"lam\": ")), "config", "not valid JSON"),
    (_set("config", np.array("{\"lam\": NaN}")), "config", "NaN is not a number JSON allows"),
    (_set("config", np.array("[1, 2]")), "config", "must be a JSON object"),
    (_set("config", np.array(3)), "config", "expected text"),
    (_set("config", np.array(["{}", "{}"])), "config", "has shape"),
    (_set("network", np.array("null")), "network", "must be a JSON object"),
    (_set("step", np.array(-1)), "step", "must be a count of update steps"),
    (_set("step", np.array(2**62)), "step", "must be a count of update steps"),
    (_set("step", np.array(3.5)), "step", "has dtype float64, expected an integer type"),
    (_set("step", np.array([1, 2])), "step", "has shape"),
    (_set("step", np.array(True)), "step", "has dtype bool"),
    (_set("seconds", np.array("{\"train\": -1}")), "seconds", "must map"),
    (_set("seconds", np.array("{\"train\": Infinity}")), "seconds", "not valid JSON"),
    (_set("source", np.array(b"bytes")), "source", "expected text"),
    (_edit("data.label_names", lambda x: x[:2]), "data.label_names", "holds 2 names for the network's 3 classes"),
    (_edit("data.label_names", lambda x: np.arange(3)), "data.label_names", "expected text"),
    (_edit("data.std", lambda x: x * 0), "data.std", "must be finite and > 0"),
    (_edit("data.mean", lambda x: x[:-1]), "data.mean", "has shape"),
    (_edit("data.image_shape", lambda x: x * 2), "data.image_shape", "product is the network's 12 inputs"),
    (_drop("data.std"), "data.std", "is missing"),
    (_edit("history.eta", _nan_at_0), "history.eta", "must be finite"),
    (_edit("history.batch_loss", lambda x: x[:-1]), "history.batch_loss", "has shape"),
    (_edit("history.evals", lambda x: x[:, :3]), "history.evals", "expected (evaluations, 8 or 11)"),
    (_edit("history.evals", lambda x: x + np.inf), "history.evals", "infinite"),
    (_drop("history.eta"), "history.eta", "is missing"),
    (_edit("optimizer.state", lambda x: x[:7]), "optimizer.state", "has 7 values"),
    (_edit("optimizer.state", _nan_at_0), "optimizer.state", "must be finite"),
    (_edit("optimizer.state", lambda x: -np.abs(x) - 1), "optimizer.state", "negative sum of squares"),
    (_edit("optimizer.state", lambda x: x.astype(np.float64)), "optimizer.state", "expected float32"),
    (_set("param.W1", np.array([{"a": 1}], dtype=object)), "param.W1", "Python objects"),
]


@pytest.mark.parametrize("tamper, key, words", TAMPERED, ids=[f"{k}-{i}" for i, (_, k, _) in enumerate(TAMPERED)])
def test_every_tampered_entry_is_refused_naming_the_file_and_the_entry(model, tmp_path, tamper, key, words):
    arrays = dict(model[1])
    tamper(arrays)
    path = tmp_path / "tampered.npz"
    np.savez(path, **arrays)            # allow_pickle: the object-array case writes a pickle
    with pytest.raises(CheckpointError) as err:
        checkpoint.load(path)
    message = str(err.value)
    assert message.startswith(f"{path}: entry '{key}'") and "\n" not in message, message
    assert words in message, message


def test_the_untampered_file_loads_and_predicts_as_saved(model):
    path, arrays, splits = model
    loaded = checkpoint.load(path)
    assert loaded.data_digest == checkpoint.data_digest(splits) and len(loaded.data_digest) == 64
    np.testing.assert_array_equal(loaded.net.params["W1"], arrays["param.W1"])
    np.testing.assert_array_equal(loaded.optimizer_state, arrays["optimizer.state"])


def test_zero_variance_is_refused_only_with_a_zero_epsilon(model, tmp_path):
    arrays = dict(model[1])
    arrays["stat.run_var1"] = np.zeros_like(arrays["stat.run_var1"])
    checkpoint.load(write(tmp_path / "ok.npz", arrays))         # eps 1e-5 keeps 1 / sqrt(var + eps) finite
    spec = json.loads(str(arrays["network"]))
    arrays["network"] = np.array(json.dumps(dict(spec, bn_eps=0.0)))
    with pytest.raises(CheckpointError, match=r"entry 'stat.run_var1' must be finite and > 0.0"):
        checkpoint.load(write(tmp_path / "zero.npz", arrays))


def test_header_claiming_a_huge_shape_is_refused_before_allocating(model, tmp_path):
    """numpy would allocate the 8 TB the header claims before reading the 16 bytes there."""
    members = {k: npy_bytes(v.shape, v.dtype.str, v.tobytes()) for k, v in model[1].items()}
    members["param.W1"] = npy_bytes((10**6, 10**6), "<f4", b"\0" * 16)
    path = zip_members(tmp_path / "bomb.npz", members)
    with pytest.raises(CheckpointError, match=r"bomb.npz: entry 'param.W1' of model file claims shape "
                                              r"\(1000000, 1000000\) \(3,814,697.3 MiB\) but holds 16 bytes"):
        checkpoint.load(path)
    (tmp_path / "x.npy").write_bytes(npy_bytes((10**7, 12), "<f8", b"\0" * 96))
    with pytest.raises(ValueError, match=r"x.npy: predict input claims shape \(10000000, 12\) .* truncated"):
        from fastmlp.npyfile import load_npy
        load_npy(tmp_path / "x.npy", "predict input")


def test_garbled_headers_are_refused(model, tmp_path):
    """An unbalanced bracket sends numpy's header parser down its Python 2 path, which raised
    tokenize.TokenError (not a ValueError) before."""
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), })".ljust(117) + b"\n"
    garbled = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + bytes(12)
    (tmp_path / "x.npy").write_bytes(garbled)
    from fastmlp.npyfile import load_npy
    with pytest.raises(ValueError, match=r"x.npy: cannot read it as a .npy array \(.*\); predict input"):
        load_npy(tmp_path / "x.npy", "predict input")
    members = {k: npy_bytes(v.shape, v.dtype.str, v.tobytes()) for k, v in model[1].items()}
    members["param.b1"] = garbled
    with pytest.raises(CheckpointError, match=r"m.npz: entry 'param.b1' of model file has no valid .npy header"):
        checkpoint.load(zip_members(tmp_path / "m.npz", members))


def test_zip_bombs_and_oversized_files_are_refused(tmp_path, monkeypatch):
    zeros = npy_bytes((2**20,), "<f8", bytes(8 * 2**20))            # 8 MiB of zeros: deflates ~1000x
    path = zip_members(tmp_path / "deflated.npz", {"param.W1": zeros}, zipfile.ZIP_DEFLATED)
    with pytest.raises(CheckpointError, match=r"entry 'param.W1' of model file claims 8.0 MiB from .* "
                                              r"zip bomb"):
        checkpoint.load(path)
    path = zip_members(tmp_path / "big.npz", {"a": npy_bytes((300,), "<f8", bytes(2400))})
    monkeypatch.setattr(checkpoint, "MAX_BYTES", 1000)
    with pytest.raises(CheckpointError, match=r"big.npz: model file would unpack to 2,528 bytes, more than "
                                              r"the 1,000 bytes allowed"):
        checkpoint.load(path)


def test_members_that_are_not_arrays_are_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "odd.npz", "w") as z:
        z.writestr("format.npy", npy_bytes((), "<U5", "x".encode("utf-32-le") * 5))
        z.writestr("../evil.txt", b"hi")
    with pytest.raises(CheckpointError, match=r"entry '../evil.txt' of model file is not an array"):
        checkpoint.load(tmp_path / "odd.npz")


def _cli(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, err


def test_predict_refuses_wrong_inputs_in_one_line(model, tmp_path, capsys):
    path, arrays, splits = model
    np.savez(tmp_path / "rows.npz", X=np.zeros((2, 12)))
    np.save(tmp_path / "long.npy", np.zeros((2, 12)))
    with open(tmp_path / "long.npy", "ab") as f:
        f.write(b"\0" * 8)
    np.save(tmp_path / "objects.npy", np.array([None, 1], dtype=object), allow_pickle=True)
    (tmp_path / "bomb.npy").write_bytes(npy_bytes((10**9, 12), "<f8", b"\0" * 64))
    for name, words in [("rows.npz", "predict input must be a single .npy array (np.save), but this is a "
                                     "zip archive such as an .npz"),
                        ("long.npy", "followed by unexpected bytes"),
                        ("objects.npy", "holds Python objects"),
                        ("bomb.npy", "claims shape (1000000000, 12) (91,552.7 MiB) but holds 64 bytes")]:
        code, err = _cli(["predict", path, tmp_path / name], capsys)
        assert code == 2 and err.count("\n") == 1 and words in err and name in err, (name, err)
    np.save(tmp_path / "good.npy", np.zeros((2, 12)))
    code, err = _cli(["predict", tmp_path / "rows.npz", tmp_path / "good.npy"], capsys)
    assert code == 2 and "rows.npz: entry 'format' is missing" in err, err


def test_tampered_models_fail_in_one_line_in_the_cli_and_the_keras_api(model, tmp_path, capsys):
    arrays = dict(model[1], **{"stat.run_var1": -model[1]["stat.run_var1"]})
    path = write(tmp_path / "model.npz", arrays)
    np.save(tmp_path / "x.npy", np.zeros((2, 12)))
    for argv in (["predict", path, tmp_path / "x.npy"], ["evaluate", path]):
        code, err = _cli(argv, capsys)
        assert code == 2 and err.count("\n") == 1, err
        assert err.startswith(f"fastmlp: error: {path}: entry 'stat.run_var1' must be finite and >= 0"), err
    with pytest.raises(CheckpointError, match=r"entry 'stat.run_var1'"):
        load_model(path)
    assert load_model(model[0]).predict(model[2].X_val).shape == (80, 3)


# ---- --resume: the run's data and its steps -----------------------------------------------------------

def _interrupted(tmp_path):
    """A checkpoint.npz of tiny_config() saved at the end of an epoch, and its splits."""
    splits, config = tiny_splits(), tiny_config()
    path = tmp_path / "checkpoint.npz"
    sizes = config.check_data(len(splits.X_train), splits.X_train.shape[1], splits.n_classes)
    Trainer(Network(sizes, seed=config.seed), config, path, splits).fit(
        splits.X_train, splits.y_train, splits.X_val, splits.y_val)
    return path, splits, config


def _restore(path, splits, config):
    sizes = config.check_data(len(splits.X_train), splits.X_train.shape[1], splits.n_classes)
    return Trainer(Network(sizes, seed=config.seed), config, path, splits).restore(checkpoint.load(path))


def test_resume_refuses_other_data(tmp_path):
    path, splits, config = _interrupted(tmp_path)
    assert checkpoint.load(path).step == 32
    _restore(path, splits, config)
    with pytest.raises(CheckpointError, match=r"checkpoint.npz: --resume must continue on the data the run "
                                              r"started on, but this data's rows or labels and its mean and std "
                                              r"differ"):
        _restore(path, tiny_splits(seed=1), config)
    relabelled = tiny_splits()
    relabelled.y_train = (relabelled.y_train + 1) % 3       # the same rows: the same mean and std
    with pytest.raises(CheckpointError, match=r"this data's rows or labels differ"):
        _restore(path, relabelled, config)


def test_resume_of_a_checkpoint_without_a_digest_warns_and_compares_mean_and_std(tmp_path):
    path, splits, config = _interrupted(tmp_path)
    arrays = entries(path)
    del arrays["data.digest"]
    write(path, arrays)
    with pytest.warns(UserWarning, match=r"predates data digests: only the data's mean and std are compared"):
        _restore(path, splits, config)
    with warnings.catch_warnings(), pytest.raises(CheckpointError, match=r"this data's mean and std differ"):
        warnings.simplefilter("ignore")
        _restore(path, tiny_splits(seed=1), config)


def test_resume_refuses_a_step_beyond_the_run(tmp_path):
    path, splits, config = _interrupted(tmp_path)
    arrays = entries(path)
    arrays["step"] = np.array(49)
    write(path, arrays)
    with pytest.raises(CheckpointError, match=r"entry 'step' is 49, beyond the run's 48 steps"):
        _restore(path, splits, config)


def test_resume_refuses_a_network_its_config_does_not_train(tmp_path):
    path, splits, config = _interrupted(tmp_path)
    arrays = entries(path)
    arrays["config"] = np.array(json.dumps(dict(json.loads(str(arrays["config"])), batch_norm=False)))
    write(path, arrays)
    with pytest.raises(CheckpointError, match=r"entry 'network' .* is not what its entry 'config' trains"):
        _restore(path, splits, config)


# ---- temporary files of killed writes ------------------------------------------------------------------

def test_stale_temporaries_are_removed_and_live_or_foreign_ones_kept(tmp_path):
    stale = tmp_path / ".checkpoint.npz.ab12cd34.tmp"
    live = tmp_path / ".model.npz.zz99yy88.tmp"
    foreign = [tmp_path / n for n in (".checkpoint.npz.tmp", "notes.tmp", ".model.npz.ABCDEFGH.tmp")]
    for p in [stale, live, *foreign]:
        p.write_bytes(b"half")
    import fcntl
    with open(live, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert checkpoint.remove_stale_temporaries(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in [live, *foreign])


def test_a_write_killed_midway_leaves_a_temporary_that_the_next_write_removes(tmp_path):
    target = tmp_path / "checkpoint.npz"
    code = ("import sys, time; from fastmlp.checkpoint import atomic_write\n"
            "def write(f):\n    f.write(b'half'); f.flush(); print('writing', flush=True); time.sleep(60)\n"
            f"atomic_write({str(target)!r}, write)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "writing\n"
        left = [p.name for p in tmp_path.iterdir()]
        assert len(left) == 1 and left[0].startswith(".checkpoint.npz.") and left[0].endswith(".tmp")
        assert checkpoint.remove_stale_temporaries(tmp_path) == []      # its writer is alive
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert [p.name for p in tmp_path.iterdir()] == left
    checkpoint.save(target, Network([5, 3]), tiny_config())
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]


def test_a_run_starts_by_removing_what_a_killed_write_left(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".metrics.json.k1ll3d00.tmp").write_text("{")
    (out / "notes.tmp").write_text("mine")
    with pytest.raises(ValueError, match="batch must be <="):     # stops the run once it has started
        train(tiny_config(out=str(out), batch=10**6), tiny_splits())
    assert [p.name for p in out.iterdir()] == ["notes.tmp"]
