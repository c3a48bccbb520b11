"""LFSR stand-in for an MTJ on an FPGA: same pins, a reproducible switching sequence.

The device holds a 32-bit Galois LFSR (polynomial x^32 + x^22 + x^2 + x + 1, maximal
length: period 2^32 - 1). Each write pulse consumes one draw, also when the device cannot
switch, like `hwgen.device.MtjArray`: draw k is the state `LEAP` * k = 16k steps from the
seed, and when `write` falls a device that was reset since its last write switches to AP
iff the top 16 bits of the draw are below its threshold.

The register holds the next draw's state from reset on (the seed leapt once), and after
each falling `write` it leaps to the following one in `LEAP // STEP` = 4 cycles of
`STEP` = 4 steps (the fall's cycle included): a 4-step leap is a few XORs per bit, where a
16-step one in a cycle was most of the iCEBreaker's stand-in logic (about 2,100 LUT4s for
the digits demo's 32 devices). Two falls are at least an MTJ-RNG cycle apart
(`hwgen.hw.plan.rng_period` >= 5: a reset and a write pulse of one cycle at least, and
the 2-cycle sense gap), so the leap is always done by the next one.

The threshold comes from the device curve:
`threshold(params, code, write_ns) = round(p_switch(code, write_ns) * 2^16)`, built in for
the codes the device is given, so the realised p is threshold / 2^16 (the state is never
zero, which shifts it by less than 2^-32). A code it was not built for never switches.

`LfsrMtjBank` is the bank of stand-ins the FPGA flow and the tests wire to an
`hwgen.hw.rng.MtjRngBank`'s pins. `LfsrMtjModel` (`LfsrMtjBank.model()`) reproduces the
devices exactly: `generate(seed)` yields the state sequence.
"""

from __future__ import annotations

import numpy as np
from amaranth import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .rng import MtjPins

__all__ = ["WIDTH", "MASK", "LEAP", "STEP", "step", "leap", "generate", "threshold", "realised_p", "below",
           "Lfsr", "LfsrMtj", "LfsrMtjBank", "LfsrMtjModel"]

WIDTH = 32
MASK = 0x80200003          # Galois toggle mask of x^32 + x^22 + x^2 + x + 1
LEAP = 16                  # steps per draw: the 16 compared bits are all new
STEP = 4                   # steps per cycle of a device's leap (LEAP // STEP cycles)
P_BITS = 16


def step(s: int) -> int:
    """One Galois (right-shift) step."""
    return (s >> 1) ^ (MASK if s & 1 else 0)


def leap(s: int, steps: int = LEAP) -> int:
    """`steps` Galois steps from state `s`."""
    for _ in range(steps):
        s = step(s)
    return s


def generate(seed: int, leap: int = LEAP):
    """Software model: the states after each draw (each draw = `leap` steps)."""
    if not 0 < seed < 2 ** WIDTH:
        raise ValueError(f"LFSR seed must be in [1, 2^{WIDTH}), not {seed!r}")
    s = seed
    while True:
        for _ in range(leap):
            s = step(s)
        yield s


def threshold(params, code: int, write_ns: float) -> int:
    """Compare value realising p_switch(code, write_ns) with P_BITS bits."""
    return int(round(float(params.p_switch(code, write_ns)) * 2 ** P_BITS))


def realised_p(thr: int) -> float:
    return thr / 2 ** P_BITS


def _leap_matrix(leap: int) -> list[list[int]]:
    """For each next-state bit, the current-state bits it XORs (step^leap is linear)."""
    cols = []
    for i in range(WIDTH):
        s = 1 << i
        for _ in range(leap):
            s = step(s)
        cols.append(s)
    return [[i for i in range(WIDTH) if (cols[i] >> j) & 1] for j in range(WIDTH)]


def below(bits, t: int):
    """`bits` (unsigned) < the constant `t`, as gates from the LSB up (bit i of t is 1:
    below = ~b_i | below so far; 0: ~b_i & below so far), not an adder: Yosys would map a
    compare to a carry chain, 17 cells a device on an iCE40."""
    if t <= 0:
        return Const(0, 1)
    if t >= 1 << len(bits):
        return Const(1, 1)
    lt = Const(0, 1)
    for i in range(len(bits)):
        lt = (~bits[i] | lt) if (t >> i) & 1 else (~bits[i] & lt)
    return lt


class Lfsr(wiring.Component):
    """The LFSR core: `state` leaps `leap` steps on each cycle with `en`.

    Ports: en : In(1); state : Out(32), reset value `seed`; next : Out(32), the state
    after the next leap."""

    def __init__(self, seed: int, leap: int = LEAP):
        if not 0 < seed < 2 ** WIDTH:
            raise ValueError(f"LFSR seed must be in [1, 2^{WIDTH}), not {seed!r}")
        self.seed, self.leap = seed, leap
        super().__init__({"en": In(1), "state": Out(WIDTH, init=seed), "next": Out(WIDTH)})

    def elaborate(self, platform):
        m = Module()
        nxt = []
        for taps in _leap_matrix(self.leap):
            b = self.state[taps[0]]
            for t in taps[1:]:
                b = b ^ self.state[t]
            nxt.append(b)
        m.d.comb += self.next.eq(Cat(*nxt))
        with m.If(self.en):
            m.d.sync += self.state.eq(self.next)
        return m


