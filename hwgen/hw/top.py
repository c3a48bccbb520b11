"""NetworkTop (`hwgen_top`): image load, the deterministic prefix, T MC samples, out stream.

Port contract: docs/ARCHITECTURE.md section 5. Per image:

1. While `idle`, image words arrive on `img`; the loader writes one bit per cycle into
   layer 0's buffer (bit b of the flattened (c, y, x) image goes to position b mod H*W,
   channel b div H*W).
2. `start` samples `n_samples` (T); layers before `ir.mc_start` run once, chained
   (a layer starts in the cycle the previous one writes its last position); the RNG cycle
   for sample 0 runs at the same time.
3. Each sample takes the fresh keep bits from the RNG bank's stream into the active keep
   bank (which the controllers read), starts the RNG cycle for the next sample and runs
   layers mc_start.. in a chain; the classifier's beat carries the sample index. The next
   sample starts in the cycle the classifier finishes, as soon as its keep bits are in.
4. `done` pulses once the last beat has been taken; then `idle` again.
"""

from __future__ import annotations

import numpy as np
from amaranth import Cat, Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..ir.core import IR
from .controller import TileController
from .rng import MtjRngBank
from .tile import acc_width

__all__ = ["NetworkTop", "top_params", "image_words"]


def image_words(bits, in_w: int) -> list[int]:
    """One image's bits, flattened (c, y, x), -> the `img` words: bit k*in_w + b at bit b of
    word k, the last word zero-padded (docs/ARCHITECTURE.md s.5)."""
    bits = np.asarray(bits, np.uint8).ravel()
    n = -(-bits.size // in_w)
    padded = np.zeros(n * in_w, np.uint8)
    padded[:bits.size] = bits
    return [int.from_bytes(np.packbits(w, bitorder="little").tobytes(), "little")
            for w in padded.reshape(n, in_w)]


def top_params(ir: IR, lanes: int = 8, in_w: int = 32) -> dict:
    """The generated top's parameters (also written to ports.json)."""
    c, h, w = ir.in_shape
    bits = c * h * w
    code_w = int(ir.rng.device.get("code_bits", 10)) if ir.rng.device else 10
    return {
        "IN_W": in_w, "ACC_W": acc_width(ir.layers[-1].rows), "CODE_W": code_w,
        "N_IF": ir.n_interfaces, "classes": ir.n_classes, "image_bits": bits,
        "words_per_image": -(-bits // in_w), "reset_cycles": ir.rng.reset_cycles,
        "write_cycles": ir.rng.write_cycles, "sense_gap": 2, "clk_ns": ir.rng.clk_ns,
        "lanes": lanes, "mc_start": ir.mc_start,
    }


class NetworkTop(wiring.Component):
    """The whole network: one TileController per layer, the MTJ-RNG bank, a loader.

    Parameters
    ----------
    ir : hwgen.ir.core.IR
    lanes : int
        Columns per tile cycle (per layer at most the widest column split).
    in_w : int
        Image bits per `img` word.
    """

    def __init__(self, ir: IR, lanes: int = 8, in_w: int = 32):
        if not (isinstance(lanes, int) and lanes >= 1):
            raise ValueError(f"lanes must be a positive integer, not {lanes!r}")
        if not (isinstance(in_w, int) and in_w >= 1):
            raise ValueError(f"in_w must be a positive integer, not {in_w!r}")
        self.ir, self.lanes, self.in_w = ir, lanes, in_w
        self.params = p = top_params(ir, lanes, in_w)
        ports = {
            "img": In(stream.Signature(in_w)),
            "n_samples": In(16), "start": In(1), "idle": Out(1), "done": Out(1),
            "out": Out(stream.Signature(data.StructLayout({
                "sample": 16, "acc": data.ArrayLayout(signed(p["ACC_W"]), p["classes"])}))),
        }
        if p["N_IF"]:
            n = p["N_IF"]
            ports.update({"mtj_reset": Out(n), "mtj_write": Out(n), "mtj_sense": In(n),
                          "mtj_code": Out(n * p["CODE_W"])})
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        ir, p = self.ir, self.params
        mc = ir.mc_start
        ctrls = []
        for i, layer in enumerate(ir.layers):
            ctl = TileController(layer, ir.site_of(i), self.lanes,
                                 acc_w=p["ACC_W"] if layer.is_classifier else None,
                                 bit_writes=i == 0)
            m.submodules[f"layer{i}"] = ctl
            ctrls.append(ctl)
        self.controllers = ctrls                       # for testbenches (cycle counts)
        for a, b in zip(ctrls, ctrls[1:]):
            wiring.connect(m, a.next, b.wr)
        cls = ctrls[-1]

        # -- image loader ------------------------------------------------------------------
        c0, h0, w0 = ir.in_shape
        hw0 = h0 * w0
        word = Signal(self.in_w)
        left = Signal(range(self.in_w + 1))            # bits of `word` still to write
        ch = Signal(range(max(c0, 2)))
        pos = Signal(range(hw0))
        wr0 = ctrls[0].wr
        m.d.comb += [wr0.addr.eq(pos), wr0.data.eq(Cat(*([word[0]] * c0))),
                     wr0.en.eq(Cat(*(left.any() & (ch == i) for i in range(c0))))]
        with m.If(left.any()):
            img_end = (ch == c0 - 1) & (pos == hw0 - 1)
            m.d.sync += [word.eq(word >> 1), left.eq(left - 1)]
            with m.If(pos == hw0 - 1):
                m.d.sync += [pos.eq(0), ch.eq(ch + 1)]
            with m.Else():
                m.d.sync += pos.eq(pos + 1)
            with m.If(img_end):
                m.d.sync += [ch.eq(0), left.eq(0)]     # the rest of the last word is padding

        # -- sequencer ---------------------------------------------------------------------
        running = Signal()
        prefix_done = Signal()
        in_sample = Signal()
        n_t = Signal(16)                               # T of this image
        started = Signal(16)                           # samples started so far
        go = Signal()
        m.d.comb += [
            self.idle.eq(~running & ~left.any()),
            self.img.ready.eq(~running & ~left.any()),
        ]
        with m.If(self.img.valid & self.img.ready):
            m.d.sync += [word.eq(self.img.payload), left.eq(self.in_w)]

        launch = Signal()
        m.d.comb += launch.eq(self.idle & self.start)
        cls_done = cls.done
        if p["N_IF"]:
            m.submodules.rng = rng = MtjRngBank(
                [s.mtj_code for s in ir.sites for _ in range(s.n_groups)], p["CODE_W"],
                ir.rng.reset_cycles, ir.rng.write_cycles, p["sense_gap"])
            m.d.comb += [self.mtj_reset.eq(rng.mtj.reset), self.mtj_write.eq(rng.mtj.write),
                         rng.mtj.sense.eq(self.mtj_sense), self.mtj_code.eq(rng.mtj.code)]
            # the active keep bank the controllers read: a sample takes its bits from the
            # stream when it starts
            keep = Signal(ir.n_interfaces)
            with m.If(go):
                m.d.sync += keep.eq(rng.keep.payload)
            for i, ctl in enumerate(ctrls):
                s = ir.site_of(i)
                if s is not None:
                    m.d.comb += ctl.keep.eq(keep[s.first_interface:s.first_interface + s.n_groups])
            keep_in = rng.keep.valid
        else:
            keep_in = 1
        m.d.comb += go.eq(running & prefix_done & (~in_sample | cls_done) & (started < n_t)
                          & keep_in)
        if p["N_IF"]:
            # sample 0's RNG cycle starts with the image (under the prefix), sample t+1's
            # with sample t, so the keep bits are ready when the classifier finishes
            m.d.comb += [rng.keep.ready.eq(go),
                         rng.go.eq((launch & self.n_samples.any())
                                   | (go & (started + 1 < n_t)))]

        # layer starts: the prefix chain from `launch`, the sample chain from `go`
        for i, ctl in enumerate(ctrls):
            if i == 0 and mc > 0:
                m.d.comb += ctl.start.eq(launch)
            elif i == mc:
                m.d.comb += ctl.start.eq(go)
            else:
                m.d.comb += ctl.start.eq(ctrls[i - 1].done)
        m.d.comb += [cls.sample.eq(started - 1)]
        wiring.connect(m, wiring.flipped(self.out), cls.out)

        with m.If(launch):
            m.d.sync += [running.eq(1), n_t.eq(self.n_samples), started.eq(0),
                         prefix_done.eq(mc == 0), in_sample.eq(0)]
        if mc > 0:
            with m.If(ctrls[mc - 1].done):
                m.d.sync += prefix_done.eq(1)
        with m.If(cls_done):
            m.d.sync += in_sample.eq(0)
        with m.If(go):
            m.d.sync += [in_sample.eq(1), started.eq(started + 1)]
        finish = Signal()
        m.d.comb += finish.eq(running & prefix_done & ~in_sample & (started == n_t)
                              & ~self.out.valid)
        with m.If(finish):
            m.d.sync += running.eq(0)
        m.d.comb += self.done.eq(finish)
        return m
