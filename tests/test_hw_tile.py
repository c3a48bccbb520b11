# amaranth: UnusedElaboratable=no
"""CrossbarTile against its numpy model (Amaranth simulator)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwgen.hw.simulate import stream_put
from hwgen.hw.tile import CrossbarTile, tile_model


def run_tile(rows, cols, lanes, n_req, seed, stall=False):
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 2, (cols, rows))
    xs = rng.integers(0, 2, (n_req, rows))
    gs = rng.integers(0, 2, (n_req, rows))
    gs[0] = 1                                  # all rows driven once
    dut = CrossbarTile(rows, cols, lanes, w, tag=4)
    got, tags, cycles = [], [], []

    def bits(v):
        return int("".join(str(int(b)) for b in v[::-1]), 2)

    async def producer(ctx):
        for i in range(n_req):
            await stream_put(ctx, dut.req, {"x": bits(xs[i]), "g": bits(gs[i]), "tag": i % 16})

    async def consumer(ctx):
        n = 0                                  # clock edges from the first to the last beat
        accs = []
        while len(got) < n_req:
            ready = not (stall and rng.random() < 0.3)
            ctx.set(dut.beat.ready, ready)
            _, _, valid, p = await ctx.tick().sample(dut.beat.valid, dut.beat.payload)
            n += 1 if (got or accs or valid) else 0
            if not (valid and ready):
                continue
            k = len(accs) // lanes
            assert p.index == k and p.last == (k == dut.beats - 1)
            tags.append(int(p.tag))
            accs += [int(a) for a in p.acc]
            if p.last:
                got.append(accs[:cols])
                accs = []
        cycles.append(n)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    want = [tile_model(w, xs[i], gs[i]).tolist() for i in range(n_req)]
    assert got == want
    assert tags == [i % 16 for i in range(n_req) for _ in range(dut.beats)]
    return cycles[0], dut.beats


@pytest.mark.parametrize("rows,cols,lanes", [
    (1, 1, 1), (5, 7, 1), (9, 12, 4), (13, 10, 3), (6, 10, 10), (33, 17, 5), (128, 16, 8)])
def test_tile_matches_model(rows, cols, lanes):
    cycles, beats = run_tile(rows, cols, lanes, n_req=6, seed=rows * 1000 + cols * 10 + lanes)
    # A tile that is kept fed and drained reads every cycle: no bubbles between requests.
    assert cycles == 6 * beats


def test_tile_backpressure():
    run_tile(11, 9, 4, n_req=8, seed=3, stall=True)


def test_tile_rejects_bad_parameters():
    with pytest.raises(ValueError, match="lanes"):
        CrossbarTile(4, 4, 5, np.zeros((4, 4)))
    with pytest.raises(ValueError, match="shape"):
        CrossbarTile(4, 4, 2, np.zeros((4, 3)))
