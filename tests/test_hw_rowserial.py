# amaranth: UnusedElaboratable=no
"""Row-serial reads (`ReadPlan.passes` > 1, hwgen.hw.tiles): a layer's row splits read a
few at a time through one set of tiles, the sums accumulated over the passes. The whole
NetworkTop against the golden interpreter, at the schedule's exact cycles, on ring and flat
stores, strided and bit-plane layers, under backpressure; planted faults in the tile
array's source, each caught; and the IR and cost model's side of the plan."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hwgen.cost.model import cost
from hwgen.hw import tiles
from hwgen.hw.plan import cycle_bound
from hwgen.hw.simulate import TopBench
from hwgen.hw.top import NetworkTop
from hwgen.ir import core, interp
from hwgen.ir.verify import VerifyError, verify
from hwgen.passes import reschedule
from support import multibit_ir, planted, random_ir

SPEC, IN_SHAPE = "c4,p2,c8,p2,f10", (1, 8, 8)      # row splits 1, 3, 2 at tile 16 x 8


def run(ir, n_img=2, samples=3, seed=0, out_ready_p=1.0, top=None):
    rng = np.random.default_rng(seed)
    imgs = rng.integers(0, 2, (n_img,) + tuple(ir.input_bits_shape)).astype(np.uint8)
    bench = TopBench(top or NetworkTop(ir), seed=seed + 7)
    got = bench.run(imgs, samples, out_ready_p=out_ready_p)
    return bench, got, interp.run(ir, imgs, bench.masks)


@pytest.mark.parametrize("lanes, row_splits", [(None, 1), (4, 1), (3, 2), (1, 1)])
def test_row_serial_top_equals_golden_at_its_bound(lanes, row_splits):
    ir = reschedule(random_ir(SPEC, IN_SHAPE, seed=1, tile=(16, 8)), lanes, row_splits)
    verify(ir)
    assert [l.plan.passes for l in ir.layers] == [1, -(-3 // row_splits), -(-2 // row_splits)]
    bench, got, want = run(ir)
    assert np.array_equal(got, want)
    # the sample period is the schedule's, exactly (the serial reads' held requests too)
    one = TopBench(NetworkTop(ir), seed=1)
    one.run(np.ones((1,) + IN_SHAPE, np.uint8), 4)
    cycles = np.diff([c for _, c in one.beat_cycles])
    assert (cycles == cycle_bound(ir).per_sample).all(), (cycles, cycle_bound(ir))


def test_row_serial_takes_more_cycles_and_fewer_tiles():
    ir = random_ir(SPEC, IN_SHAPE, seed=1, tile=(16, 8))
    par, ser = reschedule(ir, 4), reschedule(ir, 4, 1)
    assert cycle_bound(ser).per_sample > cycle_bound(par).per_sample
    n_tiles = [[len(c.tiles.tiles) for c in NetworkTop(v).controllers] for v in (par, ser)]
    assert n_tiles == [[1, 3, 4], [1, 1, 2]]      # the classifier: 2 column splits


def test_row_serial_under_backpressure_strides_and_channels():
    ir = reschedule(random_ir("c4s2,p3,c5,p2s3,f6", (1, 20, 20), seed=4, tile=(16, 8)), 2, 1)
    assert max(l.plan.passes for l in ir.layers) > 1
    bench, got, want = run(ir, out_ready_p=0.3)
    assert np.array_equal(got, want)
    ir = reschedule(random_ir("c3,c4,p2,f4,f3", (2, 5, 6), seed=3, tile=(12, 3)), 2, 1)
    assert max(l.plan.passes for l in ir.layers) > 1
    bench, got, want = run(ir, out_ready_p=0.5)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("mode, bits", [("unsigned", 3), ("signed", 4)])
def test_row_serial_bit_plane_first_layer(mode, bits):
    ir = multibit_ir("c4,p2,f5", (2, 6, 6), mode, bits, seed=2, tile=(8, 4))
    ir = reschedule(ir, 2, 1)
    assert ir.layers[0].plan.passes == 3        # 18 rows on 8-row tiles, one at a time
    bench, got, want = run(ir)
    assert np.array_equal(got, want)
    one = TopBench(NetworkTop(ir), seed=1)
    one.run(np.ones((1,) + ir.input_bits_shape, np.uint8), 3)
    assert (np.diff([c for _, c in one.beat_cycles]) == cycle_bound(ir).per_sample).all()


# planted faults: (what, text in hwgen/hw/tiles.py, its replacement)
FAULTS = [
    ("the passes' weights in the wrong order", "out[(c * passes + p) * lanes + lane",
     "out[(c * passes + passes - 1 - p) * lanes + lane"),
    ("a partial sum not cleared at a beat's first pass", "Mux(first, 0, part) + sv",
     "part + sv"),
    ("the request taken with its first beat", "lead.req.ready if last_take is None else last_take",
     "lead.req.ready"),
    ("a pass counter that never wraps to the next beat's split",
     "p_in.eq(Mux(last_pass, 0, p_in + 1))", "p_in.eq(p_in + 1)"),
    ("the last beat's sums without the earlier passes", "q.acc[k].eq(total)", "q.acc[k].eq(sv)"),
]


@pytest.mark.parametrize("what, old, new", FAULTS, ids=[f[0] for f in FAULTS])
def test_planted_row_serial_faults_are_caught(monkeypatch, what, old, new):
    from hwgen.hw import controller
    ir = reschedule(random_ir(SPEC, IN_SHAPE, seed=1, tile=(16, 8)), 3, 1)
    mod = planted(tiles, old, new)
    monkeypatch.setattr(controller, "TileArray", mod.TileArray)
    monkeypatch.setattr(tiles, "slot_weights", mod.slot_weights)
    try:
        bench, got, want = run(ir, n_img=1, samples=2)
    except (AssertionError, RuntimeError):
        return                                    # the bench saw a broken stream
    assert not np.array_equal(got, want), what


def test_the_plan_in_the_ir():
    ir = random_ir(SPEC, IN_SHAPE, seed=1, tile=(16, 8))
    # one pass is the plan of before: its JSON has no `passes`, so its bytes are unchanged
    assert '"passes"' not in core.dumps(reschedule(ir, 4))
    ser = reschedule(ir, 4, 2)
    text = core.dumps(ser)
    assert '"passes": 2' in text and core.loads(text) == ser
    verify(core.loads(text))
    # 3 splits in 2 passes of 2 is a schedule; in 3 passes it is one at a time, which is
    # not what 2 passes name: verify refuses a plan the pass does not make
    l1 = ser.layers[1]
    for bad in (3, 0, "2"):
        if bad == 3:
            ok = reschedule(ir, 4, 1).layers[1].plan
            assert ok.passes == 3
            verify(dataclasses.replace(ser, layers=(ser.layers[0], dataclasses.replace(
                l1, plan=ok), *ser.layers[2:])))
            plan = dataclasses.replace(ok, passes=4)
        else:
            plan = dataclasses.replace(l1.plan, passes=bad)
        broken = dataclasses.replace(ser, layers=(ser.layers[0], dataclasses.replace(
            l1, plan=plan), *ser.layers[2:]))
        with pytest.raises(VerifyError, match="read plan"):
            verify(broken)
    with pytest.raises(ValueError, match="row_splits"):
        reschedule(ir, 4, 0)
    # ports.json reports the passes of a row-serial design only
    from hwgen.hw.top import top_params
    assert top_params(reschedule(ir, 4, 1))["passes"] == [1, 3, 2]
    assert "passes" not in top_params(reschedule(ir, 4))


def test_cost_model_cycles_follow_the_passes():
    ir = random_ir(SPEC, IN_SHAPE, seed=1, tile=(16, 8))
    for v in (reschedule(ir, 4), reschedule(ir, 4, 1)):
        rep = cost(v, 4)
        bound = cycle_bound(v)
        assert [l["cycles_bound_per_pass"] for l in rep["layers"]] == list(bound.per_layer)
        assert [l["read_cycles"] for l in rep["layers"]] == [l.plan.cycles for l in v.layers]


# -- the flat store of a row-serial layer in memories (hwgen.hw.store.SplitStore) --------

# the digits demo's shape, small: the classifier is the first MC layer, its flat store
# (4 x 4 x 4 = 64 rows) two banks
SPLIT_SPEC = "c4,p2,f10"


def split_top(tile=(16, 8), lanes=3, row_splits=1):
    ir = reschedule(random_ir(SPLIT_SPEC, IN_SHAPE, seed=1, tile=tile), lanes, row_splits)
    return ir, NetworkTop(ir, store_ram_bits=1)


@pytest.mark.parametrize("tile, lanes, row_splits", [((16, 8), 3, 1), ((8, 8), 2, 2),
                                                     ((16, 8), None, 1)])
def test_split_store_top_equals_golden_at_its_bound(tile, lanes, row_splits):
    """The classifier's flat store (two banks: the next image's prefix fills one while the
    samples read the other) in memories of row-split words, read a cycle ahead of each
    pass: three pipelined images bit-exact, and the schedule's cycles."""
    from hwgen.hw.store import RingStore, SplitStore

    ir, top = split_top(tile, lanes, row_splits)
    assert [type(c.store) for c in top.controllers] == [RingStore, SplitStore]
    assert ir.layers[1].plan.banks == 2 and ir.layers[1].plan.passes > 1
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 2, (3,) + IN_SHAPE).astype(np.uint8)
    bench = TopBench(top, seed=7)
    # 8 samples outlast the next image's load (64 positions) and prefix: the banks
    # really are written and read at once
    got = bench.run(imgs, 8, overlap=True)
    assert bench.started_under == 2
    assert np.array_equal(got, interp.run(ir, imgs, bench.masks))
    one = TopBench(split_top(tile, lanes, row_splits)[1], seed=1)
    one.run(np.ones((1,) + IN_SHAPE, np.uint8), 4)
    assert (np.diff([c for _, c in one.beat_cycles]) == cycle_bound(ir).per_sample).all()


