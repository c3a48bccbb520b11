"""Crossbar tile: one MRAM array's read, emulated `lanes` columns per cycle (SPEC sections 2 and 7).

A read request drives the word lines with x (row bits, 1 = +1) and the row gates g. The tile
answers with ceil(cols / lanes) beats; beat k carries the column sums of columns
[k*lanes, (k+1)*lanes):

    acc_j = 2 * popcount(g & ~(x ^ w_j)) - popcount(g)

Weights live in a memory with one word per beat (the `lanes` columns' row bits side by side),
so two tiles of the same shape differ only in memory contents, not in logic. Columns past
`cols` in the last beat read zero weights; their sums are meaningless and the controller
ignores them. A tile read in one beat (lanes >= cols: all columns at once, as the array
itself reads) has no state besides its output register: its one word is a constant and
the request is the beat, with no latched copy (2 * rows fewer flops, and 1.5x MC
samples/s on the Fashion-MNIST design at lanes 32 in Verilator, where every idle tile's
latch and read mux cost every cycle).

Timing: a read has a latency of one cycle. The front computes beat k from the request (the
request is taken with the last beat of the previous one, or with beat 0 when idle) and an
output register holds it, so a tile that is kept fed and drained still reads every cycle.
The column popcounts are that register (`Popcount` is a popcount with a clock enable): they
are computed only in the cycles a beat moves in, which is what lets a simulator skip the
idle tiles' arithmetic instead of redoing every tile's popcounts every cycle (Verilator
evaluates all combinational logic at every clock edge, but not a register's next value
under a false enable). An opaque `tag` travels with the request to each of its beats.
"""

from __future__ import annotations

import numpy as np
from amaranth import (Cat, ClockSignal, Const, Instance, Module, Mux, ResetSignal, Signal,
                      signed, unsigned)
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["CrossbarTile", "Popcount", "PopcountModules", "acc_width", "popcount",
           "popcount_module_name", "tile_model", "pack_tile_weights", "request_layout",
           "beat_layout"]


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


def popcount(bits):
    """Balanced adder tree over the bits of `bits` (Amaranth widens each sum by one bit)."""
    terms = [bits[i] for i in range(len(bits))]
    if not terms:
        return Const(0, 1)
    while len(terms) > 1:
        nxt = [a + b for a, b in zip(terms[0::2], terms[1::2])]
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms = nxt
    return terms[0]


def popcount_module_name(width: int) -> str:
    """Verilog module name of a `width`-bit Popcount in an export."""
    return f"hwgen_popcount_{width}"


class PopcountModules:
    """The elaboration platform of hwgen.export: under it each Popcount elaborates to an
    instance of its own module `popcount_module_name(width)` (ports `clk`, `rst`, `en`, `a`,
    `y`), and the widths used are collected in `widths`, so that the export writes each
    module once and a simulator build can swap in a behavioural body (hwgen.sim.equiv
    proves the two equal). Any other platform, or none, gets the adder tree inline."""

    def __init__(self):
        self.widths: set[int] = set()


