"""Helpers for the IR tests: small random binary networks built in code (no training)."""

from __future__ import annotations

import numpy as np
import torch

from hwgen.frontend import build_ir
from hwgen.model.net import BinaryNet, make_arch


def random_net(spec: str, in_shape, kind: str = "spatial", p: float = 0.3,
               scale: bool = False, seed: int = 0) -> BinaryNet:
    """A BinaryNet with random latent weights (a few exact +-0.0) and batch-norm statistics
    that put thresholds inside the reachable acc range, including gain 0 (channel 0) and
    negative gains (channel 1 and others)."""
    g = torch.Generator().manual_seed(seed)
    m = BinaryNet(make_arch(spec, in_shape, kind, p if kind != "none" else 0.0, scale))
    with torch.no_grad():
        for blk in m.blocks:
            w = blk.layer.weight
            w.copy_(torch.randn(w.shape, generator=g))
            flat = w.view(-1)
            flat[:: 7] = 0.0                       # sign(0) = +1
            flat[3:: 11] = -0.0
            o = w.shape[0]
            rows = w[0].numel()
            bn = blk.bn
            bn.running_mean.copy_((torch.rand(o, generator=g) * 2 - 1) * rows ** 0.5)
            bn.running_var.copy_(torch.rand(o, generator=g) * rows + 0.1)
            bn.weight.copy_(torch.rand(o, generator=g) * 2 - 1)
            bn.bias.copy_((torch.rand(o, generator=g) * 2 - 1) * 0.5)
            bn.weight[0] = 0.0
            if o > 1:
                bn.weight[1] = -abs(float(bn.weight[1])) - 0.1
    m.eval()
    return m


def initial_ir(model: BinaryNet, dataset: str | None = None):
    return build_ir({"arch": model.arch, "state_dict": model.state_dict(),
                     "meta": {"dataset": dataset} if dataset else {}})


def random_masks(ir, n: int, t: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.random((n, t, s.n_groups)) >= s.p).astype(np.uint8) for s in ir.sites]


def random_images(in_shape, n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand((n,) + tuple(in_shape), generator=torch.Generator().manual_seed(seed))
