"""Stock Brevitas binary models (tests/brevitas_stock.py): biases, Brevitas' own binary
weight quantiser (scale 0.1), a per-channel binary scale, float-scale int8 / uint8 / 4-bit
input quantisers, a final Softmax / LogSoftmax and an inference Dropout node. Each is
exported with export_qonnx into tmp_path, imported, and held equal to qonnx execute_onnx on
every class integer and prediction of 256 inputs; two of them run on Verilator. Then the
frontend's errors on what it still refuses: each one line naming the user's layer.
"""

import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from onnx import numpy_helper

import brevitas_stock as bs
from hwgen.cli import main
from hwgen.errors import HwgenError
from hwgen.frontend import qonnx as fq
from hwgen.frontend.qonnx import (check_inputs, graph, import_qonnx, qonnx_reference,
                                  qonnx_vs_int, walk)
from hwgen.ir import interp
from hwgen.ir.core import replace
from hwgen.passes import run_pipeline

N_IMAGES = 256
README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture(scope="module")
def stock(tmp_path_factory):
    d = tmp_path_factory.mktemp("stock")
    out = {}
    for name, make in (("bias_int8_logsoftmax", bs.bias_int8_logsoftmax),
                       ("perchannel_uint8_softmax", bs.perchannel_uint8_softmax),
                       ("int4_mlp", bs.int4_mlp),
                       ("uint4_mlp", lambda: bs.int4_mlp(seed=3, signed=False))):
        net, shape = make()
        out[name] = bs.export(net, shape, d / f"{name}.onnx")
    out["dropout"] = bs.insert_dropout(out["perchannel_uint8_softmax"],
                                       out=d / "dropout.onnx")
    return out


@pytest.fixture(scope="module")
def imported(stock):
    """name -> (IR, images, batched reference)."""
    res = {}
    for k, path in stock.items():
        ir = run_pipeline(import_qonnx(path))
        x = check_inputs(ir, N_IMAGES, seed=11)
        res[k] = (ir, x, qonnx_reference(path, x, batch=64))
    return res


# ---------------------------------------------------------------------------- exactness

@pytest.mark.parametrize("name, mode, bits", [
    ("bias_int8_logsoftmax", "signed", 8), ("perchannel_uint8_softmax", "unsigned", 8),
    ("int4_mlp", "signed", 4), ("uint4_mlp", "unsigned", 4), ("dropout", "unsigned", 8)])
def test_stock_model_equals_execute_onnx(stock, imported, name, mode, bits):
    ir, x, ref = imported[name]
    e = ir.input
    assert (e.mode, e.bits) == (mode, bits)
    frac, _ = np.frexp(e.scale)
    assert frac != 0.5                                  # a learned float scale, not 2^-k
    rep = qonnx_vs_int(ir, stock[name], x, ref=ref)
    assert rep["ok"] and rep["class_integer_mismatches"] == 0, rep
    assert rep["prediction_mismatches"] == 0
    acc = interp.run(ir, interp.input_bits(ir, x[:16]))[:, 0]           # the definition
    assert np.array_equal(acc, ref["class_integers"][:16])
    # the inputs exercise the decisions: not every channel constant, classes vary
    assert len(set(ref["predictions"].tolist())) > 1
    assert any(len(set(l.thresh)) > 1 for l in ir.layers[:-1])
    imp = dict(ir.meta.report)
    print(f"\n{name}: {imp['channels_checked']} channels, {imp['constant_channels']} "
          f"constant, {imp['near_ties']} near-ties; argmax ties "
          f"{rep['argmax_ties_class_integers']}/{N_IMAGES}")


def test_stock_kinds_land_where_they_belong(imported):
    """The classifier's bias is its per-class logit offset and the weight scale its logit
    scale; the Softmax is stripped (hwgen's logits are its input); 4-bit inputs clip."""
    ir, x, ref = imported["bias_int8_logsoftmax"]
    last = ir.layers[-1]
    assert len(set(last.logit_bias)) == last.out_channels            # per-class offsets
    assert np.allclose(last.logit_scale, np.float32(0.1), rtol=1e-7)  # act scale 1 * 0.1
    logits = interp.logits(ir, ref["class_integers"])
    assert np.allclose(logits, ref["logits"], rtol=1e-5, atol=1e-5)   # LogSoftmax's input
    ir, x, ref = imported["perchannel_uint8_softmax"]
    assert len(set(ir.layers[-1].logit_scale)) == ir.layers[-1].out_channels
    assert np.allclose(interp.logits(ir, ref["class_integers"]), ref["logits"], rtol=1e-5,
                       atol=1e-5)
    ir, x, _ = imported["int4_mlp"]
    q = interp.quantize(ir.input, x)
    assert q.max() == 7 and q.min() >= -8                # clipped at the top of 4 bits


