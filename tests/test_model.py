"""Binary layers, dropout sites, explicit masks, SPEC errors and model.pt I/O."""

import io

import pytest
import torch
import torch.nn.functional as F

from hwgen.errors import HwgenError
from hwgen.model.evaluate import draw_mc_masks, mc_logits
from hwgen.model.io import build_model, load_checkpoint, save_model
from hwgen.model.net import BinaryNet, make_arch, sign
from hwgen.model.spec import SpecError, parse_spec


def _net(spec, kind, shape=(1, 8, 8), seed=0, p=0.3):
    torch.manual_seed(seed)
    net = BinaryNet(make_arch(spec, shape, kind, p))
    with torch.no_grad():  # non-trivial batch-norm statistics
        for blk in net.blocks:
            blk.bn.running_mean.uniform_(-2, 2)
            blk.bn.running_var.uniform_(0.5, 4)
            blk.bn.weight.uniform_(-1, 1)
            blk.bn.bias.uniform_(-1, 1)
    net.eval()
    return net


def test_ste_forward_and_gradient():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0], requires_grad=True)
    y = sign(x)
    assert y.tolist() == [-1, -1, -1, 1, 1, 1, 1]  # sign(0) = +1
    y.backward(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]))
    # passed through where |x| <= 1, including the edges, blocked outside
    assert x.grad.tolist() == [0, 2, 3, 4, 5, 6, 0]


def test_binary_layers_use_sign_of_latent_weights():
    net = _net("c4,p2,f10", "none")
    x = torch.rand(3, 1, 8, 8)
    _, rec = net(x, trace=True)
    h = net.binarize(x)
    w = net.blocks[0].layer.weight
    assert torch.equal(rec[0]["acc"], F.conv2d(h, torch.where(w >= 0, 1.0, -1.0), padding=1))


@pytest.mark.parametrize("layer", [1, 2])  # 1: conv site, 2: flatten-fed linear site
def test_dropped_spatial_group_contributes_zero(layer):
    """Change every bit of one feature map (by flipping the producing layer's weights):
    with that group dropped, every window of the next layer's accumulator is unchanged."""
    net = _net("c4,c6,p2,f10", "spatial")
    x = torch.rand(5, 1, 8, 8)
    c = 2
    masks = [torch.ones(5, s["n_groups"]) for s in net.sites]
    masks[layer - 1][:, c] = 0
    net.mc = True
    _, rec_a = net(x, masks=masks, trace=True)
    with torch.no_grad():
        prev = net.blocks[layer - 1]
        prev.layer.weight[c].neg_()
        prev.bn.bias[c].neg_()
        prev.bn.running_mean[c].neg_()
    _, rec_b = net(x, masks=masks, trace=True)
    assert not torch.equal(rec_a[layer - 1]["out"][:, c], rec_b[layer - 1]["out"][:, c])
    assert torch.equal(rec_a[layer]["acc"], rec_b[layer]["acc"])
    # and with the group kept, the change does show (the check can fail)
    masks[layer - 1][:, c] = 1
    _, rec_c = net(x, masks=masks, trace=True)
    with torch.no_grad():
        net.blocks[layer - 1].layer.weight[c].neg_()
    _, rec_d = net(x, masks=masks, trace=True)
    assert not torch.equal(rec_c[layer]["acc"], rec_d[layer]["acc"])


def test_element_row_mask_equals_masked_weight_conv():
    net = _net("c4,c6,p2,f10", "element")
    x = torch.rand(4, 1, 8, 8)
    masks = net.draw_masks(4, torch.Generator().manual_seed(1))
    assert masks[0].shape == (4, 4 * 9) and masks[1].shape == (4, 6 * 4 * 4)
    net.mc = True
    _, rec = net(x, masks=masks, trace=True)
    h = rec[0]["out"]
    wb = sign(net.blocks[1].layer.weight)
    for n in range(4):
        m = masks[0][n].reshape(1, 4, 3, 3)
        ref = F.conv2d(h[n:n + 1], wb * m, padding=1)
        assert torch.equal(rec[1]["acc"][n:n + 1], ref)
    # the linear site: rows (c, y, x) gated one by one
    h2 = rec[1]["out"].flatten(1)
    ref = F.linear(h2 * masks[1], sign(net.blocks[2].layer.weight))
    assert torch.equal(rec[2]["acc"], ref)


