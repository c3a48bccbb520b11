# amaranth: UnusedElaboratable=no
"""The whole NetworkTop in Amaranth's simulator against the golden interpreter, with the
keep masks taken from the MTJ device model; and a planted fault that must be caught."""

import dataclasses

import numpy as np
import pytest

from hwgen.passes import reschedule
from hwgen.hw.simulate import TopBench
from support import random_ir
from hwgen.hw.plan import READ_LATENCY, cycle_bound
from hwgen.hw.top import NetworkTop
from hwgen.ir import interp
from hwgen.ir.core import pack_rows
from hwgen.ir.verify import verify

SPEC, IN_SHAPE = "c4,p2,c8,p2,f10", (1, 8, 8)


def run_top(ir, lanes, n_img=2, samples=3, seed=0, in_w=32, out_ready_p=1.0, overlap=False):
    rng = np.random.default_rng(seed)
    imgs = rng.integers(0, 2, (n_img,) + tuple(ir.in_shape)).astype(np.uint8)
    bench = TopBench(NetworkTop(reschedule(ir, lanes), in_w=in_w), seed=seed + 7)
    got = bench.run(imgs, samples, out_ready_p=out_ready_p, overlap=overlap)
    return bench, imgs, got


def test_top_multichannel_input_and_backpressure():
    # 2 input channels, image words that do not divide the image, a slow output sink
    ir = random_ir("c3,c4,p2,f4,f3", (2, 5, 6), seed=3, tile=(12, 3))
    bench, imgs, got = run_top(ir, 2, n_img=2, samples=3, in_w=7, out_ready_p=0.3)
    assert np.array_equal(got, interp.run(ir, imgs, bench.masks))
    assert bench.sample_index == [(a, s) for a in range(2) for s in range(3)]


