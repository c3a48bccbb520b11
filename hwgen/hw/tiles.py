# amaranth: UnusedElaboratable=no
"""All crossbar tiles of a layer behind one request stream and one stream of column sums."""

from __future__ import annotations

import numpy as np
from amaranth import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..ir.core import Layer
from .layouts import wordline_order
from .plan import ReadPlan
from .tile import CrossbarTile, acc_width, add_tree, beat_layout, request_layout

__all__ = ["TileArray", "row_slots", "slot_weights"]


def row_slots(layer: Layer, plan: ReadPlan) -> list[list[int | None]]:
    """The row splits each tile row of a layer reads, pass by pass: slot s reads row
    split p*k + s in pass p (k = ceil(splits / passes) slots; None past the last split).
    One pass (every split at once): slot s is split s."""
    n, passes = len(layer.row_tiles), plan.passes
    k = -(-n // passes)
    return [[p * k + s if p * k + s < n else None for p in range(passes)] for s in range(k)]


def slot_weights(layer: Layer, plan: ReadPlan, members, ci: int) -> np.ndarray:
    """[beats * passes * lanes, rows] weights of the tile of slot `members` (`row_slots`)
    and column split ci, as CrossbarTile packs them (`lanes` columns a word): word
    b = c * passes + p holds column beat c's columns of row split members[p], each split
    zero-padded to the slot's widest (a missing split: all zero; its rows are gated)."""
    wbits = layer.weight_bits()[:, wordline_order(layer)]
    ca, cb = layer.col_tiles[ci]
    lanes, passes = plan.lanes[ci], plan.passes
    rows = max(layer.row_tiles[t][1] - layer.row_tiles[t][0] for t in members if t is not None)
    out = np.zeros((plan.beats * passes * lanes, rows), np.uint8)
    for c in range(plan.beats):
        for p, t in enumerate(members):
            if t is None:
                continue
            ra, rb = layer.row_tiles[t]
            for lane in range(lanes):
                col = ca + c * lanes + lane
                if col < cb:
                    out[(c * passes + p) * lanes + lane, :rb - ra] = wbits[col, ra:rb]
    return out


class TileArray(wiring.Component):
    """All crossbar tiles of a layer (row splits x column splits), read in lock step: tile
    (0, 0) has the one control, the others follow it (`CrossbarTile(follow=True)`).

    A row-serial plan (`ReadPlan.passes` P > 1) builds only ceil(splits / P) tile rows
    (`row_slots`): each beat of a read takes P cycles, one per pass, in which every tile
    row reads its split of that pass (gates multiplexed from the request, word lines too
    or, with `x_memory`, read from the layer's split store; weights from its memory,
    `slot_weights`); the row sums are accumulated over the
    passes, and the request is taken with the read's last cycle, so that the walker holds
    it (and its taps) for the whole read.

    Parameters
    ----------
    layer : hwgen.ir.core.Layer
        Weights and tiling (`row_tiles`, `col_tiles`).
    plan : hwgen.ir.core.ReadPlan
        Beats per read, lanes per column split and row passes.
    tag : int
        Width of the opaque tag passed from each request to its beats.
    x_memory : bool
        Row-serial plans only: the word lines come from the layer's `SplitStore`
        (hwgen.hw.store), read a cycle ahead at `x_addr`, not from the request's `x`.

    Ports
    -----
    req : In(stream of `request_layout(rows, tag)`)
        One read of every tile: row split ri sees rows [a_ri, b_ri) of `x` and `g`.
    sums : Out(stream of `beat_layout(rows, sum(lanes), beats, tag)`)
        Per beat, every column split's lanes, each summed over the row splits (the
        `sums_layout` of the layer's walker tag), from a register: a request's first
        beat is here `READ_LATENCY` cycles after the request's first cycle in the tiles
        (the tile's pipeline, then this register).
    x_addr : Out(range(passes)); x_data : In(slots * rows)
        With `x_memory`: the pass the tiles take in the next cycle, and (in that cycle)
        each slot's word lines of it, slot s at bits [s*R, (s+1)*R).
    """

    def __init__(self, layer: Layer, plan: ReadPlan, tag, x_memory: bool = False):
        self.layer, self.plan = layer, plan
        self.slots = row_slots(layer, plan)
        serial = plan.passes > 1
        if x_memory and not serial:
            raise ValueError("x_memory needs a row-serial plan (passes > 1)")
        self.x_memory = x_memory
        wbits = layer.weight_bits()[:, wordline_order(layer)]
        self.tiles = {}
        for ci, ((ca, cb), lanes) in enumerate(zip(layer.col_tiles, plan.lanes)):
            for s, members in enumerate(self.slots):
                # tile (0, 0) leads: its control moves every other tile of the layer
                lead = (s, ci) == (0, 0)
                if serial:
                    w = slot_weights(layer, plan, members, ci)
                    self.tiles[s, ci] = CrossbarTile(w.shape[1], w.shape[0], lanes, w,
                                                     beats=plan.cycles, tag=tag,
                                                     follow=not lead, reload=True)
                else:
                    ra, rb = layer.row_tiles[s]
                    self.tiles[s, ci] = CrossbarTile(rb - ra, cb - ca, lanes,
                                                     wbits[ca:cb, ra:rb], beats=plan.beats,
                                                     tag=tag, follow=not lead)
        ports = {
            "req": In(stream.Signature(request_layout(layer.rows, tag))),
            "sums": Out(stream.Signature(beat_layout(layer.rows, sum(plan.lanes), plan.beats,
                                                     tag))),
        }
        if x_memory:
            ports |= {"x_addr": Out(range(max(plan.passes, 2))),
                      "x_data": In(len(self.slots) * layer.tile[0])}
        super().__init__(ports)

    def _slot_inputs(self, m, req, lead):
        """Each tile row's word lines and gates: its split's rows of the request, or in a
        row-serial plan the split of the pass being taken (`p_in`, counted on the lead's
        takes), zero-extended to the slot's width; and the cycle that takes a read's last
        beat."""
        layer, passes = self.layer, self.plan.passes
        if passes == 1:
            return ([(req.payload.x[a:b], req.payload.g[a:b]) for a, b in layer.row_tiles],
                    None)
        p_in = Signal(range(passes))
        c_in = Signal(range(max(self.plan.beats, 2)))
        last_pass, last_take = p_in == passes - 1, Signal()
        m.d.comb += last_take.eq(lead.ctl.take & last_pass & (c_in == self.plan.beats - 1))
        with m.If(lead.ctl.take):
            m.d.sync += p_in.eq(Mux(last_pass, 0, p_in + 1))
            with m.If(last_pass):
                m.d.sync += c_in.eq(Mux(c_in == self.plan.beats - 1, 0, c_in + 1))
        if self.x_memory:
            # the split store is read a cycle ahead: the pass of the next cycle's beat
            m.d.comb += self.x_addr.eq(Mux(lead.ctl.take, Mux(last_pass, 0, p_in + 1), p_in))
        inputs = []
        for s, members in enumerate(self.slots):
            width = self.tiles[s, 0].rows
            x, g = Signal(width, name=f"x_s{s}"), Signal(width, name=f"g_s{s}")
            if self.x_memory:
                m.d.comb += x.eq(self.x_data[s * layer.tile[0]:][:width])
            with m.Switch(p_in):
                for p, t in enumerate(members):
                    with m.Case(p):
                        if t is not None:
                            a, b = layer.row_tiles[t]
                            m.d.comb += g.eq(req.payload.g[a:b])
                            if not self.x_memory:
                                m.d.comb += x.eq(req.payload.x[a:b])
            inputs.append((x, g))
        return inputs, last_take

    def elaborate(self, platform):
        m = Module()
        layer, plan, req, out = self.layer, self.plan, self.req, self.sums
        # The sums register: the row splits' adder tree ends in it (a 13-split classifier's
        # tree is four carry chains deep), a stream register that holds while `sums` is
        # not taken.
        adv = Signal()
        m.d.comb += adv.eq(~out.valid | out.ready)
        lead = self.tiles[0, 0]
        inputs, last_take = self._slot_inputs(m, req, lead)
        for (s, ci), t in self.tiles.items():
            x, g = inputs[s]
            m.submodules[f"tile_r{s}_c{ci}"] = t
            if t is lead:
                m.d.comb += [t.req.valid.eq(req.valid), t.req.payload.x.eq(x),
                             t.req.payload.g.eq(g),
                             t.req.payload.tag.eq(req.payload.tag), t.beat.ready.eq(adv)]
            else:
                m.d.comb += [t.x.eq(x), t.g.eq(g), t.ctl.eq(lead.ctl)]
        load = Signal()
        # the payload register needs no reset (out.valid has one): one enable in Verilog
        q = Signal(out.payload.shape(), reset_less=True)
        m.d.comb += [req.ready.eq(lead.req.ready if last_take is None else last_take),
                     load.eq(adv & lead.beat.valid), out.payload.eq(q)]
        # a row-serial plan: the beats of passes 0 .. P-2 add into `part`; the last pass's
        # beat leaves as the column beat `index` (the pass counted by `p_out`)
        passes = plan.passes
        if passes == 1:
            valid, emit, index = lead.beat.valid, load, lead.beat.payload.index
        else:
            final, p_out = Signal(), Signal(range(passes))
            index = Signal(range(max(plan.beats, 2)))
            m.d.comb += final.eq(p_out == passes - 1)
            with m.If(load):
                m.d.sync += p_out.eq(Mux(final, 0, p_out + 1))
                with m.If(final):
                    m.d.sync += index.eq(Mux(lead.beat.payload.last, 0, index + 1))
            valid, emit = lead.beat.valid & final, load & final
        with m.If(adv):
            m.d.sync += out.valid.eq(valid)
        with m.If(emit):
            m.d.sync += [q.index.eq(index), q.last.eq(lead.beat.payload.last),
                         q.tag.eq(lead.beat.payload.tag)]
        k = 0
        aw = acc_width(layer.rows)
        for ci, lanes in enumerate(plan.lanes):
            for lane in range(lanes):
                sv = Signal(signed(aw), name=f"sum_c{ci}_l{lane}")
                m.d.comb += sv.eq(add_tree(self.tiles[s, ci].sums[lane]
                                           for s in range(len(self.slots))))
                if passes == 1:
                    with m.If(load):
                        m.d.sync += q.acc[k].eq(sv)
                else:
                    part = Signal(signed(aw), name=f"part_c{ci}_l{lane}", reset_less=True)
                    first = p_out == 0
                    total = Mux(first, 0, part) + sv
                    with m.If(load):
                        m.d.sync += part.eq(total)
                        with m.If(final):
                            m.d.sync += q.acc[k].eq(total)
                k += 1
        return m
