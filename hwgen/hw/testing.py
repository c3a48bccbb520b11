"""Test support for the hardware: seeded random IRs and Amaranth-simulator drivers for
the top's image, MTJ and output ports. The reference is always the golden interpreter
(hwgen.ir.interp)."""

from __future__ import annotations

import numpy as np

from ..device import MtjArray, device_seeds
from ..ir.core import IR, InputEncoding, Layer, Meta, MtjConfig, Site, masks_from_ap, pack_rows
from ..model.spec import layer_plan
from .loader import image_words
from .simutil import stream_get, stream_put

__all__ = ["random_ir", "masks_from_history", "keep_rounds", "TopBench"]


def random_ir(spec: str, in_shape, dropout: str = "spatial", p: float = 0.25, seed: int = 0,
              tile=(128, 128), mtj: MtjConfig = MtjConfig()) -> IR:
    """An IR with random weights and thresholds for `spec` (no training, no compiler)."""
    rng = np.random.default_rng(seed)
    plan = layer_plan(spec, tuple(in_shape))
    layers, sites, first = [], [], 0
    for i, d in enumerate(plan):
        c, kh, kw = d["in_shape"][0], *d["kernel"]
        rows, o = c * kh * kw, d["out_channels"]
        last = i == len(plan) - 1
        sign = thresh = None
        if not last:
            sign = tuple(int(v) for v in rng.choice([-1, 1], o))
            # around the median of a random sum, so the bits are neither all 0 nor all 1
            spread = max(1, int(np.sqrt(rows)))
            thresh = tuple(int(v) for v in rng.integers(-spread, spread + 1, o))
        layers.append(Layer(op=d["op"], in_shape=tuple(d["in_shape"]), out_channels=o,
                            kernel=tuple(d["kernel"]), pad=tuple(d["pad"]), pool=d["pool"],
                            weights=pack_rows(rng.integers(0, 2, (o, rows))), sign=sign,
                            thresh=thresh, tile=tuple(tile)))
        if i > 0 and dropout != "none":
            n, gr = (c, kh * kw) if dropout == "spatial" else (rows, 1)
            code, pr = mtj.device.choose_code(p, mtj.write_ns)
            sites.append(Site(layer=i, kind=dropout, p=p, n_groups=n, group_rows=gr,
                              first_interface=first, mtj_code=code, p_realised=pr))
            first += n
    return IR(in_shape=tuple(in_shape), input=InputEncoding(), layers=tuple(layers),
              sites=tuple(sites), mtj=mtj, meta=Meta(source="random", spec=spec))


def masks_from_history(ir: IR, history, n: int, t: int) -> list[np.ndarray]:
    """Device write outcomes (AP = drop), one per (image, sample) in order -> keep masks."""
    return masks_from_ap(ir, np.asarray(history, bool).reshape(n * t, ir.n_interfaces), n, t)


def _to_bits(v: int, n: int) -> np.ndarray:
    return np.array([(v >> i) & 1 for i in range(n)], bool)


def keep_rounds(dut, n: int, rounds: int, keeps: list):
    """An async testbench for an MTJ-RNG bank (`go`, `keep` stream): `rounds` times, run
    one RNG cycle, take its keep bits from the stream and append them to `keeps`."""
    async def bench(ctx):
        for _ in range(rounds):
            ctx.set(dut.go, 1)
            await ctx.tick()
            ctx.set(dut.go, 0)
            keep = await stream_get(ctx, dut.keep)
            keeps.append([(keep >> i) & 1 for i in range(n)])
    return bench


class TopBench:
    """Drives a NetworkTop in the Amaranth simulator: images, start, MTJ devices, output.

    After `run(images, samples)`: `results` [N, T, classes], `masks` (from the devices),
    `beat_cycles` (cycle of each out beat), `layer_cycles` {layer: [start->done cycles]}.
    """

    def __init__(self, top, seed: int = 0, devices=None):
        self.top, self.ir = top, top.ir
        n = self.ir.n_interfaces
        params = self.ir.mtj.device
        codes = [s.mtj_code for s in self.ir.sites for _ in range(s.n_groups)]
        self.devices = devices or MtjArray(params, codes, device_seeds(seed, n))

    def run(self, images: np.ndarray, samples: int, cycle_limit: int = 1_000_000,
            out_ready_p: float = 1.0, seed: int = 0):
        """Send each image, start it with T = `samples`, collect its beats until `done`.
        `out_ready_p` < 1 drives `out.ready` randomly (backpressure)."""
        from amaranth.sim import Simulator
        top, ir = self.top, self.ir
        n_if = ir.n_interfaces
        n_img = len(images)
        self.results = np.zeros((n_img, samples, ir.n_classes), np.int64)
        self.beat_cycles, self.layer_cycles, self.sample_index = [], {}, []
        now = [0]
        sim = Simulator(top)
        sim.add_clock(1e-8)
        ctrls = top.controllers

        async def clock(ctx):
            # cycle counter and per-layer start->done times
            started = {}
            async for _, _, *vals in ctx.tick().sample(*(c.start for c in ctrls),
                                                        *(c.done for c in ctrls)):
                st, dn = vals[:len(ctrls)], vals[len(ctrls):]
                for i in range(len(ctrls)):
                    if st[i]:
                        started[i] = now[0]
                    if dn[i]:
                        self.layer_cycles.setdefault(i, []).append(now[0] - started[i] + 1)
                now[0] += 1
                if now[0] > cycle_limit:
                    raise RuntimeError("cycle limit reached")

        async def devices(ctx):
            prev_write = np.zeros(n_if, bool)
            while True:
                await ctx.tick()
                rst = _to_bits(ctx.get(top.mtj_reset), n_if)
                wr = _to_bits(ctx.get(top.mtj_write), n_if)
                if rst.any():
                    self.devices.reset(rst)
                fell = prev_write & ~wr
                if fell.any():
                    self.devices.write(fell, ir.mtj.write_ns)
                prev_write = wr
                ctx.set(top.mtj_sense, int(sum(int(b) << i for i, b in
                                               enumerate(self.devices.sense()))))

        async def put_word(ctx, word):
            ctx.set(top.img.payload, word)
            await stream_put(ctx, top.img, {})

        pick = np.random.default_rng(seed)

        async def host(ctx):
            ctx.set(top.out.ready, 1)
            for a in range(n_img):
                for w in image_words(images[a], top.in_w):
                    await put_word(ctx, w)
                await ctx.tick().until(top.idle)
                ctx.set(top.n_samples, samples)
                ctx.set(top.start, 1)
                await ctx.tick()
                ctx.set(top.start, 0)
                got = 0
                while True:
                    ready = bool(pick.random() < out_ready_p)
                    ctx.set(top.out.ready, ready)
                    _, _, valid, payload, done = await ctx.tick().sample(
                        top.out.valid, top.out.payload, top.done)
                    if valid and ready:
                        assert got < samples, "more out beats than samples"
                        self.sample_index.append((a, int(payload.sample)))
                        self.results[a, got] = [int(v) for v in payload.acc]
                        self.beat_cycles.append((a, now[0]))
                        got += 1
                    if done:
                        break
                assert got == samples, f"image {a}: {got} out beats for {samples} samples"

        sim.add_testbench(clock, background=True)
        if n_if:
            sim.add_testbench(devices, background=True)
        sim.add_testbench(host)
        sim.run()
        self.masks = masks_from_history(ir, self.devices.history, n_img, samples) if n_if else []
        return self.results