def test_reference_ignores_softmax_and_reads_its_input(stock):
    """qonnx_reference's logits are the Softmax's input: the graph output itself would tie
    more often (probabilities round to equal float32) and is not what hwgen predicts from."""
    x = np.random.default_rng(0).random((8, 1, 6, 6), dtype=np.float32)
    ref = qonnx_reference(stock["perchannel_uint8_softmax"], x)
    assert not np.all((ref["logits"] >= 0) & (ref["logits"] <= 1))    # not probabilities


def test_ties_broken_by_float32_rounding_are_counted_not_failed(tmp_path):
    """With scale 0.1 the graph's logits of equal class integers differ by rounding, so its
    argmax picks among hwgen's exactly tied classes by chance: counted, not a failure; a
    prediction that is not such a tie still fails."""
    net, shape = bs.tied_scale01()
    p = bs.export(net, shape, tmp_path / "tied.onnx")
    ir = run_pipeline(import_qonnx(p))
    x = check_inputs(ir, N_IMAGES, seed=11)
    ref = qonnx_reference(p, x, batch=64)
    rep = qonnx_vs_int(ir, p, x, ref=ref)
    assert rep["ok"] and rep["class_integer_mismatches"] == 0, rep
    assert rep["prediction_tie_breaks"] > 0 and rep["prediction_mismatches"] == 0, rep
    lg = interp.logits(ir, ref["class_integers"])
    i = int(np.flatnonzero((lg == lg.max(1, keepdims=True)).sum(1) == 1)[0])   # no tie
    bad = dict(ref, predictions=ref["predictions"].copy())
    bad["predictions"][i] = int(np.argmin(lg[i]))
    assert not qonnx_vs_int(ir, p, x, ref=bad)["ok"]


# ---------------------------------------------------------------------------- planted faults

def test_planted_threshold_fault_is_caught(stock, imported):
    """Every non-constant threshold of layer 1 moved by one: the equality check fails."""
    ir, x, ref = imported["bias_int8_logsoftmax"]
    l = ir.layers[1]
    rows = l.rows
    t = tuple(v + 1 if abs(v) <= rows else v for v in l.thresh)
    bad = replace(ir, layers=(ir.layers[0], replace(l, thresh=t)) + ir.layers[2:])
    rep = qonnx_vs_int(bad, stock["bias_int8_logsoftmax"], x, ref=ref)
    assert not rep["ok"] and rep["class_integer_mismatches"] > 0


@pytest.mark.parametrize("fault", ["bias", "weight_scale"])
def test_folding_without_bias_or_scale_is_caught(stock, imported, monkeypatch, fault):
    """The bias and the 0.1 / per-channel weight scales matter: an import that drops
    either one is caught by the equality check (or refused by the fold)."""
    if fault == "bias":
        monkeypatch.setattr(walk, "_bias", lambda g, n, o: None)
    else:
        real = walk._weights
        monkeypatch.setattr(walk, "_weights",
                            lambda *a: (real(*a)[0], np.ones_like(real(*a)[1])))
    checked = 0
    for name in ("bias_int8_logsoftmax", "perchannel_uint8_softmax"):
        _, x, ref = imported[name]
        try:
            ir = run_pipeline(import_qonnx(stock[name]))
        except HwgenError:
            continue
        assert not qonnx_vs_int(ir, stock[name], x, ref=ref)["ok"], name
        checked += 1
    assert checked                                     # the check itself caught it


def test_crossing_within_rounding_is_refused(stock, tmp_path):
    """A batch-norm crossing (bias 0, mean) placed exactly on the value a reachable acc
    gives (acc * input scale * 0.1 + bias) makes the decision depend on the float32
    summation order: refused with one line, rather than folded by a guess."""
    m = onnx.load(str(stock["int4_mlp"]))
    init = {t.name: t for t in m.graph.initializer}
    node = {n.op_type: n for n in m.graph.node}
    si = float(numpy_helper.to_array(init[node["Quant"].input[1]]))
    gemm = next(n for n in m.graph.node if n.op_type == "Gemm")
    b = numpy_helper.to_array(init[gemm.input[2]]).astype(np.float64)
    bn = node["BatchNormalization"]
    assert numpy_helper.to_array(init[bn.input[1]])[3] != 0            # channel 3 not constant
    beta, mean = (numpy_helper.to_array(init[bn.input[i]]).copy() for i in (2, 3))
    beta[3], mean[3] = 0.0, np.float32(5 * si * float(np.float32(0.1)) + b[3])
    for i, v in ((2, beta), (3, mean)):
        init[bn.input[i]].CopyFrom(numpy_helper.from_array(v, bn.input[i]))
    p = tmp_path / "tie.onnx"
    onnx.save(m, str(p))
    with pytest.raises(HwgenError) as e:
        import_qonnx(p)
    msg = str(e.value)
    assert "\n" not in msg and "output channel 3" in msg and "summation order" in msg, msg
    assert "layer 'net.2'" in msg, msg


