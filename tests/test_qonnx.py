"""The QONNX frontend (SPEC sections 9, 10.6): binary QONNX graphs -> the lowered IR, bit for
bit against the graph as qonnx's execute_onnx runs it.

Every model is built here (Brevitas, exported with export_qonnx, or written node by node in
the older FINN style) into tmp_path; nothing is downloaded and no model file is committed.
"""

import json
import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn as nn
from brevitas.export import export_qonnx
from brevitas.core.restrict_val import RestrictValueType
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from brevitas_examples.bnn_pynq.models.common import CommonActQuant, CommonWeightQuant
from brevitas_examples.bnn_pynq.models.FC import FC
from brevitas_examples.bnn_pynq.models.tensor_norm import TensorNorm
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.onnx_exec import execute_onnx

from hwgen.cli import main
from hwgen.errors import HwgenError
from hwgen.frontend.qonnx import (analyse_input, binary_theta, bn_onnxruntime, check_inputs,
                                  import_qonnx, load_qonnx, qonnx_reference, qonnx_vs_int,
                                  reachable)
from hwgen.ir import interp
from hwgen.ir.core import BatchNorm, Dropout, loads, replace, unpack_rows, pack_rows
from hwgen.ir.verify import verify
from hwgen.passes import add_sites, fold_thresholds, run_pipeline

N_IMAGES = 256          # per model, batched reference
N_LOOPED = 6            # images run through the graph exactly as it is (batch 1, looped)
F32 = np.float32


# ---------------------------------------------------------------------------- model builders

def _act():
    return QuantIdentity(act_quant=CommonActQuant, bit_width=1)


def _randomise(net: nn.Module, seed: int, tn_weight: float) -> nn.Module:
    """Batch-norm statistics that put crossings inside the reachable range, with a constant
    (gain 0) channel, negative gains, a channel whose crossing sits exactly on a reachable
    acc (bias 0, mean = an integer of the right parity), and a final TensorNorm."""
    g = torch.Generator().manual_seed(seed)
    rows = None
    for m in net.modules():
        if isinstance(m, (QuantConv2d, QuantLinear)):
            rows = m.weight[0].numel()
            m.weight.data = torch.randn(m.weight.shape, generator=g)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            o = m.num_features
            gain = torch.randn(o, generator=g)
            gain[0] = 0.0
            gain[1] = -gain[1].abs() - 0.1
            mean = torch.randn(o, generator=g) * math.sqrt(rows) * 0.6
            bias = torch.randn(o, generator=g) * 0.5
            mean[2], bias[2] = float(rows % 2 + 2 * int(o % 3)), 0.0        # exact tie
            m.weight.data, m.bias.data = gain, bias
            m.running_mean.copy_(mean)
            m.running_var.copy_((torch.rand(o, generator=g) * 1.5 + 0.25) * rows)
        elif isinstance(m, TensorNorm):
            m.weight.data.fill_(tn_weight)
            m.bias.data.fill_(0.3)
            m.running_mean.fill_(1.5)
            m.running_var.fill_(4.0)
    return net.eval()


def tfc(seed=0, widths=(32, 24, 16), act_bits=1, in_bits=1, tn_weight=-0.7):
    """FINN's TFC at small widths: 8x8 binary input, three hidden layers, TensorNorm."""
    net = FC(num_classes=10, weight_bit_width=1, act_bit_width=act_bits, in_bit_width=in_bits,
             in_channels=1, out_features=list(widths), in_features=(8, 8))
    return _randomise(net, seed, tn_weight)


class SmallCNV(nn.Module):
    """FINN's CNV shape at small widths, binary input: valid 3x3, same 3x3, pool 2, valid
    3x3, pool 2 (floor: 15 -> 13 -> 13 -> 6 -> 4 -> 2), two linear layers, TensorNorm."""

    def __init__(self, in_bits: int = 1):
        super().__init__()
        wq = dict(bias=False, weight_quant=CommonWeightQuant, weight_bit_width=1)
        # in_bits 8: FINN CNV's input quantiser, signed int8 with scale 2^-7 (Q1.7)
        inq = _act() if in_bits == 1 else QuantIdentity(
            act_quant=CommonActQuant, bit_width=in_bits, min_val=-1.0,
            max_val=1.0 - 2.0 ** (1 - in_bits), narrow_range=False,
            restrict_scaling_type=RestrictValueType.POWER_OF_TWO)
        self.conv = nn.Sequential(
            inq,
            QuantConv2d(2, 6, 3, **wq), nn.BatchNorm2d(6, eps=1e-4), _act(),
            QuantConv2d(6, 8, 3, padding=1, **wq), nn.BatchNorm2d(8, eps=1e-4), _act(),
            nn.MaxPool2d(2),
            QuantConv2d(8, 12, 3, **wq), nn.BatchNorm2d(12, eps=1e-4), _act(), nn.MaxPool2d(2))
        self.fc = nn.Sequential(
            QuantLinear(48, 16, **wq), nn.BatchNorm1d(16, eps=1e-4), _act(),
            QuantLinear(16, 10, **wq), TensorNorm())

    def forward(self, x):
        x = self.conv(2.0 * x - torch.tensor([1.0]))
        return self.fc(x.view(x.shape[0], -1))


class SmallStrided(nn.Module):
    """Strides as Brevitas users write them, binary input 2x19x19: a stride-2 padded 3x3
    conv (10x10), MaxPool2d(3, 2) after the quantiser (overlapping blocks: 4x4), a
    stride-2 padded 3x3 conv (2x2), a linear classifier with TensorNorm. `pool`: the
    MaxPool2d's (size, stride); (2, 2) does not overlap (5x5, then 3x3)."""

    def __init__(self, pool=(3, 2)):
        super().__init__()
        side = (10 - pool[0]) // pool[1] + 1
        side = (side - 1) // 2 + 1
        wq = dict(bias=False, weight_quant=CommonWeightQuant, weight_bit_width=1)
        self.conv = nn.Sequential(
            _act(),
            QuantConv2d(2, 6, 3, stride=2, padding=1, **wq), nn.BatchNorm2d(6, eps=1e-4),
            _act(), nn.MaxPool2d(*pool),
            QuantConv2d(6, 8, 3, stride=2, padding=1, **wq), nn.BatchNorm2d(8, eps=1e-4),
            _act())
        self.fc = nn.Sequential(QuantLinear(8 * side * side, 10, **wq), TensorNorm())

    def forward(self, x):
        x = self.conv(2.0 * x - torch.tensor([1.0]))
        return self.fc(x.view(x.shape[0], -1))


def _export(net, shape, path, dynamo=True):
    export_qonnx(net, input_t=torch.rand(shape), export_path=str(path), dynamo=dynamo)
    return path