@pytest.mark.parametrize("dropout", ["spatial", "none"])
def test_next_image_runs_under_the_samples(dropout):
    # With a prefix (mc_start > 0; without a site it runs every layer but the classifier)
    # the top takes the next image's words and its start while the current image's
    # samples run (its prefix fills the other bank of layer mc_start's buffer), and every
    # result stays the golden one.
    ir = random_ir(SPEC, IN_SHAPE, dropout=dropout, seed=4, tile=(16, 8))
    assert ir.mc_start > 0
    bench, imgs, got = run_top(ir, 4, n_img=3, samples=3, in_w=16, overlap=True)
    ref = interp.run(ir, imgs, bench.masks)
    assert np.array_equal(got, np.broadcast_to(ref, got.shape))
    assert bench.sample_index == [(a, s) for a in range(3) for s in range(3)]
    words = -(-int(np.prod(IN_SHAPE)) // 16)
    if dropout == "none":                       # the classifier alone: a short sample
        assert 0 < bench.loaded_under < 2 * words
    else:                                       # both later images, all under the samples
        assert bench.loaded_under == 2 * words
        assert bench.started_under == 2
        # the pipelined run is shorter than one image after the other
        seq, _, _ = run_top(ir, 4, n_img=3, samples=3, in_w=16)
        assert seq.started_under == 0
        assert bench.done_cycles[-1] < seq.done_cycles[-1]


@pytest.mark.parametrize("samples", [0, 1, 2])
def test_pipelined_images_with_few_samples(samples):
    # T = 0 (prefix only) and T = 1 (no sample overlaps the next one's RNG cycle) with
    # the next image's prefix under the samples: each image gets its own T beats and
    # the device draws stay in (image, sample) order.
    ir = random_ir(SPEC, IN_SHAPE, dropout="spatial", seed=5, tile=(16, 8))
    bench, imgs, got = run_top(ir, 4, n_img=4, samples=samples, in_w=16, overlap=True)
    assert bench.sample_index == [(a, s) for a in range(4) for s in range(samples)]
    if samples:
        assert np.array_equal(got, interp.run(ir, imgs, bench.masks))
    assert len(bench.done_cycles) == 4


@pytest.mark.parametrize("lanes,dropout", [(4, "spatial"), (3, "element"), (8, "none")])
def test_top_equals_golden(lanes, dropout):
    ir = random_ir(SPEC, IN_SHAPE, dropout=dropout, seed=1, tile=(16, 8))
    verify(ir)
    bench, imgs, got = run_top(ir, lanes)
    want = interp.run(ir, imgs, bench.masks, samples=None if bench.masks else 3)
    assert np.array_equal(got, want)
    assert bench.sample_index == [(a, s) for a in range(2) for s in range(3)]
    if dropout != "none":
        # one reset/write cycle per (image, sample), and the masks are not constant
        assert len(bench.devices.history) == 2 * 3
        allm = np.concatenate([m.reshape(-1) for m in bench.masks])
        assert 0 < allm.mean() < 1


def test_planted_faults_are_caught():
    ir = random_ir(SPEC, IN_SHAPE, seed=1, tile=(16, 8))
    # one flipped classifier weight bit; one layer-1 threshold moved out of reach
    cls = ir.layers[-1]
    w = cls.weight_bits()
    w[0, 0] ^= 1
    bad_w = dataclasses.replace(ir, layers=(*ir.layers[:-1],
                                            dataclasses.replace(cls, weights=pack_rows(w))))
    l1 = ir.layers[1]
    rng = np.random.default_rng(5)
    imgs = rng.integers(0, 2, (2,) + IN_SHAPE).astype(np.uint8)
    masks = [(rng.random((2, 3, s.n_groups)) > 0.25).astype(np.uint8) for s in ir.sites]
    for j in range(l1.out_channels):
        t = list(l1.thresh)
        t[j] = l1.rows + 1                     # never reached: channel j is constant 0
        bad_t = dataclasses.replace(ir, layers=(ir.layers[0], dataclasses.replace(
            l1, thresh=tuple(t)), *ir.layers[2:]))
        if not np.array_equal(interp.run(bad_t, imgs, masks), interp.run(ir, imgs, masks)):
            break                              # a channel whose bits matter
    for bad in (bad_w, bad_t):
        # the design is generated from the faulty IR; the checker compares with the true one
        bench, imgs, got = run_top(bad, 4, n_img=2, samples=3)
        assert np.array_equal(got, interp.run(bad, imgs, bench.masks))
        assert not np.array_equal(got, interp.run(ir, imgs, bench.masks))


def test_cycles_per_sample_meet_bound():
    """The top built from the IR's read plans runs at their cycle bound, exactly: the
    default (the array, one beat per read: the pipeline's own plans) and 2 and 8 lanes
    (the schedule pass run again); fewer lanes, more cycles."""
    ir = random_ir(SPEC, IN_SHAPE, seed=2, tile=(16, 8))
    assert all(l.plan.beats == 1 for l in ir.layers)
    bounds = []
    for v in (ir, reschedule(ir, 8), reschedule(ir, 2)):
        top = NetworkTop(v)
        bench = TopBench(top, seed=1)
        bench.run(np.ones((1,) + IN_SHAPE, np.uint8), 4)
        cycles = np.diff([c for _, c in bench.beat_cycles])
        # the schedule's sample period, exactly (hwgen.hw.plan.cycle_bound)
        bound = cycle_bound(v).per_sample
        assert [c.beats for c in top.controllers] == [l.plan.beats for l in v.layers]
        assert len(cycles) == 3 and (cycles == bound).all(), (cycles, bound)
        bounds.append(bound)
    assert bounds[0] == bounds[1] < bounds[2]          # tiles of 8 columns: 8 lanes = array


def test_a_small_layer_runs_at_the_rng_period():
    """Where the per-sample walk is shorter than an MTJ-RNG cycle, the RNG sets the sample
    period, and the bound says so: exactly, at the default pulses (7 cycles) and at longer
    ones (reset 3, write 4: 10). The walk alone would claim fewer cycles."""
    from hwgen.hw.plan import rng_period
    base = random_ir("c2,f4", (1, 3, 3), seed=1, tile=(16, 8))
    for mtj in (base.mtj, dataclasses.replace(base.mtj, reset_cycles=3, write_cycles=4)):
        ir = dataclasses.replace(base, mtj=mtj)
        bench = TopBench(NetworkTop(ir), seed=1)
        bench.run(np.ones((1, 1, 3, 3), np.uint8), 4)
        cycles = np.diff([c for _, c in bench.beat_cycles])
        cb = cycle_bound(ir)
        assert cb.per_sample == rng_period(mtj.reset_cycles, mtj.write_cycles)
        assert (sum(cb.per_layer[ir.mc_start:])
                + (len(cb.per_layer) - ir.mc_start) * READ_LATENCY < cb.per_sample)
        assert len(cycles) == 3 and (cycles == cb.per_sample).all(), (cycles, cb.per_sample)


def test_strided_design_is_bit_exact_and_meets_its_bound():
    """Stride-2 convs, a pool 3 and a gapped one (2, stride 3) through the whole top:
    class integers equal the golden model's, and the cycles of a sample are the
    schedule's (the row changes and strides of the ring walk included)."""
    ir = random_ir("c4s2,p3,c5,p2s3,f6", (1, 20, 20), seed=4, tile=(16, 8))
    bench, imgs, got = run_top(ir, 4, n_img=2, samples=3)
    assert np.array_equal(got, interp.run(ir, imgs, bench.masks))
    top = NetworkTop(reschedule(ir, 4))
    bench = TopBench(top, seed=1)
    bench.run(np.ones((1,) + ir.in_shape, np.uint8), 4)
    cycles = np.diff([c for _, c in bench.beat_cycles])
    bound = cycle_bound(reschedule(ir, 4)).per_sample
    assert (cycles == bound).all(), (cycles, bound)


def test_overlapping_pool_is_refused_before_anything_is_built():
    from hwgen.errors import HwgenError
    ir = random_ir("c4s2,p3s2,f6", (1, 12, 12), seed=4, tile=(16, 8))
    with pytest.raises(HwgenError, match="overlapping max-pool"):
        NetworkTop(reschedule(ir, 4))


def test_overlapping_pool_export_writes_nothing(tmp_path):
    """The refusal comes before any file: `hwgen compile` with Verilog (hwgen.export)
    fails in one line and leaves no output folder."""
    from hwgen.errors import HwgenError
    from hwgen.export import export
    ir = random_ir("c4,p3s2,f6", (1, 9, 9), seed=4, tile=(16, 8))
    with pytest.raises(HwgenError) as e:
        export(reschedule(ir, 4), tmp_path / "out")
    assert "overlapping max-pool" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()


def test_an_unscheduled_ir_is_refused_in_one_line(tmp_path):
    """The hardware is built from the IR's read plans only: without them NetworkTop and
    export refuse, naming the schedule pass, and nothing is written."""
    from hwgen.errors import HwgenError
    from hwgen.export import export
    ir = random_ir(SPEC, IN_SHAPE, seed=2, tile=(16, 8))
    bare = dataclasses.replace(ir, layers=tuple(dataclasses.replace(l, plan=None)
                                                for l in ir.layers))
    with pytest.raises(HwgenError, match="no read plan.*hwgen.passes.schedule"):
        NetworkTop(bare)
    with pytest.raises(HwgenError, match="scheduled IR") as e:
        export(bare, tmp_path / "out")
    assert "\n" not in str(e.value) and not (tmp_path / "out").exists()
    NetworkTop(ir)                                      # the same IR with its plans builds
