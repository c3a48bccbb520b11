"""Every pass keeps the interpreter's output unchanged, on random small networks."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hwgen.errors import HwgenError
from hwgen.ir import fast, interp
from hwgen.ir.core import BatchNorm, dumps, loads
from hwgen.model.spec import SpecError
from hwgen.passes import PIPELINE, PassConfig, fold_thresholds, parse_tile, run_pipeline

from support import float_ir, random_images, random_masks, random_net


@st.composite
def networks(draw):
    """SPECs with same and valid convs (strides 1-3), pools (their stride the size, or
    overlapping, or gapped), linears, and chosen sites (`d`) or the default ones; binary
    or multi-bit input."""
    tokens = []
    choose = draw(st.booleans())

    def site():
        if choose and tokens and draw(st.booleans()):
            tokens.append("d")
    for _ in range(draw(st.integers(0, 2))):
        site()
        stride = draw(st.sampled_from(["", "", "s2", "s3"]))
        if draw(st.booleans()):
            tokens.append(f"c{draw(st.integers(1, 9))}k{draw(st.sampled_from([1, 3, 5]))}{stride}")
        else:
            tokens.append(f"c{draw(st.integers(1, 9))}k{draw(st.sampled_from([1, 2, 3]))}v{stride}")
        if draw(st.booleans()):
            tokens.append(f"p{draw(st.sampled_from([2, 3]))}"
                          + draw(st.sampled_from(["", "", "s1", "s2", "s3"])))
    for _ in range(draw(st.integers(0, 1))):
        site()
        tokens.append(f"f{draw(st.integers(1, 9))}")
    site()
    tokens.append(f"f{draw(st.integers(1, 9))}")
    shape = (draw(st.integers(1, 3)), draw(st.sampled_from([1, 3, 5, 7, 9])),
             draw(st.sampled_from([1, 3, 5, 7])))
    kind = draw(st.sampled_from(["none", "spatial", "element"]))
    scale = kind != "none" and draw(st.booleans())
    tile = (draw(st.sampled_from([1, 2, 3, 5, 7, 13, 128])),
            draw(st.sampled_from([1, 2, 3, 6, 128])))
    mode = draw(st.sampled_from(["binary", "binary", "bitserial-2", "bitserial-8"]))
    return ",".join(tokens), shape, kind, scale, tile, draw(st.integers(0, 2**16)), mode


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks())
def test_every_pass_keeps_interpreter_output(net):
    spec, shape, kind, scale, tile, seed, mode = net
    try:
        model = random_net(spec, shape, kind, p=0.3, scale=scale, seed=seed, input_mode=mode)
    except SpecError:
        assume(False)
    ir = float_ir(model)
    n, t = 5, 3
    bits = interp.input_bits(ir, random_images(shape, n, seed))
    masks = random_masks(ir, n, t, seed)
    ref = interp.run(ir, bits, masks, samples=t)
    stages = []
    final = run_pipeline(ir, PassConfig(tile=tile), on_pass=lambda name, x: stages.append((name, x)))
    assert [name for name, _ in stages] == [p.__name__ for p in PIPELINE]
    for name, stage in stages:
        for run in (interp.run, fast.run):
            got = run(stage, bits, masks, samples=t)
            assert np.array_equal(got, ref), f"{name} ({run.__module__}) changed the output"
    assert ir.stage == "float" and final.stage == "integer" and final.layers[0].tile == tile
    assert loads(dumps(final)) == final
    # and the integer model is the float model's arithmetic: class integers equal
    tm = [torch.from_numpy(m.reshape(n * t, -1)).float() for m in masks]
    with torch.no_grad():
        _, trace = model(random_images(shape, n, seed).repeat_interleave(t, 0), tm or None,
                         trace=True)
    last_gated = ir.site_of(len(ir.layers) - 1) is not None      # only gated inputs are scaled
    fa = trace[-1]["acc"].double().numpy() * ((1 - 0.3) if scale and last_gated else 1.0)
    assert np.array_equal(np.rint(fa).reshape(n, t, -1), ref)


def test_tiling_never_changes_a_result():
    model = random_net("c7k5,p2,c9,f6,f4", (2, 9, 7), "spatial", seed=3)
    ir = run_pipeline(float_ir(model))
    bits = interp.input_bits(ir, random_images((2, 9, 7), 6, 1))
    masks = random_masks(ir, 6, 4, 1)
    ref = interp.run(ir, bits, masks)
    for tile in [(1, 1), (1, 128), (128, 1), (3, 5), (17, 2), (50, 50), (10**6, 10**6)]:
        tiled = run_pipeline(float_ir(model), PassConfig(tile=tile))
        assert tiled.layers[1].tile == tile
        for run in (interp.run, fast.run):
            assert np.array_equal(run(tiled, bits, masks), ref)


def test_fold_is_exact_at_every_reachable_acc():
    rows = 13
    bn = BatchNorm(gain=(0.7, -0.4, 0.0, 0.0, 1.0, -1.0, 2.0),
                   bias=(0.1, 0.3, 0.2, -0.2, 0.0, 0.0, 50.0),
                   mean=(2.0, -3.5, 0.0, 0.0, 3.0, 3.0, 0.0),
                   var=(4.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0), eps=1e-5, in_scale=1.25)
    s, t = fold_thresholds(bn, rows)
    a = np.arange(-rows, rows + 1)
    want = interp.bn_value(bn, np.broadcast_to(a, (7, a.size)), axis=0) >= 0
    got = np.asarray(s)[:, None] * a[None] >= np.asarray(t)[:, None]
    assert np.array_equal(got, want)
    assert s[1] == -1 and s[5] == -1                      # negative gain flips the comparison
    assert (s[2], t[2]) == (1, -(rows + 1))                # gain 0, bias > 0: always +1
    assert (s[3], t[3]) == (1, rows + 1)                   # gain 0, bias < 0: always -1
    assert (s[6], t[6]) == (1, -(rows + 1))                # never reaches 0 inside the range
    assert (s[4], t[4]) == (1, 3)                          # y >= 0 iff 1.25*acc >= 3
    assert t[5] == -2                                      # y >= 0 iff 1.25*acc <= 3


@pytest.mark.parametrize("text", ["0x4", "4x0", "-1x3", "2.5x3", "3x", "x3", "abc", "4", "",
                                  "1e2x3", "3x3x3"])
def test_impossible_tile_sizes_are_rejected(text):
    with pytest.raises(HwgenError, match="--tile must be RxC"):
        parse_tile(text)


def test_any_positive_tile_parses():
    assert parse_tile("1x1") == (1, 1)
    assert parse_tile("3X7") == (3, 7)
    assert parse_tile("1000000x2") == (1000000, 2)


def test_verify_runs_after_every_pass(monkeypatch):
    import hwgen.passes as passes
    from dataclasses import replace

    def bad_pass(ir, cfg):          # breaks the interface numbering
        return replace(ir, sites=tuple(replace(s, first_interface=5) for s in ir.sites))
    bad_pass.__name__ = "bad_pass"
    monkeypatch.setattr(passes, "PIPELINE", passes.PIPELINE[:3] + (bad_pass,))
    ir = float_ir(random_net("c3,f2,f2", (1, 3, 3), "spatial"))
    with pytest.raises(HwgenError, match="global numbering"):
        passes.run_pipeline(ir)