def test_sum_error_bound():
    """The bound covers the worst float32 sum of +-0.1 terms we can build (all terms
    of one sign, summed left to right, which rounds at every step)."""
    for n in (9, 100, 576):
        t = np.full(n, np.float32(0.1), np.float32)
        s = np.float32(0)
        for v in t:
            s = np.float32(s + v)
        exact = n * float(np.float32(0.1))
        bound = fq.sum_error_bound(n, float(np.float32(0.1)))
        assert abs(float(s) - exact) <= bound < 2.0 ** -24 * n * exact


# ---------------------------------------------------------------------------- Verilator

def _compile_and_sim(path, tmp_path, shape, capsys):
    from support import require_simulator
    require_simulator("verilator")
    out = tmp_path / path.stem
    assert main(["compile", str(path), "-o", str(out), "--check-images", "256",
                 "--lanes", "4"]) == 0, capsys.readouterr().err
    assert json.loads((out / "check.json").read_text())["ok"]
    np.save(tmp_path / "x.npy", np.random.default_rng(5).random((8,) + shape, dtype=np.float32))
    rep_path = tmp_path / "sim.json"
    assert main(["sim", str(out), "--simulator", "verilator", "--inputs", str(tmp_path / "x.npy"),
                 "--images", "8", "--samples", "2", "--seed", "1", "--json",
                 str(rep_path)]) == 0, capsys.readouterr().err
    rep = json.loads(rep_path.read_text())
    assert rep["ok"] and rep["mismatches"] == 0, rep
    ref = rep["reference"]
    assert ref["kind"] == "qonnx" and ref["ok"] and ref["sample_mismatches"] == 0


@pytest.mark.parametrize("name, shape", [
    # bias + SignedBinaryWeightPerTensorConst (0.1) + float int8 input + LogSoftmax + pool
    ("bias_int8_logsoftmax", (1, 10, 10)),
    # per-channel scale + float uint8 input + Softmax + inference Dropout node + padding
    ("dropout", (1, 6, 6))])
def test_stock_model_simulates_on_verilator(stock, tmp_path, capsys, name, shape):
    """hwgen compile, then hwgen sim on Verilator: every class integer of the RTL equals
    the golden model's and qonnx execute_onnx's."""
    _compile_and_sim(stock[name], tmp_path, shape, capsys)


# ---------------------------------------------------------------------------- errors

act = bs._act
W1 = bs.SignedBinaryWeightPerTensorConst


def _inq():
    return QuantIdentity(act_quant=bs.Int8ActPerTensorFloat)


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.c1, self.b1, self.a1 = (_inq(), QuantConv2d(1, 4, 3, padding=1,
                                             weight_quant=W1), nn.BatchNorm2d(4), act())
        self.c2, self.b2, self.a2 = (QuantConv2d(4, 4, 3, padding=1, weight_quant=W1),
                                     nn.BatchNorm2d(4), act())
        self.fc = QuantLinear(144, 10, weight_quant=W1)

    def forward(self, x):
        h = self.a1(self.b1(self.c1(self.q(x))))
        return self.fc(self.a2(self.b2(self.c2(h)) + h).flatten(1))


