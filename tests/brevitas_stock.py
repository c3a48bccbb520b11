"""Binary models as a Brevitas user writes them, with Brevitas' own quantisers (shared by
tests/test_brevitas_stock.py and the README's example): `QuantConv2d` / `QuantLinear` with
their default `bias=True`, `SignedBinaryWeightPerTensorConst` (scale 0.1), a per-channel
binary weight scale, float-scale `Int8ActPerTensorFloat` / `Uint8ActPerTensorFloat` input
quantisers, a final Softmax or LogSoftmax.

Batch-norm statistics are set from each batch norm's own input on seeded images (mean
and spread of the batch), so that the channels' crossings fall inside the range the
accumulators reach; one channel has gain 0 (constant) and one a negative gain.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
import torch.nn as nn
from brevitas.export import export_qonnx
from brevitas.inject.enum import ScalingImplType, StatsOp
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from brevitas.quant import (Int8ActPerTensorFloat, SignedBinaryActPerTensorConst,
                            SignedBinaryWeightPerTensorConst, Uint8ActPerTensorFloat)
from onnx import helper, numpy_helper


class BinaryWeightPerChannel(SignedBinaryWeightPerTensorConst):
    """XNOR-Net style binary weights: sign(w) times the per-output-channel mean |w|."""
    scaling_impl_type = ScalingImplType.STATS
    scaling_stats_op = StatsOp.AVE
    scaling_per_output_channel = True


def _act():
    return QuantIdentity(act_quant=SignedBinaryActPerTensorConst)


def _set_input_scale(q: QuantIdentity, top: float) -> None:
    """A learned input range, as calibration or training leaves it: Brevitas' scale is then
    top / 2^(bits-1) (signed) or top / (2^bits - 1) (unsigned), a float, not 2^-k."""
    impl = q.act_quant.fused_activation_quant_proxy.tensor_quant.scaling_impl
    impl.value.data.fill_(top)
    impl.buffer.fill_(top)          # what eval mode reads before any statistics are taken


class Net(nn.Module):
    """`self.net` holds the layers, so the initializers carry module paths like net.1.bias."""

    def __init__(self, *layers, pre=None):
        super().__init__()
        self.net = nn.Sequential(*layers)
        self.pre = pre

    def forward(self, x):
        return self.net(x if self.pre is None else self.pre(x))


def _randomise(net: Net, in_shape, seed: int) -> Net:
    """Random latent weights and biases; each batch norm's statistics from its own input."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, (QuantConv2d, QuantLinear)):
            m.weight.data = torch.randn(m.weight.shape, generator=g)
            if m.bias is not None:
                m.bias.data = torch.randn(m.bias.shape, generator=g) * 0.3
    x = torch.rand((64,) + tuple(in_shape), generator=g)
    bns = [m for m in net.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    for bn in bns:
        seen = []
        h = bn.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach()))
        net.eval()
        with torch.no_grad():
            net(x)
        h.remove()
        v = seen[0].transpose(0, 1).reshape(bn.num_features, -1)
        mu, sd = v.mean(1), v.std(1) + 1e-3
        o = bn.num_features
        gain = torch.randn(o, generator=g)
        gain[0] = 0.0
        gain[1] = -gain[1].abs() - 0.1
        bn.weight.data = gain
        bn.bias.data = torch.randn(o, generator=g) * 0.2
        bn.running_mean.copy_(mu + torch.randn(o, generator=g) * 0.5 * sd)
        bn.running_var.copy_(sd ** 2 * (torch.rand(o, generator=g) + 0.5))
    return net.eval()


