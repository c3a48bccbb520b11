"""Driving the generated hardware in Amaranth's simulator: stream helpers for async
testbenches, and `TopBench`, which runs a NetworkTop with its image, start, MTJ devices
and output ports (the cycle bench and the unit tests use it). Results are checked against
the golden interpreter (hwgen.ir.interp), never against a model of the hardware's own."""

from __future__ import annotations

import numpy as np

from ..device import MtjArray, device_seeds
from ..ir.core import IR, masks_from_ap
from .loader import image_words

__all__ = ["stream_put", "stream_get", "set_fields", "masks_from_history", "TopBench"]


def set_fields(ctx, view, values: dict) -> None:
    for name, value in values.items():
        ctx.set(getattr(view, name), value)


async def stream_put(ctx, stream, payload: dict) -> None:
    """Offer one beat and wait until it is taken."""
    ctx.set(stream.valid, 1)
    set_fields(ctx, stream.payload, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream):
    """Take one beat; returns the payload as sampled at the transfer."""
    ctx.set(stream.ready, 1)
    payload, = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


def masks_from_history(ir: IR, history, n: int, t: int) -> list[np.ndarray]:
    """Device write outcomes (AP = drop), one per (image, sample) in order -> keep masks."""
    return masks_from_ap(ir, np.asarray(history, bool).reshape(n * t, ir.n_interfaces), n, t)


def _to_bits(v: int, n: int) -> np.ndarray:
    return np.array([(v >> i) & 1 for i in range(n)], bool)


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
            out_ready_p: float = 1.0, seed: int = 0, overlap: bool = False):
        """Send each image, start it with T = `samples`, collect its beats until `done`.
        `out_ready_p` < 1 drives `out.ready` randomly (backpressure). `overlap`: send the
        next image's words and its `start` as soon as the top takes them, while the
        current image runs (`loaded_under` counts the words the top took, and
        `started_under` the starts, before the previous image's `done`); otherwise each
        image waits for the previous one's `done`. `done_cycles`: the cycle of each
        image's done."""
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

        pick = np.random.default_rng(seed)
        self.loaded_under = self.started_under = 0
        self.done_cycles = []

        async def sender(ctx):
            for a in range(n_img):
                if a and not overlap:
                    while len(self.done_cycles) < a:
                        await ctx.tick()
                for w in image_words(images[a], top.in_w):
                    ctx.set(top.img.payload, w)
                    await stream_put(ctx, top.img, {})
                    self.loaded_under += a > len(self.done_cycles)
                await ctx.tick().until(top.idle)
                ctx.set(top.n_samples, samples)
                ctx.set(top.start, 1)
                await ctx.tick()
                ctx.set(top.start, 0)
                self.started_under += a > len(self.done_cycles)

        async def receiver(ctx):
            got = 0
            while len(self.done_cycles) < n_img:
                ready = bool(pick.random() < out_ready_p)
                ctx.set(top.out.ready, ready)
                _, _, valid, payload, done = await ctx.tick().sample(
                    top.out.valid, top.out.payload, top.done)
                a = len(self.done_cycles)
                if valid and ready:
                    assert got < samples, f"image {a}: more out beats than samples"
                    self.sample_index.append((a, int(payload.sample)))
                    self.results[a, got] = [int(v) for v in payload.acc]
                    self.beat_cycles.append((a, now[0]))
                    got += 1
                if done:
                    assert got == samples, f"image {a}: {got} out beats for {samples} samples"
                    self.done_cycles.append(now[0])
                    got = 0

        sim.add_testbench(clock, background=True)
        if n_if:
            sim.add_testbench(devices, background=True)
        sim.add_testbench(sender, background=True)
        sim.add_testbench(receiver)
        sim.run()
        self.masks = masks_from_history(ir, self.devices.history, n_img, samples) if n_if else []
        return self.results
