"""IR: JSON round trip and determinism, the text dump, and verify() on broken IRs."""

import json
from dataclasses import replace

import pytest

from hwgen.ir.core import FORMAT, dumps, loads
from hwgen.ir.dump import dump
from hwgen.ir.verify import VerifyError, verify
from hwgen.passes import PassConfig, reschedule, run_pipeline

from support import float_ir, random_net


@pytest.fixture(scope="module")
def ir():
    return run_pipeline(float_ir(random_net("c5,p2,c6k5,f7,f3", (2, 9, 11), "spatial", seed=1)),
                        PassConfig(tile=(7, 4)))


def test_json_round_trip_and_determinism(ir):
    text = dumps(ir)
    assert loads(text) == ir
    assert dumps(loads(text)) == text
    d = json.loads(text)
    assert d["format"] == FORMAT and d["version"] == 3 and d["stage"] == "integer"
    assert text == json.dumps(d, sort_keys=True, indent=1) + "\n"
    # the float stage (latent weights, batch norms) round-trips too
    ir0 = float_ir(random_net("c3,f2", (1, 3, 3), "element"))
    assert ir0.stage == "float" and loads(dumps(ir0)) == ir0
    assert json.loads(dumps(ir0))["stage"] == "float"


def test_loads_rejects_wrong_tag_and_version(ir):
    d = json.loads(dumps(ir))
    with pytest.raises(ValueError, match="format"):
        loads(json.dumps({**d, "format": "other"}))
    with pytest.raises(ValueError, match="version"):
        loads(json.dumps({**d, "version": 99}))


def test_the_read_plans_are_in_ir_json_and_the_default_is_the_array(ir):
    """The schedule pass records each layer's plan next to its tiling: at the default one
    beat per read, every column split's columns in its lanes; at --lanes 4 the widest
    split (4 columns of the (7, 4) tiles) still one beat, at 2 lanes two."""
    d = json.loads(dumps(ir))
    for i, (ld, l) in enumerate(zip(d["layers"], ir.layers)):
        assert ld["plan"]["beats"] == 1
        assert ld["plan"]["lanes"] == [b - a for a, b in l.col_tiles]
        assert ld["plan"]["reread"] == (i == ir.mc_start)
        assert ld["plan"]["store"] == ("flat" if l.op == "linear" else "ring")
    assert ir.lanes is None
    assert [l.plan.beats for l in reschedule(ir, 4).layers] == [1] * len(ir.layers)
    two = reschedule(ir, 2)
    verify(two)
    assert [l.plan.beats for l in two.layers] == [2, 2, 2, 2]   # 4-column splits, 2 lanes
    assert [l.plan.lanes for l in two.layers][-1] == (2,)       # 3 classes: 2 lanes, 2 beats
    assert two.lanes == 2 and "plan: beats=2" in dump(two)
    assert loads(dumps(two)) == two


def test_a_hand_edited_plan_or_an_old_file_is_refused_in_one_line(ir):
    l0 = ir.layers[0]
    for bad in (replace(l0.plan, beats=2),                        # lanes say one beat
                replace(l0.plan, lanes=(3,) + l0.plan.lanes[1:]),
                replace(l0.plan, store="flat"),
                replace(l0.plan, reread=True)):                   # not the first MC layer
        with pytest.raises(VerifyError, match="layer 0: read plan") as e:
            verify(replace(ir, layers=(replace(l0, plan=bad), *ir.layers[1:])))
        assert "\n" not in str(e.value)
    with pytest.raises(VerifyError, match="read plans on some layers only"):
        verify(replace(ir, layers=(replace(l0, plan=None), *ir.layers[1:])))
    # the plan follows mc_start: sites moved without the pass run again are refused
    with pytest.raises(VerifyError, match="read plan"):
        verify(replace(ir, sites=()))
    verify(reschedule(replace(ir, sites=()), None))
    d = json.loads(dumps(ir))
    with pytest.raises(ValueError, match="IR version 2 is not supported .*compile the model again"):
        loads(json.dumps({**d, "version": 2}))


def test_dump_is_deterministic_and_complete(ir):
    text = dump(ir)
    assert text == dump(loads(dumps(ir)))
    for i, l in enumerate(ir.layers):
        assert f"layer {i}: {l.op}" in text
        for j, w in enumerate(l.weights):
            assert w in text
    assert "interfaces=[0, 5)" in text and "tile=7x4" in text


def test_site_numbering_and_mtj_codes(ir):
    assert [s.first_interface for s in ir.sites] == [0, 5, 11]
    assert ir.n_interfaces == 5 + 6 + 7
    for s in ir.sites:
        assert 0 < s.mtj_code < 1023 and abs(s.p_realised - s.p) < 0.01


def _layers(ir, i, new=None, **kw):
    ls = list(ir.layers)
    ls[i] = new if new is not None else replace(ls[i], **kw)
    return replace(ir, layers=tuple(ls))