def finn_style_mlp(path, seed=3, widths=(20, 14), classes=10, opset=9):
    """The older FINN-style graph, node by node: input Reshape [1, -1], Mul(2), Add(-1),
    quantisers in the domain onnx.brevitas, MatMul with weights [in, out], opset 9 batch
    norms and a scalar TensorNorm with a negative gain as Sub, Div, Mul, Add."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value, F32 if np.asarray(value).dtype
                                                        .kind == "f" else np.int64), name))
        return name

    def bq(x, name):
        nodes.append(helper.make_node("BipolarQuant", [x, const(name + "_s", [1.0])], [name],
                                      domain="onnx.brevitas", name=name + "_q"))
        return name

    nodes.append(helper.make_node("Reshape", ["x", const("shape", [1, -1])], ["flat"], name="rs"))
    nodes.append(helper.make_node("Mul", ["flat", const("two", 2.0)], ["m"], name="pre_mul"))
    nodes.append(helper.make_node("Add", ["m", const("minus1", -1.0)], ["a"], name="pre_add"))
    t, f = bq("a", "in_q"), 64
    for i, o in enumerate(list(widths) + [classes]):
        w = bq(const(f"W{i}", rng.normal(size=(f, o))), f"w{i}")
        nodes.append(helper.make_node("MatMul", [t, w], [f"mm{i}"], name=f"matmul{i}"))
        if i == len(widths):
            break
        gain = rng.normal(size=o)
        gain[0], gain[1] = 0.0, -abs(gain[1])
        p = [const(f"bn{i}_{k}", v) for k, v in
             (("g", gain), ("b", rng.normal(size=o) * 0.5),
              ("m", rng.normal(size=o) * math.sqrt(f) * 0.6),
              ("v", (rng.random(o) * 1.5 + 0.25) * f))]
        nodes.append(helper.make_node("BatchNormalization", [f"mm{i}"] + p, [f"bn{i}"],
                                      epsilon=1e-4, name=f"bn{i}"))
        t, f = bq(f"bn{i}", f"act{i}"), o
    t = f"mm{len(widths)}"
    for op, c in (("Sub", 1.5), ("Div", 2.0), ("Mul", -0.7), ("Add", 0.3)):
        nodes.append(helper.make_node(op, [t, const(f"tn_{op}", [c])], [f"tn{op}"], name=f"tn_{op}"))
        t = f"tn{op}"
    nodes[-1].output[0] = "y"
    graph = helper.make_graph(nodes, "finn_tfc",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, classes])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7                       # (no opset import for onnx.brevitas, as in old files)
    onnx.save(model, str(path))
    return path


def hand_conv(path, seed=5, auto_pad="SAME_UPPER", pre=((("Mul", 3.7), ("Sub", 1.3)))):
    """Hand-written conv net: SAME_UPPER auto padding, a Conv with an all-zero bias input, a
    MaxPool between the batch norm and the quantiser (max then sign = OR of signs), per-channel
    Mul/Add after a batch norm (constant operands first or second), a Gemm with transB = 0, an odd input threshold
    (Mul 3.7, Sub 1.3: theta is no simple fraction) and a per-class logit affine."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value, F32), name))
        return name

    def bq(x, name):
        nodes.append(helper.make_node("BipolarQuant", [x, const(name + "_s", 1.0)], [name],
                                      domain="qonnx.custom_op.general", name=name + "_q"))
        return name

    t = "x"
    for i, (op, c) in enumerate(pre):           # Mul(c, x): the constant first
        ins = [const(f"pre{i}", c), t] if op == "Mul" else [t, const(f"pre{i}", c)]
        nodes.append(helper.make_node(op, ins, [f"p{i}"], name=f"pre{i}"))
        t = f"p{i}"
    t = bq(t, "in_q")
    w0 = bq(const("W0", rng.normal(size=(5, 1, 3, 3))), "w0")
    nodes.append(helper.make_node("Conv", [t, w0, const("B0", np.zeros(5))], ["c0"],
                                  auto_pad=auto_pad, kernel_shape=[3, 3], name="conv0"))
    p = [const(f"bn0_{k}", v) for k, v in (("g", rng.normal(size=5)), ("b", rng.normal(size=5)),
                                            ("m", rng.normal(size=5) * 2), ("v", rng.random(5) * 9 + 1))]
    nodes.append(helper.make_node("BatchNormalization", ["c0"] + p, ["bn0"], epsilon=1e-5,
                                  name="bn0"))
    nodes.append(helper.make_node("Mul", ["bn0", const("chmul", rng.normal(size=(1, 5, 1, 1)))],
                                  ["cm"], name="chmul"))
    nodes.append(helper.make_node("Add", [const("chadd", rng.normal(size=(5, 1, 1))), "cm"],
                                  ["ca"], name="chadd"))
    nodes.append(helper.make_node("MaxPool", ["ca"], ["mp"], kernel_shape=[2, 2], strides=[2, 2],
                                  name="pool0"))
    t = bq("mp", "a0")
    nodes.append(helper.make_node("Flatten", [t], ["fl"], axis=1, name="flat"))
    w1 = bq(const("W1", rng.normal(size=(5 * 4 * 4, 7))), "w1")
    nodes.append(helper.make_node("Gemm", ["fl", w1], ["g1"], transB=0, name="gemm1"))
    nodes.append(helper.make_node("Mul", ["g1", const("lmul", rng.normal(size=7))], ["lm"],
                                  name="logit_mul"))
    nodes.append(helper.make_node("Sub", [const("lsub", rng.normal(size=(1, 7))), "lm"], ["y"],
                                  name="logit_sub"))
    graph = helper.make_graph(nodes, "hand_conv",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 9, 9])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 7])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("qonnx.custom_op.general", 1)])
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("qonnx")
    torch.manual_seed(0)
    net = tfc()
    cnv = _randomise(SmallCNV(), seed=1, tn_weight=0.9)
    return {
        "tfc": _export(net, (1, 1, 8, 8), d / "tfc.onnx"),
        "tfc_matmul": _export(net, (1, 1, 8, 8), d / "tfc_ts.onnx", dynamo=False),
        "cnv": _export(cnv, (1, 2, 15, 15), d / "cnv.onnx"),
        "cnv8": _export(_randomise(SmallCNV(in_bits=8), seed=2, tn_weight=0.8), (1, 2, 15, 15),
                        d / "cnv8.onnx"),
        "finn_mlp": finn_style_mlp(d / "finn_mlp.onnx"),
        "hand_conv": hand_conv(d / "hand_conv.onnx"),
        "strided": _export(_randomise(SmallStrided(), seed=4, tn_weight=0.6), (1, 2, 19, 19),
                           d / "strided.onnx"),
    }


