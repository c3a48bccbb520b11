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

A ring built with `memory` keeps its longest run of untapped slots (`untapped_run`: for a
3x3 window on a 14-wide map, the 165 of 196 slots between the window's two rows behind the
anchor and its row ahead) in a memory instead of flops: the run is a delay line, so it is
a circular buffer of one write and one read port (block RAM on an FPGA, where the flow
asks for it: flows/fpga.py), and the slots around it, the taps among them, stay flops.
Every shift writes the word entering the run at the buffer's pointer and moves the
pointer on; the read port, addressed with the pointer the shift leaves, shows the word
that leaves the run next. The taps are the ring's in every cycle (tests/test_hw_store.py
runs both against each other). The memory is not cleared by a reset, where the flops
are: a store is always written whole before it is read.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, ResetSignal, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from .layouts import store_write_signature

__all__ = ["RingStore", "SplitStore", "untapped_run"]


def untapped_run(positions: int, taps) -> tuple[int, int]:
    """(lo, hi): the longest run of consecutive ring slots [lo, hi) that no tap reads,
    within [1, positions) (slot 0, the head, is where a rotation takes its word from);
    the first such run on ties, (1, 1) when every slot is tapped."""
    tapped = set(int(t) for t in taps) | {0}
    best, lo = (1, 1), None
    for j in range(1, positions + 1):
        if j < positions and j not in tapped:
            lo = j if lo is None else lo
        elif lo is not None:
            if j - lo > best[1] - best[0]:
                best = (lo, j)
            lo = None
    return best


def _fresh(m, store) -> None:
    """A store's `fresh`: the read bank is rewritten (a write into it) or is another bank
    than in the cycle before."""
    if store.banks == 1:
        m.d.comb += store.fresh.eq(store.wr.en)
    else:
        was = Signal()
        m.d.sync += was.eq(store.rbank)
        m.d.comb += store.fresh.eq((store.wr.en & (store.wbank == store.rbank))
                                   | (was != store.rbank))