def _sites(ir, k, **kw):
    ss = list(ir.sites)
    ss[k] = replace(ss[k], **kw)
    return replace(ir, sites=tuple(ss))


BROKEN = {
    "shape chain": lambda ir: _layers(ir, 1, in_shape=(5, 4, 6)),
    "in_shape": lambda ir: replace(ir, in_shape=(2, 9, 10)),
    "hex digits": lambda ir: _layers(ir, 0, weights=(ir.layers[0].weights[0] + "00",)
                                     + ir.layers[0].weights[1:]),
    "beyond row": lambda ir: _layers(ir, 0, weights=(ir.layers[0].weights[0][:-2] + "ff",)
                                     + ir.layers[0].weights[1:]),
    "weight rows": lambda ir: _layers(ir, 0, weights=ir.layers[0].weights[1:]),
    "0 weight rows": lambda ir: _layers(ir, 0, weights=()),
    "outside": lambda ir: _layers(ir, 0, thresh=(ir.layers[0].rows + 2,) + ir.layers[0].thresh[1:]),
    "constant encoding": lambda ir: _layers(ir, 0, sign=(-1,) + ir.layers[0].sign[1:],
                                            thresh=(ir.layers[0].rows + 1,) + ir.layers[0].thresh[1:]),
    "sign must be": lambda ir: _layers(ir, 0, sign=(0,) + ir.layers[0].sign[1:]),
    "needs thresholds": lambda ir: _layers(ir, 0, sign=None, thresh=None),
    "not thresholded": lambda ir: _layers(ir, 3, sign=(1,) * 3, thresh=(0,) * 3),
    "logit affine": lambda ir: _layers(ir, 3, logit_bias=(0.0,)),
    "must all be FloatLayer": lambda ir: _layers(ir, 3, new=float_ir(random_net("c3,f3", (1, 3, 3))).layers[1]),
    "go together": lambda ir: _layers(ir, 3, logit_scale=None),
    "partition": lambda ir: _sites(ir, 0, n_groups=4),
    "spatial groups must be": lambda ir: _sites(ir, 0, n_groups=25, group_rows=5),
    "element groups must be": lambda ir: _sites(ir, 0, kind="element"),
    "global numbering": lambda ir: _sites(ir, 1, first_interface=4),
    "partly numbered": lambda ir: _sites(ir, 1, first_interface=-1),
    "distinct layers": lambda ir: _sites(ir, 1, layer=1),
    "MTJ code": lambda ir: _sites(ir, 0, mtj_code=1024),
    "tile": lambda ir: _layers(ir, 2, tile=(0, 4)),
    "kernel covers": lambda ir: _layers(ir, 2, pad=(1, 1)),
    "pool": lambda ir: _layers(ir, 1, pool=9),
    "stride": lambda ir: _layers(ir, 0, stride=(0, 1)),
    "pool stride": lambda ir: _layers(ir, 0, pool_stride=2),     # equal to the pool: None
    "pool stride ": lambda ir: _layers(ir, 1, pool_stride=2),    # on an unpooled layer
    "kernel covers ": lambda ir: _layers(ir, 2, stride=(2, 1)),  # a strided linear
    "shape chain": lambda ir: _layers(ir, 0, stride=(2, 2)),     # the next in_shape breaks
}


@pytest.mark.parametrize("what", sorted(BROKEN))
def test_verify_catches(ir, what):
    verify(ir)
    with pytest.raises(VerifyError, match=what.strip()):
        verify(BROKEN[what](ir))


def test_strides_round_trip_and_default_strides_are_not_written(ir):
    """Strided convs and pools round-trip; a stride-1 IR has no stride keys (its bytes are
    what they were before strides existed), and a file without them loads as stride 1."""
    text = dumps(ir)
    assert '"stride"' not in text and '"pool_stride"' not in text
    assert all(l.stride == (1, 1) and l.pool_stride is None for l in loads(text).layers)
    sir = run_pipeline(float_ir(random_net("c5s2,p3s2,c6k2vs2,f7,f3", (2, 17, 15), "spatial",
                                           seed=1)))
    verify(sir)
    l0, l1 = sir.layers[:2]
    assert (l0.stride, l0.pool, l0.pool_stride, l0.conv_shape, l0.out_shape) == (
        (2, 2), 3, 2, (5, 9, 8), (5, 4, 3))
    assert l0.windows == 72 and l0.reads == 4 * 3 * 9    # a shared window is read per block
    assert (l1.stride, l1.conv_shape) == ((2, 2), (6, 2, 1))
    stext = dumps(sir)
    assert loads(stext) == sir and dumps(loads(stext)) == stext
    assert "stride=2x2" in dump(sir) and "pool_stride=2" in dump(sir)
    assert "stride" not in dump(ir)
    gap = run_pipeline(float_ir(random_net("c3,p2s3,f2", (1, 8, 8), "none")))
    assert gap.layers[0].out_shape == (3, 3, 3) and gap.layers[0].reads == 9 * 4 < 64