@pytest.fixture(scope="module")
def imported(models):
    """name -> (lowered IR, images, batched reference)."""
    out = {}
    for k, path in models.items():
        ir = run_pipeline(import_qonnx(path))
        x = check_inputs(ir, N_IMAGES, seed=7)
        out[k] = (ir, x, qonnx_reference(path, x, batch=64))
    return out


def _tiny(models, tmp_path, edit, name="bad.onnx"):
    m = onnx.load(str(models["tfc_matmul"]))
    edit(m)
    p = tmp_path / name
    p.write_bytes(m.SerializeToString())
    return p


# ---------------------------------------------------------------------------- exactness

@pytest.mark.parametrize("name", ["tfc", "tfc_matmul", "cnv", "finn_mlp", "hand_conv",
                                  "strided"])
def test_import_equals_execute_onnx(models, imported, name):
    ir, x, ref = imported[name]
    verify(ir)
    assert ir.meta.source == "qonnx" and ir.input.mode == "binary" and not ir.sites
    rep = qonnx_vs_int(ir, models[name], x, ref=ref)
    assert rep["ok"], rep
    assert rep["images"] == N_IMAGES and rep["class_integer_mismatches"] == 0
    # the XNOR-popcount path (the definition) agrees with the fast path
    acc = interp.run(ir, interp.binarize(x[:32], ir.input.theta))[:, 0]
    assert np.array_equal(acc, ref["class_integers"][:32])
    imp = dict(ir.meta.report)
    print(f"\n{name}: theta {ir.input.theta!r}, {imp['channels_checked']} channels "
          f"({imp['values_checked']} acc values) checked, {imp['constant_channels']} constant, "
          f"{imp['near_ties']} near-ties, min crossing gap {imp['min_crossing_gap']}, "
          f"{imp['float64_disagreements']} float64 disagreements; argmax ties "
          f"{rep['argmax_ties_class_integers']}/{N_IMAGES}")


def test_int8_input_cnv_equals_execute_onnx(models, imported):
    """FINN CNV's input (Mul 2, Sub 1, Quant int8 scale 2^-7): the IR quantises the same
    integers, the first layer's bit planes shift-add to the graph's sums, and every class
    integer and prediction equals execute_onnx's."""
    ir, x, ref = imported["cnv8"]
    verify(ir)
    e = ir.input
    assert (e.mode, e.bits, e.mul, e.add, e.scale) == ("signed", 8, 2.0, -1.0, 2.0 ** -7)
    assert ir.acc_bound(0) == 128 * ir.layers[0].rows
    assert max(abs(t) for t in ir.layers[0].thresh) > ir.layers[0].rows     # beyond +-rows
    rep = qonnx_vs_int(ir, models["cnv8"], x, ref=ref)
    assert rep["ok"] and rep["class_integer_mismatches"] == 0, rep
    acc = interp.run(ir, interp.input_bits(ir, x[:16]))[:, 0]           # the definition
    assert np.array_equal(acc, ref["class_integers"][:16])
    imp = dict(ir.meta.report)
    print(f"\ncnv8: {imp['channels_checked']} channels, {imp['near_ties']} near-ties, "
          f"argmax ties {rep['argmax_ties_class_integers']}/{N_IMAGES}")


def test_import_figures(imported):
    """The planted constant (gain 0) and exact-tie channels are counted; negative gains
    give s = -1."""
    for name in ("tfc", "cnv", "finn_mlp"):
        ir = imported[name][0]
        imp = dict(ir.meta.report)
        hidden = ir.layers[:-1]
        assert imp["channels_checked"] == sum(l.out_channels for l in hidden)
        assert imp["values_checked"] == sum(l.out_channels * (2 * l.rows + 1) for l in hidden)
        assert imp["constant_channels"] >= len(hidden)                # gain 0 in every layer
        if name != "finn_mlp":
            assert imp["near_ties"] >= len(hidden)                     # the planted exact ties
            assert imp["min_crossing_gap"] == 0.0
        assert all(l.sign[1] == -1 or abs(l.thresh[1]) == l.rows + 1 for l in hidden)
        for l in hidden:                                               # constants: canonical
            assert l.sign[0] == 1 and abs(l.thresh[0]) == l.rows + 1


def test_negative_logit_scale(imported):
    """TensorNorm with a negative gain reverses the class order: predictions come from the
    logits (checked equal to the graph's in test_import_equals_execute_onnx)."""
    ir, x, ref = imported["tfc"]
    assert all(a < 0 for a in ir.layers[-1].logit_scale)
    assert np.any(np.argmax(ref["class_integers"], 1) != ref["predictions"])


def _rescale(scales):
    """Give the BipolarQuant nodes whose names contain a key their own scale."""
    def edit(m):
        for n in m.graph.node:
            for key, val in scales.items():
                if n.op_type == "BipolarQuant" and key in n.name:
                    name = "scale_" + key.strip("/")
                    m.graph.initializer.append(numpy_helper.from_array(np.asarray(val, F32), name))
                    n.input[1] = name
    return edit


def test_power_of_two_scales(models, tmp_path):
    """Positive power-of-two quantiser scales keep every sum exact: per-channel weight
    scales, activation scales 2 and 1/4, a classifier output of acc/2."""
    per_channel = (2.0 ** (np.arange(24) % 4 - 1)).reshape(24, 1)     # weight [out, in]
    p = _tiny(models, tmp_path, _rescale({"features.4/": [2.0], "features.6/": per_channel,
                                          "features.12/": [0.25], "features.14/": [2.0]}),
              "scaled.onnx")
    ir = run_pipeline(import_qonnx(p))
    x = check_inputs(ir, 128, seed=3)
    rep = qonnx_vs_int(ir, p, x, batch=64)
    assert rep["ok"], rep
    # TensorNorm (x - 1.5) / sqrt(4 + 1e-4) * -0.7 + 0.3 on x = 0.25 * 2 * acc
    assert np.allclose(ir.layers[-1].logit_scale, -0.7 / np.sqrt(4 + 1e-4) * 0.5, rtol=1e-6)
    for scales, needle in (({"features.4/": [0.3]}, "not a positive power of two"),
                           ({"features.6/": -per_channel}, "weight scale -0.5 .output "
                                                           "channel 0. is not positive"),
                           ({"features.4/": np.full(32, 2.0).reshape(1, 32) *
                             (1 + (np.arange(32) % 2))}, "per-channel activation scale")):
        bad = _tiny(models, tmp_path, _rescale(scales), "bad_scale.onnx")
        with pytest.raises(HwgenError, match=needle):
            import_qonnx(bad)


def test_reference_batched_equals_looped(models, imported):
    """ChangeBatchSize changes no value: the batched reference equals the graph run as it
    is (batch 1, looped) bit for bit, on the class integers and the float32 logits."""
    for name in ("tfc", "cnv", "hand_conv"):
        _, x, ref = imported[name]
        looped = qonnx_reference(models[name], x[:N_LOOPED])
        assert np.array_equal(looped["class_integers"], ref["class_integers"][:N_LOOPED])
        assert np.array_equal(looped["logits"], ref["logits"][:N_LOOPED])


