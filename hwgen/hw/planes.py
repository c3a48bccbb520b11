"""The plane accumulator of a bit-plane first layer (SPEC section 3)."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..ir.core import Layer
from .layouts import check_plane_weights, sums_layout, window_tag
from .plan import ReadPlan
from .tile import acc_width

__all__ = ["PlaneAccumulator"]


class PlaneAccumulator(wiring.Component):
    """Shift-adds the plane passes of a bit-plane first layer (SPEC section 3).

    The walker issues a window's planes MSB first, so Horner's rule needs only a
    doubling: a = part (MSB plane, negated when its weight is negative), then
    a = 2*a + part for each lower plane; a is the sum of plane_weights[k] * part_k. The
    running sums of a read's beats live in a shift register of `beats` words (one word
    per beat: every lane of every column split), which turns over once per plane.

    Parameters
    ----------
    layer : hwgen.ir.core.Layer
    plan : hwgen.ir.core.ReadPlan
    weights : tuple of int
        Plane weights, LSB plane first (`check_plane_weights`).
    bound : int
        The largest |acc| (`IR.acc_bound(0)`): the width of the output sums.

    Ports
    -----
    sums : In(stream of `sums_layout(layer, plan, planes=True)`)
        Every plane pass's beats.
    out : Out(stream of `sums_layout(layer, plan, bound)`)
        The beats of the last (LSB) plane, with the window's sums; the plane flags are
        dropped from the tag.
    """

    def __init__(self, layer: Layer, plan: ReadPlan, weights, bound: int):
        self.layer, self.plan = layer, plan
        self.weights, self.bound = check_plane_weights(weights), bound
        super().__init__({
            "sums": In(stream.Signature(sums_layout(layer, plan, planes=True))),
            "out": Out(stream.Signature(sums_layout(layer, plan, bound))),
        })

    def elaborate(self, platform):
        m = Module()
        beat, out = self.sums, self.out
        n = sum(self.plan.lanes)
        aw = acc_width(self.bound)
        tag = data.View(window_tag(True), beat.payload.tag)
        neg_msb = self.weights[-1] < 0
        sr = Signal(n * aw * self.plan.beats, name="partial")
        news = []
        for k in range(n):
            part = beat.payload.acc[k]
            head = sr[k * aw:(k + 1) * aw].as_signed()
            nv = Signal(signed(aw), name=f"acc_l{k}")
            first = -part if neg_msb else part
            twice = Cat(Const(0, 1), head).as_signed()     # 2*head, no shift operator
            m.d.comb += nv.eq(Mux(tag.pfirst, first, twice + part))
            news.append(nv)
            m.d.comb += out.payload.acc[k].eq(nv)
        got = beat.valid & beat.ready
        with m.If(got):
            m.d.sync += sr.eq(Cat(sr[n * aw:], *news))
        m.d.comb += [out.valid.eq(beat.valid & tag.plast),
                     beat.ready.eq(~tag.plast | out.ready),
                     out.payload.index.eq(beat.payload.index),
                     out.payload.last.eq(beat.payload.last),
                     out.payload.tag.eq(beat.payload.tag[:len(out.payload.tag)])]
        return m