@pytest.mark.parametrize("kind", ["spatial", "element"])
def test_explicit_masks_reproduce(kind):
    net = _net("c4,p2,c6,p2,f8,f10", kind)
    net.mc = True
    x = torch.rand(6, 1, 8, 8)
    masks = net.draw_masks(6, torch.Generator().manual_seed(3))
    a, b = net(x, masks=masks), net(x, masks=masks)
    assert torch.equal(a, b)
    other = net.draw_masks(6, torch.Generator().manual_seed(4))
    assert not torch.equal(a, net(x, masks=other))


def test_mc_logits_seeded_and_explicit_masks_agree():
    net = _net("c4,p2,c6,p2,f10", "spatial")
    x = torch.rand(70, 1, 8, 8)  # more than one mask chunk
    a = mc_logits(net, x, 3, seed=5)
    assert a.shape == (3, 70, 10)
    assert torch.equal(a, mc_logits(net, x, 3, seed=5))
    masks = draw_mc_masks(net, 70, 3, seed=5)
    assert [tuple(m.shape) for m in masks] == [(70, 3, 4), (70, 3, 6)]
    assert torch.equal(a, mc_logits(net, x, 3, masks=masks))
    flat = [m.reshape(70 * 3, -1) for m in masks]  # the torch model's [N*T, G] layout
    assert torch.equal(a, mc_logits(net, x, 3, masks=flat))
    assert not torch.equal(a, mc_logits(net, x, 3, seed=6))
    # one image's samples against the plain forward with that image's masks
    net.mc = True
    one = net(x[7:8].repeat(3, 1, 1, 1), masks=[m[7].float() for m in masks])
    assert torch.equal(one, a[:, 7])
    assert net.mc is True


@pytest.mark.parametrize("spec,token", [("c16,x3,f10", "x3"), ("c16,p1,f10", "p1"),
                                        ("c16k4,f10", "c16k4"), ("p2,f10", "p2"),
                                        ("c16,,f10", "''")])
def test_spec_errors_name_the_token(spec, token):
    with pytest.raises(SpecError, match=token):
        parse_spec(spec)


@pytest.mark.parametrize("spec,msg", [("d,c4,f10", "first layer"), ("c4,d,d,f10", "two d"),
                                      ("c4,d,p2,f10", "pool"), ("c4,c5k3v,f3", None)])
def test_spec_site_and_valid_tokens(spec, msg):
    if msg:
        with pytest.raises(SpecError, match=msg):
            parse_spec(spec)
    else:
        assert parse_spec(spec)[1] == ("conv", 5, 3, 0, 1)


@pytest.mark.parametrize("spec,token", [("c4s0,f3", "c4s0"), ("c4,p3s0,f3", "p3s0"),
                                        ("c4s2v,f3", "c4s2v"), ("c4,p2s,f3", "p2s")])
def test_stride_tokens_are_checked(spec, token):
    with pytest.raises(SpecError, match=token):
        parse_spec(spec)


