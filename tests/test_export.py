"""`fastmlp export MODEL.npz OUT.onnx`: the ONNX graph, run in onnxruntime, gives what
`fastmlp predict` gives (probabilities to 1e-5, the same labels) for networks with and without
batch norm, of 2 and 4 layers, float32 and float64, from raw or standardised rows."""
import sys
import types

import numpy as np
import pytest

from fastmlp import checkpoint
from fastmlp.config import TrainConfig
from fastmlp.data import standardize
from fastmlp.export import folded_layers
from fastmlp.network import Network
from fastmlp.run import train
from test_cli import run
from train_helpers import LABELS, blobs, tiny_config, tiny_splits

NEEDS_ONNX = 'onnx and onnxruntime are an optional extra: pip install "fastmlp[onnx]"'
NETS = [(sizes, bn, dtype) for sizes in ([12, 3], [12, 16, 8, 6, 3]) for bn in (True, False)
        for dtype in ("float32", "float64")]


def random_net(sizes, batch_norm, dtype, seed=0):
    """A network whose every parameter and BN statistic is drawn at random (a fresh one has
    gamma 1, beta 0 and running statistics 0 and 1, which would hide a wrong fold)."""
    net = Network(sizes, batch_norm, dtype=dtype, seed=seed, dropout=0.25 if len(sizes) > 2 else 0.0)
    rng = np.random.default_rng(seed)
    net.theta[...] = rng.normal(0.0, 0.5, net.theta.shape)
    for name, stat in net.running.items():
        stat[...] = rng.uniform(0.5, 2.0, stat.shape) if "var" in name else rng.normal(0.0, 1.0, stat.shape)
    return net


def save_model(path, net, mean=None, std=None):
    """A model file as `fastmlp train` writes one (with the data's mean and std unless None)."""
    data = None if mean is None else types.SimpleNamespace(
        mean=mean, std=std, label_names=LABELS, image_shape=(net.n_features,), source="blobs")
    checkpoint.save(path, net, TrainConfig(sizes=list(net.sizes), dtype=net.dtype.name), data=data)
    return path


def raw_rows(n=64, seed=3):
    X, _ = blobs(n, seed=seed)
    return X, X.mean(axis=0), X.std(axis=0)


def predict_proba(model_path, X, standardized=False):
    """What `fastmlp predict` computes: the stored standardisation, then the network's probabilities."""
    model = checkpoint.load(model_path)
    net = model.net
    X = X if standardized else standardize(X, model.mean, model.std, net.dtype)
    return net.predict_proba(X.astype(net.dtype))


@pytest.mark.parametrize("sizes,batch_norm,dtype", NETS)
def test_folded_layers_compute_the_evaluation_forward(sizes, batch_norm, dtype):
    net = random_net(sizes, batch_norm, dtype)
    X = np.random.default_rng(1).standard_normal((40, sizes[0]))
    h = X
    for k, (W, b) in enumerate(folded_layers(net), start=1):
        h = h @ W + b
        if k < net.n_layers:
            h = np.maximum(h, 0)
    P = np.exp(h - h.max(axis=1, keepdims=True))
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(P / P.sum(axis=1, keepdims=True), net.predict_proba(X.astype(dtype)),
                               atol=tol, rtol=0)


def onnx_session(path):
    pytest.importorskip("onnx", reason=NEEDS_ONNX)
    ort = pytest.importorskip("onnxruntime", reason=NEEDS_ONNX)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def check_export(tmp_path, capsys, model, X, standardized=False):
    """Export `model`, check the file, run it in onnxruntime and compare with `fastmlp predict`."""
    onnx = pytest.importorskip("onnx", reason=NEEDS_ONNX)
    out = tmp_path / "model.onnx"
    code, _, err = run(["export", model, out] + (["--standardized"] if standardized else []), capsys)
    assert code == 0, err
    assert err.startswith(f"Wrote {out}: ")
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version >= 13
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["input"] == ("standardized" if standardized else "raw")
    P, labels = onnx_session(out).run(["probabilities", "label"], {"input": X.astype(np.float32)})
    want = predict_proba(model, X, standardized)
    assert P.dtype == np.float32 and P.shape == want.shape
    np.testing.assert_allclose(P, want, atol=1e-5, rtol=0)
    np.save(tmp_path / "rows.npy", X)
    code, _, err = run(["predict", model, tmp_path / "rows.npy", "--out", tmp_path / "labels.npy"]
                       + (["--standardized"] if standardized else []), capsys)
    assert code == 0, err
    np.testing.assert_array_equal(labels, np.load(tmp_path / "labels.npy"))
    return proto


@pytest.mark.parametrize("sizes,batch_norm,dtype", NETS)
def test_exported_graph_matches_predict_on_raw_rows(tmp_path, capsys, sizes, batch_norm, dtype):
    X, mean, std = raw_rows()
    model = save_model(tmp_path / "model.npz", random_net(sizes, batch_norm, dtype), mean, std)
    proto = check_export(tmp_path, capsys, model, X)
    assert [n.op_type for n in proto.graph.node] == (
        ["Sub", "Div"] + ["Gemm", "Relu"] * (len(sizes) - 2) + ["Gemm", "Softmax", "ArgMax"])


def test_exported_graph_of_standardised_rows_has_no_standardisation(tmp_path, capsys):
    X, mean, std = raw_rows()
    model = save_model(tmp_path / "model.npz", random_net([12, 16, 3], True, "float32"), mean, std)
    proto = check_export(tmp_path, capsys, model, standardize(X, mean, std), standardized=True)
    assert proto.graph.node[0].op_type == "Gemm"


def test_export_of_a_trained_model(tmp_path, capsys):
    result = train(tiny_config(out=str(tmp_path / "run")), tiny_splits())
    X, _ = blobs(90, seed=7)
    proto = check_export(tmp_path, capsys, result.out / "model.npz", X)
    assert {p.key: p.value for p in proto.metadata_props}["label_names"] == '["ant", "bee", "cat"]'


def test_a_model_without_mean_and_std_needs_standardized(tmp_path, capsys):
    model = save_model(tmp_path / "model.npz", random_net([12, 3], False, "float32"))
    pytest.importorskip("onnx", reason=NEEDS_ONNX)
    code, _, err = run(["export", model, tmp_path / "m.onnx"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "no stored mean/std" in err and "--standardized" in err
    assert not (tmp_path / "m.onnx").exists()


def test_the_output_must_be_an_onnx_file(tmp_path, capsys):
    X, mean, std = raw_rows()
    model = save_model(tmp_path / "model.npz", random_net([12, 3], False, "float32"), mean, std)
    pytest.importorskip("onnx", reason=NEEDS_ONNX)
    code, _, err = run(["export", model, tmp_path / "other.npz"], capsys)
    assert code == 2 and err.count("\n") == 1 and "must end in .onnx" in err
    assert not (tmp_path / "other.npz").exists()


def test_without_onnx_the_error_names_the_extra(tmp_path, capsys, monkeypatch):
    X, mean, std = raw_rows()
    model = save_model(tmp_path / "model.npz", random_net([12, 3], False, "float32"), mean, std)
    monkeypatch.setitem(sys.modules, "onnx", None)        # import onnx raises ImportError
    code, out, err = run(["export", model, tmp_path / "m.onnx"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("fastmlp: error: fastmlp export (ONNX) needs the onnx package")
    assert 'pip install "fastmlp[onnx]"' in err


def test_help_names_the_extra(capsys):
    code, out, _ = run(["export", "--help"], capsys)
    assert code == 0 and "OUT.onnx" in out and 'pip install "fastmlp[onnx]"' in " ".join(out.split())
