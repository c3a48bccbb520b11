"""Bit-serial image loader: `img` words into the first layer's activation buffer.

An image is C*H*W bits, flattened (c, y, x), sent as words of `in_w` bits, LSB first, the
last word zero-padded (`image_words` is the software model of that packing). A multi-bit
input is sent as its P bit planes, plane-major, and loaded as a (P*C, H, W) image: the
planes are extra channels (docs/ARCHITECTURE.md s.5). The buffer
holds one C-bit word per spatial position, so image bit b belongs to position b mod H*W,
channel b div H*W: the loader writes one bit per cycle through the buffer's bit-enable
write port, which costs in_w cycles per word but no wide shifter or second buffer.
"""

from __future__ import annotations

import numpy as np
from amaranth import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .controller import buffer_write_signature

__all__ = ["ImageLoader", "image_words"]


def image_words(bits, in_w: int) -> list[int]:
    """One image's bits, flattened (c, y, x), -> the `img` words: bit k*in_w + b at bit b of
    word k, the last word zero-padded (docs/ARCHITECTURE.md s.5)."""
    bits = np.asarray(bits, np.uint8).ravel()
    n = -(-bits.size // in_w)
    padded = np.zeros(n * in_w, np.uint8)
    padded[:bits.size] = bits
    return [int.from_bytes(np.packbits(w, bitorder="little").tobytes(), "little")
            for w in padded.reshape(n, in_w)]


class ImageLoader(wiring.Component):
    """Writes `img` words into a (C, H, W) activation buffer, one bit per cycle.

    Parameters
    ----------
    in_shape : (C, H, W)
    in_w : int
        Image bits per `img` word.

    Ports
    -----
    img : In(stream of in_w bits)
        Ready while no word is being written.
    wr : In(`buffer_write_signature(H*W, C)`)
        The buffer's write port (bit enables: one channel bit per write).
    busy : Out(1)
        A word is being written.
    """

    def __init__(self, in_shape, in_w: int):
        if not (isinstance(in_w, int) and in_w >= 1):
            raise ValueError(f"in_w must be a positive integer, not {in_w!r}")
        self.in_shape, self.in_w = tuple(in_shape), in_w
        c, h, w = self.in_shape
        super().__init__({"img": In(stream.Signature(in_w)),
                          "wr": In(buffer_write_signature(h * w, c)), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        c, h, w = self.in_shape
        hw = h * w
        word = Signal(self.in_w)
        left = Signal(range(self.in_w + 1))            # bits of `word` still to write
        ch = Signal(range(max(c, 2)))
        pos = Signal(range(hw))
        m.d.comb += [self.busy.eq(left.any()), self.img.ready.eq(~left.any()),
                     self.wr.addr.eq(pos), self.wr.data.eq(Cat(*([word[0]] * c))),
                     self.wr.en.eq(Cat(*(left.any() & (ch == i) for i in range(c))))]
        with m.If(self.img.valid & self.img.ready):
            m.d.sync += [word.eq(self.img.payload), left.eq(self.in_w)]
        with m.If(left.any()):
            img_end = (ch == c - 1) & (pos == hw - 1)
            m.d.sync += [word.eq(word >> 1), left.eq(left - 1)]
            with m.If(pos == hw - 1):
                m.d.sync += [pos.eq(0), ch.eq(ch + 1)]
            with m.Else():
                m.d.sync += pos.eq(pos + 1)
            with m.If(img_end):
                m.d.sync += [ch.eq(0), left.eq(0)]     # the rest of the last word is padding
        return m
