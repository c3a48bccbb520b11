# amaranth: UnusedElaboratable=no
"""TileController, one layer of each kind, against the golden layer
(hwgen.ir.interp.run_layer) in Amaranth's simulator."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwgen.hw.controller import TileController
from hwgen.hw.plan import READ_LATENCY, home_steps, walk_cycles
from hwgen.ir.core import IR, InputEncoding, Layer, Site, layer_read_plan, pack_rows
from hwgen.ir.interp import run_layer


def random_layer(rng, in_shape, out_channels, kernel, pad, pool=1, tile=(128, 128),
                 classifier=False, stride=(1, 1), pool_stride=None):
    c, kh, kw = in_shape[0], *kernel
    rows = c * kh * kw
    w = rng.integers(0, 2, (out_channels, rows))
    sign = thresh = None
    if not classifier:
        sign = tuple(int(v) for v in rng.choice([-1, 1], out_channels))
        # mostly reachable thresholds, some outside [-rows, rows] (constant channels)
        thresh = tuple(int(v) for v in rng.integers(-rows // 3 - 1, rows // 3 + 2, out_channels))
        thresh = (rows + 5,) + thresh[1:] if out_channels > 2 else thresh
    return Layer(op="conv", in_shape=tuple(in_shape), out_channels=out_channels,
                 kernel=tuple(kernel), pad=tuple(pad), pool=pool, weights=pack_rows(w),
                 sign=sign, thresh=thresh, tile=tuple(tile), stride=tuple(stride),
                 pool_stride=pool_stride)


def golden(layer, site, keep, x):
    """interp.run_layer on an IR holding `layer` first (its site at layer 0); a thresholded
    layer gets a classifier after it, so that it is not taken for the classifier."""
    layers = (layer,)
    if not layer.is_classifier:
        o, hh, ww = layer.out_shape
        layers += (Layer(op="linear", in_shape=(o, hh, ww), out_channels=1, kernel=(hh, ww),
                         pad=(0, 0), pool=1, weights=pack_rows(np.zeros((1, o * hh * ww)))),)
    sites = () if site is None else (site,)
    ir = IR(in_shape=layer.in_shape, input=InputEncoding(), layers=layers, sites=sites)
    return run_layer(ir, 0, x[None], None if keep is None else np.asarray(keep)[None])[0]


def simulate(layer, site, keep, x, lanes, walker_layer=None, reread=False, runs=1, dut=None):
    """Shift x [C,H,W] into the store, start, collect the writes (or the class beat);
    `runs` > 1 (a re-read store) starts again after each done without rewriting it, and
    the writes of the last run are returned. `walker_layer`: what the walker is built
    from instead of `layer` (a planted fault). Returns (dut, writes {position: word},
    out, cycles of the last run). `dut`: a controller built (and faulted) by the
    caller."""
    if dut is None:
        dut = TileController(layer, site, layer_read_plan(layer, lanes, reread=reread))
    if walker_layer is not None:
        dut.walker.layer = walker_layer
    c, h, w = layer.in_shape
    writes, out, timing = {}, [], {}

    async def bench(ctx):
        if site is not None:
            ctx.set(dut.keep, int("".join(str(int(b)) for b in keep[::-1]), 2))
        for pos in range(h * w):
            y, xx = divmod(pos, w)
            ctx.set(dut.wr.data, int("".join(str(int(b)) for b in x[::-1, y, xx]), 2))
            ctx.set(dut.wr.en, 1)
            await ctx.tick()
        ctx.set(dut.wr.en, 0)
        for _ in range(runs - 1):
            ctx.set(dut.start, 1)
            if layer.is_classifier:
                ctx.set(dut.out.ready, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            await ctx.tick().until(dut.done)
            await ctx.tick()
        ctx.set(dut.wr.en, 0)
        ctx.set(dut.start, 1)
        if layer.is_classifier:
            ctx.set(dut.sample, 0x1234)
            ctx.set(dut.out.ready, 1)
        n = 0
        while True:
            _, _, done, en, data_ = await ctx.tick().sample(
                dut.done, dut.next.en if not layer.is_classifier else dut.done,
                dut.next.data if not layer.is_classifier else dut.done)
            ctx.set(dut.start, 0)
            n += 1
            if not layer.is_classifier and en:
                writes[len(writes)] = data_
            if done:
                timing["cycles"] = n
                break
        if layer.is_classifier:
            sample, acc = await ctx.tick().sample(dut.out.payload.sample, dut.out.payload.acc).until(dut.out.valid)
            out.append((int(sample), [int(a) for a in acc]))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return dut, writes, out, timing["cycles"]


CASES = {
    # conv with padding and pooling (odd map: floor-mode leftovers), 2 row x 2 col splits
    "conv_pad_pool": dict(in_shape=(3, 5, 7), out_channels=5, kernel=(3, 3), pad=(1, 1),
                          pool=2, tile=(16, 3), lanes=2, site="spatial"),
    "conv_nopool_1x1tile": dict(in_shape=(2, 3, 3), out_channels=3, kernel=(3, 3), pad=(1, 1),
                                pool=1, tile=(128, 128), lanes=1, site=None),
    # a linear fed by a flatten: the kernel covers the map
    "flatten_linear": dict(in_shape=(4, 3, 3), out_channels=7, kernel=(3, 3), pad=(0, 0),
                           tile=(20, 8), lanes=3, site="element"),
    # a linear fed by a linear: a 1x1 kernel over an (F, 1, 1) map
    "linear_linear": dict(in_shape=(12, 1, 1), out_channels=6, kernel=(1, 1), pad=(0, 0),
                          tile=(5, 6), lanes=6, site="spatial"),
    "classifier": dict(in_shape=(8, 2, 2), out_channels=10, kernel=(2, 2), pad=(0, 0),
                       tile=(16, 4), lanes=3, site="spatial", classifier=True),
    # stride 2 with padding, then a pool 2: 5x5 -> 2x2, the ragged edge skipped
    "conv_s2_pool2": dict(in_shape=(2, 9, 9), out_channels=4, kernel=(3, 3), pad=(1, 1),
                          stride=(2, 2), pool=2, tile=(8, 3), lanes=2, site="spatial"),
    # a valid 3x3 conv (row changes of 3 ring steps) with a 1-beat read, pool 3
    "conv_valid_pool3_1beat": dict(in_shape=(2, 8, 9), out_channels=3, kernel=(3, 3),
                                   pad=(0, 0), pool=3, lanes=3, site=None),
    # strides (2, 3), then a gapped pool (2, stride 3): 8x6 -> 3x2, windows in no block
    "conv_s23_pool2s3": dict(in_shape=(3, 16, 16), out_channels=4, kernel=(3, 3), pad=(1, 1),
                             stride=(2, 3), pool=2, pool_stride=3, lanes=3, site="element"),
    # a 5x5 kernel, padding 2, stride 3: windows cross the padding on both sides
    "conv_k5s3_pad": dict(in_shape=(2, 8, 7), out_channels=5, kernel=(5, 5), pad=(2, 2),
                          stride=(3, 3), tile=(32, 4), lanes=2, site=None),
    # a valid 2x2 kernel at stride 2 (non-overlapping windows)
    "conv_k2s2_valid": dict(in_shape=(3, 6, 5), out_channels=4, kernel=(2, 2), pad=(0, 0),
                            stride=(2, 2), lanes=4, site=None),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_controller_matches_model(name):
    cfg = dict(CASES[name])
    rng = np.random.default_rng(sorted(CASES).index(name))
    lanes, kind = cfg.pop("lanes"), cfg.pop("site")
    layer = random_layer(rng, **cfg)
    site = keep = None
    if kind is not None:
        kh, kw = layer.kernel
        n, gr = (layer.in_shape[0], kh * kw) if kind == "spatial" else (layer.rows, 1)
        site = Site(layer=0, kind=kind, p=0.3, n_groups=n, group_rows=gr, first_interface=0)
        keep = (rng.random(n) > 0.3).astype(np.uint8)
    x = rng.integers(0, 2, layer.in_shape).astype(np.uint8)
    dut, writes, out, cycles = simulate(layer, site, keep, x, lanes)
    want = golden(layer, site, keep, x)
    if layer.is_classifier:
        assert out == [(0x1234, want.tolist())]
    else:
        o, hh, ww = layer.out_shape
        got = np.zeros((o, hh, ww), np.uint8)
        assert sorted(writes) == list(range(hh * ww))
        for addr, v in writes.items():
            got[:, addr // ww, addr % ww] = [(v >> j) & 1 for j in range(o)]
        assert (got == want).all()
    # start -> done: the first request a cycle after start, the walk
    # (hwgen.hw.plan.walk_cycles), then the tile's read latency
    assert cycles == 1 + READ_LATENCY + walk_cycles(layer, dut.beats)


class _Override:
    """A layer as a faulty walker would see it: `fields` replace the layer's own."""

    def __init__(self, layer, **fields):
        self._layer, self._fields = layer, fields

    def __getattr__(self, k):
        return self._fields[k] if k in self._fields else getattr(self._layer, k)