def test_hidden_decisions_teacher_forced(models, imported):
    """Layer by layer on the graph's own tensors: each hidden BipolarQuant output equals the
    IR's (s*acc >= t) applied to the graph's own accumulator (the Conv/MatMul/Gemm output)."""
    for name in ("cnv", "tfc", "finn_mlp"):
        ir, x, _ = imported[name]
        model, _ = load_qonnx(models[name])
        prods = [n for n in model.graph.node if n.op_type in ("Conv", "MatMul", "Gemm")]
        pairs = []                             # (layer, acc tensor, quantiser output)
        for li, p in enumerate(prods[:-1]):
            t = p.output[0]
            while True:
                (c,) = model.find_consumers(t)
                if c.op_type in ("BipolarQuant", "MaxPool"):
                    break
                t = c.output[0]
            if c.op_type == "BipolarQuant":    # (pooled before quantising: end to end only)
                pairs.append((ir.layers[li], p.output[0], c.output[0]))
        assert len(pairs) == len(ir.layers) - 1
        for img in x[:4]:
            ctx = execute_onnx(model, {model.graph.input[0].name: img[None]},
                               return_full_exec_context=True)
            for layer, a, q in pairs:
                acc = ctx[a]
                sh = (1, -1) + (1,) * (acc.ndim - 2)
                s = np.asarray(layer.sign).reshape(sh)
                t = np.asarray(layer.thresh).reshape(sh)
                assert np.array_equal(acc, np.rint(acc))
                assert np.array_equal(s * acc >= t, ctx[q] > 0), (name, layer)


def test_batchnorm_model_is_onnxruntime(models):
    """hwgen's float32 batch norm is onnxruntime's, value for value, on every reachable acc
    of the CNV's layers; the ONNX formula evaluated step by step is not (it differs on a
    large share of float32 inputs), which is why the fold does not use it."""
    model, _ = load_qonnx(models["cnv"])
    ir = import_qonnx(models["cnv"])
    bns = [n for n in model.graph.node if n.op_type == "BatchNormalization"]
    assert len(bns) == len(ir.layers) - 1
    for n, layer in zip(bns, ir.layers):
        p = [model.get_initializer(i) for i in n.input[1:]]
        eps = next(a.f for a in n.attribute if a.name == "epsilon")
        o, a = p[0].size, np.arange(-layer.rows, layer.rows + 1, dtype=F32)
        x = np.ascontiguousarray(np.broadcast_to(a, (o, a.size)))
        g = helper.make_graph(
            [helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"], epsilon=eps)],
            "bn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, o, a.size, 1])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            [numpy_helper.from_array(v, k) for k, v in zip("gbmv", p)])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)])
        y_rt = ort.InferenceSession(m.SerializeToString()).run(None, {"x": x[None, :, :, None]})[0]
        assert np.array_equal(bn_onnxruntime(x, *p, eps), y_rt[0, :, :, 0])
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(64, 4096)) * 100).astype(F32)
    gain, bias, mean = (rng.normal(size=(3, 64, 1)) * 3).astype(F32)
    var = rng.random((64, 1)).astype(F32) * 50
    onnx_formula = (x - mean) / np.sqrt(var + F32(1e-5)) * gain + bias
    assert np.mean(onnx_formula != bn_onnxruntime(x, gain[:, 0], bias[:, 0], mean[:, 0],
                                                  var[:, 0], 1e-5)) > 0.1


def test_theta_exact(models):
    """theta reproduces the graph's float32 input decision on every k/255, on 2**18 float32
    values around theta, and at both ends (Mul 3.7, Sub 1.3: theta is no simple fraction)."""
    for name, want in (("tfc", 0.5), ("finn_mlp", 0.5), ("hand_conv", None)):
        model, _ = load_qonnx(models[name])
        prep = analyse_input(model)
        theta = binary_theta(prep)
        if want is not None:
            assert theta == want
        th = np.float32(theta)
        near = (th.view(np.uint32) + np.arange(-2 ** 17, 2 ** 17)).astype(np.uint32).view(F32)
        p = np.concatenate([np.arange(256, dtype=F32) / F32(255), near, F32([0.0, 1.0])])
        p = p[(p >= 0) & (p <= 1)]
        # the graph's own elementwise preprocessing nodes (scalar constants), by onnxruntime
        nodes = [n for n in model.graph.node if n.name in prep.node_names
                 and n.op_type in ("Mul", "Sub", "Add", "Div")]
        assert len(nodes) == 2
        data = next(i for i, v in enumerate(nodes[0].input) if v not in
                    {t.name for t in model.graph.initializer})
        nodes[0].input[data] = "p"
        g = helper.make_graph(
            [onnx.NodeProto.FromString(n.SerializeToString()) for n in nodes], "pre",
            [helper.make_tensor_value_info("p", TensorProto.FLOAT, [p.size])],
            [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)],
            [t for t in model.graph.initializer if any(t.name in n.input for n in nodes)])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
        y = ort.InferenceSession(m.SerializeToString()).run(None, {"p": p})[0]
        assert np.array_equal(y >= 0, p >= th), name
        assert np.array_equal(interp.binarize(p, theta).astype(bool), y >= 0)


def test_reachable_parity():
    """Without padding acc has the parity of rows; with padding each window has its own
    driven-row count n (here 4, 6 or 9) and reaches {-n, -n+2, ..., n}."""
    from hwgen.ir.core import Layer
    valid = Layer(op="conv", in_shape=(1, 5, 5), out_channels=1, kernel=(3, 3), pad=(0, 0), pool=1, weights=())
    same = Layer(op="conv", in_shape=(1, 5, 5), out_channels=1, kernel=(3, 3), pad=(1, 1), pool=1, weights=())
    assert set(reachable(valid).tolist()) == set(range(-9, 10, 2))
    assert set(reachable(same).tolist()) == set(range(-6, 7, 2)) | set(range(-9, 10, 2))
    two = Layer(op="conv", in_shape=(2, 5, 5), out_channels=1, kernel=(3, 3), pad=(1, 1), pool=1, weights=())    # n in {8, 12, 18}: all even
    assert set(reachable(two).tolist()) == set(range(-18, 19, 2))



# one batch norm for both frontends' fold, on a padded 3x3 conv over a 1x1 map of 2 channels:
# 18 rows, so the acc bound is 18, but only the centre tap is driven: reachable accs -2, 0, 2
FOLD_BN = BatchNorm(gain=(0.0, 0.0, 1.0, -1.0, 1.0, 1.0, -1.0, 2.0),
                    bias=(1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.25),
                    mean=(0.0, 0.0, 0.5, 0.5, 5.5, -30.5, -7.5, -3.0),
                    var=(1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 4.0), eps=1e-5)