def bias_int8_logsoftmax(seed: int = 0) -> tuple[Net, tuple]:
    """Biases everywhere, `SignedBinaryWeightPerTensorConst` (0.1), a float-scale int8 input
    after a shift to [-1, 1], a max-pool, a final LogSoftmax. Input 1x10x10."""
    inq = QuantIdentity(act_quant=Int8ActPerTensorFloat)
    _set_input_scale(inq, 1.37)
    wq = dict(weight_quant=SignedBinaryWeightPerTensorConst)
    net = Net(inq,
              QuantConv2d(1, 4, 3, **wq), nn.BatchNorm2d(4), _act(), nn.MaxPool2d(2),
              QuantConv2d(4, 6, 3, **wq), nn.BatchNorm2d(6), _act(), nn.Flatten(),
              QuantLinear(24, 10, **wq), nn.LogSoftmax(dim=1),
              pre=lambda x: 2.0 * x - 1.0)
    return _randomise(net, (1, 10, 10), seed), (1, 1, 10, 10)


def perchannel_uint8_softmax(seed: int = 1) -> tuple[Net, tuple]:
    """A per-channel binary weight scale, a float-scale uint8 input, a padded conv, biases,
    a final Softmax. Input 1x6x6."""
    inq = QuantIdentity(act_quant=Uint8ActPerTensorFloat)
    _set_input_scale(inq, 1.2)
    wq = dict(weight_quant=BinaryWeightPerChannel)
    net = Net(inq,
              QuantConv2d(1, 4, 3, padding=1, **wq), nn.BatchNorm2d(4), _act(),
              QuantConv2d(4, 5, 3, **wq), nn.BatchNorm2d(5), _act(), nn.Flatten(),
              QuantLinear(80, 10, **wq), nn.Softmax(dim=1))
    return _randomise(net, (1, 6, 6), seed), (1, 1, 6, 6)


def int4_mlp(seed: int = 4, signed: bool = True) -> tuple[Net, tuple]:
    """A 4-bit float-scale input (clipping at the top), an MLP with biases, scale 0.1."""
    inq = QuantIdentity(act_quant=Int8ActPerTensorFloat if signed else Uint8ActPerTensorFloat,
                        bit_width=4)
    _set_input_scale(inq, 0.9)
    wq = dict(weight_quant=SignedBinaryWeightPerTensorConst)
    net = Net(inq, nn.Flatten(),
              QuantLinear(64, 16, **wq), nn.BatchNorm1d(16), _act(),
              QuantLinear(16, 10, **wq))
    return _randomise(net, (1, 8, 8), seed), (1, 1, 8, 8)


def tied_scale01(seed: int = 0) -> tuple[Net, tuple]:
    """Scale 0.1 and no bias on a small classifier (64 rows): equal class integers are
    common, and the graph's float32 logits break those ties by rounding. Input 1x6x6,
    Brevitas' default int8 input quantiser (scale 2^-7)."""
    wq = dict(weight_quant=SignedBinaryWeightPerTensorConst, bias=False)
    net = Net(QuantIdentity(act_quant=Int8ActPerTensorFloat),
              QuantConv2d(1, 4, 3, **wq), nn.BatchNorm2d(4), _act(), nn.Flatten(),
              QuantLinear(64, 10, **wq))
    return _randomise(net, (1, 6, 6), seed), (1, 1, 6, 6)


def export(net: nn.Module, shape, path):
    """Brevitas' export_qonnx, as a user runs it."""
    export_qonnx(net, input_t=torch.rand(shape), export_path=str(path))
    return path


def insert_dropout(path, after_op: str = "BatchNormalization", training=None, out=None):
    """A hand-inserted ONNX Dropout after the first `after_op` node (ratio 0.2): inference
    mode (no training_mode input) unless `training` is given."""
    m = onnx.load(str(path))
    n = next(n for n in m.graph.node if n.op_type == after_op)
    t = n.output[0]
    n.output[0] = t + "_pre_dropout"
    ins = [t + "_pre_dropout", "dropout_ratio"]
    m.graph.initializer.append(numpy_helper.from_array(np.asarray(0.2, np.float32),
                                                       "dropout_ratio"))
    if training is not None:
        m.graph.initializer.append(numpy_helper.from_array(np.asarray(training),
                                                           "dropout_training"))
        ins.append("dropout_training")
    m.graph.node.insert(list(m.graph.node).index(n) + 1,
                        helper.make_node("Dropout", ins, [t], name="hand_dropout"))
    out = path if out is None else out
    onnx.save(m, str(out))
    return out
