"""The golden interpreter: float model == integer model except at counted ties, planted
faults are caught, the fast paths equal the plain per-sample path."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from hwgen.ir import fast, interp
from hwgen.model.agreement import float_vs_int
from hwgen.passes import run_pipeline

from support import float_ir, random_images, random_masks, random_net

NETS = [
    ("c6,p2,c9k5,p3,f7,f5", (2, 13, 15), "spatial", False),
    ("c6,p2,c9k5,p3,f7,f5", (2, 13, 15), "element", True),
    ("c4k1,c5,p2,f3", (3, 7, 9), "spatial", True),
    ("c5k3,p2,f4", (1, 9, 9), "none", False),
    # strided convs, an overlapping pool (3, stride 2) and a gapped one (2, stride 3)
    ("c6s2,p3s2,c7k3vs2,f5", (2, 17, 19), "spatial", False),
    ("c5k5s3,c6,p2s3,f4", (1, 23, 20), "element", True),
]


@pytest.mark.parametrize("spec,shape,kind,scale", NETS)
def test_float_equals_integer_except_ties(spec, shape, kind, scale):
    model = random_net(spec, shape, kind, p=0.25, scale=scale, seed=7)
    ir = run_pipeline(float_ir(model), )
    n, t = 24, 6
    rep = float_vs_int(model, ir, random_images(shape, n, 2), random_masks(ir, n, t, 3))
    assert rep["ok"], rep
    assert rep["non_tie_disagree"] == 0 and rep["bits"] > 0
    assert rep["disagree"] <= rep["ties"]
    assert all(l["acc_mismatch"] == 0 for l in rep["layers"])
    assert rep["sample_agreement"] == 1.0 or rep["samples_with_tie"] > 0


def test_exact_ties_are_counted_and_both_sides_agree_on_them():
    """With mean 0, bias 0, the post-norm value is exactly 0 at acc = 0: a real tie,
    where sign(0) = +1 must hold on both sides."""
    model = random_net("c4,f3", (2, 5, 5), "spatial", seed=1)
    with torch.no_grad():
        bn = model.blocks[0].bn
        bn.running_mean.zero_()
        bn.bias.zero_()
        bn.weight.copy_(torch.tensor([1.0, -1.0, 0.5, 0.0]))
    ir = run_pipeline(float_ir(model))
    rep = float_vs_int(model, ir, random_images((2, 5, 5), 32, 0), random_masks(ir, 32, 4, 0))
    assert rep["ties"] > 0 and rep["layers"][0]["ties"] > 0
    assert rep["ok"] and rep["disagree"] == 0


def test_checker_catches_a_planted_threshold_fault():
    model = random_net("c6,p2,c9,f5", (2, 9, 9), "spatial", seed=4)
    ir = run_pipeline(float_ir(model))
    l1 = ir.layers[1]
    j = next(j for j, t in enumerate(l1.thresh) if abs(t) < l1.rows)
    bad = replace(ir, layers=(ir.layers[0], replace(l1, thresh=l1.thresh[:j] + (l1.thresh[j] + 1,)
                                                    + l1.thresh[j + 1:]), ir.layers[2]))
    imgs, masks = random_images((2, 9, 9), 32, 5), random_masks(ir, 32, 4, 5)
    assert float_vs_int(model, ir, imgs, masks)["ok"]
    rep = float_vs_int(model, bad, imgs, masks)
    assert not rep["ok"] and rep["layers"][1]["non_tie_disagree"] > 0


def _flip_weight(layer, j, r):
    w = layer.weight_bits()
    w[j, r] ^= 1
    from hwgen.ir.core import pack_rows
    return replace(layer, weights=pack_rows(w))


@pytest.mark.parametrize("where", [0, 1, 2])
def test_planted_weight_flip_changes_output(where):
    model = random_net("c6,p2,c9,f5", (2, 9, 9), "spatial", seed=4)
    ir = run_pipeline(float_ir(model))
    layers = list(ir.layers)
    l = layers[where]
    j = 2 if l.thresh is None else next(j for j, t in enumerate(l.thresh) if abs(t) < l.rows)
    layers[where] = _flip_weight(l, j, 4)
    bad = replace(ir, layers=tuple(layers))
    bits = interp.input_bits(ir, random_images((2, 9, 9), 64, 6))
    masks = random_masks(ir, 64, 4, 6)
    assert not np.array_equal(interp.run(ir, bits, masks), interp.run(bad, bits, masks))


def test_planted_threshold_off_by_one_changes_layer_output():
    model = random_net("c6,p2,c9,f5", (2, 9, 9), "spatial", seed=4)
    ir = run_pipeline(float_ir(model))
    l0 = ir.layers[0]
    bits = interp.input_bits(ir, random_images((2, 9, 9), 64, 6))
    ref = interp.run_layer(ir, 0, bits)
    moved = 0
    for j, t in enumerate(l0.thresh):
        if abs(t) >= l0.rows:          # constant channels: nothing in range to move across
            continue
        # acc has the parity of the driven row count, so only one of t-1, t+1 may cross a
        # reachable value; one of them must
        changed = []
        for d in (-1, 1):
            bad = replace(ir, layers=(replace(l0, thresh=l0.thresh[:j] + (t + d,) + l0.thresh[j + 1:]),)
                          + ir.layers[1:])
            changed.append(not np.array_equal(ref, interp.run_layer(bad, 0, bits)))
        assert any(changed), f"channel {j}"
        moved += 1
    assert moved >= 3


def test_layer_by_layer_equals_run_and_fast_equals_slow():
    model = random_net("c5,p2,c7k5,f6,f4", (2, 9, 11), "element", seed=9)
    ir = run_pipeline(float_ir(model))
    n, t = 6, 5
    bits = interp.input_bits(ir, random_images((2, 9, 11), n, 1))
    masks = random_masks(ir, n, t, 1)
    ref = interp.run(ir, bits, masks)
    assert np.array_equal(ref, fast.run(ir, bits, masks))
    h = np.repeat(bits, t, axis=0)
    for i in range(len(ir.layers)):
        k = [m for s, m in zip(ir.sites, masks) if s.layer == i]
        h = interp.run_layer(ir, i, h, k[0].reshape(n * t, -1) if k else None)
    assert np.array_equal(h.reshape(n, t, -1), ref)


def test_dropping_every_group_leaves_zero_acc():
    model = random_net("c3,f4", (1, 5, 5), "spatial", seed=2)
    ir = run_pipeline(float_ir(model))
    bits = interp.input_bits(ir, random_images((1, 5, 5), 3, 0))
    masks = [np.zeros((3, 2, s.n_groups), np.uint8) for s in ir.sites]
    assert not interp.run(ir, bits, masks).any()


def test_no_dropout_gives_equal_samples_and_mask_shapes_are_checked():
    model = random_net("c3,f4", (1, 5, 5), "none", seed=2)
    ir = run_pipeline(float_ir(model))
    bits = interp.input_bits(ir, random_images((1, 5, 5), 3, 0))
    out = interp.run(ir, bits, samples=4)
    assert out.shape == (3, 4, 4) and (out == out[:, :1]).all()
    sp = run_pipeline(float_ir(random_net("c3,f4", (1, 5, 5), "spatial")))
    with pytest.raises(ValueError, match="site masks"):
        interp.run(sp, bits, [])
    with pytest.raises(ValueError, match="expected"):
        interp.run(sp, bits, [np.ones((3, 2, 5), np.uint8)])


def test_binarize_uses_theta():
    x = np.array([0.0, 0.49, 0.5, 0.51, 1.0]).reshape(1, 1, 1, 5)
    assert interp.binarize(x, 0.5).ravel().tolist() == [0, 0, 1, 1, 1]
    assert interp.binarize(x, 0.51).ravel().tolist() == [0, 0, 0, 1, 1]


def test_logits_affine_matches_float_model():
    model = random_net("c3,f4", (1, 5, 5), "spatial", scale=True, seed=2)
    ir = run_pipeline(float_ir(model))
    x = random_images((1, 5, 5), 4, 0)
    masks = random_masks(ir, 4, 1, 0)
    acc = interp.run(ir, interp.input_bits(ir, x), masks)
    with torch.no_grad():
        lf = model(x, [torch.from_numpy(m[:, 0]).float() for m in masks]).double().numpy()
    np.testing.assert_allclose(interp.logits(ir, acc)[:, 0], lf, rtol=1e-5, atol=1e-5)


def test_trace_ends_in_run():
    model = random_net("c4,p2,c5k1,f3", (1, 7, 7), "spatial", seed=3)
    ir = run_pipeline(float_ir(model))
    bits = interp.input_bits(ir, random_images((1, 7, 7), 4, 0))
    masks = random_masks(ir, 4, 3, 0)
    tr = interp.trace(ir, bits, masks)
    assert [a.shape for a in tr] == [(4, 3, 4, 3, 3), (4, 3, 5, 3, 3), (4, 3, 3)]
    assert (tr[0] == tr[0][:, :1]).all()           # the prefix is the same in every sample
    assert np.array_equal(tr[-1], interp.run(ir, bits, masks))


@pytest.mark.parametrize("spec,shape,kind", [("c5,p2,c7k5,f6,f4", (2, 9, 11), "spatial"),
                                             ("c3k1,c4,p3,f5", (1, 9, 7), "element"),
                                             ("c4,f3", (3, 5, 5), "none"),
                                             ("c5s2,p3s2,c6k2vs2,f4", (2, 15, 13), "spatial"),
                                             ("c4k3vs3,p2s3,f3", (1, 22, 17), "element")])
def test_fast_path_equals_the_definition_on_random_integer_irs(spec, shape, kind):
    """hwgen.ir.fast (float32 matmuls, shared-input grouping, threads) against the
    definition, on integer-stage IRs with random thresholds and a tile that splits rows."""
    from support import random_ir
    from hwgen.ir.verify import verify
    ir = random_ir(spec, shape, kind, seed=5, tile=(7, 3))
    verify(ir)
    bits = interp.binarize(random_images(shape, 5, 0), 0.5)
    masks = random_masks(ir, 5, 3, 0)
    ref = interp.run(ir, bits, masks, samples=3)
    assert ref.any()
    assert np.array_equal(fast.run(ir, bits, masks, samples=3), ref)
    assert np.array_equal(fast.run(ir, bits, masks, samples=3, threads=1), ref)


def _direct_acc(q, w, layer):
    """acc by plain integer correlation of q [N, C, H, W] with +-1 weights (zero padding)."""
    (kh, kw), (ph, pw) = layer.kernel, layer.pad
    qp = np.pad(q, ((0, 0), (0, 0), (ph, ph), (pw, pw))).astype(np.int64)
    o, oh, ow = layer.conv_shape
    wpm = (w.astype(np.int64) * 2 - 1).reshape(o, *layer.in_shape[:1], kh, kw)
    out = np.zeros((len(q), o, oh, ow), np.int64)
    for y in range(oh):
        for x in range(ow):
            out[:, :, y, x] = np.einsum("nckl,ockl->no", qp[:, :, y:y + kh, x:x + kw], wpm)
    return out


@pytest.mark.parametrize("enc", [
    dict(mode="unsigned", bits=8, mul=255.0),
    dict(mode="unsigned", bits=3, mul=7.0),
    dict(mode="signed", bits=8, mul=2.0, add=-1.0, scale=2.0 ** -7),   # Brevitas CNV's Q1.7
])
def test_bit_planes_shift_add_to_the_integer_dot_product(enc):
    from hwgen.ir.core import InputEncoding, replace
    from support import random_ir
    ir = random_ir("c5v,p2,c4,f3", (3, 7, 7), "spatial", seed=4, tile=(11, 3))
    ir = replace(ir, input=InputEncoding(**enc))
    x = random_images((3, 7, 7), 6, 2)
    q = interp.quantize(ir.input, x)
    lo, hi = ir.input.q_range
    assert q.min() >= lo and q.max() <= hi and len(np.unique(q)) >= min(hi - lo + 1, 100)
    planes = interp.input_bits(ir, x)
    assert planes.shape == (6, ir.input.bits, 3, 7, 7)
    acc = interp.run_layer_acc(ir, 0, planes)
    assert np.array_equal(acc, _direct_acc(q, ir.layers[0].weight_bits(), ir.layers[0]))
    masks = random_masks(ir, 6, 3, 1)
    assert np.array_equal(fast.run(ir, planes, masks), interp.run(ir, planes, masks))


def test_signed_input_quantiser_is_the_graph_float32_steps():
    from hwgen.ir.core import InputEncoding
    enc = InputEncoding(mode="signed", bits=8, mul=2.0, add=-1.0, scale=2.0 ** -7)
    k = np.arange(256, dtype=np.float32) / np.float32(255)
    want = np.clip(np.rint((k * np.float32(2) - np.float32(1)) / np.float32(2 ** -7)), -128, 127)
    assert np.array_equal(interp.quantize(enc, k.reshape(1, 1, 16, 16)).ravel(), want)
    # half to even at the exact midpoints: (2p - 1) * 128 = 0.5 at p = 0.5 + 2**-9
    assert interp.quantize(enc, np.float32([[[[0.5 + 2 ** -9]]]])).item() == 0


def test_a_bitserial_model_keeps_its_arithmetic_through_the_passes():
    model = random_net("c6,p2,d,c5v,f4", (1, 8, 8), "spatial", seed=3, input_mode="bitserial-8")
    ir0 = float_ir(model)
    assert ir0.input.name == "bitserial-8" and [s.layer for s in ir0.sites] == [1]
    ir = run_pipeline(ir0)
    assert ir.acc_bound(0) == 255 * 9 and max(abs(t) for t in ir.layers[0].thresh) > 9
    x = random_images((1, 8, 8), 20, 5)
    masks = random_masks(ir, 20, 4, 5)
    got = fast.run(ir, interp.input_bits(ir, x), masks)
    assert np.array_equal(got, interp.run(ir0, interp.input_bits(ir0, x), masks))
    rep = float_vs_int(model, ir, x, masks)
    assert rep["ok"] and rep["sample_agreement"] == 1.0, rep
