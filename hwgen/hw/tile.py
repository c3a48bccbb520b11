"""Crossbar tile: one MRAM array's read, emulated `lanes` columns per cycle (SPEC sections 2 and 7).

A read request drives the word lines with x (row bits, 1 = +1) and the row gates g. The tile
answers with ceil(cols / lanes) beats; beat k carries the column sums of columns
[k*lanes, (k+1)*lanes):

    acc_j = 2 * popcount(g & ~(x ^ w_j)) - popcount(g)

Weights live in a memory with one word per beat (the `lanes` columns' row bits side by side),
so two tiles of the same shape differ only in memory contents, not in logic. Columns past
`cols` in the last beat read zero weights; their sums are meaningless and the controller
ignores them. A tile read in one beat (lanes >= cols: all columns at once, as the array
itself reads) keeps its one word as a constant and needs no beat counter.

Timing: a read has a latency of three cycles (the layer's tile array adds a fourth:
`hwgen.hw.plan.READ_LATENCY`) and still delivers one beat per cycle to a tile that is
kept fed and drained. The pipeline is

    front -> stage 1 -> group counts -> sums (the beat)

- The front takes beat k of a read (a new request with beat 0).
- Stage 1 registers the request (word lines and row gates, loaded with each read's beat 0
  and held for its later beats) and the beat's weight word. The word is read from its
  memory a cycle ahead (a synchronous read port, block RAM where a target has it, at the
  index of the beat the front offers next, `ctl.ahead`), so that stage 1 is a register
  of the fabric: a block RAM's slow clock-to-output (5.8 ns on ECP5, which has no output
  register in Yosys's mapping) does not add to the popcount's first stage (the digits
  demo at 1 lane on the ULX3S-85F: 72.99 MHz with the word straight from the RAM, issue
  19). A lead tile's front offers nothing in its first cycle after a reset, while the
  memory's output is not yet the word of beat 0. The walker's taps, bank multiplexers
  and gating end at stage 1.
- The popcounts (`Popcount`) are two register stages: 16-bit group counts, then their
  sum. That cuts a 128-row column's carry chains in two, and the output register is
  the sum stage.

Each stage loads only in the cycles a beat moves into it, which is what lets a simulator
skip the idle tiles' popcounts instead of redoing them every cycle (Verilator evaluates
all combinational logic at every clock edge, but not a register's next value under a
false enable). Each lane's agree word (the XNOR) is inside its popcount for that reason:
on the Fashion-MNIST classifier's 13 mostly idle tiles, evaluating it every cycle was
most of the simulation (issue 19, sessions 10 and 11). What is still evaluated every
cycle is each lane's column sum, one subtraction. An opaque `tag` travels with the
request to each of its beats.
"""

from __future__ import annotations

import numpy as np
from amaranth import (Cat, ClockSignal, Const, Instance, Module, Mux, ResetSignal, Signal,
                      signed, unsigned)
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["CrossbarTile", "ctl_layout", "Popcount", "PopcountModules", "acc_width",
           "add_tree", "popcount", "popcount_groups", "popcount_module_name", "tile_model",
           "pack_tile_weights", "request_layout", "beat_layout"]


def acc_width(rows: int) -> int:
    """Signed width that holds every column sum of `rows` rows: [-rows, rows]."""
    return rows.bit_length() + 1


def request_layout(rows: int, tag=0) -> data.StructLayout:
    """A read request: word-line bits `x` (1 = +1), row gates `g`, and an opaque `tag`."""
    return data.StructLayout({"x": rows, "g": rows, "tag": tag})


def beat_layout(rows: int, lanes: int, beats: int, tag=0) -> data.StructLayout:
    """One beat of a read: `lanes` signed column sums, the beat's `index` in the read,
    `last` on the read's last beat, and the request's `tag`."""
    return data.StructLayout({"acc": data.ArrayLayout(signed(acc_width(rows)), lanes),
                              "index": range(max(beats, 2)), "last": 1, "tag": tag})


def add_tree(terms):
    """Balanced adder tree over `terms` (Amaranth widens each sum by one bit)."""
    terms = list(terms)
    if not terms:
        return Const(0, 1)
    while len(terms) > 1:
        nxt = [a + b for a, b in zip(terms[0::2], terms[1::2])]
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms = nxt
    return terms[0]


def ctl_layout(depth: int) -> data.StructLayout:
    """What a tile's control gives its datapath each cycle (and a lead tile its followers):
    `load` stage 1 with a read's beat 0 (with every beat under `reload`), `take` a beat (its weight word, read a cycle
    ahead, into stage 1), `ahead` the index of the beat the front offers in the next
    cycle (the weight word to read now), `en_a` the popcounts' group counts, `en_y` their
    sums."""
    return data.StructLayout({"load": 1, "take": 1, "ahead": range(depth), "en_a": 1,
                              "en_y": 1})