class RingStore(wiring.Component):
    """The ring store of `positions` words of `width` bits.

    Parameters
    ----------
    positions, width : int
    taps : sequence of int
        The slots the walker reads (kernel position p's word at slot taps[p]).
    banks : 1 or 2
    memory : bool
        Hold the longest untapped run of slots (`untapped_run`, at least 2 slots) in a
        memory of one write and one read port per ring; False: all slots in flops.

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

    def __init__(self, positions: int, width: int, taps, banks: int = 1,
                 memory: bool = False):
        if banks not in (1, 2):
            raise ValueError(f"banks must be 1 or 2, not {banks!r}")
        self.positions, self.width, self.banks = positions, width, banks
        self.slots = tuple(int(t) for t in taps)
        if not all(0 <= t < positions for t in self.slots):
            raise ValueError(f"taps must be slots in [0, {positions}), not {self.slots!r}")
        #: the slots [lo, hi) held in memory ((0, 0): none)
        self.run = (0, 0)
        if memory:
            lo, hi = untapped_run(positions, self.slots)
            if hi - lo < 2:
                raise ValueError(f"memory needs an untapped run of at least 2 slots; the "
                                 f"taps {self.slots!r} of {positions} leave {hi - lo}")
            self.run = (lo, hi)
        ports = {"wr": In(store_write_signature(width)), "rotate": In(1),
                 "taps": Out(len(self.slots) * width), "fresh": Out(1)}
        if banks == 2:
            ports.update({"wbank": In(1), "rbank": In(1)})
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        n, wd = self.positions, self.width
        lo, hi = self.run
        rings = []
        for b in range(self.banks):
            if self.banks == 1:
                wr_here, turn = self.wr.en, self.rotate
            else:
                wr_here = self.wr.en & (self.wbank == b)
                turn = self.rotate & (self.rbank == b)
            shift = wr_here | turn
            if hi == lo:
                ring = Signal(n * wd, name=f"ring{b}")
                with m.If(shift):
                    m.d.sync += ring.eq(Cat(ring[wd:], Mux(wr_here, self.wr.data, ring[:wd])))
                rings.append(ring)
                continue
            # slots [0, lo) and [hi, n) in flops, [lo, hi) in a circular buffer of hi - lo
            # words: slot lo + i is word (q + i) mod (hi - lo)
            near = Signal(lo * wd, name=f"near{b}")
            far = Signal((n - hi) * wd, name=f"far{b}")
            depth = hi - lo
            mem = memory.Memory(shape=wd, depth=depth, init=[])
            m.submodules[f"run{b}"] = mem
            wp, rp = mem.write_port(), mem.read_port()
            q = Signal(range(depth), name=f"q{b}")
            q_next = Signal(range(depth), name=f"q{b}_next")
            tail = Mux(wr_here, self.wr.data, near[:wd])
            entering = far[:wd] if n > hi else tail      # the word that enters the run
            m.d.comb += [q_next.eq(Mux(ResetSignal(allow_reset_less=True), 0,
                                       Mux(shift, Mux(q == depth - 1, 0, q + 1), q))),
                         wp.addr.eq(q), wp.data.eq(entering), wp.en.eq(shift),
                         rp.addr.eq(q_next)]
            m.d.sync += q.eq(q_next)
            with m.If(shift):
                m.d.sync += near.eq(Cat(near[wd:], rp.data))
                if n > hi:
                    m.d.sync += far.eq(Cat(far[wd:], tail))
            rings.append((near, far))

        def word(ring, t):
            if hi == lo:
                return ring[t * wd:(t + 1) * wd]
            near, far = ring                             # no tap lies in the run
            return near[t * wd:(t + 1) * wd] if t < lo else far[(t - hi) * wd:(t - hi + 1) * wd]

        def tap(t):
            words = [word(ring, t) for ring in rings]
            return words[0] if self.banks == 1 else Mux(self.rbank, words[1], words[0])
        _fresh(m, self)
        m.d.comb += self.taps.eq(Cat(*(tap(t) for t in self.slots)))
        return m


class SplitStore(wiring.Component):
    """The flat store of a row-serial layer (one window over its whole map, read a row
    split per pass: `ReadPlan.passes` > 1) in memories, one per tile row (slot), that hold
    its row splits as words: what block RAM holds on an FPGA where the flops of the flat
    ring would not fit (the digits demo's classifier: 2 x 512 bits on an iCE40UP5K).

    The map's bits in raster order are the layer's word lines (a flat layer's wordline
    order is position-major), so row split t is bits [t*R, (t+1)*R) of the map; with
    `width` dividing R, each written word lands whole in lane j of split t's word, and the
    memories are written `width` bits at a time (write granularity `width`), position by
    position, with no assembly register. Slot s holds the splits p*k + s, at address
    bank*P + p. The tiles read them a cycle ahead of the pass that takes them, like their
    weights (hwgen.hw.tiles `x_addr`, `x_data`). The memories are not cleared by a reset:
    a store is always written whole before it is read.

    Parameters
    ----------
    positions, width : int
        The map's H*W words of C bits (the writer's words, raster order).
    rows : int
        Row split size R (the tile's rows), a multiple of `width`.
    slots : int
        Tile rows k (row splits read at once); passes P = ceil(splits / k).
    banks : 1 or 2

    Ports
    -----
    wr, rotate, fresh, wbank, rbank : as RingStore's (a flat store is never rotated).
    taps : Out(positions * width)
        Constant 0: the word lines come from `data`, not the request.
    addr : In(range(P))
        The pass to read (ring `rbank`); its words are on `data` in the next cycle.
    data : Out(slots * rows)
        Slot s's word at bits [s*R, (s+1)*R).
    """

    def __init__(self, positions: int, width: int, rows: int, slots: int, banks: int = 1):
        if banks not in (1, 2):
            raise ValueError(f"banks must be 1 or 2, not {banks!r}")
        if not (rows >= width >= 1 and rows % width == 0):
            raise ValueError(f"the split rows ({rows}) must be a multiple of the word width "
                             f"({width})")
        self.positions, self.width, self.rows, self.banks = positions, width, rows, banks
        self.splits = -(-positions * width // rows)
        self.slots = slots
        self.passes = -(-self.splits // slots)
        ports = {"wr": In(store_write_signature(width)), "rotate": In(1),
                 "taps": Out(positions * width), "fresh": Out(1),
                 "addr": In(range(max(self.passes, 2))), "data": Out(slots * rows)}
        if banks == 2:
            ports.update({"wbank": In(1), "rbank": In(1)})
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        wd, lanes, k, passes = self.width, self.rows // self.width, self.slots, self.passes
        # the write position: lane j of slot s's word in pass p, and the map position
        lane = Signal(range(max(lanes, 2)))
        slot = Signal(range(max(k, 2)))
        p = Signal(range(max(passes, 2)))
        q = Signal(range(max(self.positions, 2)))
        wbank = self.wbank if self.banks == 2 else 0
        rbank = self.rbank if self.banks == 2 else 0
        with m.If(self.wr.en):
            with m.If(q == self.positions - 1):
                m.d.sync += [q.eq(0), lane.eq(0), slot.eq(0), p.eq(0)]
            with m.Else():
                m.d.sync += q.eq(q + 1)
                with m.If(lane == lanes - 1):
                    m.d.sync += lane.eq(0)
                    with m.If(slot == k - 1):
                        m.d.sync += [slot.eq(0), p.eq(p + 1)]
                    with m.Else():
                        m.d.sync += slot.eq(slot + 1)
                with m.Else():
                    m.d.sync += lane.eq(lane + 1)
        for s in range(k):
            mem = memory.Memory(shape=self.rows, depth=self.banks * passes, init=[])
            m.submodules[f"split{s}"] = mem
            wp = mem.write_port(granularity=wd)
            rp = mem.read_port()
            m.d.comb += [wp.addr.eq(wbank * passes + p), rp.addr.eq(rbank * passes + self.addr),
                         self.data[s * self.rows:(s + 1) * self.rows].eq(rp.data)]
            for j in range(lanes):
                m.d.comb += [wp.data[j * wd:(j + 1) * wd].eq(self.wr.data),
                             wp.en[j].eq(self.wr.en & (slot == s) & (lane == j))]
        _fresh(m, self)
        return m
