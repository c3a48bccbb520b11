"""MTJ-RNG interfaces (SPEC section 6): a bank of them, run in lock step, and their pins.

All interfaces of the bank run the protocol together from one sequencer, so the pins of
interface i are bit i of the `mtj` vectors. One cycle (`go`):

    mtj.reset high for `reset_cycles`, then mtj.write high for `write_cycles`, then
    `sense_gap` cycles with both low; at the end of the last of them keep = NOT mtj.sense
    is latched and offered on the `keep` stream.

`sense_gap` >= 2 leaves a device that switches when its write pulse ends (the MtjArray
model, the LFSR stand-in) one full cycle to show its state before it is latched. The
latched bits wait on the stream (a shadow bank) while the current sample computes with
the bits taken before; the consumer takes them at the sample boundary.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .plan import SENSE_GAP

__all__ = ["MtjPins", "MtjRngBank", "pulse_schedule"]
def pulse_schedule(reset_cycles: int, write_cycles: int, sense_gap: int = SENSE_GAP):
    """Software model: per cycle of one RNG cycle, (mtj_reset, mtj_write, latch)."""
    out = [(1, 0, 0)] * reset_cycles + [(0, 1, 0)] * write_cycles + [(0, 0, 0)] * sense_gap
    out[-1] = (0, 0, 1)
    return out


def MtjPins(n: int, code_w: int) -> wiring.Signature:
    """The pins of `n` MTJ-RNG interfaces, driver side (a device bank takes the flip):
    `reset`, `write` and the write-current `code` (interface i at bits [i*code_w, ...))
    out, `sense` in (1 = AP = drop)."""
    return wiring.Signature({"reset": Out(n), "write": Out(n), "sense": In(n),
                             "code": Out(n * code_w)})


class MtjRngBank(wiring.Component):
    """`n` MTJ-RNG interfaces driven in lock step; their keep bits come out as a stream.

    Parameters
    ----------
    codes : sequence of int
        Write-current code per interface (constant `mtj.code` outputs).
    code_w : int
        Bits per code.
    reset_cycles, write_cycles : int
        Pulse widths in clock cycles.
    sense_gap : int
        Cycles after the write pulse before the sense is latched (>= 2).

    Ports
    -----
    go : In(1)
        Start one reset/write/sense cycle; issue it only while `keep` holds no beat.
    busy : Out(1)
        A cycle is under way.
    keep : Out(stream of n bits)
        One beat per cycle: the keep bits (1 = keep), valid from the latch until taken.
    mtj : Out(MtjPins(n, code_w))
        The device pins.
    """

    def __init__(self, codes, code_w: int, reset_cycles: int, write_cycles: int,
                 sense_gap: int = 2):
        codes = [int(c) for c in codes]
        if not codes:
            raise ValueError("an MTJ-RNG bank needs at least one interface")
        for name, v, lo in (("reset_cycles", reset_cycles, 1), ("write_cycles", write_cycles, 1),
                            ("sense_gap", sense_gap, 2)):
            if not (isinstance(v, int) and v >= lo):
                raise ValueError(f"{name} must be an integer >= {lo}, not {v!r}")
        if any(not 0 <= c < 2 ** code_w for c in codes):
            raise ValueError(f"codes must fit in {code_w} bits, not {codes!r}")
        self.codes, self.code_w = codes, code_w
        self.reset_cycles, self.write_cycles, self.sense_gap = reset_cycles, write_cycles, sense_gap
        n = len(codes)
        super().__init__({"go": In(1), "busy": Out(1), "keep": Out(stream.Signature(n)),
                          "mtj": Out(MtjPins(n, code_w))})

    def elaborate(self, platform):
        m = Module()
        n = len(self.codes)
        pins, keep = self.mtj, self.keep
        total = self.reset_cycles + self.write_cycles + self.sense_gap
        step = Signal(range(total))
        in_reset = Signal()
        in_write = Signal()
        m.d.comb += [
            pins.code.eq(Cat(*(Const(c, self.code_w) for c in self.codes))),
            in_reset.eq(self.busy & (step < self.reset_cycles)),
            in_write.eq(self.busy & (step >= self.reset_cycles)
                        & (step < self.reset_cycles + self.write_cycles)),
            pins.reset.eq(Cat(*([in_reset] * n))),
            pins.write.eq(Cat(*([in_write] * n))),
        ]
        with m.If(self.busy):
            m.d.sync += step.eq(step + 1)
            with m.If(step == total - 1):
                m.d.sync += [self.busy.eq(0), step.eq(0), keep.payload.eq(~pins.sense),
                             keep.valid.eq(1)]
        with m.If(self.go):
            m.d.sync += self.busy.eq(1)
        with m.If(keep.valid & keep.ready):
            m.d.sync += keep.valid.eq(0)
        return m
