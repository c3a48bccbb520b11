"""The reference: the graph as qonnx's execute_onnx runs it, with a sibling of the
classifier that gives its exact class integers."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ...errors import HwgenError
from .graph import FINAL_OPS, PASS_OPS, PRODUCT_OPS, _F32, _G
from .inputs import _input_tensor
from .load import load_qonnx
from .walk import FLOAT_LAYER

CLASS_INT = "hwgen_class_integers"     # the sibling node's output in the reference graph


def _classifier(g: _G) -> tuple[object, float]:
    """(the last Conv/MatMul/Gemm, the scale of its input quantiser)."""
    prods = [n for n in g.model.graph.node if n.op_type in PRODUCT_OPS]
    if not prods:
        raise g.err(None, "no Conv/MatMul/Gemm")
    n = prods[-1]
    q = g.producer.get(n.input[0])
    while q is not None and q.op_type in ("Reshape", "Flatten", "MaxPool") + PASS_OPS:
        q = g.producer.get(q.input[0])
    if q is None or q.op_type not in ("BipolarQuant", "Quant") or g.const(q.input[1]) is None:
        raise g.err(n, "the classifier's input has no quantiser with a constant scale")
    sc = np.asarray(g.const(q.input[1]), np.float64).reshape(-1)
    if sc.size < 1 or not np.all(sc == sc[0]):
        raise g.err(q, "the classifier's input quantiser has more than one scale")
    return n, float(sc[0])


def _with_class_integers(model, g: _G):
    """A copy of the graph with a sibling of the classifier that reads the same input and
    the signs of its weights (+-1, sign(0) = +1 as BipolarQuant), without bias: its output
    is acc * (input scale), exact in float32, whatever the weight scale and bias."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    n, sc = _classifier(g)
    q = g.producer.get(n.input[1])
    if q is None or q.op_type != "BipolarQuant" or g.const(q.input[0]) is None:
        raise g.err(n, FLOAT_LAYER)
    proto = onnx.ModelProto.FromString(model.model.SerializeToString())
    signs = np.where(np.asarray(g.const(q.input[0])) >= 0, 1, -1).astype(_F32)
    proto.graph.initializer.append(numpy_helper.from_array(signs, CLASS_INT + "_w"))
    sib = onnx.NodeProto.FromString(n.SerializeToString())
    del sib.input[:]
    sib.input.extend([n.input[0], CLASS_INT + "_w"])
    sib.output[0] = CLASS_INT
    sib.name = CLASS_INT
    proto.graph.node.append(sib)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ModelWrapper(proto).transform(InferShapes()), sc


def qonnx_reference(model_path, images, batch: int | None = None, model=None) -> dict:
    """The graph's own outputs, by qonnx's execute_onnx (node by node, onnxruntime for
    standard ops): class_integers [N, classes] int64 (a sibling of the classifier's
    Conv/MatMul/Gemm on the same input with the signs of its weights and no bias, divided by
    the input's power-of-two scale: exact integers), logits [N, classes] float32 (the graph
    output, or the input of a final Softmax/LogSoftmax) and predictions (numpy argmax of
    the logits: ties to the lowest index).

    images: [N, ...] holding N * prod(input shape[1:]) values, cast to float32.
    batch: None runs the graph as it is, looping over its own (fixed) batch size; k sets
    the batch size to k with qonnx's ChangeBatchSize first (much faster on batch-1 graphs:
    every op is elementwise per image or an exact integer sum, so the values are the same;
    tests/test_qonnx.py holds both equal).
    """
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes

    name = Path(model_path).name
    if model is None:
        model, _ = load_qonnx(model_path)
    if batch is not None:
        model = model.transform(ChangeBatchSize(int(batch))).transform(InferShapes())
    g = _G(model, name)
    in_name, shape = _input_tensor(g)
    out_name = model.graph.output[0].name
    last = g.producer.get(out_name)
    if last is not None and last.op_type in FINAL_OPS:
        out_name = last.input[0]                       # the logits: hwgen strips it
    model, sc = _with_class_integers(model, g)
    cls = CLASS_INT
    x = np.asarray(images, _F32)
    n = x.shape[0]
    x = x.reshape((n,) + tuple(shape[1:]))
    b = shape[0]
    ints, logits = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for a in range(0, n, b):
            xb = x[a:a + b]
            k = xb.shape[0]
            if k < b:
                xb = np.concatenate([xb, np.zeros((b - k,) + xb.shape[1:], _F32)])
            ctx = execute_onnx(model, {in_name: xb}, return_full_exec_context=True)
            ints.append(np.asarray(ctx[cls]).reshape(b, -1)[:k])
            logits.append(np.asarray(ctx[out_name]).reshape(b, -1)[:k])
    raw = np.concatenate(ints).astype(np.float64) / sc
    ci = np.rint(raw)
    if not np.array_equal(ci, raw):
        raise HwgenError(f"{name}: classifier output {cls!r} is not an integer multiple of "
                         f"its scale")
    lg = np.concatenate(logits)
    return {"class_integers": ci.astype(np.int64), "logits": lg,
            "predictions": np.argmax(lg, axis=1)}
