"""MTJ-RNG interfaces (DESIGN s. 6) and the keep-bit bank.

All interfaces run the protocol in lock step from one sequencer, so the pins of interface i
are bit i of the `mtj_*` vectors. One cycle (`go`):

    mtj_reset high for `reset_cycles`, then mtj_write high for `write_cycles`, then
    `sense_gap` cycles with both low; at the end of the last of them keep = NOT mtj_sense
    is latched into the shadow bank.

`sense_gap` >= 2 leaves a device that switches when its write pulse ends (the MtjArray
model, the LFSR stand-in) one full cycle to show its state before it is latched. The
shadow bank is filled for sample t+1 while sample t computes and copied into the active
bank (`keep`) by `swap` at the sample boundary.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["MtjRngInterface", "pulse_schedule"]


def pulse_schedule(reset_cycles: int, write_cycles: int, sense_gap: int = 2):
    """Software model: per cycle of one RNG cycle, (mtj_reset, mtj_write, latch)."""
    out = [(1, 0, 0)] * reset_cycles + [(0, 1, 0)] * write_cycles + [(0, 0, 0)] * sense_gap
    out[-1] = (0, 0, 1)
    return out


class MtjRngInterface(wiring.Component):
    """`n` MTJ-RNG interfaces driven in lock step, with shadow and active keep banks.

    Parameters
    ----------
    codes : sequence of int
        Write-current code per interface (constant `mtj_code` outputs).
    code_w : int
        Bits per code.
    reset_cycles, write_cycles : int
        Pulse widths in clock cycles.
    sense_gap : int
        Cycles after the write pulse before the sense is latched (>= 2).

    Ports
    -----
    go : In(1)       start one reset/write/sense cycle into the shadow bank
    busy : Out(1)    a cycle is under way
    fresh : Out(1)   the shadow bank holds bits not yet swapped in
    swap : In(1)     active <= shadow (clears `fresh`)
    keep : Out(n)    active bank, 1 = keep
    mtj_reset, mtj_write : Out(n); mtj_sense : In(n) (1 = AP = drop); mtj_code : Out(n*code_w)
    """

    def __init__(self, codes, code_w: int, reset_cycles: int, write_cycles: int,
                 sense_gap: int = 2):
        codes = [int(c) for c in codes]
        if not codes:
            raise ValueError("an MTJ-RNG interface bank needs at least one interface")
        for name, v, lo in (("reset_cycles", reset_cycles, 1), ("write_cycles", write_cycles, 1),
                            ("sense_gap", sense_gap, 2)):
            if not (isinstance(v, int) and v >= lo):
                raise ValueError(f"{name} must be an integer >= {lo}, not {v!r}")
        if any(not 0 <= c < 2 ** code_w for c in codes):
            raise ValueError(f"codes must fit in {code_w} bits, not {codes!r}")
        self.codes, self.code_w = codes, code_w
        self.reset_cycles, self.write_cycles, self.sense_gap = reset_cycles, write_cycles, sense_gap
        n = len(codes)
        super().__init__({
            "go": In(1), "busy": Out(1), "fresh": Out(1), "swap": In(1), "keep": Out(n),
            "mtj_reset": Out(n), "mtj_write": Out(n), "mtj_sense": In(n),
            "mtj_code": Out(n * code_w),
        })

    def elaborate(self, platform):
        m = Module()
        n = len(self.codes)
        total = self.reset_cycles + self.write_cycles + self.sense_gap
        step = Signal(range(total))
        shadow = Signal(n)
        in_reset = Signal()
        in_write = Signal()
        m.d.comb += [
            self.mtj_code.eq(Cat(*(Const(c, self.code_w) for c in self.codes))),
            in_reset.eq(self.busy & (step < self.reset_cycles)),
            in_write.eq(self.busy & (step >= self.reset_cycles)
                        & (step < self.reset_cycles + self.write_cycles)),
            self.mtj_reset.eq(Cat(*([in_reset] * n))),
            self.mtj_write.eq(Cat(*([in_write] * n))),
        ]
        with m.If(self.busy):
            m.d.sync += step.eq(step + 1)
            with m.If(step == total - 1):
                m.d.sync += [self.busy.eq(0), step.eq(0), shadow.eq(~self.mtj_sense),
                             self.fresh.eq(1)]
        with m.If(self.go):
            m.d.sync += self.busy.eq(1)
        with m.If(self.swap):
            m.d.sync += [self.keep.eq(shadow), self.fresh.eq(0)]
        return m
