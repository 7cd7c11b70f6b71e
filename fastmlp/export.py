"""`fastmlp export MODEL.npz model.onnx`: a trained model as an ONNX graph, to run it without fastmlp
(onnxruntime, or any runtime that reads ONNX).

The graph takes what `fastmlp predict` takes and gives what predict computes, in float32:

    input (N, D) raw rows -> (input - mean) / std -> [Gemm -> Relu] x (k - 1) -> Gemm -> scores
    probabilities = Softmax(scores)          (N, C) float32
    label = ArgMax(scores)                   (N,) int64

- The standardisation with the training data's mean and std stored in the model is the graph's
  first two nodes, so the input is raw rows in the units of the training files (pixels 0..255), as
  `fastmlp predict` reads them; `standardized=True` (--standardized) leaves them out.
- Batch norm in evaluation mode is an affine map per unit, so it is folded into the Linear layer
  before it (in float64, then rounded once to float32): one Gemm per layer, and a runtime need not
  know BatchNormalization's conventions.  Dropout does nothing at evaluation and has no node.
- Opset 13 with the oldest IR version that carries it, for the widest choice of runtimes.
- The class names are in the model's metadata (`label_names`, a JSON list).

onnx is an optional dependency: pip install "fastmlp[onnx]" (onnxruntime comes with it, to run
the exported model).
"""
import json
from pathlib import Path

import numpy as np

from . import __version__, checkpoint
from .extras import require

OPSET = 13


def export_onnx(model_path, onnx_path, standardized=False):
    """Write the ONNX graph of the fastmlp model file `model_path` to `onnx_path`; return the
    Checkpoint read.  standardized: the graph takes standardised rows (no mean/std nodes)."""
    onnx = require("onnx", "onnx", "fastmlp export (ONNX)")
    if Path(onnx_path).suffix != ".onnx":
        raise ValueError(f"{onnx_path}: the ONNX file's name must end in .onnx (it is written, and "
                         f"MODEL.npz is read: fastmlp export MODEL.npz OUT.onnx).")
    model = checkpoint.load(model_path)
    if not standardized and model.mean is None:
        raise ValueError(f"{model_path} has no stored mean/std to standardise raw rows; export with "
                         f"--standardized for a graph that takes standardised rows.")
    standardization = None if standardized else (model.mean, model.std)
    proto = to_onnx(model.net, standardization, model.label_names, source=str(model_path))
    onnx.checker.check_model(proto, full_check=True)
    checkpoint.atomic_write(onnx_path, lambda f: f.write(proto.SerializeToString()))
    return model


def to_onnx(net, standardization=None, label_names=None, source=""):
    """An onnx.ModelProto computing net.predict_proba (and its argmax) in float32.

    standardization: (mean, std) of shape (D,) applied to the input first, or None (the input
    is standardised rows).  label_names: the class names stored in the metadata."""
    require("onnx", "onnx", "fastmlp export (ONNX)")
    from onnx import TensorProto, helper, numpy_helper

    weights, nodes, h = [], [], "input"

    def constant(name, value):
        weights.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    if standardization is not None:
        mean, std = standardization
        nodes.append(helper.make_node("Sub", [h, constant("mean", mean)], ["centred"]))
        nodes.append(helper.make_node("Div", ["centred", constant("std", std)], ["standardized"]))
        h = "standardized"
    layers = folded_layers(net)
    for k, (W, b) in enumerate(layers, start=1):
        last = k == len(layers)
        z = "scores" if last else f"z{k}"
        nodes.append(helper.make_node("Gemm", [h, constant(f"W{k}", W), constant(f"b{k}", b)], [z],
                                      name=f"linear{k}"))
        if not last:
            h = f"h{k}"
            nodes.append(helper.make_node("Relu", [z], [h], name=f"relu{k}"))
    nodes.append(helper.make_node("Softmax", ["scores"], ["probabilities"], axis=1))
    nodes.append(helper.make_node("ArgMax", ["scores"], ["label"], axis=1, keepdims=0))

    D, C = net.n_features, net.n_classes
    graph = helper.make_graph(
        nodes, f"fastmlp_{'_'.join(map(str, net.sizes))}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", D])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", C]),
         helper.make_tensor_value_info("label", TensorProto.INT64, ["N"])],
        initializer=weights)
    opsets = [helper.make_opsetid("", OPSET)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="fastmlp",
                              producer_version=__version__,
                              ir_version=helper.find_min_ir_version_for(opsets),
                              doc_string=f"{net!r}, batch norm folded into the Linear layers; input: "
                                         f"{'raw' if standardization is not None else 'standardised'} "
                                         f"rows (N, {D}). Exported from {source or 'a Network'}.")
    helper.set_model_props(model, {
        "label_names": json.dumps(label_names or [str(c) for c in range(C)]),
        "input": "raw" if standardization is not None else "standardized",
        "batch_norm": "folded" if net.batch_norm else "none",
        "sizes": json.dumps(net.sizes)})
    return model


def folded_layers(net):
    """The network's layers as float64 (W (I, O), b (O,)) pairs computing, in evaluation mode,
    Linear then (for hidden layers) BatchNorm: BN with the running statistics is
    y = gamma * (z - run_mean) / sqrt(run_var + eps) + beta = z * s + (beta - run_mean * s) with
    s = gamma / sqrt(run_var + eps), so it scales W's columns by s and maps b to (b - run_mean) s + beta."""
    layers = []
    for k in range(1, net.n_layers + 1):
        W = np.array(net[f"W{k}"], np.float64)
        b = np.array(net[f"b{k}"], np.float64)
        if net.batch_norm and k < net.n_layers:
            s = np.asarray(net[f"gamma{k}"], np.float64) / np.sqrt(
                np.asarray(net[f"run_var{k}"], np.float64) + net.bn_eps)
            W, b = W * s, (b - net[f"run_mean{k}"]) * s + net[f"beta{k}"]
        layers.append((W, b))
    return layers
