"""NetworkTop (`hwgen_top`): image load, the deterministic prefix, T MC samples, out stream.

Port contract: docs/ARCHITECTURE.md section 5. Per image:

1. While `idle`, image words arrive on `img`; the loader (`hwgen.hw.loader`) writes them
   into layer 0's buffer. With a prefix (ir.mc_start > 0) they are also taken while the
   previous image's samples run, its prefix being done with the buffer: the next image
   loads under the samples instead of between images. A multi-bit input (DESIGN
   section 3) is sent as its P bit planes, plane-major, and layer 0's buffer holds them
   as P*C channels; layer 0 then reads each window P times (one pass per plane) and
   shift-adds the passes.
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

from amaranth import Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..ir.core import IR
from .controller import TileController, class_layout
from .loader import ImageLoader
from .rng import MtjRngBank
from .tile import acc_width

__all__ = ["NetworkTop", "top_params"]


def top_params(ir: IR, lanes: int = 8, in_w: int = 32) -> dict:
    """The generated top's parameters (also written to ports.json). `planes` is the
    number of input bit planes P (1 for binary input); an image is P*C*H*W bits."""
    c, h, w = ir.in_shape
    planes = ir.input.planes
    bits = planes * c * h * w
    code_w = ir.mtj.device.code_bits
    return {
        "IN_W": in_w, "ACC_W": acc_width(ir.acc_bound(len(ir.layers) - 1)), "CODE_W": code_w,
        "N_IF": ir.n_interfaces, "classes": ir.n_classes, "image_bits": bits,
        "words_per_image": -(-bits // in_w), "reset_cycles": ir.mtj.reset_cycles,
        "write_cycles": ir.mtj.write_cycles, "sense_gap": 2, "clk_ns": ir.mtj.clk_ns,
        "lanes": lanes, "mc_start": ir.mc_start, "planes": planes,
    }


class NetworkTop(wiring.Component):
    """The whole network: a loader, one TileController per layer, the MTJ-RNG bank.

    Parameters
    ----------
    ir : hwgen.ir.core.IR
    lanes : int
        Columns per tile cycle (per layer at most the widest column split).
    in_w : int
        Image bits per `img` word.

    Ports
    -----
    img : In(stream of in_w bits)
        Image words (accepted while idle and, with a prefix, while samples run).
    n_samples : In(16); start : In(1); idle : Out(1); done : Out(1)
    out : Out(stream of `class_layout(classes, ACC_W)`)
        One beat per MC sample.
    mtj_reset, mtj_write : Out(N_IF); mtj_sense : In(N_IF); mtj_code : Out(N_IF*CODE_W)
        Only with dropout sites (N_IF > 0).

    Attributes
    ----------
    controllers : list of TileController
        One per layer (testbenches read their `start` / `done`).
    """

    def __init__(self, ir: IR, lanes: int = 8, in_w: int = 32):
        if not (isinstance(lanes, int) and lanes >= 1):
            raise ValueError(f"lanes must be a positive integer, not {lanes!r}")
        if not (isinstance(in_w, int) and in_w >= 1):
            raise ValueError(f"in_w must be a positive integer, not {in_w!r}")
        self.ir, self.lanes, self.in_w = ir, lanes, in_w
        self.params = p = top_params(ir, lanes, in_w)
        c, h, w = ir.in_shape
        # a multi-bit input's planes are extra channels of layer 0's buffer (plane-major)
        self.loader = ImageLoader((p["planes"] * c, h, w), in_w)
        multibit = ir.input.mode != "binary"
        self.controllers = [
            TileController(layer, ir.site_of(i), lanes,
                           acc_w=p["ACC_W"] if layer.is_classifier else None, bit_writes=i == 0,
                           planes=ir.input.plane_weights if i == 0 and multibit else None,
                           bound=ir.acc_bound(i))
            for i, layer in enumerate(ir.layers)]
        self.rng = None
        ports = {
            "img": In(stream.Signature(in_w)),
            "n_samples": In(16), "start": In(1), "idle": Out(1), "done": Out(1),
            "out": Out(stream.Signature(class_layout(p["classes"], p["ACC_W"]))),
        }
        if p["N_IF"]:
            n = p["N_IF"]
            self.rng = MtjRngBank([s.mtj_code for s in ir.sites for _ in range(s.n_groups)],
                                  p["CODE_W"], ir.mtj.reset_cycles, ir.mtj.write_cycles,
                                  p["sense_gap"])
            ports.update({"mtj_reset": Out(n), "mtj_write": Out(n), "mtj_sense": In(n),
                          "mtj_code": Out(n * p["CODE_W"])})
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        ir, mc = self.ir, self.ir.mc_start
        ctrls = self.controllers
        cls = ctrls[-1]
        m.submodules.loader = loader = self.loader
        for i, ctl in enumerate(ctrls):
            m.submodules[f"layer{i}"] = ctl
        wiring.connect(m, loader.wr, ctrls[0].wr)
        for a, b in zip(ctrls, ctrls[1:]):
            wiring.connect(m, a.next, b.wr)
        wiring.connect(m, wiring.flipped(self.out), cls.out)

        n_t = Signal(16)                               # T of this image
        started = Signal(16)                           # samples started so far
        more = Signal()
        launch = Signal()                              # an image starts
        go = Signal()                                  # a sample starts
        m.d.comb += [more.eq(started < n_t), cls.sample.eq(started - 1)]

        # -- keep bits: the RNG bank's stream into the active bank the controllers read ---
        if self.rng is not None:
            m.submodules.rng = rng = self.rng
            m.d.comb += [self.mtj_reset.eq(rng.mtj.reset), self.mtj_write.eq(rng.mtj.write),
                         rng.mtj.sense.eq(self.mtj_sense), self.mtj_code.eq(rng.mtj.code)]
            keep = Signal(ir.n_interfaces)
            with m.If(go):
                m.d.sync += keep.eq(rng.keep.payload)
            for i, ctl in enumerate(ctrls):
                s = ir.site_of(i)
                if s is not None:
                    m.d.comb += ctl.keep.eq(keep[s.interfaces])
            keep_in = rng.keep.valid
            # sample 0's RNG cycle starts with the image (under the prefix), sample t+1's
            # with sample t, so the keep bits are ready when the classifier finishes
            m.d.comb += [rng.keep.ready.eq(go),
                         rng.go.eq((launch & self.n_samples.any())
                                   | (go & (started + 1 < n_t)))]
        else:
            keep_in = Const(1, 1)

        # -- sequencer ----------------------------------------------------------------------
        # The states hold only transitions and register updates; the outputs below are
        # functions of the state. Yosys writes assignments made inside a state as
        # `always @*` blocks, which Icarus does not run at time 0, so an output that no
        # input change re-evaluates after reset (`idle`) would stay X.
        with m.FSM(name="seq") as fsm:
            with m.State("IDLE"):
                with m.If(launch):
                    m.d.sync += [n_t.eq(self.n_samples), started.eq(0)]
                    m.next = "PREFIX" if mc > 0 else "BETWEEN"
            if mc > 0:
                with m.State("PREFIX"):                # layers before mc_start, once
                    with m.If(ctrls[mc - 1].done):
                        m.next = "BETWEEN"
            with m.State("BETWEEN"):                   # no sample in flight
                with m.If(go):
                    m.next = "SAMPLE"
                with m.Elif(self.done):
                    m.next = "IDLE"
            with m.State("SAMPLE"):                    # the next may start back to back
                with m.If(cls.done & ~go):
                    m.next = "BETWEEN"
        idle = fsm.ongoing("IDLE")
        between, sample = fsm.ongoing("BETWEEN"), fsm.ongoing("SAMPLE")
        # Layer 0's buffer is free once the prefix has run: the next image may load under
        # this image's samples (with no prefix, layer 0 reads it in every sample).
        loadable = Signal()
        m.d.comb += [
            self.idle.eq(idle & ~loader.busy),
            launch.eq(self.idle & self.start),
            loadable.eq(idle | ((between | sample) if mc > 0 else 0)),
            loader.img.valid.eq(loadable & self.img.valid),
            loader.img.payload.eq(self.img.payload),
            self.img.ready.eq(loadable & loader.img.ready),
            go.eq(more & keep_in & (between | (sample & cls.done))),
            self.done.eq(between & ~more & ~self.out.valid),
        ]
        with m.If(go):
            m.d.sync += started.eq(started + 1)

        # layer starts: the prefix chain from `launch`, the sample chain from `go`
        for i, ctl in enumerate(ctrls):
            if i == 0 and mc > 0:
                m.d.comb += ctl.start.eq(launch)
            elif i == mc:
                m.d.comb += ctl.start.eq(go)
            else:
                m.d.comb += ctl.start.eq(ctrls[i - 1].done)
        return m
