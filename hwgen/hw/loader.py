"""Bit-serial image loader: `img` words into the first layer's ring store.

An image is sent position-major (docs/ARCHITECTURE.md s.5): position by position in raster
order, each position's P*C bits contiguous (plane k, channel c at bit k*C + c; P = 1 for a
binary input), as words of `in_w` bits, LSB first, the last word zero-padded
(`image_words` is the software model of that packing). The loader takes one bit per
cycle into a P*C-bit word and, with each position's last bit, shifts the word into the
store: no address, no bit enables, and the store's words arrive in the raster order its
ring needs.
"""

from __future__ import annotations

import numpy as np
from amaranth import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .layouts import store_write_signature

__all__ = ["ImageLoader", "image_words"]


def image_words(bits, in_w: int) -> list[int]:
    """One image's input bits -> the `img` words, position-major.

    Parameters
    ----------
    bits : array [P, C, H, W] or [C, H, W] of 0/1
        The image's bit planes (`hwgen.ir.interp.input_bits` of one image); a 1-D array
        is one channel of positions.
    in_w : int

    Returns
    -------
    list of int
        Bit k*in_w + b of the stream at bit b of word k, the last word zero-padded; the
        stream is position q's P*C bits (plane k channel c at bit k*C + c) for q = 0, 1,
        ... in raster order.
    """
    bits = np.asarray(bits, np.uint8)
    hw = int(np.prod(bits.shape[-2:])) if bits.ndim >= 2 else bits.size
    stream_ = bits.reshape(-1, hw).T.ravel()
    n = -(-stream_.size // in_w)
    padded = np.zeros(n * in_w, np.uint8)
    padded[:stream_.size] = stream_
    return [int.from_bytes(np.packbits(w, bitorder="little").tobytes(), "little")
            for w in padded.reshape(n, in_w)]


class ImageLoader(wiring.Component):
    """Shifts `img` words into an H*W-position store of C-bit words, one bit per cycle.

    Parameters
    ----------
    in_shape : (C, H, W)
        C: the bits per position (P*C for a multi-bit input).
    in_w : int
        Image bits per `img` word.

    Ports
    -----
    img : In(stream of in_w bits)
        Ready while no word is being taken apart.
    wr : Out(`store_write_signature(C)`)
        One word per position, raster order.
    busy : Out(1)
        A word is being taken apart.
    """

    def __init__(self, in_shape, in_w: int):
        if not (isinstance(in_w, int) and in_w >= 1):
            raise ValueError(f"in_w must be a positive integer, not {in_w!r}")
        self.in_shape, self.in_w = tuple(in_shape), in_w
        c, h, w = self.in_shape
        super().__init__({"img": In(stream.Signature(in_w)),
                          "wr": Out(store_write_signature(c)), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        c, h, w = self.in_shape
        hw = h * w
        word = Signal(self.in_w)
        left = Signal(range(self.in_w + 1))            # bits of `word` still to take
        ch = Signal(range(max(c, 2)))                  # bit of the position's word
        pos = Signal(range(max(hw, 2)))
        got = Signal(max(c - 1, 1))                    # the position's bits so far
        busy = Signal()
        pos_end = ch == c - 1
        m.d.comb += [busy.eq(left.any()), self.busy.eq(busy), self.img.ready.eq(~busy),
                     self.wr.data.eq(Cat(got[:c - 1], word[0]) if c > 1 else word[0]),
                     self.wr.en.eq(busy & pos_end)]
        with m.If(self.img.valid & self.img.ready):
            m.d.sync += [word.eq(self.img.payload), left.eq(self.in_w)]
        with m.If(busy):
            m.d.sync += [word.eq(word >> 1), left.eq(left - 1)]
            if c > 1:
                m.d.sync += got.eq(Cat(got[1:], word[0]) if c > 2 else word[0])
            with m.If(pos_end):
                m.d.sync += ch.eq(0)
                with m.If(pos == hw - 1):
                    m.d.sync += [pos.eq(0), left.eq(0)]    # the rest of the word is padding
                with m.Else():
                    m.d.sync += pos.eq(pos + 1)
            with m.Else():
                m.d.sync += ch.eq(ch + 1)
        return m
