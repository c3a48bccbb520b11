# amaranth: UnusedElaboratable=no
"""NetworkTop (`hwgen_top`): image load, the deterministic prefix, T MC samples, out stream.

Port contract: docs/ARCHITECTURE.md section 5. Per image:

1. While `idle`, image words arrive on `img` (position-major); the loader
   (`hwgen.hw.loader`) shifts them into layer 0's ring store. A multi-bit input (SPEC
   section 3) carries P*C bits per position, its P bit planes as extra channels; layer 0
   then reads each window P times (one pass per plane) and shift-adds the passes.
2. `start` samples `n_samples` (T); layers before `ir.mc_start` (the prefix) run once,
   chained (a layer starts in the cycle the previous one writes its last position), into
   one bank of layer mc_start's two-bank store. The image then waits for the samples of
   the images before it.
3. Each sample takes the fresh keep bits from the RNG bank's stream into the active keep
   bank (which the controllers read) and runs layers mc_start.. in a chain on the image's
   bank; the classifier's beat carries the sample index. The next sample starts in the
   cycle the classifier finishes, as soon as its keep bits are in. Layer mc_start's
   store is read again in every sample without being rewritten: its walker rotates it
   back home after each walk and acts on the next start only at home (hwgen.hw.plan
   counts the cycles). The RNG runs one sample ahead, in (image, sample) order: sample
   0's cycle under the prefix (or under the previous image's last sample), sample t+1's
   under sample t.
4. `done` pulses once the image's last beat has been taken.

With a prefix the images are pipelined: once an image's prefix has run, layer 0's store
and the other bank are free, so `idle` rises again and the next image loads and runs its
prefix under this image's samples (per image in steady state: T samples, not prefix + T
samples). Without a prefix (mc_start = 0) layer 0 reads the image in every sample and
the top takes one image at a time.
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..ir.core import IR
from .controller import TileController, layer_controller
from .layouts import class_layout
from .loader import ImageLoader
from .plan import SENSE_GAP, layer_plan
from .rng import MtjRngBank
from .tile import acc_width

__all__ = ["NetworkTop", "top_params"]


def top_params(ir: IR, in_w: int = 32) -> dict:
    """The generated top's parameters (also written to ports.json). `planes` is the
    number of input bit planes P (1 for binary input); an image is P*C*H*W bits. `lanes`
    (`IR.lanes`: "array" when every read takes one beat), `beats` and, when row-serial,
    `passes` (per layer) report the IR's read plans, for information: nothing reads them
    back."""
    c, h, w = ir.in_shape
    beats = [layer_plan(ir, i).beats for i in range(len(ir.layers))]   # HwgenError unscheduled
    planes = ir.input.planes
    bits = planes * c * h * w
    code_w = ir.mtj.device.code_bits
    return {
        "IN_W": in_w, "ACC_W": acc_width(ir.acc_bound(len(ir.layers) - 1)), "CODE_W": code_w,
        "N_IF": ir.n_interfaces, "classes": ir.n_classes, "image_bits": bits,
        "words_per_image": -(-bits // in_w), "reset_cycles": ir.mtj.reset_cycles,
        "write_cycles": ir.mtj.write_cycles, "sense_gap": SENSE_GAP, "clk_ns": ir.mtj.clk_ns,
        "lanes": "array" if ir.lanes is None else ir.lanes,
        "beats": beats,
        "mc_start": ir.mc_start, "planes": planes,
    } | _passes(ir)


def _passes(ir: IR) -> dict:
    """{"passes": per layer} when a read plan is row-serial, else nothing: ports.json of
    a design read every split at once keeps its bytes."""
    passes = [layer_plan(ir, i).passes for i in range(len(ir.layers))]
    return {"passes": passes} if max(passes) > 1 else {}


class NetworkTop(wiring.Component):
    """The whole network: a loader, one TileController per layer, the MTJ-RNG bank.

    Parameters
    ----------
    ir : hwgen.ir.core.IR
        Scheduled (hwgen.passes.schedule): every layer is built from its read plan.
    in_w : int
        Image bits per `img` word.
    store_ram_bits : int or None
        Ring stores whose untapped run holds at least this many bits keep it in memory
        (`TileController`; the FPGA flow asks for block RAM); None: every store in flops.

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

    def __init__(self, ir: IR, in_w: int = 32, store_ram_bits: int | None = None):
        if not (isinstance(in_w, int) and in_w >= 1):
            raise ValueError(f"in_w must be a positive integer, not {in_w!r}")
        self.ir, self.in_w = ir, in_w
        self.params = p = top_params(ir, in_w)
        c, h, w = ir.in_shape
        # a multi-bit input's planes are extra channels of layer 0's store words
        self.loader = ImageLoader((p["planes"] * c, h, w), in_w)
        self.controllers: list[TileController] = [layer_controller(ir, i, store_ram_bits)
                                                  for i in range(len(ir.layers))]
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

        n_t = Signal(16)                               # T of the image being sampled
        started = Signal(16)                           # its samples started so far
        more = Signal()
        active = Signal()                              # an image is being sampled
        in_flight = Signal()                           # a sample is computing
        launch = Signal()                              # an image starts
        go = Signal()                                  # a sample starts
        finish = Signal()                              # the sampled image is done
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
            # One RNG cycle per sample, in sample order, one sample ahead: `owed` counts the
            # samples of started images whose cycle has not begun. Sample 0's cycle starts
            # with its image (under the prefix) or with the previous image's last sample,
            # sample t+1's with sample t, so the keep bits are ready when they are needed.
            owed = Signal(18)
            rng_go = Signal()
            m.d.comb += [rng.keep.ready.eq(go), rng.go.eq(rng_go),
                         rng_go.eq((owed.any() | (launch & self.n_samples.any()))
                                   & ~rng.busy & (~rng.keep.valid | rng.keep.ready))]
            m.d.sync += owed.eq(owed + Mux(launch, self.n_samples, 0) - rng_go)
        else:
            keep_in = Const(1, 1)

        # -- samples: T per image, back to back, for the image in `active` ------------------
        m.d.comb += [
            go.eq(active & more & keep_in & (~in_flight | cls.done)),
            finish.eq(active & ~more & ~in_flight & ~self.out.valid),
            self.done.eq(finish),
        ]
        with m.If(go):
            m.d.sync += [started.eq(started + 1), in_flight.eq(1)]
        with m.Elif(cls.done):
            m.d.sync += in_flight.eq(0)
        with m.If(finish):
            m.d.sync += active.eq(0)

        if mc == 0:
            # No prefix: layer 0 reads the image in every sample; one image at a time.
            m.d.comb += [self.idle.eq(~active & ~loader.busy),
                         loader.img.valid.eq(~active & self.img.valid),
                         self.img.ready.eq(~active & loader.img.ready)]
            with m.If(launch):
                m.d.sync += [active.eq(1), n_t.eq(self.n_samples), started.eq(0)]
        else:
            # The prefix (layers before mc_start) runs once per image, into one bank of
            # layer mc_start's store while the samples read the other: the next image's
            # load and prefix run under this image's samples. Layer 0's store is free
            # whenever no prefix runs.
            pf_run = Signal()                          # the prefix is running
            t_pf = Signal(16)                          # T of the image in the prefix
            wb, rb = Signal(), Signal()                # bank the prefix writes / samples read
            full = [Signal(name=f"full{b}") for b in range(2)]    # bank holds an image
            t_bank = [Signal(16, name=f"t_bank{b}") for b in range(2)]
            pf_done = ctrls[mc - 1].done
            m.d.comb += [self.idle.eq(~pf_run & ~Mux(wb, full[1], full[0]) & ~loader.busy),
                         loader.img.valid.eq(~pf_run & self.img.valid),
                         self.img.ready.eq(~pf_run & loader.img.ready),
                         ctrls[mc].wbank.eq(wb), ctrls[mc].rbank.eq(rb)]
            with m.If(launch):
                m.d.sync += [pf_run.eq(1), t_pf.eq(self.n_samples)]
            with m.If(pf_done):
                m.d.sync += [pf_run.eq(0), wb.eq(~wb)]
            for b in range(2):
                # a bank is filled only when free, and emptied only when sampled (so never
                # both at once)
                with m.If(pf_done & (wb == b)):
                    m.d.sync += [full[b].eq(1), t_bank[b].eq(t_pf)]
                with m.Elif(finish & (rb == b)):
                    m.d.sync += full[b].eq(0)
            with m.If(~active & Mux(rb, full[1], full[0])):
                m.d.sync += [active.eq(1), n_t.eq(Mux(rb, t_bank[1], t_bank[0])),
                             started.eq(0)]
            with m.If(finish):
                m.d.sync += rb.eq(~rb)
        m.d.comb += [launch.eq(self.idle & self.start),
                     loader.img.payload.eq(self.img.payload)]

        # layer starts: the prefix chain from `launch`, the sample chain from `go`
        for i, ctl in enumerate(ctrls):
            if i == 0 and mc > 0:
                m.d.comb += ctl.start.eq(launch)
            elif i == mc:
                m.d.comb += ctl.start.eq(go)
            else:
                m.d.comb += ctl.start.eq(ctrls[i - 1].done)
        return m
