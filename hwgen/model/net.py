"""Binary CNN layers, dropout sites and the network (SPEC sections 1-5, docs/SPEC.md).

Values are +1/-1 with sign(0) = +1. Each binary layer is followed by batch norm; all
but the last are followed by sign and, optionally, a max-pool (OR of bits). A dropout
site sits on the input of every binary layer except the first (when dropout is on).

A site's keep mask has one bit per *group* (see `site_groups`):
  spatial: one group per input channel of the layer-as-conv (a conv's input channel,
           a feature map before a flatten-fed linear, a neuron before a linear-fed linear)
  element: one group per crossbar row (c, ky, kx), shared by every window of the image.

Inverted-dropout scaling is off by default (arch["dropout"]["scale"] = False): batch
norm follows every binary layer and dropout stays on at inference (MC mode), so a
constant scale would only be absorbed by the batch-norm statistics; leaving it out
keeps the pre-norm value an exact integer. With scale = True the kept inputs are
multiplied by 1/(1-p), and the compiler folds that into the thresholds.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ir.core import site_groups as core_site_groups

from .spec import layer_plan

__all__ = ["SignSTE", "sign", "BinaryConv2d", "BinaryLinear", "BinaryNet", "site_groups",
           "make_arch", "BN_EPS"]

BN_EPS = 1e-5


class SignSTE(torch.autograd.Function):
    """sign with sign(0) = +1; straight-through gradient, passed only where |x| <= 1."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


def sign(x: torch.Tensor) -> torch.Tensor:
    return SignSTE.apply(x)


class BinaryConv2d(nn.Conv2d):
    """Conv with sign(latent weight) in the forward pass; no bias (batch norm follows)."""

    def forward(self, x, row_mask=None):
        wb = sign(self.weight)
        if row_mask is None:
            return F.conv2d(x, wb, None, self.stride, self.padding)
        # Element dropout: a per-image keep bit per row (c, ky, kx), shared by all windows,
        # i.e. conv(x, W * m) with a different m per image. One grouped conv (a group per
        # image) does that, much faster than im2col + einsum on the CPU (docs/BENCHMARKS.md).
        n, c, h, w = x.shape
        o = wb.shape[0]
        wm = (wb.flatten(1)[None] * row_mask[:, None, :].to(wb.dtype)).reshape(n * o, *wb.shape[1:])
        out = F.conv2d(x.reshape(1, n * c, h, w), wm, None, self.stride, self.padding, groups=n)
        return out.reshape(n, o, *out.shape[2:])


class BinaryLinear(nn.Linear):
    """Linear with sign(latent weight); no bias (batch norm follows)."""

    def forward(self, x):
        return F.linear(x, sign(self.weight))


def site_groups(layer: dict, kind: str) -> tuple[int, int]:
    """(n_groups, rows per group) of the dropout site on a layer-plan entry's input
    (hwgen.ir.core.site_groups: one definition for the model, the IR and the cost)."""
    return core_site_groups(kind, layer["in_shape"], layer["kernel"])


def input_arch(mode: str = "binary", theta: float = 0.5) -> dict:
    """model.pt["arch"]["input"] of a command-line input mode: 'binary' (bit = pixel >=
    theta) or 'bitserial-n' (q = rint(pixel * (2**n - 1)), n in 2..16; SPEC section 3)."""
    if mode == "binary":
        if not 0.0 < theta <= 1.0:
            raise ValueError(f"input threshold theta must be in (0, 1], not {theta!r}")
        return {"mode": "binary", "theta": float(theta)}
    n = mode.removeprefix("bitserial-")
    if not (mode.startswith("bitserial-") and n.isdigit() and 2 <= int(n) <= 16):
        raise ValueError(f"input mode must be binary or bitserial-n (n in 2..16), not {mode!r}")
    return {"mode": "bitserial", "bits": int(n)}


def make_arch(spec: str, in_shape, dropout: str = "spatial", p: float = 0.2,
              scale: bool = False, theta: float = 0.5, input_mode: str = "binary") -> dict:
    """The architecture as plain data, as stored in model.pt["arch"]."""
    if dropout not in ("none", "element", "spatial"):
        raise ValueError(f"dropout must be one of none, element, spatial, not {dropout!r}")
    if not (isinstance(p, (int, float)) and 0.0 <= p < 1.0) or (dropout != "none" and p <= 0):
        raise ValueError(f"dropout probability must be in (0, 1), not {p!r}")
    return {
        "spec": spec,
        "in_shape": [int(v) for v in in_shape],
        "input": input_arch(input_mode, theta),
        "dropout": {"kind": dropout, "p": float(p) if dropout != "none" else 0.0,
                    "scale": bool(scale)},
        "bn_eps": BN_EPS,
        "layers": layer_plan(spec, in_shape),
    }