class Popcount(wiring.Component):
    """A registered popcount: at each clock edge with `en` high, y takes the number of ones
    in a (a balanced adder tree, `popcount`); the sync reset clears y and wins over `en`.

    The register is part of the block so that the popcount is evaluated only when it is
    enabled: the simulation variant (`$countones` under the enable, hwgen.export) lets
    Verilator skip idle tiles.

    Ports
    -----
    en : In(1)
    a : In(width)
    y : Out(width.bit_length())
    """

    def __init__(self, width: int):
        if not (isinstance(width, int) and width >= 1):
            raise ValueError(f"width must be a positive integer, not {width!r}")
        self.width = width
        super().__init__({"en": In(1), "a": In(width), "y": Out(width.bit_length())})

    def elaborate(self, platform):
        if isinstance(platform, PopcountModules):
            platform.widths.add(self.width)
            return Instance(popcount_module_name(self.width), i_clk=ClockSignal(),
                            i_rst=ResetSignal(), i_en=self.en, i_a=self.a, o_y=self.y)
        m = Module()
        with m.If(self.en):
            m.d.sync += self.y.eq(popcount(self.a))
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

    Ports
    -----
    req : In(stream of `request_layout(rows, tag)`)
    beat : Out(stream of `beat_layout(rows, lanes, beats, tag)`)
    """

    def __init__(self, rows: int, cols: int, lanes: int, weights, *, beats: int | None = None,
                 tag=0):
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
        self.tag = tag
        super().__init__({
            "req": In(stream.Signature(request_layout(rows, tag))),
            "beat": Out(stream.Signature(beat_layout(rows, lanes, self.beats, tag))),
        })

    def elaborate(self, platform):
        m = Module()
        rows, lanes, aw = self.rows, self.lanes, self.acc_w
        x, g = Signal(rows), Signal(rows)
        index = Signal(range(self.depth))
        front = Signal()
        room, take = Signal(), Signal()
        m.d.comb += [room.eq(~self.beat.valid | self.beat.ready), take.eq(front & room)]
        q_index, q_last, q_tag = Signal(range(self.depth)), Signal(), Signal(self.tag)
        if self.beats == 1:
            # A one-beat read has no state: the request is the beat, and the array's one
            # word of weights is a constant (no memory, no latched request).
            words = Const(self.init[0], rows * lanes)
            tag_in = self.req.payload.tag
            m.d.comb += [x.eq(self.req.payload.x), g.eq(self.req.payload.g), index.eq(0),
                         front.eq(self.req.valid), self.req.ready.eq(room)]
        else:
            m.submodules.mem = mem = memory.Memory(shape=unsigned(rows * lanes),
                                                   depth=self.depth, init=self.init)
            rd = mem.read_port(domain="comb")
            words = rd.data
            busy = Signal()
            k = Signal(range(self.depth))
            x_r, g_r = Signal(rows), Signal(rows)
            tag_r = Signal(self.tag)
            # The front: beat 0 straight from the request, later beats from the latched
            # copy. `take`: a beat moves from the front into the output register.
            tag_in = Mux(busy, tag_r, self.req.payload.tag)
            m.d.comb += [
                x.eq(Mux(busy, x_r, self.req.payload.x)),
                g.eq(Mux(busy, g_r, self.req.payload.g)),
                index.eq(Mux(busy, k, 0)),
                rd.addr.eq(index),
                front.eq(busy | self.req.valid),
                self.req.ready.eq(~busy & room),
            ]
            with m.If(take):
                with m.If(index == self.beats - 1):
                    m.d.sync += [busy.eq(0), k.eq(0)]
                with m.Else():
                    m.d.sync += [busy.eq(1), k.eq(index + 1)]
                with m.If(~busy):
                    m.d.sync += [x_r.eq(self.req.payload.x), g_r.eq(self.req.payload.g),
                                 tag_r.eq(self.req.payload.tag)]
        # The output register: valid, index, last and tag here; the sums in the popcounts.
        with m.If(room):
            m.d.sync += self.beat.valid.eq(front)
        with m.If(take):
            m.d.sync += [q_index.eq(index), q_last.eq(index == self.beats - 1),
                         q_tag.eq(tag_in)]
        m.d.comb += [self.beat.payload.index.eq(q_index), self.beat.payload.last.eq(q_last),
                     self.beat.payload.tag.eq(q_tag)]
        # Intermediate signals keep Amaranth from rebuilding shared expressions per bit.
        # Each popcount is a Popcount component: one Verilog module per width in an export.
        ng = Signal(unsigned(aw))
        m.submodules.popcount_g = pc_g = Popcount(rows)
        m.d.comb += [pc_g.en.eq(take), pc_g.a.eq(g), ng.eq(pc_g.y)]
        for lane in range(lanes):
            agree = Signal(rows, name=f"agree{lane}")
            m.d.comb += agree.eq(g & ~(x ^ words[lane * rows:(lane + 1) * rows]))
            pc = Signal(unsigned(aw - 1), name=f"pc{lane}")
            m.submodules[f"popcount{lane}"] = pc_l = Popcount(rows)
            m.d.comb += [pc_l.en.eq(take), pc_l.a.eq(agree), pc.eq(pc_l.y)]
            # Unsigned modular difference: its low acc_w bits are the two's complement sum.
            m.d.comb += self.beat.payload.acc[lane].eq(Cat(Const(0, 1), pc) - ng)
        return m