def bn_conv(path, bn: BatchNorm = FOLD_BN):
    """x [1, 2, 1, 1] -> 2x - 1 -> BipolarQuant -> Conv 3x3 pads 1 (binary weights, scale 1)
    -> BatchNormalization(bn) -> BipolarQuant -> Flatten -> MatMul (4 classes)."""
    o = len(bn.gain)
    rng = np.random.default_rng(9)
    nodes, inits = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value, F32), name))
        return name

    def bq(x, name):
        nodes.append(helper.make_node("BipolarQuant", [x, const(name + "_s", 1.0)], [name],
                                      domain="qonnx.custom_op.general", name=name + "_q"))
        return name

    nodes.append(helper.make_node("Mul", ["x", const("two", 2.0)], ["m"], name="pre_mul"))
    nodes.append(helper.make_node("Sub", ["m", const("one", 1.0)], ["p"], name="pre_sub"))
    w0 = bq(const("W0", rng.normal(size=(o, 2, 3, 3))), "w0")
    nodes.append(helper.make_node("Conv", [bq("p", "in_q"), w0], ["c0"], kernel_shape=[3, 3],
                                  pads=[1, 1, 1, 1], name="conv0"))
    p = [const(f"bn0_{k}", getattr(bn, k)) for k in ("gain", "bias", "mean", "var")]
    nodes.append(helper.make_node("BatchNormalization", ["c0"] + p, ["bn0"], epsilon=bn.eps,
                                  name="bn0"))
    nodes.append(helper.make_node("Flatten", [bq("bn0", "a0")], ["fl"], axis=1, name="flat"))
    w1 = bq(const("W1", rng.normal(size=(o, 4))), "w1")
    nodes.append(helper.make_node("MatMul", ["fl", w1], ["y"], name="fc1"))
    graph = helper.make_graph(nodes, "bn_conv",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 1, 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("qonnx.custom_op.general", 1)])
    onnx.save(model, str(path))
    return path


def _fold_mismatches(ir, bn: BatchNorm) -> list[int]:
    """Channels where the QONNX import's (s, t) of layer 0 differ from hwgen.passes.fold's
    (model.pt's fold) of the same batch norm."""
    s, t = fold_thresholds(bn, ir.acc_bound(0))
    layer = ir.layers[0]
    return [j for j in range(len(s)) if (layer.sign[j], layer.thresh[j]) != (s[j], t[j])]


def _constants_on(reach, real):
    """A wrong fold rule (the QONNX frontend's former one): constancy judged on the
    reachable accs only."""
    def rule(on, bound):
        s, t = real(on, bound)
        onr = np.asarray(on)[:, np.asarray(reach) + bound]
        const, always = onr.all(axis=1) | ~onr.any(axis=1), onr.all(axis=1)
        return (tuple(1 if c else v for c, v in zip(const, s)),
                tuple((-(bound + 1) if a else bound + 1) if c else v
                      for c, a, v in zip(const, always, t)))
    return rule


def _always_one_inside(real):
    """A wrong fold rule: an always-1 channel as t = -bound, inside the range."""
    def rule(on, bound):
        s, t = real(on, bound)
        return s, tuple(-bound if v == -(bound + 1) else v for v in t)
    return rule


def test_both_frontends_fold_a_batch_norm_alike(tmp_path):
    """One rule (hwgen.passes.fold.fold_decisions): the QONNX import and model.pt's fold
    give the same (s, t) for the same batch norm, constant channels included: s = +1 and
    t = -(bound+1) (always 1) or bound+1 (always 0), constancy judged on the whole acc range."""
    ir = import_qonnx(bn_conv(tmp_path / "bn.onnx"))
    layer, bound = ir.layers[0], ir.acc_bound(0)
    assert bound == 18 and reachable(layer).tolist() == [-2, 0, 2]
    assert _fold_mismatches(ir, FOLD_BN) == []
    st = list(zip(layer.sign, layer.thresh))
    assert st[0] == st[5] == (1, -(bound + 1))           # gain 0, bias > 0; crossing below -18
    assert st[1] == (1, bound + 1)                       # gain 0, bias < 0
    assert st[2:5] == [(1, 1), (-1, 0), (1, 6)] and st[6:] == [(-1, 8), (1, -3)]
    assert dict(ir.meta.report)["constant_channels"] == 3
    a = np.arange(-bound, bound + 1)                     # exact on every acc of the range
    y = interp.bn_value(FOLD_BN, np.broadcast_to(a, (8, a.size)), axis=0) >= 0
    assert np.array_equal(np.asarray(layer.sign)[:, None] * a >= np.asarray(layer.thresh)[:, None], y)


@pytest.mark.parametrize("path, plant, want", [
    ("frontend", lambda real: _constants_on([-2, 0, 2], real), [4, 6, 7]),   # cross outside
    ("passes", _always_one_inside, [0, 5]),
])
def test_a_planted_fold_rule_is_caught(tmp_path, monkeypatch, path, plant, want):
    """A different constant-channel rule on either path makes the two folds differ: judged
    on the reachable accs (-2, 0, 2), channels 4, 6, 7 would be constants."""
    import hwgen.frontend.qonnx.fold as qfold
    import hwgen.passes.fold as pfold
    mod = qfold if path == "frontend" else pfold
    monkeypatch.setattr(mod, "fold_decisions", plant(mod.fold_decisions))
    ir = import_qonnx(bn_conv(tmp_path / "bn.onnx"))
    assert _fold_mismatches(ir, FOLD_BN) == want


# ---------------------------------------------------------------------------- planted faults

def _faulty_variants(ir):
    """(description, faulty IR) candidates: one flipped weight bit per layer, one threshold
    moved by one (towards a reachable value) per hidden layer."""
    for li, l in enumerate(ir.layers):
        bits = unpack_rows(l.weights, l.rows)
        for j in range(min(l.out_channels, 4)):
            b = bits.copy()
            b[j, (7 * j + 3) % l.rows] ^= 1
            yield f"layer {li} weight ({j}, {(7 * j + 3) % l.rows})", \
                replace(ir, layers=ir.layers[:li] + (replace(l, weights=pack_rows(b)),) + ir.layers[li + 1:])
        if l.thresh is None:
            continue
        reach = set(reachable(l).tolist())
        for j in range(l.out_channels):
            t = l.thresh[j]
            nt = t + 1 if t in reach else t - 1     # the decision changes at acc = t or t-1
            if not -l.rows < nt <= l.rows or abs(t) > l.rows:
                continue
            th = list(l.thresh)
            th[j] = nt
            yield f"layer {li} threshold {j}: {t} -> {nt}", \
                replace(ir, layers=ir.layers[:li] + (replace(l, thresh=tuple(th)),) + ir.layers[li + 1:])


