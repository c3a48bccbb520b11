# amaranth: UnusedElaboratable=no
"""LayerTop: one TileController of an IR behind ports a layer-level bench can drive.

The controller is built by the function NetworkTop builds it with
(`hwgen.hw.controller.layer_controller`: the IR's read plan, banks, homing and `acc_w`), so what
passes here is the controller the network uses; a two-bank store is written and read in
bank 0. The bench shifts the input map into the controller's store through its own write
port (one word per position, raster order), sets `keep`, pulses `start` and reads the
result after `done`:

- thresholded layer: `result`, the output bits in flattened (c, y, x) order (bit
  c*H''*W'' + y*W'' + x), captured from the controller's `next` writes (shifted into a
  register of H''*W'' words, as the next store would take them); `writes` counts the
  writes since `start`, so a missing or repeated write shows even where the expected
  bit is 0;
- classifier: the controller's `out` stream (sample index 0).
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..ir.core import IR
from .controller import layer_controller
from .plan import layer_plan, reads_per_window
from .tile import acc_width

__all__ = ["LayerTop", "layer_params"]


def layer_params(ir: IR, i: int) -> dict:
    """The layer top's parameters (also written to its ports JSON; `lanes` and `beats`
    report the layer's read plan)."""
    layer, site = ir.layers[i], ir.site_of(i)
    c, h, w = layer.in_shape
    o, hh, ww = layer.out_shape
    plan = layer_plan(ir, i)
    return {"layer": i, "lanes": list(plan.lanes), "beats": plan.beats, "in_shape": [c, h, w], "out_shape": [o, hh, ww],
            "positions": h * w, "out_positions": hh * ww,
            "n_groups": site.n_groups if site is not None else 0,
            "classifier": layer.is_classifier,
            "ACC_W": acc_width(ir.acc_bound(i)) if layer.is_classifier else None,
            "planes": reads_per_window(ir, i)}


class LayerTop(wiring.Component):
    """Layer `i` of `ir` alone (module `layer{i}` on export).

    Parameters
    ----------
    ir : hwgen.ir.core.IR
    i : int
        Layer index (built from its read plan in `ir`, as for NetworkTop).

    Ports
    -----
    wr : In(`store_write_signature(P*C)`)
        The controller's store write port (raster order).
    keep : In(n_groups)
        Only when the layer has a dropout site.
    start : In(1); done : Out(1)
    result : Out(O*H''*W''); writes : Out(16)
        Thresholded layers: the output bits, flattened (c, y, x), and the writes since
        `start`.
    out : Out(stream of `class_layout(classes, ACC_W)`)
        Classifier (sample index 0).
    """

    def __init__(self, ir: IR, i: int):
        if not 0 <= i < len(ir.layers):
            raise ValueError(f"layer {i} out of range (the IR has {len(ir.layers)})")
        self.ir, self.i = ir, i
        self.params = layer_params(ir, i)
        layer, site = ir.layers[i], ir.site_of(i)
        self.ctl = layer_controller(ir, i)
        ports = {"start": In(1), "done": Out(1), "wr": self.ctl.signature.members["wr"]}
        if site is not None:
            ports["keep"] = In(site.n_groups)
        if layer.is_classifier:
            ports["out"] = self.ctl.signature.members["out"]
        else:
            o, hh, ww = layer.out_shape
            ports["result"] = Out(o * hh * ww)
            ports["writes"] = Out(16)
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        m.submodules.ctl = ctl = self.ctl
        layer = self.ir.layers[self.i]
        m.d.comb += [ctl.start.eq(self.start), self.done.eq(ctl.done)]
        wiring.connect(m, wiring.flipped(self.wr), ctl.wr)
        if ctl.banks == 2:
            m.d.comb += [ctl.wbank.eq(0), ctl.rbank.eq(0)]
        if "keep" in self.signature.members:
            m.d.comb += ctl.keep.eq(self.keep)
        if layer.is_classifier:
            m.d.comb += ctl.sample.eq(0)
            wiring.connect(m, wiring.flipped(self.out), ctl.out)
            return m
        o, hh, ww = layer.out_shape
        n = hh * ww
        # one O-bit word per output position, shifted in as the next layer's store takes them
        words = Signal(o * n)
        wrote = ctl.next.en
        with m.If(self.start):
            m.d.sync += self.writes.eq(0)
        with m.Elif(wrote):
            m.d.sync += [self.writes.eq(self.writes + 1),
                         words.eq(Cat(words[o:], ctl.next.data))]
        m.d.comb += self.result.eq(Cat(*(words[p * o + ch] for ch in range(o) for p in range(n))))
        return m
