"""LayerTop: one TileController of an IR behind ports a layer-level bench can drive.

The controller is built exactly as NetworkTop builds it for layer i (same lanes, the same
`bit_writes` and `acc_w`), so what passes here is the controller the network uses. The
bench writes the input buffer through the controller's own write port (one C-bit word per
spatial position), sets `keep`, pulses `start` and reads the result after `done`:

- thresholded layer: `result`, the output bits in flattened (c, y, x) order (bit
  c*H''*W'' + y*W'' + x), captured from the controller's `next` writes and cleared by
  `start`; `writes` counts the writes since `start`, so a missing or repeated write
  shows even where the expected bit is 0;
- classifier: the controller's `out` stream (sample index 0).
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..ir.core import IR
from .controller import TileController
from .plan import reads_per_window
from .tile import acc_width

__all__ = ["LayerTop", "layer_params"]


def layer_params(ir: IR, i: int, lanes: int) -> dict:
    """The layer top's parameters (also written to its ports JSON)."""
    layer, site = ir.layers[i], ir.site_of(i)
    c, h, w = layer.in_shape
    o, hh, ww = layer.out_shape
    return {"layer": i, "lanes": lanes, "in_shape": [c, h, w], "out_shape": [o, hh, ww],
            "positions": h * w, "out_positions": hh * ww,
            "n_groups": site.n_groups if site is not None else 0,
            "classifier": layer.is_classifier,
            "ACC_W": acc_width(ir.acc_bound(i)) if layer.is_classifier else None,
            "bit_writes": i == 0, "planes": reads_per_window(ir, i)}


class LayerTop(wiring.Component):
    """Layer `i` of `ir` alone (module `layer{i}` on export).

    Parameters
    ----------
    ir : hwgen.ir.core.IR
    i : int
        Layer index.
    lanes : int
        Columns per tile cycle, as for NetworkTop.

    Ports
    -----
    wr : Out(`buffer_write_signature(H*W, C)`)
        The controller's input-buffer write port (a memory port: its members are inputs).
    keep : In(n_groups)
        Only when the layer has a dropout site.
    start : In(1); done : Out(1)
    result : Out(O*H''*W''); writes : Out(16)
        Thresholded layers: the output bits, flattened (c, y, x), and the writes since
        `start`.
    out : Out(stream of `class_layout(classes, ACC_W)`)
        Classifier (sample index 0).
    """

    def __init__(self, ir: IR, i: int, lanes: int = 8):
        if not 0 <= i < len(ir.layers):
            raise ValueError(f"layer {i} out of range (the IR has {len(ir.layers)})")
        self.ir, self.i, self.lanes = ir, i, lanes
        self.params = layer_params(ir, i, lanes)
        layer, site = ir.layers[i], ir.site_of(i)
        multibit = i == 0 and ir.input.mode != "binary"
        self.ctl = TileController(layer, site, lanes,
                                  acc_w=self.params["ACC_W"], bit_writes=i == 0,
                                  planes=ir.input.plane_weights if multibit else None,
                                  bound=ir.acc_bound(i))
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
        if "keep" in self.signature.members:
            m.d.comb += ctl.keep.eq(self.keep)
        if layer.is_classifier:
            m.d.comb += ctl.sample.eq(0)
            wiring.connect(m, wiring.flipped(self.out), ctl.out)
            return m
        o, hh, ww = layer.out_shape
        n = hh * ww
        # one O-bit word per output position, as the next layer's buffer would hold it
        words = [Signal(o, name=f"pos{p}") for p in range(n)]
        wrote = ctl.next.en.any()
        with m.If(self.start):
            m.d.sync += [wd.eq(0) for wd in words] + [self.writes.eq(0)]
        with m.Elif(wrote):
            m.d.sync += self.writes.eq(self.writes + 1)
            addr = ctl.next.addr
            for p, wd in enumerate(words):
                # `addr == 0` comes out as `!addr`, which Verilator -Wall flags (WIDTHTRUNC)
                with m.If(addr == p if p else ~addr.any()):
                    m.d.sync += wd.eq(ctl.next.data)
        m.d.comb += self.result.eq(Cat(*(words[p][ch] for ch in range(o) for p in range(n))))
        return m
