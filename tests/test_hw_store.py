# amaranth: UnusedElaboratable=no
"""The ring store with its untapped run in a memory (hwgen.hw.store, `memory=True`) against
the all-flop ring, cycle by cycle under random writes, rotations and bank changes; and
planted faults in the memory variant's source, each caught by the same comparison."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from amaranth import Module
from amaranth.sim import Simulator

from hwgen.hw import store
from hwgen.hw.store import RingStore, untapped_run
from hwgen.hw.walker import tap_slots
from support import planted, random_ir

# (in_shape, kernel, pad): the maps the walkers tap, the run's ends among them
GEOMETRIES = [
    ((3, 14, 14), (3, 3), (1, 1)),      # the Fashion default's layer 1 (3 of 16 channels)
    ((1, 8, 8), (3, 3), (1, 1)),        # the digits demo's layer 0
    ((2, 9, 9), (5, 5), (0, 0)),        # valid 5x5: no tap behind the anchor
    ((2, 6, 6), (1, 1), (0, 0)),        # 1x1: the run reaches the tail slot
]


def slots_of(in_shape, kernel, pad):
    return tap_slots(SimpleNamespace(in_shape=in_shape, kernel=kernel, pad=pad))


def first_difference(mem_cls, positions, width, taps, banks, cycles, seed=0):
    """Drive a flop ring and a `mem_cls` ring (memory=True) with the same random inputs;
    the first cycle whose taps or `fresh` differ (None if none does)."""
    ref = RingStore(positions, width, taps, banks)
    dut = mem_cls(positions, width, taps, banks, memory=True)
    assert dut.run[1] - dut.run[0] >= 2
    r = np.random.default_rng(seed)
    res = {"at": None}

    async def bench(ctx):
        for k in range(cycles):
            en, rot = int(r.random() < 0.4), int(r.random() < 0.6)
            data = int(r.integers(0, 1 << width))
            if banks == 2 and r.random() < 0.02:
                wb, rb = int(r.integers(0, 2)), int(r.integers(0, 2))
                for s in (ref, dut):
                    ctx.set(s.wbank, wb)
                    ctx.set(s.rbank, rb)
            for s in (ref, dut):
                for sig, v in [(s.wr.en, en), (s.wr.data, data), (s.rotate, rot)]:
                    ctx.set(sig, v)
            if (ctx.get(ref.taps), ctx.get(ref.fresh)) != (ctx.get(dut.taps), ctx.get(dut.fresh)):
                res["at"] = k
                return
            await ctx.tick()

    m = Module()
    m.submodules.ref, m.submodules.dut = ref, dut
    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return res["at"]


def test_untapped_run():
    assert untapped_run(10, [0, 1, 9]) == (2, 9)
    assert untapped_run(10, [0, 5]) == (1, 5)          # the first of two equal runs
    assert untapped_run(6, [0]) == (1, 6)              # up to the tail slot
    assert untapped_run(3, [0, 1, 2]) == (1, 1)
    # the Fashion layer 1 ring: two rows and a word behind the anchor and one row ahead
    lo, hi = untapped_run(196, slots_of((16, 14, 14), (3, 3), (1, 1)))
    assert (lo, hi, hi - lo) == (16, 181, 165)


@pytest.mark.parametrize("banks", [1, 2])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: "x".join(map(str, g[0])))
def test_memory_ring_equals_the_flop_ring(geometry, banks):
    (c, h, w), kernel, pad = geometry
    taps = slots_of((c, h, w), kernel, pad)
    n = h * w
    assert first_difference(RingStore, n, c, taps, banks, cycles=3 * n * banks) is None


def test_memory_needs_a_run():
    with pytest.raises(ValueError, match="untapped run of at least 2"):
        RingStore(4, 1, [0, 1, 2, 3], memory=True)
    with pytest.raises(ValueError, match="untapped run of at least 2"):
        RingStore(4, 1, [0, 2], memory=True)


# planted faults: (what, text in hwgen/hw/store.py, its replacement)
FAULTS = [
    ("the read port addressed with the pointer before the shift",
     "rp.addr.eq(q_next)", "rp.addr.eq(q)"),
    ("a buffer one word short", "Mux(q == depth - 1, 0, q + 1)", "Mux(q == depth - 2, 0, q + 1)"),
    ("a rotation that does not write its word back", "wp.en.eq(shift)", "wp.en.eq(wr_here)"),
    ("the entering word bypassing the buffer", "Cat(near[wd:], rp.data)",
     "Cat(near[wd:], entering)"),
    ("a write that does not reach the slots behind the run", "Cat(far[wd:], tail)",
     "Cat(far[wd:], near[:wd])"),
]


@pytest.mark.parametrize("what, old, new", FAULTS, ids=[f[0] for f in FAULTS])
def test_planted_store_faults_are_caught(what, old, new):
    caught = []
    for (c, h, w), kernel, pad in GEOMETRIES[:2]:
        taps = slots_of((c, h, w), kernel, pad)
        caught.append(first_difference(planted(store, old, new).RingStore, h * w, c, taps, 2,
                                       cycles=3 * h * w) is not None)
    assert any(caught), what


def test_network_top_puts_the_runs_it_is_asked_for_in_memory():
    """`store_ram_bits`: a ring whose untapped run holds at least that many bits keeps it
    in memory; a flat store (one window) never rotates and stays in flops."""
    from hwgen.hw.top import NetworkTop
    from hwgen.passes import reschedule

    ir = reschedule(random_ir("c4,p2,c8,p2,f10", (1, 8, 8), seed=3), 4)
    runs = [c.store.run for c in NetworkTop(ir, store_ram_bits=40).controllers]
    # layer 0: 8x8 x 1 bit, run 45 slots (45 bits); layer 1: 4x4 x 4 bits, run 5 slots
    # (20 bits); layer 2: flat
    assert runs == [(10, 55), (0, 0), (0, 0)]
    assert [c.store.run for c in NetworkTop(ir).controllers] == [(0, 0)] * 3
    assert [c.store.run for c in NetworkTop(ir, store_ram_bits=1).controllers][1] != (0, 0)
    with pytest.raises(ValueError, match="store_ram_bits must be None or an integer >= 0"):
        NetworkTop(ir, store_ram_bits=-1)
