"""All crossbar tiles of a layer behind one request stream and one stream of column sums."""

from __future__ import annotations

from amaranth import Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..ir.core import Layer
from .layouts import wordline_order
from .plan import ReadPlan
from .tile import CrossbarTile, acc_width, add_tree, beat_layout, request_layout

__all__ = ["TileArray"]


class TileArray(wiring.Component):
    """All crossbar tiles of a layer (row splits x column splits), read in lock step: tile
    (0, 0) has the one control, the others follow it (`CrossbarTile(follow=True)`).

    Parameters
    ----------
    layer : hwgen.ir.core.Layer
        Weights and tiling (`row_tiles`, `col_tiles`).
    plan : hwgen.ir.core.ReadPlan
        Beats per read and lanes per column split.
    tag : int
        Width of the opaque tag passed from each request to its beats.

    Ports
    -----
    req : In(stream of `request_layout(rows, tag)`)
        One read of every tile: row split ri sees rows [a_ri, b_ri) of `x` and `g`.
    sums : Out(stream of `beat_layout(rows, sum(lanes), beats, tag)`)
        Per beat, every column split's lanes, each summed over the row splits (the
        `sums_layout` of the layer's walker tag), from a register: a request's first
        beat is here `READ_LATENCY` cycles after the request (the tile's pipeline, then
        this register).
    """

    def __init__(self, layer: Layer, plan: ReadPlan, tag):
        self.layer, self.plan = layer, plan
        wbits = layer.weight_bits()[:, wordline_order(layer)]
        self.tiles = {}
        for ci, ((ca, cb), lanes) in enumerate(zip(layer.col_tiles, plan.lanes)):
            for ri, (ra, rb) in enumerate(layer.row_tiles):
                # tile (0, 0) leads: its control moves every other tile of the layer
                self.tiles[ri, ci] = CrossbarTile(rb - ra, cb - ca, lanes, wbits[ca:cb, ra:rb],
                                                  beats=plan.beats, tag=tag,
                                                  follow=(ri, ci) != (0, 0))
        super().__init__({
            "req": In(stream.Signature(request_layout(layer.rows, tag))),
            "sums": Out(stream.Signature(beat_layout(layer.rows, sum(plan.lanes), plan.beats,
                                                     tag))),
        })

    def elaborate(self, platform):
        m = Module()
        layer, req, out = self.layer, self.req, self.sums
        # The sums register: the row splits' adder tree ends in it (a 13-split classifier's
        # tree is four carry chains deep), a stream register that holds while `sums` is
        # not taken.
        adv = Signal()
        m.d.comb += adv.eq(~out.valid | out.ready)
        lead = self.tiles[0, 0]
        for (ri, ci), t in self.tiles.items():
            ra, rb = layer.row_tiles[ri]
            m.submodules[f"tile_r{ri}_c{ci}"] = t
            if t is lead:
                m.d.comb += [t.req.valid.eq(req.valid), t.req.payload.x.eq(req.payload.x[ra:rb]),
                             t.req.payload.g.eq(req.payload.g[ra:rb]),
                             t.req.payload.tag.eq(req.payload.tag), t.beat.ready.eq(adv)]
            else:
                m.d.comb += [t.x.eq(req.payload.x[ra:rb]), t.g.eq(req.payload.g[ra:rb]),
                             t.ctl.eq(lead.ctl)]
        load = Signal()
        # the payload register needs no reset (out.valid has one): one enable in Verilog
        q = Signal(out.payload.shape(), reset_less=True)
        m.d.comb += [req.ready.eq(lead.req.ready), load.eq(adv & lead.beat.valid),
                     out.payload.eq(q)]
        with m.If(adv):
            m.d.sync += out.valid.eq(lead.beat.valid)
        with m.If(load):
            m.d.sync += [q.index.eq(lead.beat.payload.index), q.last.eq(lead.beat.payload.last),
                         q.tag.eq(lead.beat.payload.tag)]
        k = 0
        for ci, lanes in enumerate(self.plan.lanes):
            for lane in range(lanes):
                sv = Signal(signed(acc_width(layer.rows)), name=f"sum_c{ci}_l{lane}")
                m.d.comb += sv.eq(add_tree(self.tiles[ri, ci].sums[lane]
                                           for ri in range(len(layer.row_tiles))))
                with m.If(load):
                    m.d.sync += q.acc[k].eq(sv)
                k += 1
        return m