@pytest.mark.parametrize("name", ["tfc", "cnv"])
@pytest.mark.parametrize("fault", ["weight", "threshold"])
def test_planted_fault_is_caught(models, imported, name, fault):
    """A fault that changes the IR's function on the images is reported on exactly the
    images it changes; the checker passes the unfaulted IR on the same data."""
    ir, x, ref = imported[name]
    bits = interp.binarize(x, ir.input.theta)
    good = interp.run(ir, bits)[:, 0]
    for desc, bad_ir in _faulty_variants(ir):
        if fault not in desc:
            continue
        verify(bad_ir)
        changed = np.flatnonzero(~np.all(interp.run(bad_ir, bits)[:, 0] == good, axis=1))
        if changed.size:
            break
    else:
        pytest.fail(f"no {fault} fault changed any output")
    rep = qonnx_vs_int(bad_ir, models[name], x, ref=ref)
    assert not rep["ok"], desc
    assert rep["class_integer_mismatches"] == changed.size, desc
    assert rep["first_mismatch"]["image"] == int(changed[0])


# ---------------------------------------------------------------------------- hostile files

def _insert_relu(m):
    bn = next(n for n in m.graph.node if n.op_type == "BatchNormalization")
    out = bn.output[0]
    bn.output[0] = out + "_pre"
    m.graph.node.insert(list(m.graph.node).index(bn) + 1,
                        helper.make_node("Relu", [out + "_pre"], [out], name="the_relu"))


def _float_weights(m):
    """The first MatMul reads its latent float weights directly ([in, out])."""
    prod = {o: n for n in m.graph.node for o in n.output}
    mm = next(n for n in m.graph.node if n.op_type == "MatMul")
    q = prod[prod[mm.input[1]].input[0]]                 # Transpose <- BipolarQuant
    assert q.op_type == "BipolarQuant"
    w = next(t for t in m.graph.initializer if t.name == q.input[0])
    m.graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(w).T.copy(), "float_W"))
    mm.input[1] = "float_W"


def _set_input_shape(dims):
    def edit(m):
        d = m.graph.input[0].type.tensor_type.shape.dim
        for i, v in enumerate(dims):
            d[i].dim_value = v
    return edit


def _set_attr(op, name, value):
    """Edit: attribute `name` of the first `op` node set to `value` (added if missing)."""
    def edit(m):
        n = next(n for n in m.graph.node if n.op_type == op)
        for a in list(n.attribute):
            if a.name == name:
                n.attribute.remove(a)
        n.attribute.append(helper.make_attribute(name, value))
    return edit