def popcount(bits):
    """Balanced adder tree over the bits of `bits`."""
    return add_tree(bits[i] for i in range(len(bits)))


def popcount_module_name(width: int, xnor: bool = False) -> str:
    """Verilog module name of a `width`-bit Popcount (`xnor`: of the agree bits) in an
    export."""
    return f"hwgen_popcount_{'xnor_' if xnor else ''}{width}"


class PopcountModules:
    """The elaboration platform of hwgen.export: under it each Popcount elaborates to an
    instance of its own module `popcount_module_name(width, xnor)` (ports `clk`, `rst`,
    `en_a`, `en_y`, `a`, `y`, and `x`, `w` if `xnor`), and the (width, xnor) kinds used are
    collected in `kinds`, so that the export writes each module once and a simulator build
    can swap in a behavioural body (hwgen.sim.equiv proves the two equal). Any other
    platform, or none, gets the adder trees inline."""

    def __init__(self):
        self.kinds: set[tuple[int, bool]] = set()


GROUP = 16     # bits per first-stage count of a Popcount: the adder tree's first 4 levels


def popcount_groups(width: int) -> list[tuple[int, int]]:
    """The bit ranges [lo, hi) of a `width`-bit Popcount's first-stage counts: GROUP bits
    each, the last one shorter."""
    return [(lo, min(lo + GROUP, width)) for lo in range(0, width, GROUP)]


class Popcount(wiring.Component):
    """A two-stage registered popcount, GROUP bits a count in the first stage:

    - at an edge with `en_a`, each count c<i> takes the number of ones in bits
      [i*GROUP, (i+1)*GROUP) of the counted word (a balanced adder tree, `popcount`);
    - at an edge with `en_y`, y takes the sum of the counts (a balanced tree again).

    The counted word is `a`, or with `xnor` the agree bits of a column, `a & ~(x ^ w)`
    (row gates a, word lines x, weights w): the XNOR is part of the block, so that a
    simulator evaluates it only in the cycles the counts load. The sync reset clears every
    register and wins over the enables. The register between the stages cuts a wide
    popcount's carry chains in two (a 128-bit one: 4 levels, then 3), which sets the
    tile's Fmax. The registers are part of the block so that it is evaluated only when
    enabled: the simulation variant (64-bit word counts under the enable,
    hwgen.export.popcount_sim_verilog) lets Verilator skip idle tiles.

    Ports
    -----
    en_a, en_y : In(1)
    a : In(width)
    x, w : In(width)
        Only with `xnor`.
    y : Out(width.bit_length())
    """

    def __init__(self, width: int, xnor: bool = False):
        if not (isinstance(width, int) and width >= 1):
            raise ValueError(f"width must be a positive integer, not {width!r}")
        self.width, self.xnor = width, bool(xnor)
        self.groups = popcount_groups(width)
        ports = {"en_a": In(1), "en_y": In(1), "a": In(width), "y": Out(width.bit_length())}
        if self.xnor:
            ports |= {"x": In(width), "w": In(width)}
        super().__init__(ports)

    def elaborate(self, platform):
        if isinstance(platform, PopcountModules):
            platform.kinds.add((self.width, self.xnor))
            xw = dict(i_x=self.x, i_w=self.w) if self.xnor else {}
            return Instance(popcount_module_name(self.width, self.xnor), i_clk=ClockSignal(),
                            i_rst=ResetSignal(), i_en_a=self.en_a, i_en_y=self.en_y,
                            i_a=self.a, **xw, o_y=self.y)
        m = Module()
        counted = self.a
        if self.xnor:
            counted = Signal(self.width)
            m.d.comb += counted.eq(self.a & ~(self.x ^ self.w))
        counts = [Signal((b - a).bit_length(), name=f"c{i}")
                  for i, (a, b) in enumerate(self.groups)]
        with m.If(self.en_a):
            m.d.sync += [c.eq(popcount(counted[a:b])) for c, (a, b) in zip(counts, self.groups)]
        with m.If(self.en_y):
            m.d.sync += self.y.eq(add_tree(counts))
        return m