class BinaryNet(nn.Module):
    """The binary CNN of an arch dict (see `make_arch`).

    Parameters live in `blocks[i].layer.weight` and `blocks[i].bn.*` for binary layer i.

    forward(x, masks=None, trace=False):
      x      float images [N, C, H, W] in [0, 1]; binary input: (x >= theta) -> +1/-1;
             bitserial-n: q = rint(x * (2**n - 1)) in float32, 0..2**n - 1, which the
             first conv sees as is (its n bit-plane passes, shift-added, are q . w).
      masks  None, or one keep tensor per site, [N, n_groups] of 0/1. Without masks,
             dropout (when active: training, or `mc = True`) draws its own keep bits
             from torch's generator, once per image.
      trace  also return, per binary layer, {"acc": pre-norm value, "y": post-norm
             value, "out": the layer's output (+1/-1 after sign and pool, or logits)}.
    Returns logits [N, classes] (and the trace).
    """

    def __init__(self, arch: dict):
        super().__init__()
        self.arch = arch
        self.plan = arch["layers"]
        self.kind = arch["dropout"]["kind"]
        self.p = arch["dropout"]["p"]
        self.scale = arch["dropout"]["scale"]
        self.input = arch["input"]
        self.mc = False
        eps = arch.get("bn_eps", BN_EPS)
        blocks = []
        for layer in self.plan:
            blk = nn.Module()
            c = layer["in_shape"][0]
            o = layer["out_channels"]
            if layer["op"] == "conv":
                blk.layer = BinaryConv2d(c, o, tuple(layer["kernel"]), padding=tuple(layer["pad"]),
                                         stride=tuple(layer.get("stride", (1, 1))), bias=False)
                blk.bn = nn.BatchNorm2d(o, eps=eps)
            else:
                blk.layer = BinaryLinear(c * layer["in_shape"][1] * layer["in_shape"][2], o,
                                         bias=False)
                blk.bn = nn.BatchNorm1d(o, eps=eps)
            blocks.append(blk)
        self.blocks = nn.ModuleList(blocks)

    @property
    def sites(self) -> list[dict]:
        """Dropout sites in network order: layer index, kind, p, n_groups, group_rows."""
        if self.kind == "none":
            return []
        out = []
        for i, layer in enumerate(self.plan):
            if layer.get("site", i > 0):
                g, r = site_groups(layer, self.kind)
                out.append(dict(layer=i, kind=self.kind, p=self.p, n_groups=g, group_rows=r))
        return out

    def draw_masks(self, n: int, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """Keep bits for n (image, sample) pairs: one [n, n_groups] tensor per site."""
        return [(torch.rand(n, s["n_groups"], generator=generator) >= self.p).float()
                for s in self.sites]

    def binarize(self, x: torch.Tensor) -> torch.Tensor:
        """The first layer's input: +-1 (binary) or the integer q (bitserial-n), float32."""
        if self.input["mode"] == "binary":
            return torch.where(x >= self.input["theta"], 1.0, -1.0)
        hi = float((1 << self.input["bits"]) - 1)
        return torch.clamp(torch.round(x.float() * hi), 0.0, hi)

    def forward(self, x, masks=None, trace=False):
        active = self.kind != "none" and (self.training or self.mc)
        if masks is None and active:
            masks = self.draw_masks(x.shape[0])
        if masks is not None and len(masks) != len(self.sites):
            raise ValueError(f"expected {len(self.sites)} site masks, got {len(masks)}")
        h = self.binarize(x)
        records = []
        site_of = {s["layer"]: k for k, s in enumerate(self.sites)}
        for i, (layer, blk) in enumerate(zip(self.plan, self.blocks)):
            k = site_of.get(i)
            m = masks[k].to(h.dtype) if (masks is not None and k is not None) else None
            if layer["op"] == "linear":
                h = h.flatten(1)
            if m is not None and self.scale:
                h = h / (1.0 - self.p)
            if m is None:
                acc = blk.layer(h)
            elif layer["op"] == "conv" and self.kind == "element":
                acc = blk.layer(h, row_mask=m)
            elif layer["op"] == "conv":
                acc = blk.layer(h * m[:, :, None, None])
            else:
                rows = layer["kernel"][0] * layer["kernel"][1] if self.kind == "spatial" else 1
                acc = blk.layer(h * m.repeat_interleave(rows, dim=1))
            y = blk.bn(acc)
            if i + 1 < len(self.plan):
                # sign is monotone, so sign(maxpool(y)) == maxpool(sign(y)) (the OR of the
                # bits) value for value; pooling first sends the gradient to the window's
                # largest y instead of to the first of many tied +1/-1 values.
                if layer["pool"] > 1:
                    y_pool = F.max_pool2d(y, layer["pool"],
                                          layer.get("pool_stride", layer["pool"]))
                    h = sign(y_pool)
                else:
                    h = sign(y)
            else:
                h = y
            if trace:
                records.append({"acc": acc, "y": y, "out": h})
        return (h, records) if trace else h