def _writes_equal_golden(cfg: dict, seed: int, fault: dict) -> bool:
    cfg = dict(cfg)
    rng = np.random.default_rng(seed)
    lanes, _ = cfg.pop("lanes"), cfg.pop("site")
    layer = random_layer(rng, **cfg)
    x = rng.integers(0, 2, layer.in_shape).astype(np.uint8)
    _, writes, _, _ = simulate(layer, None, None, x, lanes, _Override(layer, **fault))
    want = golden(layer, None, None, x)
    o, hh, ww = layer.out_shape
    got = np.zeros((o, hh, ww), np.uint8)
    for addr, v in writes.items():
        if addr < hh * ww:
            got[:, addr // ww, addr % ww] = [(v >> j) & 1 for j in range(o)]
    return sorted(writes) == list(range(hh * ww)) and bool((got == want).all())


@pytest.mark.parametrize("name, fault", [
    ("conv_s2_pool2", dict(stride=(1, 1))),            # windows step by 1, not 2
    ("conv_k2s2_valid", dict(stride=(1, 1))),
    ("conv_s2_pool2", dict(pool_step=3)),              # blocks step by 3, not the size
    ("conv_s23_pool2s3", dict(pool_step=2)),
])
def test_a_walker_ignoring_a_stride_fails_the_golden_comparison(name, fault):
    """The checker above catches a walker that steps its windows or its pool blocks by 1
    (or the pool size) instead of the stride; without the fault the same run passes."""
    seed = sorted(CASES).index(name)
    assert _writes_equal_golden(CASES[name], seed, {})
    assert not _writes_equal_golden(CASES[name], seed, fault)


@pytest.mark.parametrize("name", ["conv_pad_pool", "conv_s23_pool2s3", "conv_valid_pool3_1beat"])
def test_a_reread_store_walks_home_and_again(name):
    """The first MC layer's store is read again without being rewritten: after each walk
    the ring rotates home (`home_steps`), and a start that comes earlier waits for it; the
    third walk still equals the golden layer, and takes its bound plus the wait."""
    cfg = dict(CASES[name])
    rng = np.random.default_rng(11)
    lanes, _ = cfg.pop("lanes"), cfg.pop("site")
    layer = random_layer(rng, **cfg)
    x = rng.integers(0, 2, layer.in_shape).astype(np.uint8)
    dut, writes, _, cycles = simulate(layer, None, None, x, lanes, reread=True, runs=3)
    want = golden(layer, None, None, x)
    o, hh, ww = layer.out_shape
    got = np.zeros((o, hh, ww), np.uint8)
    assert sorted(writes) == list(range(hh * ww))
    for addr, v in writes.items():
        got[:, addr // ww, addr % ww] = [(v >> j) & 1 for j in range(o)]
    assert (got == want).all()
    # the previous run's done came READ_LATENCY cycles after its last request and it was
    # restarted a cycle later: the ring is home h cycles after that last request
    wait = max(0, home_steps(layer) - dut.beats - 1 - READ_LATENCY)
    assert cycles == 1 + READ_LATENCY + walk_cycles(layer, dut.beats) + wait
    assert home_steps(layer) > 0


def test_overlapping_pool_is_refused_in_one_line():
    from hwgen.errors import HwgenError
    layer = random_layer(np.random.default_rng(0), (2, 9, 9), 4, (3, 3), (1, 1), pool=3,
                         pool_stride=2)
    with pytest.raises(HwgenError, match="overlapping max-pool"):
        TileController(layer, None, layer_read_plan(layer, 2))


def test_flatten_fed_linear_walker_is_wires():
    """One window over the whole map: the ring never rotates and the taps are the map as
    it stands; the walker's RTLIL has no mux, no memory port, no shift and no counter
    (its only flops: `walking` and `pending`)."""
    from amaranth.back import rtlil
    layer = random_layer(np.random.default_rng(0), (4, 3, 3), 7, (3, 3), (0, 0), tile=(20, 8))
    site = Site(layer=0, kind="spatial", p=0.3, n_groups=4, group_rows=9, first_interface=0)
    plan = layer_read_plan(layer, 3)
    assert plan.store == "flat"
    dut = TileController(layer, site, plan)
    text = rtlil.convert(dut.walker)
    cells = [ln.split()[1] for ln in text.splitlines() if ln.strip().startswith("cell ")]
    assert not [c for c in cells if c in ("$mux", "$pmux", "$memrd", "$memrd_v2", "$shl",
                                           "$shr", "$shift", "$shiftx", "$add", "$sub",
                                           "$eq", "$lt", "$ge")], cells
    assert cells.count("$dff") == 2
    assert tuple(dut.store.slots) == tuple(range(9))
    # and the store: one ring, its taps plain slices
    text = rtlil.convert(dut.store)
    cells = [ln.split()[1] for ln in text.splitlines() if ln.strip().startswith("cell ")]
    assert not [c for c in cells if c in ("$pmux", "$memrd", "$memrd_v2", "$shiftx")], cells


@pytest.mark.parametrize("stride, pool", [((1, 1), 1), ((2, 2), 2)])
def test_a_planted_fault_in_the_ring_taps_is_caught(stride, pool):
    """Two window taps swapped in the store (kernel corners (0, 0) and (2, 2)): the
    golden comparison above fails; the same run without the fault passes."""
    import dataclasses
    rng = np.random.default_rng(3)
    layer = random_layer(rng, (3, 7, 8), 8, (3, 3), (1, 1), pool=pool, tile=(16, 4),
                         stride=stride)
    # thresholds near the middle of the sums, so that every channel depends on its rows
    layer = dataclasses.replace(layer, thresh=tuple(int(v) for v in rng.integers(-2, 3, 8)))
    x = rng.integers(0, 2, layer.in_shape).astype(np.uint8)
    want = golden(layer, None, None, x)

    def result(swap):
        dut = TileController(layer, None, layer_read_plan(layer, 2))
        if swap:
            s = list(dut.store.slots)
            s[0], s[-1] = s[-1], s[0]
            dut.store.slots = tuple(s)
        o, hh, ww = layer.out_shape
        got = np.zeros((o, hh, ww), np.uint8)
        _, writes, _, _ = simulate(layer, None, None, x, 2, dut=dut)
        for addr, v in writes.items():
            got[:, addr // ww, addr % ww] = [(v >> j) & 1 for j in range(o)]
        return got
    assert (result(False) == want).all()
    assert not (result(True) == want).all()
