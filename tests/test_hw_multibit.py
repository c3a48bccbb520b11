# amaranth: UnusedElaboratable=no
"""A multi-bit first layer (SPEC section 3) in the NetworkTop, in Amaranth's simulator,
against the golden interpreter on `interp.input_bits` planes: unsigned (bitserial-n) and
signed two's complement inputs, padded and valid convs, row splits; planted faults (a
threshold, a plane weight) must be caught; the cycle bound counts P reads per window."""

import dataclasses

import numpy as np
import pytest

from hwgen.passes import reschedule
from hwgen.hw.plan import cycle_bound
from hwgen.hw.simulate import TopBench
from hwgen.hw.top import NetworkTop
from hwgen.ir import interp
from support import multibit_ir


def planes_of(ir, n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n,) + tuple(ir.in_shape)).astype(np.float32)
    if ir.input.mode == "signed":
        x = x * 2 - 1
    return interp.input_bits(ir, x)


def run_top(ir, lanes, n_img=2, samples=2, seed=0, in_w=32):
    planes = planes_of(ir, n_img, seed)
    bench = TopBench(NetworkTop(reschedule(ir, lanes), in_w=in_w), seed=seed + 7)
    got = bench.run(planes, samples)
    return bench, planes, got


CASES = [
    # spec, in_shape, mode, bits, lanes, tile
    ("c4,p2,c6,f5", (1, 6, 6), "unsigned", 4, 2, (8, 4)),       # padded, row splits of 9 rows
    ("c3k3v,c4,p2,f3", (2, 7, 7), "unsigned", 8, 3, (7, 2)),    # valid conv, 2 channels
    ("c4,p2,f6,f4", (1, 6, 6), "signed", 8, 4, (5, 4)),         # signed-8, sign plane -128
    ("f6,f3", (1, 4, 4), "signed", 4, 2, (6, 4)),               # linear first layer
]


@pytest.mark.parametrize("spec,shape,mode,bits,lanes,tile", CASES)
def test_multibit_top_equals_golden(spec, shape, mode, bits, lanes, tile):
    ir = multibit_ir(spec, shape, mode, bits, seed=3, tile=tile)
    bench, planes, got = run_top(ir, lanes, n_img=2, samples=2, in_w=7)
    want = interp.run(ir, planes, bench.masks)
    assert np.array_equal(got, want)
    # layer 0's output bits are neither all 0 nor all 1 (the test has teeth)
    h0 = interp.run_layer(ir, 0, planes)
    assert 0 < h0.mean() < 1


def test_multibit_classifier_first_layer():
    ir = multibit_ir("f5", (1, 3, 3), "signed", 8, seed=1, tile=(4, 2), dropout="none")
    bench, planes, got = run_top(ir, 2, n_img=2, samples=1)
    assert np.array_equal(got, interp.run(ir, planes, samples=1))


def test_multibit_planted_faults_are_caught():
    ir = multibit_ir("c4,p2,f5", (1, 6, 6), "signed", 8, seed=4, tile=(8, 4))
    planes = planes_of(ir, 2, 0)
    l0 = ir.layers[0]
    rng = np.random.default_rng(1)
    masks = [(rng.random((2, 2, s.n_groups)) > 0.25).astype(np.uint8) for s in ir.sites]
    ref = interp.run(ir, planes, masks)
    bad_t = None
    for j in range(l0.out_channels):
        t = list(l0.thresh)
        t[j] += 37 * l0.sign[j]
        cand = dataclasses.replace(ir, layers=(dataclasses.replace(l0, thresh=tuple(t)),
                                               *ir.layers[1:]))
        if not np.array_equal(interp.run(cand, planes, masks), ref):
            bad_t = cand
            break
    assert bad_t is not None
    # one plane weight wrong: the sign plane taken as +128 (unsigned) instead of -128
    bad_w = dataclasses.replace(ir, input=dataclasses.replace(ir.input, mode="unsigned"))
    for bad in (bad_t, bad_w):
        bench = TopBench(NetworkTop(reschedule(bad, 4)), seed=7)
        got = bench.run(planes, 2)
        assert np.array_equal(got, interp.run(bad, planes, bench.masks))
        assert not np.array_equal(got, interp.run(ir, planes, bench.masks))


def test_multibit_cycles_meet_bound():
    ir = multibit_ir("c4,p2,c6,f5", (1, 6, 6), "unsigned", 8, seed=2, tile=(16, 8))
    lanes = 2
    cb = cycle_bound(reschedule(ir, lanes))
    assert cb.per_layer[0] == ir.layers[0].windows * 2 * 8
    bench, planes, got = run_top(ir, lanes, n_img=1, samples=3)
    # layer 0 is the prefix: it runs once per image in about P * W * r cycles
    (c0,) = bench.layer_cycles[0]
    assert cb.per_layer[0] <= c0 <= cb.per_layer[0] + 8, (c0, cb.per_layer[0])
    cycles = np.diff([c for _, c in bench.beat_cycles])
    # the schedule's sample period, exactly
    assert (cycles == cb.per_sample).all(), (cycles, cb.per_sample)