class LfsrMtj(wiring.Component):
    """One stand-in MTJ.

    Parameters
    ----------
    seed : int
        LFSR seed (nonzero, 32 bits).
    thresholds : dict code -> int
        Switching threshold per write code (see `threshold`).
    code_w : int

    Ports: reset, write : In(1); code : In(code_w); sense : Out(1) (1 = AP).
    """

    def __init__(self, seed: int, thresholds: dict, code_w: int):
        self.seed, self.thresholds, self.code_w = seed, dict(thresholds), code_w
        super().__init__({"reset": In(1), "write": In(1), "code": In(code_w), "sense": Out(1)})

    def elaborate(self, platform):
        m = Module()
        # the register holds the next draw (draw 1 from reset: the seed leapt once)
        m.submodules.lfsr = lfsr = Lfsr(leap(self.seed), STEP)
        armed = Signal()
        write_q = Signal()
        # the draw is below the threshold of the code written (a constant compare per
        # code; a code the device was not built for never switches)
        top, is_below = lfsr.state[WIDTH - P_BITS:], Signal()
        with m.Switch(self.code):
            for code, t in sorted(self.thresholds.items()):
                with m.Case(code):
                    m.d.comb += is_below.eq(below(top, t))
        fall = Signal()
        # after a fall, the leap to the next draw: STEP steps in this cycle and in each
        # of the LEAP // STEP - 1 cycles that follow
        left = Signal(range(LEAP // STEP))
        m.d.comb += [fall.eq(write_q & ~self.write), lfsr.en.eq(fall | (left != 0))]
        m.d.sync += write_q.eq(self.write)
        with m.If(fall):
            m.d.sync += left.eq(LEAP // STEP - 1)
        with m.Elif(left != 0):
            m.d.sync += left.eq(left - 1)
        with m.If(self.reset):
            m.d.sync += [self.sense.eq(0), armed.eq(1)]
        with m.Elif(fall):
            m.d.sync += armed.eq(0)
            with m.If(armed):
                m.d.sync += self.sense.eq(is_below)
        return m


class LfsrMtjBank(wiring.Component):
    """`n` stand-in MTJs behind vector pins, the device side of `MtjPins(n, code_w)`.

    Parameters
    ----------
    seeds : sequence of int
        LFSR seed per device (nonzero, 32 bits).
    codes, thresholds : sequence of int
        Per device, the write code it is built for and its switching threshold for that
        code (see `threshold`); any other code never switches.
    code_w : int

    Ports
    -----
    reset, write : In(n); code : In(n*code_w); sense : Out(n) (1 = AP)
        Device i at bit i (code: bits [i*code_w, (i+1)*code_w)).
    """

    def __init__(self, seeds, codes, thresholds, code_w: int):
        self.seeds, self.codes = [int(s) for s in seeds], [int(c) for c in codes]
        self.thresholds, self.code_w = [int(t) for t in thresholds], code_w
        if not len(self.seeds) == len(self.codes) == len(self.thresholds) > 0:
            raise ValueError(f"need one seed, code and threshold per device, not "
                             f"{len(self.seeds)}, {len(self.codes)} and {len(self.thresholds)}")
        super().__init__(MtjPins(len(self.seeds), code_w).flip())

    def model(self) -> "LfsrMtjModel":
        """A fresh exact software model of these devices (as after reset)."""
        return LfsrMtjModel(self.seeds, self.thresholds)

    def elaborate(self, platform):
        m = Module()
        cw = self.code_w
        for i, (s, c, t) in enumerate(zip(self.seeds, self.codes, self.thresholds)):
            m.submodules[f"mtj{i}"] = d = LfsrMtj(s, {c: t}, cw)
            m.d.comb += [d.reset.eq(self.reset[i]), d.write.eq(self.write[i]),
                         d.code.eq(self.code[i * cw:(i + 1) * cw]), self.sense[i].eq(d.sense)]
        return m


class LfsrMtjModel:
    """Exact software model of `LfsrMtj` devices, with the `MtjArray` pin API."""

    def __init__(self, seeds, thresholds):
        self.gens = [generate(int(s)) for s in seeds]
        self.thr = np.asarray(thresholds, np.int64)
        n = len(self.gens)
        self.ap = np.zeros(n, bool)
        self.armed = np.zeros(n, bool)
        self.history: list[np.ndarray] = []

    def reset(self, mask) -> None:
        mask = np.asarray(mask, bool)
        self.ap[mask] = False
        self.armed |= mask

    def write(self, mask, pulse_ns: float = 0.0) -> None:
        mask = np.asarray(mask, bool)
        for i in np.flatnonzero(mask):
            top = next(self.gens[i]) >> (WIDTH - P_BITS)
            if self.armed[i] and top < self.thr[i]:
                self.ap[i] = True
        self.armed &= ~mask
        self.history.append(np.where(mask, self.ap, False))

    def sense(self) -> np.ndarray:
        return self.ap.astype(np.uint8)
