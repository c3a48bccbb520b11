# amaranth: UnusedElaboratable=no
"""MtjRngBank: pulse sequence, latching, the keep stream (Amaranth sim)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwgen.device import MtjArray, MtjParams, device_seeds
from hwgen.hw.rng import MtjRngBank, pulse_schedule
from hwgen.hw.simulate import stream_get
from support import keep_rounds


@pytest.mark.parametrize("reset_cycles,write_cycles", [(1, 1), (2, 3)])
def test_pulse_sequence_and_latch(reset_cycles, write_cycles):
    n = 5
    dut = MtjRngBank([3, 0, 1023, 7, 512], 10, reset_cycles, write_cycles)
    sched = pulse_schedule(reset_cycles, write_cycles)
    trace = []

    async def bench(ctx):
        assert ctx.get(dut.mtj.code) == sum(c << (10 * i) for i, c in enumerate([3, 0, 1023, 7, 512]))
        for rnd in range(2):
            ctx.set(dut.go, 1)
            await ctx.tick()
            ctx.set(dut.go, 0)
            for k in range(len(sched)):
                # sense changes every cycle, so the latched value names the latch cycle
                ctx.set(dut.mtj.sense, (k * 7 + rnd) % 32)
                assert ctx.get(dut.busy) and not ctx.get(dut.keep.valid)
                trace.append((ctx.get(dut.mtj.reset), ctx.get(dut.mtj.write)))
                await ctx.tick()
            assert not ctx.get(dut.busy) and ctx.get(dut.keep.valid)
            assert ctx.get(dut.mtj.reset) == 0 and ctx.get(dut.mtj.write) == 0
            k_latch = [i for i, (_, _, latch) in enumerate(sched) if latch][0]
            # the beat waits until it is taken
            for _ in range(3):
                await ctx.tick()
            assert ctx.get(dut.keep.valid)
            ctx.set(dut.mtj.sense, 0)
            keep = await stream_get(ctx, dut.keep)
            assert keep == (~((k_latch * 7 + rnd) % 32)) & 31
            assert not ctx.get(dut.keep.valid)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    want = [((1 << n) - 1 if r else 0, (1 << n) - 1 if w else 0) for r, w, _ in sched] * 2
    assert trace == want
    # the sense is latched at least one full cycle after the write pulse falls
    last_write = max(i for i, (_, w, _) in enumerate(sched) if w)
    assert [i for i, (*_, latch) in enumerate(sched) if latch][0] >= last_write + 2


def test_keep_bits_follow_the_devices():
    n, rounds = 6, 20
    params = MtjParams()
    code, _ = params.choose_code(0.5, 20.0)
    dut = MtjRngBank([code] * n, params.code_bits, 2, 2)
    devs = MtjArray(params, [code] * n, device_seeds(11, n))
    keeps = []

    async def devices(ctx):
        prev = np.zeros(n, bool)
        while True:
            await ctx.tick()
            rst = np.array([(ctx.get(dut.mtj.reset) >> i) & 1 for i in range(n)], bool)
            wr = np.array([(ctx.get(dut.mtj.write) >> i) & 1 for i in range(n)], bool)
            if rst.any():
                devs.reset(rst)
            if (prev & ~wr).any():
                devs.write(prev & ~wr, 20.0)
            prev = wr
            ctx.set(dut.mtj.sense, sum(int(b) << i for i, b in enumerate(devs.sense())))

    bench = keep_rounds(dut, n, rounds, keeps)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(devices, background=True)
    sim.add_testbench(bench)
    sim.run()
    hist = np.array(devs.history, np.uint8)
    assert hist.shape == (rounds, n)                 # one write per round, no more
    assert np.array_equal(np.array(keeps), 1 - hist)
    assert 0 < hist.mean() < 1


def test_rejects_bad_parameters():
    with pytest.raises(ValueError, match="sense_gap"):
        MtjRngBank([1], 4, 1, 1, sense_gap=1)
    with pytest.raises(ValueError, match="codes"):
        MtjRngBank([16], 4, 1, 1)
