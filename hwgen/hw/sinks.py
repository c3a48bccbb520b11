"""A layer's sinks: `ThresholdPool` (threshold, pool in raster order, shift the pooled words
into the next layer's store) and `ClassCollector` (the classifier's class sums)."""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..ir.core import Layer
from .layouts import class_layout, store_write_signature, sums_layout, window_tag
from .plan import ReadPlan
from .tile import acc_width

__all__ = ["ThresholdPool", "ClassCollector"]


def _collect(m, lanes_of, values, beats: int, width: int, got, name: str):
    """Per column split, the values of a whole read: the last beat's lanes are combinational
    and earlier beats' are shifted into a register, so the read's result is complete in
    the cycle its last beat arrives. Returns one `Value` of lanes*beats*width bits per split."""
    out = []
    for ci, lanes in enumerate(lanes_of):
        beat_vals = values[ci]
        if beats > 1:
            sr = Signal(lanes * width * beats, name=f"{name}_c{ci}")
            full = Cat(sr[lanes * width:], beat_vals)
            with m.If(got):
                m.d.sync += sr.eq(full)
        else:
            full = beat_vals
        out.append(full)
    return out


class ThresholdPool(wiring.Component):
    """Thresholds a thresholded layer's column sums, pools (OR) in raster order and shifts
    each pooled word into the next layer's store.

    The windows come in raster order, those in no block left out, so a pool block's
    windows arrive as s runs of s, one run per window row, and the blocks of one block
    row interleave. The sink keeps `cur`, the OR of the current run so far, and a ring
    of wp words, the OR of each block's earlier runs (head: the current block): a run's
    last window (`xlast`) rotates the ring with the block's new OR; the block's last
    window (`xlast` and `ylast`) also writes it to the next store, so the pooled words
    leave in raster order, which is what the next ring needs. No random access; with no
    pool every window is written as it is.

    Parameters
    ----------
    layer : hwgen.ir.core.Layer
        Signs, thresholds, pool size and tiling.
    plan : hwgen.ir.core.ReadPlan
    bound : int or None
        The largest |acc| (default: the rows); the thresholds are clamped to it.

    Ports
    -----
    sums : In(stream of `sums_layout(layer, plan, bound)`)
        Always ready.
    next : Out(`store_write_signature(O)`)
        Writes into the next layer's store: one O-bit word per pooled position, raster
        order.
    done : Out(1)
        Pulse with the layer's last write.
    """

    def __init__(self, layer: Layer, plan: ReadPlan, bound: int | None = None):
        if layer.is_classifier:
            raise ValueError("ThresholdPool needs a thresholded layer, not the classifier")
        self.layer, self.plan = layer, plan
        self.bound = layer.rows if bound is None else bound
        super().__init__({
            "sums": In(stream.Signature(sums_layout(layer, plan, self.bound))),
            "next": Out(store_write_signature(layer.out_channels)),
            "done": Out(1),
        })

    def threshold_rom(self) -> tuple[list[int], int]:
        """Word k: per column split, per lane, (t', neg) with out = neg ? acc <= t' : acc >= t'."""
        layer, r = self.layer, self.plan.beats
        rows = self.bound
        tw = acc_width(rows + 1)
        words = []
        for k in range(r):
            word, pos = 0, 0
            for (a, b), lanes in zip(layer.col_tiles, self.plan.lanes):
                for lane in range(lanes):
                    j = a + k * lanes + lane
                    t, neg = 0, 0
                    if j < b:
                        s, t = layer.sign[j], layer.thresh[j]
                        neg = int(s < 0)
                        # acc is in [-bound, bound]: clamping keeps every comparison's outcome.
                        t = max(-rows - 1, min(rows + 1, t if s > 0 else -t))
                    word |= ((t & ((1 << tw) - 1)) | (neg << tw)) << pos
                    pos += tw + 1
            words.append(word)
        return words, tw

    def elaborate(self, platform):
        m = Module()
        layer, plan, beat = self.layer, self.plan, self.sums
        o = layer.out_channels
        tag = data.View(window_tag(), beat.payload.tag)
        got = Signal()
        end = Signal()                                 # the last beat of a window
        m.d.comb += [beat.ready.eq(1), got.eq(beat.valid),
                     end.eq(got & beat.payload.last)]
        words, tw = self.threshold_rom()
        width = (tw + 1) * sum(plan.lanes)
        m.submodules.thresh = rom = memory.Memory(shape=unsigned(width),
                                                  depth=max(plan.beats, 2), init=words)
        rd = rom.read_port(domain="comb")
        m.d.comb += rd.addr.eq(beat.payload.index)
        bits_of, pos, k = [], 0, 0
        for ci, lanes in enumerate(plan.lanes):
            bits = Signal(lanes, name=f"bits_c{ci}")
            for lane in range(lanes):
                t = rd.data[pos:pos + tw].as_signed()
                neg = rd.data[pos + tw]
                pos += tw + 1
                acc = beat.payload.acc[k]
                k += 1
                m.d.comb += bits[lane].eq(Mux(neg, acc <= t, acc >= t))
            bits_of.append(bits)
        full = _collect(m, plan.lanes, bits_of, plan.beats, 1, got, "sr")
        winbits = Signal(o)
        m.d.comb += winbits.eq(Cat(*(f[:b - a] for f, (a, b) in zip(full, layer.col_tiles))))
        pooled = Signal(o)
        write = Signal()
        if layer.pool > 1:
            _, _, wp = layer.out_shape
            cur = Signal(o)                            # this run of the block so far
            blocks = Signal(o * wp)                    # each block's earlier runs; head: this one
            m.d.comb += [pooled.eq(winbits | Mux(tag.xfirst, 0, cur)
                                   | Mux(tag.yfirst, 0, blocks[:o])),
                         write.eq(end & tag.xlast & tag.ylast)]
            with m.If(end):
                with m.If(tag.xlast):
                    m.d.sync += blocks.eq(Cat(blocks[o:], pooled))
                with m.Else():
                    m.d.sync += cur.eq(pooled)
        else:
            m.d.comb += [pooled.eq(winbits), write.eq(end)]
        m.d.comb += [self.next.data.eq(pooled), self.next.en.eq(write),
                     self.done.eq(end & tag.final)]
        return m


