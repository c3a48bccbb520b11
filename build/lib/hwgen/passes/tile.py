"""tile: split every layer onto R x C crossbars. Rows are (c, ky, kx) channel-major, so a
row split may cut a dropout group or a kernel: the group's gate then drives its rows in
every tile they land in, and the partial sums of a row split are added before the
threshold. No split changes a result."""

from __future__ import annotations

import re

from ..errors import HwgenError
from ..ir.core import IR, replace

__all__ = ["parse_tile", "tile"]

_TILE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_tile(text) -> tuple[int, int]:
    """'RxC' -> (R, C); HwgenError naming the value unless both are integers >= 1."""
    if isinstance(text, tuple) and len(text) == 2 and all(type(v) is int for v in text):
        r, c = text
    else:
        m = _TILE.match(str(text))
        if m is None:
            raise HwgenError(f"--tile must be RxC with integers R, C >= 1, not {text!r}")
        r, c = int(m[1]), int(m[2])
    if r < 1 or c < 1:
        raise HwgenError(f"--tile must be RxC with integers R, C >= 1, not {text!r}")
    return r, c


def tile(ir: IR, cfg) -> IR:
    r, c = parse_tile(cfg.tile)
    return replace(ir, layers=tuple(replace(l, tile=(r, c)) for l in ir.layers))