def test_split_store_only_where_it_applies():
    from hwgen.hw.controller import TileController
    from hwgen.hw.store import RingStore

    ir = reschedule(random_ir(SPLIT_SPEC, IN_SHAPE, seed=1, tile=(16, 8)), 3)   # one pass
    assert all(type(c.store) is RingStore
               for c in NetworkTop(ir, store_ram_bits=1).controllers)
    ir, top = split_top()
    assert type(NetworkTop(ir).controllers[1].store) is RingStore   # generic: flops
    # a bank holds 64 bits: at a threshold above them, flops
    assert type(NetworkTop(ir, store_ram_bits=65).controllers[1].store) is RingStore
    assert TileController(ir.layers[1], None, ir.layers[1].plan, store_ram_bits=64).split
    with pytest.raises(ValueError, match="row-serial"):
        tiles.TileArray(ir.layers[0], ir.layers[0].plan, 4, x_memory=True)


STORE_FAULTS = [
    ("store", "the read bank ignored", "rp.addr.eq(rbank * passes + self.addr)",
     "rp.addr.eq(self.addr)"),
    ("store", "a write lane off by one", "wp.en[j].eq(self.wr.en & (slot == s) & (lane == j))",
     "wp.en[j].eq(self.wr.en & (slot == s) & (lane == (j + 1) % lanes))"),
    ("store", "the next map written after the last one",
     "m.d.sync += [q.eq(0), lane.eq(0), slot.eq(0), p.eq(0)]",
     "m.d.sync += [q.eq(0), lane.eq(0), slot.eq(0)]"),
    ("tiles", "the word lines read in the cycle of their pass, not a cycle ahead",
     "self.x_addr.eq(Mux(lead.ctl.take, Mux(last_pass, 0, p_in + 1), p_in))",
     "self.x_addr.eq(p_in)"),
]


