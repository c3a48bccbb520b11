"""What a layer's streams carry: store writes, the window tag, column sums, class beats, and
the word-line order the tiles store their rows in (hwgen.hw.controller composes them)."""

from __future__ import annotations

import numpy as np
from amaranth import signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import Out

from ..ir.core import Layer
from .plan import ReadPlan
from .tile import beat_layout

__all__ = ["store_write_signature", "window_tag", "sums_layout", "class_layout",
           "wordline_order", "check_plane_weights"]


def store_write_signature(width: int) -> wiring.Signature:
    """Writes into a layer's input store (`hwgen.hw.store.RingStore`), writer side: with
    `en`, the word `data` is shifted in at the ring's tail. The writer sends the map's
    words in raster order, position 0 first; there is no address."""
    return wiring.Signature({"data": Out(width), "en": Out(1)})


def window_tag(planes: bool = False) -> data.StructLayout:
    """What a window's request carries to its beats, for the sink in raster order: the
    window is the first / last of its pool block's row of windows (`xfirst`, `xlast`) and
    in the first / last row of its block (`yfirst`, `ylast`), and the layer's final
    window. A bit-plane layer (`planes`) adds its pass's first / last plane flags after
    them, so the window fields keep their offsets and `PlaneAccumulator` drops the plane
    flags by truncation."""
    fields = {"xfirst": 1, "xlast": 1, "yfirst": 1, "ylast": 1, "final": 1}
    if planes:
        fields.update({"pfirst": 1, "plast": 1})
    return data.StructLayout(fields)


def sums_layout(layer: Layer, plan: ReadPlan, bound: int | None = None,
                planes: bool = False) -> data.StructLayout:
    """One beat of a layer's column sums, as one tile of all its rows would give it:
    column split ci's lanes at [sum(lanes[:ci]), ...), each summed over the row splits.
    Each sum holds [-bound, bound] (default: the rows); `planes` adds the plane flags to
    the tag (see `window_tag`)."""
    return beat_layout(layer.rows if bound is None else bound, sum(plan.lanes), plan.beats,
                       window_tag(planes).size)


def check_plane_weights(weights) -> tuple[int, ...]:
    """The plane weights of a multi-bit input, LSB plane first: 2**k, the last one
    possibly negative (two's complement). The accumulator runs Horner's rule from the
    MSB plane, so no other weights are supported."""
    w = tuple(int(v) for v in weights)
    n = len(w)
    if not n or w[:-1] != tuple(1 << k for k in range(n - 1)) or abs(w[-1]) != 1 << (n - 1):
        raise ValueError(f"plane weights must be 1, 2, ..., +-2**(P-1), not {w!r}")
    return w


def class_layout(classes: int, acc_w: int) -> data.StructLayout:
    """The classifier's `out` beat: the sample index and every class's signed sum."""
    return data.StructLayout({"sample": 16, "acc": data.ArrayLayout(signed(acc_w), classes)})


def wordline_order(layer: Layer) -> np.ndarray:
    """The IR row on each word line of a layer's crossbar: word line p*C + c carries IR
    row c*kh*kw + p (rows are (c, ky, kx), channel-major; word lines (ky, kx, c),
    position-major, the order of the input store's words). Column sums are sums over
    rows, so the order changes no result, only which row split holds which rows."""
    c = layer.in_shape[0]
    kk = layer.kernel[0] * layer.kernel[1]
    return np.arange(c * kk).reshape(c, kk).T.ravel()