@pytest.fixture(scope="module")
def hostile(models, tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    good = models["tfc_matmul"].read_bytes()
    files = {}
    (d / "truncated.onnx").write_bytes(good[:len(good) // 2])
    files["truncated"] = (d / "truncated.onnx", "")
    (d / "text.onnx").write_text("this is not a model\n" * 20)
    files["not_onnx"] = (d / "text.onnx", "not an ONNX model")
    (d / "empty.onnx").write_bytes(b"")
    files["empty"] = (d / "empty.onnx", "not an ONNX model")
    with open(d / "huge.onnx", "wb") as f:          # sparse: no disk space used
        f.truncate(3 << 29)
    files["huge_file"] = (d / "huge.onnx", "GiB limit")
    for key, edit, needle in (
            ("relu", _insert_relu, "'the_relu' (Relu)"),
            ("float_weights", _float_weights, "is a float layer (its weights have no quantiser)"),
            ("bad_shape", _set_input_shape([1, 1, 9, 9]), "does not fit an input of 81"),
            ("absurd_shape", _set_input_shape([1, 1, 100000, 100000]), "too large")):
        files[key] = (_tiny(models, d, edit, f"{key}.onnx"), needle)
    for key, op, attr, value, needle in (
            ("dilation2", "Conv", "dilations", [2, 2], "dilations [2, 2]: only dilation 1"),
            ("ceil_mode", "MaxPool", "ceil_mode", 1, "ceil_mode=1: only floor-mode"),
            ("pool_1x1_s2", "MaxPool", "kernel_shape", [1, 1], "subsamples")):
        m = onnx.load(str(models["strided" if key == "pool_1x1_s2" else "cnv"]))
        _set_attr(op, attr, value)(m)
        (d / f"{key}.onnx").write_bytes(m.SerializeToString())
        files[key] = (d / f"{key}.onnx", needle)
    torch.manual_seed(0)
    files["multibit_hidden"] = (_export(tfc(act_bits=2, widths=(8, 6)), (1, 1, 8, 8),
                                        d / "a2.onnx", dynamo=False), "2-bit hidden activation")
    # FC's default 8-bit input quantiser is narrow (clips at -127, which the IR's signed
    # mode does not); a float scale alone is accepted (tests/test_brevitas_stock.py)
    files["multibit_input"] = (_export(tfc(in_bits=8, widths=(8, 6)), (1, 1, 8, 8),
                                       d / "i8.onnx", dynamo=False),
                               "input Quant must round half to even and not be narrow")
    return files


HOSTILE = ["truncated", "not_onnx", "empty", "huge_file", "relu", "float_weights", "bad_shape",
           "absurd_shape", "dilation2", "ceil_mode", "pool_1x1_s2", "multibit_hidden",
           "multibit_input"]


@pytest.mark.parametrize("key", HOSTILE)
def test_hostile_file_one_line(hostile, key):
    path, needle = hostile[key]
    with pytest.raises(HwgenError) as e:
        import_qonnx(path)
    msg = str(e.value)
    print(f"\n{key}: {msg}")
    assert "\n" not in msg and needle in msg, msg
    assert path.name in msg, msg


@pytest.mark.parametrize("key", ["truncated", "not_onnx", "relu", "multibit_hidden", "huge_file"])
def test_hostile_compile_writes_nothing(hostile, tmp_path, capsys, key):
    path, needle = hostile[key]
    rc = main(["compile", str(path), "-o", str(tmp_path / "out"), "--no-verilog"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == []


# ---------------------------------------------------------------------------- dropout sites

@pytest.mark.parametrize("kind", ["spatial", "element"])
def test_add_sites(imported, kind):
    ir0, x, _ = imported["cnv"]
    ir = run_pipeline(add_sites(ir0, kind, 0.25))
    assert [s.layer for s in ir.sites] == list(range(1, len(ir.layers)))
    assert ir.meta.dropout == Dropout(kind=kind, p=0.25, scale=False, trained=False)
    for s in ir.sites:
        l = ir.layers[s.layer]
        want = (l.in_shape[0], l.kernel[0] * l.kernel[1]) if kind == "spatial" else (l.rows, 1)
        assert (s.n_groups, s.group_rows) == want
    assert ir.sites[0].first_interface == 0 and all(s.mtj_code > 0 for s in ir.sites)
    bits = interp.binarize(x[:24], ir.input.theta)
    n, t = bits.shape[0], 3
    keep = [np.ones((n, t, s.n_groups), np.uint8) for s in ir.sites]
    want = interp.run(ir0, bits)[:, 0]
    got = interp.run(ir, bits, keep)
    assert all(np.array_equal(got[:, k], want) for k in range(t))
    # drop one group of the classifier's site: the class integers lose exactly that
    # group's contribution, sum over its rows of x_r * w_rj
    last = len(ir.layers) - 1
    site = ir.sites[-1]
    g = site.n_groups // 2
    keep[-1][:, 1, g] = 0
    got = interp.run(ir, bits, keep)
    h = interp.trace(ir, bits, [k[:, :1] for k in keep])[last - 1][:, 0]   # classifier input
    xr = (h.reshape(n, -1).astype(int) * 2 - 1)[:, g * site.group_rows:(g + 1) * site.group_rows]
    w = unpack_rows(ir.layers[last].weights, ir.layers[last].rows).astype(int) * 2 - 1
    contrib = xr @ w[:, g * site.group_rows:(g + 1) * site.group_rows].T
    assert np.array_equal(got[:, 0], want) and np.array_equal(got[:, 2], want)
    assert np.array_equal(want - got[:, 1], contrib)
    assert np.any(contrib != 0)
    # an earlier site: a dropped group changes nothing before its layer
    keep = [np.ones((n, 1, s.n_groups), np.uint8) for s in ir.sites]
    keep[1][:, 0, :] = 0
    tr0 = interp.trace(ir, bits, [np.ones_like(k) for k in keep])
    tr1 = interp.trace(ir, bits, keep)
    assert all(np.array_equal(a, b) for a, b in zip(tr0[:2], tr1[:2]))
    assert not np.array_equal(tr0[2], tr1[2])


@pytest.mark.parametrize("kind, p, layers, needle", [
    ("bogus", 0.2, None, "kind must be 'spatial' or 'element'"),
    ("spatial", 0.2, [0], "layer 0 reads the image"),
    ("spatial", 1.0, None, "p must be in (0, 1)"),
    ("element", 0.2, [1, 1], "repeat a layer"),
    ("spatial", 0.2, [9], "must be an integer in 1..3"),
    ("spatial", 0.2, [], "no layers given"),
])
def test_add_sites_errors(imported, kind, p, layers, needle):
    ir = imported["tfc"][0]
    with pytest.raises(HwgenError) as e:
        add_sites(ir, kind, p, layers)
    assert needle in str(e.value)


def test_add_sites_twice(imported):
    ir = add_sites(imported["tfc"][0], "element", 0.1)
    with pytest.raises(HwgenError, match="already has 3 dropout sites"):
        add_sites(ir, "element", 0.1)


# ---------------------------------------------------------------------------- hwgen compile

def test_compile_onnx(models, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["compile", str(models["cnv"]), "-o", str(out), "--no-verilog", "--check-images",
               "8", "--dropout", "spatial", "--p", "0.1", "--sites", "2,3", "--tile", "16x8"])
    assert rc == 0, capsys.readouterr().err
    files = sorted(p.name for p in out.iterdir())
    assert files == ["check.json", "ir.json", "ir.txt", "manifest.json", "model.onnx"]
    check = json.loads((out / "check.json").read_text())
    assert check["ok"] and check["images"] == 8
    ir = loads((out / "ir.json").read_text())
    verify(ir)
    assert [s.layer for s in ir.sites] == [2, 3] and ir.meta.dropout.trained is False
    assert all(l.tile == (16, 8) for l in ir.layers)
    man = json.loads((out / "manifest.json").read_text())
    assert man["options"]["dropout"] == {"kind": "spatial", "p": 0.1, "sites": [2, 3]}
    assert man["tools"]["qonnx"] == "1.0.0"
    # deterministic: a second compile is byte-identical
    rc = main(["compile", str(models["cnv"]), "-o", str(tmp_path / "again"), "--no-verilog",
               "--check-images", "8", "--dropout", "spatial", "--p", "0.1", "--sites", "2,3",
               "--tile", "16x8"])
    assert rc == 0
    assert all((out / f).read_bytes() == (tmp_path / "again" / f).read_bytes() for f in files)


@pytest.mark.parametrize("argv, needle", [
    (["--sites", "1"], "--sites needs --dropout"),
    (["--dropout", "spatial", "--sites", "1,x"], "--sites must be a comma list"),
    (["--dropout", "spatial", "--sites", "0"], "layer 0 reads the image"),
])
def test_compile_onnx_bad_options(models, tmp_path, capsys, argv, needle):
    rc = main(["compile", str(models["tfc"]), "-o", str(tmp_path / "o"), "--no-verilog", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "o").exists()


def test_compile_check_failure_writes_nothing(models, tmp_path, capsys, monkeypatch):
    import hwgen.compiler as compile_mod
    real = compile_mod.run_pipeline

    def planted(ir, cfg):                      # a classifier weight bit flipped
        ir = real(ir, cfg)
        l = ir.layers[-1]
        b = unpack_rows(l.weights, l.rows)
        b[0, 0] ^= 1
        return replace(ir, layers=ir.layers[:-1] + (replace(l, weights=pack_rows(b)),))
    monkeypatch.setattr(compile_mod, "run_pipeline", planted)
    rc = main(["compile", str(models["tfc"]), "-o", str(tmp_path / "o"), "--no-verilog",
               "--check-images", "4"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "integer-vs-qonnx check failed" in err[0], err
    assert not (tmp_path / "o").exists()


def test_onnx_magic_dispatch(models, tmp_path, capsys):
    """A graph without the .onnx suffix is recognised by its first byte."""
    p = tmp_path / "model.bin"
    p.write_bytes(models["finn_mlp"].read_bytes())
    rc = main(["compile", str(p), "-o", str(tmp_path / "o"), "--no-verilog", "--check-images", "4"])
    assert rc == 0, capsys.readouterr().err
    assert loads((tmp_path / "o" / "ir.json").read_text()).meta.source == "qonnx"


def test_dropout_option_rejected_for_model_pt(tmp_path, capsys):
    from support import random_net
    from hwgen.model.io import save_model
    path = tmp_path / "m.pt"
    save_model(path, random_net("c4,p2,f10", (1, 8, 8), "none", seed=1), {"dataset": "digits"})
    rc = main(["compile", str(path), "-o", str(tmp_path / "o"), "--no-verilog",
               "--dropout", "element"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "model.pt carries its own" in err[0], err


@pytest.mark.slow
def test_compile_onnx_with_verilog(models, tmp_path, capsys):
    rc = main(["compile", str(models["tfc"]), "-o", str(tmp_path / "v"), "--check-images", "16",
               "--dropout", "element", "--p", "0.2"])
    assert rc == 0, capsys.readouterr().err
    assert any(p.suffix == ".v" for p in (tmp_path / "v").iterdir())


def test_imported_cnv_rtl_equals_qonnx_on_both_simulators(models, tmp_path, simulator):
    """The imported conv net through hwgen compile, then the RTL regression on seeded images
    from a file: every class integer equals the golden model's and qonnx execute_onnx's;
    with spatial sites added after training, 0 mismatches against the golden model with
    the devices' masks (qonnx has no dropout to compare)."""
    from hwgen.sim import regression
    out = tmp_path / "cnv"
    assert main(["compile", str(models["cnv"]), "-o", str(out), "--check-images", "8",
                 "--lanes", "4"]) == 0
    assert (out / "model.onnx").read_bytes() == models["cnv"].read_bytes()
    x = np.random.default_rng(3).random((4, 2, 15, 15), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    rep = regression.run_regression(out, simulator, images=4, samples=2, seed=1,
                                    progress=False, inputs=tmp_path / "x.npy")
    assert rep["ok"] and rep["mismatches"] == 0
    ref = rep["reference"]
    assert ref["kind"] == "qonnx" and ref["ok"] and ref["sample_mismatches"] == 0
    if simulator == "icarus":
        out2 = tmp_path / "cnv_sp"
        assert main(["compile", str(models["cnv"]), "-o", str(out2), "--check-images", "8",
                     "--dropout", "spatial", "--p", "0.3", "--sites", "2,3"]) == 0
        rep = regression.run_regression(out2, simulator, images=3, samples=4, seed=2,
                                        progress=False, inputs=tmp_path / "x.npy")
        assert rep["ok"] and rep["mismatches"] == 0 and rep["device_mismatches"] == 0
        assert rep["reference"]["ok"] is None and "after training" in rep["reference"]["reason"]


def test_reference_class_integers_are_checked_sample_by_sample(models, imported):
    """qonnx_vs_int(reference=...) is how the RTL regression checks an imported design:
    every sample of the given class integers against the graph; one changed is caught."""
    ir, x, ref = imported["cnv"]
    golden = interp.run(ir, interp.input_bits(ir, x[:8]), samples=3)
    good = qonnx_vs_int(ir, models["cnv"], x[:8], ref={k: v[:8] for k, v in ref.items()},
                        reference=golden)
    assert good["ok"] and good["samples"] == 24 and good["sample_mismatches"] == 0
    bad = golden.copy()
    bad[5, 2, 1] += 2                                     # one class integer of one sample
    r = qonnx_vs_int(ir, models["cnv"], x[:8], ref={k: v[:8] for k, v in ref.items()},
                     reference=bad)
    assert not r["ok"] and r["sample_mismatches"] == 1 and r["class_integer_mismatches"] == 1


def test_strided_conv_and_overlapping_pool_import(imported):
    """The stride-2 convs and the MaxPool2d(3, 2) become strides in the IR (and the SPEC
    hwgen reports); the reachable accs follow the strided windows' padding."""
    from hwgen.frontend.qonnx import reachable
    from hwgen.ir.core import Layer
    ir = imported["strided"][0]
    l0, l1 = ir.layers[:2]
    assert (l0.stride, l0.pad, l0.pool, l0.pool_stride, l0.conv_shape, l0.out_shape) == (
        (2, 2), (1, 1), 3, 2, (6, 10, 10), (6, 4, 4))
    assert (l1.stride, l1.conv_shape, l1.pool) == ((2, 2), (8, 2, 2), 1)
    assert ir.meta.spec == "c6s2,p3s2,c8s2,f10"
    # reachable accs: the union over the strided windows of {-n, ..., n} (n driven rows),
    # the windows as the golden model forms them (a 5x5 kernel, padding 2, stride 3 on a
    # 6x6 map drives 3 or 5 rows per axis: every n is odd, where stride 1 adds even ones)
    lay = Layer(op="conv", in_shape=(1, 6, 6), out_channels=1, kernel=(5, 5), pad=(2, 2),
                pool=1, weights=pack_rows(np.zeros((1, 25), np.uint8)), stride=(3, 3))
    for layer in (lay, l0, l1):
        ns = set(interp._im2col(np.zeros((1,) + layer.in_shape, np.uint8), layer)[1]
                 .sum(axis=1).tolist())
        want = np.unique(np.concatenate([np.arange(-n, n + 1, 2) for n in ns]))
        assert np.array_equal(reachable(layer), want)
    assert set(reachable(lay).tolist()) == set(range(-25, 26, 2))


def test_overlapping_pool_is_golden_only(models, tmp_path, capsys):
    """MaxPool2d(3, 2) imports exactly (the golden model and the check), but the hardware's
    raster-order pooling does not build overlapping blocks: compiling its Verilog is
    refused with one line and nothing written."""
    assert main(["compile", str(models["strided"]), "-o", str(tmp_path / "ir"),
                 "--check-images", "64", "--no-verilog"]) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "ir" / "check.json").read_text())["ok"]
    capsys.readouterr()
    assert main(["compile", str(models["strided"]), "-o", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "overlapping max-pool" in err[0]
    assert not (tmp_path / "v").exists()


def test_strided_brevitas_model_compiles_and_simulates_on_verilator(tmp_path, capsys):
    """hwgen compile, then hwgen sim on Verilator: every class integer of the strided
    model's RTL (stride-2 convs, a stride-2 pool) equals the golden model's and qonnx
    execute_onnx's."""
    from support import require_simulator
    require_simulator("verilator")
    out = tmp_path / "strided"
    model = _export(_randomise(SmallStrided(pool=(2, 2)), seed=4, tn_weight=0.6),
                    (1, 2, 19, 19), tmp_path / "strided.onnx")
    assert main(["compile", str(model), "-o", str(out), "--check-images", "256",
                 "--lanes", "4"]) == 0, capsys.readouterr().err
    assert json.loads((out / "check.json").read_text())["ok"]
    np.save(tmp_path / "x.npy", np.random.default_rng(5).random((4, 2, 19, 19), dtype=np.float32))
    rep_path = tmp_path / "sim.json"
    assert main(["sim", str(out), "--simulator", "verilator", "--inputs", str(tmp_path / "x.npy"),
                 "--images", "4", "--samples", "2", "--seed", "1", "--json", str(rep_path)]) == 0, \
        capsys.readouterr().err
    rep = json.loads(rep_path.read_text())
    assert rep["ok"] and rep["mismatches"] == 0, rep
    ref = rep["reference"]
    assert ref["kind"] == "qonnx" and ref["ok"] and ref["sample_mismatches"] == 0