@pytest.mark.parametrize("where, what, old, new", STORE_FAULTS,
                         ids=[f[1] for f in STORE_FAULTS])
def test_planted_split_store_faults_are_caught(monkeypatch, where, what, old, new):
    from hwgen.hw import controller, store

    mod = planted(store if where == "store" else tiles, old, new)
    if where == "store":
        monkeypatch.setattr(controller, "SplitStore", mod.SplitStore)
    else:
        monkeypatch.setattr(controller, "TileArray", mod.TileArray)
    ir, top = split_top(tile=(16, 8), lanes=3, row_splits=2)     # 2 slots, 2 lanes a word
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 2, (3,) + IN_SHAPE).astype(np.uint8)
    try:
        got = TopBench(top, seed=7).run(imgs, 2, overlap=True)
    except (AssertionError, RuntimeError):
        return
    ref = TopBench(NetworkTop(ir), seed=7)
    want = ref.run(imgs, 2, overlap=True)
    assert np.array_equal(want, interp.run(ir, imgs, ref.masks))
    assert not np.array_equal(got, want), what


@pytest.mark.parametrize("seed", [0, 2, 4, 13])
def test_random_row_serial_designs_equal_golden(seed):
    """Random designs of the lint sweep (tests/test_hw_export.py), on small tiles read a
    split or two at a time: the whole top bit-exact against the golden interpreter."""
    from test_hw_export import row_serial_design

    ir = row_serial_design(seed)
    assert max(l.plan.passes for l in ir.layers) > 1
    bench, got, want = run(ir, n_img=1, samples=2, seed=seed)
    assert np.array_equal(got, want)
