"""tile: split every layer onto R x C crossbars. Rows are (c, ky, kx) channel-major, so a
row split may cut a dropout group or a kernel: the group's gate then drives its rows in
every tile they land in, and the partial sums of a row split are added before the
threshold. No split changes a result."""

from __future__ import annotations

from ..config import parse_tile
from ..ir.core import IR, replace

__all__ = ["parse_tile", "tile"]


def tile(ir: IR, cfg) -> IR:
    r, c = parse_tile(cfg.tile)
    return replace(ir, layers=tuple(replace(l, tile=(r, c)) for l in ir.layers))
