"""pack_weights: latent float weights -> packed weight bits (1 = +1, sign(0) = +1)."""

from __future__ import annotations

from ..ir.core import IR, pack_rows, replace

__all__ = ["pack_weights"]


def pack_weights(ir: IR, cfg=None) -> IR:
    layers = tuple(replace(l, weights=pack_rows(l.weight_bits()), latent=None)
                   if l.latent is not None else l for l in ir.layers)
    return replace(ir, layers=layers)