class ClassCollector(wiring.Component):
    """Collects the classifier's signed class sums into one `out` beat per read.

    Parameters
    ----------
    layer : hwgen.ir.core.Layer
        The classifier.
    plan : hwgen.ir.core.ReadPlan
    acc_w : int
        Width of each class sum on `out` (at least `acc_width(bound)`).
    bound : int or None
        The largest |acc| (default: the rows).

    Ports
    -----
    sums : In(stream of `sums_layout(layer, plan, bound)`)
        Ready while `out` holds no beat or the beat is being taken.
    sample : In(16)
        The sample index carried by the beat.
    out : Out(stream of `class_layout(classes, acc_w)`)
    done : Out(1)
        Pulse when the last beat of the read is taken (the `out` beat is valid next cycle).
    """

    def __init__(self, layer: Layer, plan: ReadPlan, acc_w: int, bound: int | None = None):
        self.layer, self.plan, self.acc_w = layer, plan, acc_w
        self.bound = layer.rows if bound is None else bound
        super().__init__({
            "sums": In(stream.Signature(sums_layout(layer, plan, self.bound))),
            "sample": In(16),
            "out": Out(stream.Signature(class_layout(layer.out_channels, acc_w))),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        layer, plan, beat, out = self.layer, self.plan, self.sums, self.out
        sw = acc_width(self.bound)
        tag = data.View(window_tag(), beat.payload.tag)
        got = Signal()
        end = Signal()
        m.d.comb += [beat.ready.eq(~out.valid | out.ready), got.eq(beat.valid & beat.ready),
                     end.eq(got & beat.payload.last), self.done.eq(end & tag.final)]
        vals, k = [], 0
        for lanes in plan.lanes:
            vals.append(Cat(*(beat.payload.acc[k + lane] for lane in range(lanes))))
            k += lanes
        full = _collect(m, plan.lanes, vals, plan.beats, sw, got, "sr")
        classes = [f[j * sw:(j + 1) * sw].as_signed()
                   for f, (a, b) in zip(full, layer.col_tiles) for j in range(b - a)]
        with m.If(out.valid & out.ready):
            m.d.sync += out.valid.eq(0)
        with m.If(end):
            m.d.sync += [out.valid.eq(1), out.payload.sample.eq(self.sample)]
            m.d.sync += [out.payload.acc[j].eq(v) for j, v in enumerate(classes)]
        return m
