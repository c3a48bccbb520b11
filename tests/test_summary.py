"""`hwgen summary` on a hand-built IR whose every figure is worked out below.

Network (digits-sized): L0 conv 1x8x8 -> 8, 3x3 pad 1, pool 2 (rows 9); L1 conv 8x4x4 -> 16,
3x3 pad 1, pool 2 (rows 72); L2 linear 16x2x2 -> 10 as a 2x2 conv (rows 64, the classifier).
Spatial sites on L1 (8 interfaces) and L2 (16).
"""

import json

import numpy as np
import pytest

from hwgen.cli import main
from hwgen.errors import HwgenError
from hwgen.ir import core
from hwgen.summary import load_ir, render, summarize


def layer(op, ins, o, k, pad, pool, cls=False, tile=(128, 128)):
    wts = core.pack_rows(np.zeros((o, ins[0] * k * k), np.uint8))
    extra = (dict(logit_scale=(1.0,) * o, logit_bias=(0.0,) * o) if cls
             else dict(sign=(1,) * o, thresh=(0,) * o))
    return core.Layer(op=op, in_shape=ins, out_channels=o, kernel=(k, k), pad=(pad, pad),
                      pool=pool, weights=wts, tile=tile, **extra)


def hand_ir(tile=(128, 128)):
    layers = (layer("conv", (1, 8, 8), 8, 3, 1, 2, tile=tile),
              layer("conv", (8, 4, 4), 16, 3, 1, 2, tile=tile),
              layer("linear", (16, 2, 2), 10, 2, 0, 1, cls=True, tile=tile))
    sites = (core.Site(layer=1, kind="spatial", p=0.2, n_groups=8, group_rows=9, first_interface=0),
             core.Site(layer=2, kind="spatial", p=0.2, n_groups=16, group_rows=4, first_interface=8))
    return core.IR(in_shape=(1, 8, 8), input=core.InputEncoding(), layers=layers, sites=sites,
                   meta=core.Meta(spec="c8,p2,c16,p2,f10"))


def test_summary_by_hand():
    s = summarize(hand_ir())
    l0, l1, l2 = s["layers"]
    # binary weights: columns x rows
    assert [l["weights_1bit"] for l in s["layers"]] == [8 * 9, 16 * 72, 10 * 64]
    # thresholds: a value of acc_width(rows + 1) bits ((rows+1).bit_length() + 1) + a flag
    # L0: rows 9 -> 10 needs 4 bits + sign = 5, +1 flag = 6; L1: 73 -> 7 + 1 + 1 = 9
    assert (l0["thresholds"], l0["threshold_bits"]) == (8, 6)
    assert (l1["thresholds"], l1["threshold_bits"]) == (16, 9)
    assert (l2["thresholds"], l2["float"], l2["float_bits"]) == (0, 20, 64)
    assert [l["memory_bits"] for l in s["layers"]] == [72 + 8 * 6, 1152 + 16 * 9, 640 + 20 * 64]
    # binary MACs per pass: windows x rows x columns (64 and 16 windows, 1 for the linear)
    assert [l["binary_macs"] for l in s["layers"]] == [64 * 9 * 8, 16 * 72 * 16, 1 * 64 * 10]
    t = s["totals"]
    assert t["binary_macs_prefix"] == 4608 and t["binary_macs_per_sample"] == 18432 + 640
    assert t["params"] == 72 + 8 + 1152 + 16 + 640 + 20
    assert t["memory_bits"] == 120 + 1296 + 1920
    # one 128 x 128 tile each
    assert [l["tiles"] for l in s["layers"]] == [1, 1, 1]
    assert l1["utilisation"] == pytest.approx(72 * 16 / 128 ** 2)
    assert t["utilisation"] == pytest.approx((72 + 1152 + 640) / (3 * 128 ** 2))
    assert l1["site"] == {"kind": "spatial", "interfaces": 8, "group_rows": 9, "p": 0.2}
    assert l0["site"] is None and t["interfaces"] == 24
    assert [l["per_sample"] for l in s["layers"]] == [False, True, True]


def test_summary_tiled_by_hand():
    """16 x 8 tiles: L1 (72 rows, 16 columns) splits 5 x 2; its 10 tiles offer 80 x 16."""
    s = summarize(hand_ir(tile=(16, 8)))
    l1 = s["layers"][1]
    assert (l1["row_tiles"], l1["col_tiles"], l1["tiles"]) == (5, 2, 10)
    assert (l1["tile_rows"], l1["tile_columns"]) == (80, 16)
    assert l1["utilisation"] == pytest.approx(72 * 16 / (10 * 16 * 8))
    # L0: 9 rows x 8 columns in one 16 x 8 tile; L2: 64 rows -> 4, 10 columns -> 2
    assert [l["tiles"] for l in s["layers"]] == [1, 10, 8]
    assert s["totals"]["cells_offered"] == 19 * 16 * 8


def test_render_lists_every_layer_and_the_totals():
    text = render(summarize(hand_ir()))
    lines = text.splitlines()
    assert lines[0].startswith("hwgen summary: c8,p2,c16,p2,f10")
    assert any(l.startswith("1*") and "1,152" in l and "spatial 8" in l for l in lines)
    total = next(l for l in lines if l.startswith("total"))
    assert "3,336" in total and "24 if" in total


def test_cli_summary_outdir_json_and_model(tmp_path, capsys):
    from support import random_model, seal_outdir

    out = tmp_path / "out"
    out.mkdir()
    from hwgen.passes import reschedule
    (out / "ir.json").write_text(core.dumps(reschedule(hand_ir(), None)))   # as compiled
    seal_outdir(out)
    assert main(["summary", str(out), "--json", str(tmp_path / "s.json")]) == 0
    assert "hwgen summary" in capsys.readouterr().out
    assert json.loads((tmp_path / "s.json").read_text()) == summarize(hand_ir())
    # a model.pt goes through the frontend and the passes
    pt = random_model(tmp_path / "m.pt", "c4,p2,f10", dropout="element")
    ir = load_ir(pt, tile="16x16")
    s = summarize(ir)
    assert s["layers"][1]["site"]["interfaces"] == 4 * 4 * 4
    assert s["layers"][1]["tiles"] == 4 * 1        # 64 rows / 16, 10 columns in one
    assert main(["summary", str(pt), "--tile", "16x16"]) == 0
    assert "element 64" in capsys.readouterr().out


def test_summary_bad_inputs_one_line(tmp_path, capsys):
    assert main(["summary", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such file" in err[0]
    (tmp_path / "d").mkdir()
    assert main(["summary", str(tmp_path / "d")]) == 2
    assert "no manifest.json" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{}")
    assert main(["summary", str(tmp_path / "bad.json"), "--json", str(tmp_path / "s.json")]) == 2
    assert "not a valid hwgen IR" in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists()
    with pytest.raises(HwgenError):
        summarize(core.replace(hand_ir(), layers=()))


def test_summary_acc_width_is_the_hardware_rule():
    from hwgen.hw.tile import acc_width as hw_width
    from hwgen.summary import acc_width
    assert all(acc_width(r) == hw_width(r) for r in range(1, 5000))