def pack_tile_weights(w: np.ndarray, lanes: int) -> list[int]:
    """[cols, rows] 0/1 -> memory words: word k = columns k*lanes .. k*lanes+lanes-1,
    column (k*lanes + l) at bits [l*rows, (l+1)*rows), row i at bit i."""
    w = np.asarray(w, np.uint8)
    cols, rows = w.shape
    beats = -(-cols // lanes)
    pad = np.zeros((beats * lanes, rows), np.uint8)
    pad[:cols] = w
    words = []
    for k in range(beats):
        bits = pad[k * lanes:(k + 1) * lanes].reshape(-1)
        words.append(int.from_bytes(np.packbits(bits, bitorder="little").tobytes(), "little"))
    return words


def tile_model(w: np.ndarray, x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """numpy model: [cols, rows] weights, [rows] x and g (0/1) -> [cols] signed sums."""
    w, x, g = (np.asarray(a, np.int64) for a in (w, x, g))
    agree = g[None, :] & (1 - (x[None, :] ^ w))
    return 2 * agree.sum(1) - g.sum()


class CrossbarTile(wiring.Component):
    """An R x C crossbar read, `lanes` columns per cycle.

    Parameters
    ----------
    rows, cols, lanes : int
        Array size and columns computed per cycle (1 <= lanes <= cols).
    weights : array [cols, rows] of 0/1
        Weight bits, 1 = +1.
    beats : int, optional
        Beats per read (default ceil(cols / lanes)); more pads the tile with zero columns,
        so tiles of one layer can run in lock step.
    tag : shape
        Shape (a width or a layout) of the opaque tag passed from a request to its beats.
    follow : bool
        A follower has no control of its own: it is moved by a lead tile's `ctl` (the
        tiles of a layer run in lock step, so one control serves them all).
    reload : bool
        Stage 1 takes the word lines and row gates with every beat, not only with a
        read's beat 0: a row-serial layer's tiles (hwgen.hw.tiles) see another row split
        in each beat of one read.

    Ports
    -----
    req : In(stream of `request_layout(rows, tag)`)
    beat : Out(stream of `beat_layout(rows, lanes, beats, tag)`)
    ctl : Out(`ctl_layout(depth)`)
        This tile's control, for its followers.

    A follower's ports are x, g : In(rows) (the request's word lines and row gates, taken
    when `ctl.load`), ctl : In(`ctl_layout(depth)`) and acc : Out(lanes signed sums).
    """

    def __init__(self, rows: int, cols: int, lanes: int, weights, *, beats: int | None = None,
                 tag=0, follow: bool = False, reload: bool = False):
        if not (isinstance(rows, int) and rows >= 1):
            raise ValueError(f"rows must be a positive integer, not {rows!r}")
        if not (isinstance(cols, int) and cols >= 1):
            raise ValueError(f"cols must be a positive integer, not {cols!r}")
        if not (isinstance(lanes, int) and 1 <= lanes <= cols):
            raise ValueError(f"lanes must be an integer in [1, {cols}], not {lanes!r}")
        weights = np.asarray(weights, np.uint8)
        if weights.shape != (cols, rows):
            raise ValueError(f"weights must have shape {(cols, rows)}, not {weights.shape}")
        self.rows, self.cols, self.lanes = rows, cols, lanes
        self.beats = beats if beats is not None else -(-cols // lanes)
        if self.beats * lanes < cols:
            raise ValueError(f"{self.beats} beats of {lanes} lanes cannot hold {cols} columns")
        self.weights = weights
        self.acc_w = acc_width(rows)
        words = pack_tile_weights(weights, lanes)
        # at least two words and a 1-bit index: zero-width signals upset Verilog tools
        self.depth = max(self.beats, 2)
        self.init = words + [0] * (self.depth - len(words))
        self.tag, self.follow, self.reload = tag, follow, bool(reload)
        ctl = ctl_layout(self.depth)
        if follow:
            ports = {"x": In(rows), "g": In(rows), "ctl": In(ctl),
                     "acc": Out(data.ArrayLayout(signed(self.acc_w), lanes))}
        else:
            ports = {"req": In(stream.Signature(request_layout(rows, tag))),
                     "beat": Out(stream.Signature(beat_layout(rows, lanes, self.beats, tag))),
                     "ctl": Out(ctl)}
        super().__init__(ports)

    @property
    def sums(self):
        """The column sums of the beat in the output register (`lanes` signed values)."""
        return self.acc if self.follow else self.beat.payload.acc

    def elaborate(self, platform):
        m = Module()
        rows, lanes, aw = self.rows, self.lanes, self.acc_w
        ctl = self.ctl
        if self.follow:
            x_in, g_in = self.x, self.g
        else:
            self._control(m)
            x_in, g_in = self.req.payload.x, self.req.payload.g
        # The datapath, moved by `ctl`. Data registers need no reset (the valid bits
        # have one): a reset-less register is one enable in the Verilog.
        x1, g1 = Signal(rows, reset_less=True), Signal(rows, reset_less=True)
        if self.beats == 1:
            # a one-beat read: the array's one word of weights is a constant
            words = Const(self.init[0], rows * lanes)
        else:
            # one word per beat, read a cycle ahead (a synchronous read port: block RAM
            # where the target has it) and taken with its beat into stage 1
            m.submodules.mem = mem = memory.Memory(shape=unsigned(rows * lanes),
                                                   depth=self.depth, init=self.init)
            rd = mem.read_port()
            words = Signal(rows * lanes, reset_less=True)
            m.d.comb += rd.addr.eq(ctl.ahead)
            with m.If(ctl.take):
                m.d.sync += words.eq(rd.data)
        # Stage 1 holds the request for all its beats: it loads with each read's beat 0.
        with m.If(ctl.load):
            m.d.sync += [x1.eq(x_in), g1.eq(g_in)]
        # Intermediate signals keep Amaranth from rebuilding shared expressions per bit.
        # Each popcount is a Popcount component: one Verilog module per width in an export.
        ng = Signal(unsigned(aw))
        m.submodules.popcount_g = pc_g = Popcount(rows)
        m.d.comb += [pc_g.en_a.eq(ctl.en_a), pc_g.en_y.eq(ctl.en_y), pc_g.a.eq(g1),
                     ng.eq(pc_g.y)]
        for lane in range(lanes):
            # each lane counts its column's agree bits g1 & ~(x1 ^ w) (the XNOR is in
            # the Popcount, evaluated only when its counts load)
            pc = Signal(unsigned(aw - 1), name=f"pc{lane}")
            m.submodules[f"popcount{lane}"] = pc_l = Popcount(rows, xnor=True)
            m.d.comb += [pc_l.en_a.eq(ctl.en_a), pc_l.en_y.eq(ctl.en_y), pc_l.a.eq(g1),
                         pc_l.x.eq(x1), pc_l.w.eq(words[lane * rows:(lane + 1) * rows]),
                         pc.eq(pc_l.y)]
            # Unsigned modular difference: its low acc_w bits are the two's complement sum.
            m.d.comb += self.sums[lane].eq(Cat(Const(0, 1), pc) - ng)
        return m

    def _control(self, m):
        """The stream control of a tile that is not a follower: the front (beat k of a
        read), the valid, index, last and tag pipeline beside the datapath, and `ctl`.
        Every stage moves when the beat register has room (`adv`); a stage's registers
        load only when a beat moves into it, so an idle tile's registers hold (only its
        column sums' subtractions are still evaluated)."""
        req, beat, ctl = self.req, self.beat, self.ctl
        adv, front, take, first = Signal(), Signal(), Signal(), Signal()
        v1, v2 = Signal(), Signal()
        index = Signal(range(self.depth))
        data = dict(reset_less=True)
        tag1, i1, last1, i2, last2, tag2, q_index, q_last, q_tag = (
            Signal(self.tag, **data), Signal(range(self.depth), **data), Signal(**data),
            Signal(range(self.depth), **data), Signal(**data), Signal(self.tag, **data),
            Signal(range(self.depth), **data), Signal(**data), Signal(self.tag, **data))
        m.d.comb += [adv.eq(~beat.valid | beat.ready), take.eq(front & adv)]
        ahead = Signal(range(self.depth))
        if self.beats == 1:
            # a one-beat read: the request is the beat (no beat counter, no memory)
            m.d.comb += [index.eq(0), ahead.eq(0), first.eq(1), front.eq(req.valid),
                         req.ready.eq(adv)]
        else:
            busy, primed = Signal(), Signal()
            k = Signal(range(self.depth))
            wrap = index == self.beats - 1
            # `primed`: the memory's output has been read at `ahead` for a cycle
            m.d.sync += primed.eq(1)
            m.d.comb += [index.eq(Mux(busy, k, 0)), first.eq(~busy),
                         front.eq(primed & (busy | req.valid)),
                         req.ready.eq(primed & ~busy & adv),
                         ahead.eq(Mux(take, Mux(wrap, 0, index + 1), index))]
            with m.If(take):
                with m.If(wrap):
                    m.d.sync += [busy.eq(0), k.eq(0)]
                with m.Else():
                    m.d.sync += [busy.eq(1), k.eq(index + 1)]
        with m.If(take & first):
            m.d.sync += tag1.eq(req.payload.tag)
        with m.If(take):
            m.d.sync += [i1.eq(index), last1.eq(index == self.beats - 1)]
        with m.If(adv):
            m.d.sync += [v1.eq(front), v2.eq(v1), beat.valid.eq(v2)]
        with m.If(v1 & adv):
            m.d.sync += [i2.eq(i1), last2.eq(last1), tag2.eq(tag1)]
        with m.If(v2 & adv):
            m.d.sync += [q_index.eq(i2), q_last.eq(last2), q_tag.eq(tag2)]
        m.d.comb += [beat.payload.index.eq(q_index), beat.payload.last.eq(q_last),
                     beat.payload.tag.eq(q_tag),
                     ctl.load.eq(take if self.reload else take & first), ctl.take.eq(take),
                     ctl.ahead.eq(ahead),
                     ctl.en_a.eq(v1 & adv), ctl.en_y.eq(v2 & adv)]
