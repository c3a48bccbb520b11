"""A layer's input store: a ring of H*W words, written in raster order, read through
fixed window taps (SPEC section 7, "Windows and buffers").

Slot j holds map position (a + j) mod H*W, a the ring's current anchor. A write shifts
one word in at the tail (slot H*W - 1), so after the map's H*W writes, position 0 first,
the ring holds it at home (position 0 at slot 0) whatever its rotation was; a rotation
moves the head round to the tail (a + 1). The walker's window taps are fixed slots:
plain wires, no read address, no write decoder. Both are the same shift with a different
tail word, so the ring is H*W*width flops with one enable and `width` tail muxes.

With two banks (the first MC layer: the next image's prefix writes one ring while the
samples read the other) the writer shifts into ring `wbank` and the walker rotates and
taps ring `rbank`.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .layouts import store_write_signature

__all__ = ["RingStore"]


class RingStore(wiring.Component):
    """The ring store of `positions` words of `width` bits.

    Parameters
    ----------
    positions, width : int
    taps : sequence of int
        The slots the walker reads (kernel position p's word at slot taps[p]).
    banks : 1 or 2

    Ports
    -----
    wr : In(`store_write_signature(width)`)
        Shift a word in at the tail (ring `wbank`).
    rotate : In(1)
        Rotate ring `rbank` by one slot (ignored in a cycle that writes that ring).
    taps : Out(len(taps) * width)
        Ring `rbank`'s words at the tap slots, tap p at bits [p*width, ...).
    fresh : Out(1)
        Ring `rbank`'s rotation is reset to home by what happens in this cycle (a write
        into it, or `rbank` having changed): the walker's position restarts at 0.
    wbank, rbank : In(1)
        Two banks only.
    """

    def __init__(self, positions: int, width: int, taps, banks: int = 1):
        if banks not in (1, 2):
            raise ValueError(f"banks must be 1 or 2, not {banks!r}")
        self.positions, self.width, self.banks = positions, width, banks
        self.slots = tuple(int(t) for t in taps)
        if not all(0 <= t < positions for t in self.slots):
            raise ValueError(f"taps must be slots in [0, {positions}), not {self.slots!r}")
        ports = {"wr": In(store_write_signature(width)), "rotate": In(1),
                 "taps": Out(len(self.slots) * width), "fresh": Out(1)}
        if banks == 2:
            ports.update({"wbank": In(1), "rbank": In(1)})
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        n, wd = self.positions, self.width
        rings = [Signal(n * wd, name=f"ring{b}") for b in range(self.banks)]
        for b, ring in enumerate(rings):
            if self.banks == 1:
                wr_here, turn = self.wr.en, self.rotate
            else:
                wr_here = self.wr.en & (self.wbank == b)
                turn = self.rotate & (self.rbank == b)
            head = ring[:wd]
            with m.If(wr_here | turn):
                m.d.sync += ring.eq(Cat(ring[wd:], Mux(wr_here, self.wr.data, head)))
        def tap(t):
            words = [ring[t * wd:(t + 1) * wd] for ring in rings]
            return words[0] if self.banks == 1 else Mux(self.rbank, words[1], words[0])
        if self.banks == 1:
            m.d.comb += self.fresh.eq(self.wr.en)
        else:
            was = Signal()
            m.d.sync += was.eq(self.rbank)
            m.d.comb += self.fresh.eq((self.wr.en & (self.wbank == self.rbank))
                                      | (was != self.rbank))
        m.d.comb += self.taps.eq(Cat(*(tap(t) for t in self.slots)))
        return m