def _bad_models():
    """name -> (net, input shape, needle); each names the user's module path."""
    lin = lambda f: (nn.Flatten(), QuantLinear(f, 10, weight_quant=W1))     # noqa: E731
    return {
        "grouped": (bs.Net(_inq(), QuantConv2d(4, 4, 3, groups=2, weight_quant=W1),
                           nn.BatchNorm2d(4), act(), *lin(64)), (1, 4, 6, 6),
                    "layer 'net.1' (Conv): grouped convolution is not supported (groups=2)"),
        "float_layer": (bs.Net(_inq(), QuantConv2d(1, 4, 3, weight_quant=W1),
                               nn.BatchNorm2d(4), act(), nn.Conv2d(4, 4, 3),
                               nn.BatchNorm2d(4), act(), *lin(16)), (1, 1, 6, 6),
                        "layer 'net.4' (Conv): is a float layer"),
        "no_input_quant": (bs.Net(QuantConv2d(1, 4, 3, weight_quant=W1), nn.BatchNorm2d(4),
                                  act(), *lin(64)), (1, 1, 6, 6),
                           "layer 'net.0' (Conv): reads the float input directly: hwgen needs "
                           "an input quantiser: an integer Quant"),
        "avgpool": (bs.Net(_inq(), QuantConv2d(1, 4, 3, weight_quant=W1), nn.BatchNorm2d(4),
                           act(), nn.AvgPool2d(2), *lin(64)), (1, 1, 10, 10),
                    "layer 'net.4' (AveragePool): average pooling is not supported"),
        "multibit_hidden": (bs.Net(_inq(), QuantConv2d(1, 4, 3, weight_quant=W1),
                                   nn.BatchNorm2d(4),
                                   QuantIdentity(act_quant=bs.Int8ActPerTensorFloat,
                                                 bit_width=4), *lin(64)), (1, 1, 6, 6),
                            "layer 'net.3' (Quant): 4-bit hidden activation"),
        "residual": (_Residual(), (1, 1, 6, 6),
                     "layer 'a1' (BipolarQuant): its output feeds 2 nodes (c2, node_add): a "
                     "branch or residual connection is not supported"),
    }


@pytest.fixture(scope="module")
def bad(stock, tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    out = {}
    for k, (net, shape, needle) in _bad_models().items():
        out[k] = (bs.export(net.eval(), shape, d / f"{k}.onnx"), needle)
    out["training_dropout"] = (
        bs.insert_dropout(stock["int4_mlp"], training=True, out=d / "training_dropout.onnx"),
        "node 'hand_dropout' (Dropout): a training-mode Dropout is random at inference")
    m = onnx.load(str(stock["int4_mlp"]))
    q = next(n for n in m.graph.node if n.op_type == "BipolarQuant")      # net.2's weights
    m.graph.initializer.append(numpy_helper.from_array(np.asarray([-0.1], np.float32), "neg"))
    q.input[1] = "neg"
    onnx.save(m, str(d / "negative_scale.onnx"))
    out["negative_scale"] = (d / "negative_scale.onnx",
                             "layer 'net.2' (Gemm): binary weight scale -0.10000000149011612 "
                             "(output channel 0) is not positive")
    return out


@pytest.mark.parametrize("key", ["grouped", "float_layer", "no_input_quant", "avgpool",
                                 "multibit_hidden", "residual", "training_dropout",
                                 "negative_scale"])
def test_refusal_is_one_line_naming_the_layer(bad, tmp_path, capsys, key):
    path, needle = bad[key]
    rc = main(["compile", str(path), "-o", str(tmp_path / "out"), "--no-verilog"])
    err = capsys.readouterr().err.strip().splitlines()
    print(f"\n{key}: {err}")
    assert rc == 2 and len(err) == 1 and needle in err[0], err
    assert path.name in err[0]
    # the exporter's node names appear only where no module path exists
    assert not re.search(r"node '(node_Conv|node__symbolic|node_linear)", err[0]), err
    assert not (tmp_path / "out").exists()


def test_layer_name_falls_back_to_initializers(stock):
    """Without the exporter's scope metadata, the initializer names still give the module
    path (net.2 from net.2.bias or net.2.weight_quant...)."""
    model, _ = fq.load_qonnx(stock["int4_mlp"])
    for n in model.graph.node:
        del n.metadata_props[:]
    g = graph._G(model, "m.onnx")
    gemm = [n for n in model.graph.node if n.op_type == "Gemm"]
    assert [g.layer_name(n) for n in gemm] == ["net.2", "net.5"]
    assert g.where(next(n for n in model.graph.node if n.op_type == "Reshape")).startswith(
        "node '")


# ---------------------------------------------------------------------------- README

def _readme_snippet() -> str:
    text = README.read_text()
    sec = text[text.index("## Bring your Brevitas model"):]
    m = re.search(r"```python\n(.*?)```", sec, re.S)
    assert m, "no python block in the README's Brevitas section"
    return m.group(1)


def test_readme_brevitas_example_compiles(tmp_path, monkeypatch, capsys):
    """The README's example, run as written, exports model.onnx, and hwgen compile accepts
    it and checks it against qonnx."""
    code = _readme_snippet()
    assert len(code.strip().splitlines()) <= 14
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    assert main(["compile", "model.onnx", "-o", "out", "--no-verilog",
                 "--check-images", "256"]) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "check.json").read_text())["ok"]