def test_stride_tokens_shape_the_plan_and_the_torch_model():
    """cNsS / cNkKvsS are strided convs and pSsT a pool of stride T; the plan carries
    them only where they are not the defaults, and the torch model runs them."""
    from hwgen.model.spec import layer_plan
    assert parse_spec("c8k5vs2,p3s2,f3")[:2] == [("conv", 8, 5, 0, 2), ("pool", 3, 2)]
    plan = layer_plan("c8s2,p3s2,c6k2vs2,f3", (2, 17, 16))
    assert [(l.get("stride"), l["conv_shape"], l.get("pool_stride"), l["out_shape"])
            for l in plan] == [([2, 2], [8, 9, 8], 2, [8, 4, 3]),
                               ([2, 2], [6, 2, 1], None, [6, 2, 1]),
                               (None, [3, 1, 1], None, [3, 1, 1])]
    with pytest.raises(SpecError, match="p2 on a 2x1 map leaves nothing"):
        layer_plan("c8s2,p3s2,c6k2vs2,p2s3,f3", (2, 17, 16))
    assert "stride" not in layer_plan("c8,p2,f3", (1, 8, 8))[0]
    net = BinaryNet(make_arch("c8s2,p3s2,c6k2vs2,f3", (2, 17, 16), "none"))
    _, tr = net(torch.rand(2, 2, 17, 16), trace=True)
    assert [tuple(r["acc"].shape) for r in tr] == [(2, 8, 9, 8), (2, 6, 2, 1), (2, 3)]
    assert tuple(tr[0]["out"].shape) == (2, 8, 4, 3)


def test_chosen_sites_and_valid_convs_shape_the_plan_and_the_model():
    from hwgen.model.spec import layer_plan
    plan = layer_plan("c8k4v,p2,c6v,d,f5,f3", (2, 11, 11))
    assert [(l["kernel"], l["pad"], l["conv_shape"], l["site"]) for l in plan] == [
        ([4, 4], [0, 0], [8, 8, 8], False), ([3, 3], [0, 0], [6, 2, 2], False),
        ([2, 2], [0, 0], [5, 1, 1], True), ([1, 1], [0, 0], [3, 1, 1], False)]
    assert [l["site"] for l in layer_plan("c8,p2,c6,f5,f3", (1, 8, 8))] == [False, True, True, True]
    net = BinaryNet(make_arch("c8k4v,p2,c6v,d,f5,f3", (2, 11, 11), "element", 0.3))
    assert [(s["layer"], s["n_groups"]) for s in net.sites] == [(2, 24)]
    x = torch.rand(4, 2, 11, 11)
    keep = torch.zeros(4, 24)                          # drop every row of the one site
    out = net(x, masks=[keep])
    _, tr = net(x, masks=[keep], trace=True)
    assert torch.equal(tr[2]["acc"], torch.zeros_like(tr[2]["acc"])) and out.shape == (4, 3)


def test_spec_last_token_must_be_linear():
    with pytest.raises(SpecError, match="classifier"):
        parse_spec("c16,p2")


def test_model_pt_round_trip(tmp_path):
    net = _net("c4,p2,c6,p2,f10", "element")
    path = tmp_path / "m.pt"
    save_model(path, net, {"dataset": "digits", "test_acc": 0.5, "history": [{"epoch": 1}]})
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "hwgen-model" and raw["arch"] == net.arch
    ckpt = load_checkpoint(path)
    back = build_model(ckpt)
    for k, v in net.state_dict().items():
        assert torch.equal(back.state_dict()[k], v)
    x = torch.rand(9, 1, 8, 8)
    assert torch.equal(mc_logits(net, x, 2, seed=1), mc_logits(back, x, 2, seed=1))


def test_model_pt_rejects_pickled_objects(tmp_path):
    path = tmp_path / "bad.pt"
    buf = io.BytesIO()
    torch.save({"format": "hwgen-model", "obj": torch.nn.Linear(2, 2)}, buf)
    path.write_bytes(buf.getvalue())
    with pytest.raises(HwgenError, match="its pickle holds objects or instructions"):
        load_checkpoint(path)


def test_mc_logits_without_dropout_repeats_one_pass():
    net = _net("c4,p2,f10", "none")
    x = torch.rand(5, 1, 8, 8)
    a = mc_logits(net, x, 4, seed=0)
    assert a.shape == (4, 5, 10)
    assert all(torch.equal(a[t], net(x)) for t in range(4))
