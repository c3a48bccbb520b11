"""The cost model on a tiny hand-built IR, with every expected number worked out by hand.

Network (digits-sized): L0 conv 1x8x8 -> 8, 3x3 pad 1, pool 2; L1 conv 8x4x4 -> 16, 3x3
pad 1, pool 2; L2 linear (16x2x2 -> 10, a 2x2 kernel, the classifier). Sites on L1, L2.
"""

import json

import numpy as np
import pytest

from hwgen.passes import reschedule
from hwgen import cost as cm
from hwgen import energy_table as et
from hwgen.cli import main
from hwgen.hw.plan import READ_LATENCY
from hwgen.ir import core
from hwgen.model.net import site_groups
from hwgen.model.spec import layer_plan
from support import seal_outdir

P_REAL = 0.25


def layer(op, ins, o, k, pad, pool, cls=False, tile=(128, 128)):
    c = ins[0]
    wts = core.pack_rows(np.zeros((o, c * k * k), np.uint8))
    extra = (dict(logit_scale=(1.0,) * o, logit_bias=(0.0,) * o) if cls
             else dict(sign=(1,) * o, thresh=(0,) * o))
    return core.Layer(op=op, in_shape=ins, out_channels=o, kernel=(k, k), pad=(pad, pad),
                      pool=pool, weights=wts, tile=tile, **extra)


def tiny_ir(kind="spatial", tile=(128, 128)):
    layers = (layer("conv", (1, 8, 8), 8, 3, 1, 2, tile=tile),
              layer("conv", (8, 4, 4), 16, 3, 1, 2, tile=tile),
              layer("linear", (16, 2, 2), 10, 2, 0, 1, cls=True, tile=tile))
    g1 = cm.groups(layers[1], kind)
    g2 = cm.groups(layers[2], kind)
    sites = (core.Site(layer=1, kind=kind, p=0.2, n_groups=g1, group_rows=72 // g1,
                       first_interface=0, mtj_code=700, p_realised=P_REAL),
             core.Site(layer=2, kind=kind, p=0.2, n_groups=g2, group_rows=64 // g2,
                       first_interface=g1, mtj_code=701, p_realised=P_REAL))
    return reschedule(core.IR(in_shape=(1, 8, 8), input=core.InputEncoding(), layers=layers,
                              sites=sites), None)


def test_modules_draws_reads_cycles_by_hand():
    T = 4
    rep = cm.cost(reschedule(tiny_ir(), 4), samples=T)
    tot = rep["totals"]
    # spatial: C per site = 8 + 16; element: C*kh*kw = 8*9 + 16*4
    assert tot["spatial"]["modules"] == 24 and tot["element"]["modules"] == 136
    assert tot["spatial"]["draws"] == 24 * T and tot["element"]["draws"] == 136 * T
    assert [l["dropout"]["spatial"]["modules"] for l in rep["layers"]] == [0, 8, 16]
    # reads: prefix L0 64 windows once; L1 16 windows and L2 1 window, T times
    assert rep["crossbar_reads_per_inference"] == 64 + T * (16 + 1)
    # bound: L1 16 * ceil(16/4) + L2 1 * ceil(10/4), the tile latency each (stride 1, same
    # padding: the ring's steps hide under the reads); prefix L0 64 * ceil(8/4)
    assert rep["cycles"]["bound_per_sample"] == 16 * 4 + 1 * 3 + 2 * READ_LATENCY
    assert rep["cycles"]["prefix_bound"] == 64 * 2 + READ_LATENCY
    assert rep["cycles"]["bound_per_inference"] == (128 + READ_LATENCY
                                                 + T * (67 + 2 * READ_LATENCY))
    assert rep["cycles"]["measured_per_sample"] is None


def test_conv_site_ratio_is_kernel_area():
    for k in (1, 3, 5):
        lay = layer("conv", (6, 9, 9), 4, k, k // 2, 1)
        assert cm.groups(lay, "element") == cm.groups(lay, "spatial") * k * k
    rep = cm.cost(reschedule(tiny_ir(), 8), samples=3)
    l1 = rep["layers"][1]["dropout"]
    assert l1["element"]["modules"] / l1["spatial"]["modules"] == 9
    assert l1["element"]["rng_pj"] / l1["spatial"]["rng_pj"] == pytest.approx(9)


def test_groups_agree_with_the_training_model():
    """The other kind is computed from IR shapes; it must match hwgen.model.net's sites."""
    for spec, shape in (("c8,p2,c16,p2,f32,f10", (1, 8, 8)), ("c4k5,c6,p2,f10", (1, 12, 12))):
        for plan in layer_plan(spec, shape):
            lay = layer(plan["op"], tuple(plan["in_shape"]), plan["out_channels"],
                        plan["kernel"][0], plan["pad"][0], plan["pool"])
            if plan["kernel"][0] != plan["kernel"][1]:
                continue
            for kind in cm.KINDS:
                assert cm.groups(lay, kind) == site_groups(plan, kind)[0]


def test_tiled_reads_and_adds():
    """Tile 16x8: L1 has 72 rows -> 5 row tiles, 16 columns -> 2 column tiles."""
    T = 2
    rep = cm.cost(reschedule(tiny_ir(tile=(16, 8)), 8), samples=T)
    l0, l1, l2 = rep["layers"]
    assert (l1["row_tiles"], l1["col_tiles"]) == (5, 2)
    assert l1["reads_per_pass"] == 16 * 5 * 2
    assert (l2["row_tiles"], l2["col_tiles"]) == (4, 2)    # 64 rows, 10 columns
    assert rep["crossbar_reads_per_inference"] == 64 * 1 * 1 + T * (16 * 10 + 1 * 8)
    assert l1["adds_per_pass"] == 16 * 16 * 4 and l2["adds_per_pass"] == 10 * 3
    assert l2["thresholds_per_pass"] == 0 and l1["thresholds_per_pass"] == 16 * 16
    # the read takes ceil(cols in the widest column tile / lanes)
    assert rep["cycles"]["bound_per_sample"] == 16 * 1 + 1 * 1 + 2 * READ_LATENCY


def test_padding_rows_counted_exactly():
    # 8x8 map, 3x3 same padding: each axis' taps read inside the map at 7, 8, 7 positions.
    assert cm.driven_rows_per_tile(tiny_ir().layers[0]) == [22 * 22]
    # tile of 16 rows over L1's 72 rows: channels 0..7 each have 9 taps over a 4x4 map
    # (3 + 4 + 3)^2 = 100 driven windows per channel, spread over rows
    per_row = np.tile(np.outer([3, 4, 3], [3, 4, 3]).ravel(), 8)
    got = cm.driven_rows_per_tile(tiny_ir(tile=(16, 8)).layers[1])
    assert got == [int(per_row[a:a + 16].sum()) for a in range(0, 72, 16)]
    assert sum(got) == 800


def test_energy_is_table_figures_times_counts():
    T = 5
    rep = cm.cost(reschedule(tiny_ir(), 8), samples=T)
    e = rep["energy_pj_per_inference"]
    fig = {f.key: f.value_pj for f in et.TABLE}
    draw = fig["mtj_reset"] + fig["mtj_write"] + fig["mtj_sense"]
    assert e["rng_per_draw"] == draw
    assert e["rng_spatial"] == pytest.approx(24 * T * draw, rel=1e-12)
    assert e["rng_element"] == pytest.approx(136 * T * draw, rel=1e-12)
    keep = 1 - P_REAL
    cells = (22 * 22 * 8                        # L0, prefix, no dropout
             + T * keep * (800 * 16 + 64 * 10))  # L1 (padded 4x4) and L2 (no padding)
    assert e["xbar_cells"] == pytest.approx(cells * fig["xbar_cell_read"], rel=1e-12)
    adc = (64 * 8 * et.adc_pj(4)                 # 9 rows -> 4-bit conversions
           + T * (16 * 16 * et.adc_pj(7) + 10 * et.adc_pj(7)))   # 72 and 64 rows -> 7 bits
    assert e["xbar_adc"] == pytest.approx(adc, rel=1e-12)
    assert e["periphery"] == pytest.approx((64 * 8 + T * 16 * 16) * fig["digital_add"], rel=1e-12)
    for key in ("xbar_cells", "xbar_adc", "periphery", "rng_spatial", "rng_element"):
        per_layer = [l["energy_pj_per_inference"][key] for l in rep["layers"]]
        assert sum(per_layer) == pytest.approx(e[key], rel=1e-12)
    assert rep["layers"][0]["energy_pj_per_inference"]["xbar_cells"] == pytest.approx(
        22 * 22 * 8 * fig["xbar_cell_read"], rel=1e-12)
    for k in cm.KINDS:
        assert e[f"total_{k}"] == pytest.approx(e[f"rng_{k}"] + e["xbar_cells"] + e["xbar_adc"]
                                                + e["periphery"], rel=1e-12)


def test_adc_model_matches_devices_md():
    # DEVICES.md: a 5-bit SAR ADC at 22 nm is about 41 fJ per conversion (d)
    assert et.adc_pj(5) == pytest.approx(0.041, abs=0.001)
    assert [et.adc_bits(r) for r in (1, 9, 72, 127, 128)] == [1, 4, 7, 7, 8]


def test_every_figure_is_sourced_and_tagged():
    for f in et.TABLE:
        assert f.tag in ("[V]", "[U]", "(d)") and f.source and f.value_pj > 0, f
        if f.tag == "(d)":
            assert f.note, f"{f.key}: a derived figure must say how"


def test_element_design_reports_spatial_too():
    rep = cm.cost(reschedule(tiny_ir("element"), 8), samples=2)
    assert rep["design"]["kind"] == "element"
    assert rep["totals"]["spatial"]["modules"] == 24 and rep["totals"]["element"]["modules"] == 136
    assert rep["sites"][0]["n_groups"] == 72


def write_outdir(tmp_path, ir, ports=None):
    """A compiled OUTDIR of `ir` (with `ports` as ports.json if given), manifest and all."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "ir.json").write_text(core.dumps(ir))
    if ports is not None:
        (out / "ports.json").write_text(ports)
    return seal_outdir(out)


def test_cli_report_writes_json_png_and_is_deterministic(tmp_path, capsys):
    # the lanes come from the IR's read plans; a ports.json that says otherwise is not read
    out = write_outdir(tmp_path, reschedule(tiny_ir(), 4), json.dumps({"params": {"lanes": 9}}))
    assert main(["report", str(out), "--samples", "3"]) == 0
    text = capsys.readouterr().out
    assert "NVSim" in text and "Horowitz" in text and "[V]" in text and "(d)" in text
    assert "not measured" in text and "0.25000" in text     # realised p per site
    rep = json.loads((out / "cost.json").read_text())
    assert rep["design"]["lanes"] == 4 and rep["design"]["samples"] == 3
    first = ((out / "cost.json").read_bytes(), (out / "cost.png").read_bytes())
    assert first[1][:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["report", str(out), "--samples", "3"]) == 0
    assert ((out / "cost.json").read_bytes(), (out / "cost.png").read_bytes()) == first


def test_cli_report_reads_measured_cycles(tmp_path, capsys):
    out = write_outdir(tmp_path, tiny_ir())
    import hashlib

    sha = hashlib.sha256((out / "ir.json").read_bytes()).hexdigest()
    sim = {"format": "hwgen-sim-report", "cycles_per_sample": 81.5, "samples": 2, "ir_sha256": sha}
    (out / "sim_report.json").write_text(json.dumps(sim))
    assert main(["report", str(out), "--json", str(tmp_path / "c.json")]) == 0
    rep = json.loads((tmp_path / "c.json").read_text())
    assert rep["cycles"]["measured_per_sample"] == 81.5
    assert rep["design"]["samples"] == 2
    assert "81.5 measured" in capsys.readouterr().out
    # a report simulated from another ir.json is stale: not used
    (out / "sim_report.json").write_text(json.dumps(dict(sim, ir_sha256="0" * 64)))
    assert main(["report", str(out), "--json", str(tmp_path / "c.json")]) == 0
    rep = json.loads((tmp_path / "c.json").read_text())
    assert rep["cycles"]["measured_per_sample"] is None and rep["design"]["samples"] == 16


def test_cli_report_missing_or_bad_ir(tmp_path, capsys):
    out = tmp_path / "empty"
    out.mkdir()
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no manifest.json" in err[0]
    (out / "ir.json").write_text('{"format": "something-else"}')
    seal_outdir(out)
    assert main(["report", str(out)]) == 2
    assert "not a valid hwgen IR" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["ir.json", "manifest.json"]


def test_design_without_dropout_costs_default_sites():
    from hwgen.ir.core import replace

    ir = replace(tiny_ir(), sites=())
    rep = cm.cost(reschedule(ir, 8), samples=2)
    assert rep["design"]["kind"] == "none" and rep["sites"] == []
    assert rep["design"]["site_layers"] == [1, 2] and rep["design"]["mc_start"] == 1
    assert rep["totals"]["spatial"]["modules"] == 24 and rep["totals"]["element"]["modules"] == 136
    # the per-window redraw figure of the explanation: 72*16 + 64*1 element draws vs 24
    assert f"{72 * 16 + 64:,} draws per sample" in rep["explanation"]
    one = replace(ir, layers=ir.layers[2:], in_shape=(16, 2, 2))
    rep1 = cm.cost(reschedule(one, 8), samples=2)
    assert rep1["totals"]["spatial"]["modules"] == 0 and rep1["ratios_element_over_spatial"]["modules"] is None


def test_cli_report_does_not_read_ports_json(tmp_path, capsys):
    """The lanes are the IR's: ports.json reports them, nothing reads them back (a sealed
    ports.json that is not even JSON leaves the report as it is)."""
    out = write_outdir(tmp_path, reschedule(tiny_ir(), 4), "{not json")
    assert main(["report", str(out), "--samples", "3"]) == 0
    rep = json.loads((out / "cost.json").read_text())
    assert rep["design"]["lanes"] == 4 and rep["design"]["beats"] == [2, 4, 3]
    assert "lanes = 4" in capsys.readouterr().out


def test_render_site_without_realised_p():
    from hwgen.ir.core import replace

    ir = tiny_ir()
    ir = replace(ir, sites=tuple(replace(s, p_realised=None, mtj_code=None) for s in ir.sites))
    text = cm.render(cm.cost(reschedule(ir, 8), samples=2))
    row = [l for l in text.splitlines() if l.strip().startswith("1 spatial")]
    assert len(row) == 1 and row[0].split()[-2:] == ["-", "-"]


def test_cycles_are_the_hw_plan_bound():
    from hwgen.hw.plan import cycle_bound

    ir = tiny_ir(tile=(16, 8))
    for lanes in (1, 3, 8):
        rep = cm.cost(reschedule(ir, lanes), samples=4)
        cb = cycle_bound(reschedule(ir, lanes))
        assert [l["cycles_bound_per_pass"] for l in rep["layers"]] == list(cb.per_layer)
        assert rep["cycles"]["bound_per_inference"] == cb.per_image(4)


def test_element_window_baseline_by_hand():
    """Per-window redraws: every row of a gated layer draws once per window and sample.
    L1: 72 rows x 16 windows = 1,152; L2 (classifier, 1 window): 64 rows x 1 = 64."""
    T, lanes = 4, 4
    rep = cm.cost(reschedule(tiny_ir(), lanes), samples=T)
    win, el, sp = (rep["totals"][k] for k in ("element_window", "element", "spatial"))
    assert [l["dropout"]["element_window"]["draws_per_sample"] for l in rep["layers"]] == [0, 1152, 64]
    assert win["modules"] == el["modules"] == 136          # one source per word line, as element
    assert win["draws_per_sample"] == 1216 and win["draws"] == 1216 * T
    assert el["draws_per_sample"] == 136 and sp["draws_per_sample"] == 24
    draw = et.rng_draw_pj()
    assert win["rng_pj"] == pytest.approx(1216 * T * draw, rel=1e-12)
    e = rep["energy_pj_per_inference"]
    assert e["total_element_window"] - e["total_spatial"] == pytest.approx((1216 - 24) * T * draw,
                                                                           rel=1e-12)
    # the default MTJ protocol: reset 2 + write 2 + latch 1 = 5 cycles per draw
    assert cm.rng_cycles(tiny_ir()) == 5 and rep["design"]["rng"]["cycles_per_draw"] == 5
    # L1 reads take ceil(16/4) = 4 < 5 cycles: 16 windows x 5; L2 ceil(10/4) = 3 -> 1 x 5
    assert win["cycles_bound_per_sample"] == 16 * 5 + 1 * 5 + 2 * READ_LATENCY  # + the tile latency per layer
    assert sp["cycles_bound_per_sample"] == el["cycles_bound_per_sample"] == 16 * 4 + 3 + 2 * READ_LATENCY
    r = rep["ratios_over_spatial"]["element_window"]
    assert r["draws"] == pytest.approx(1216 / 24) and r["modules"] == pytest.approx(136 / 24)
    assert r["cycles"] == pytest.approx((85 + 2 * READ_LATENCY) / (67 + 2 * READ_LATENCY))
    assert rep["ratios_over_spatial"]["element"] == rep["ratios_element_over_spatial"]
    # with reads slower than a draw (1 lane: 16 and 10 cycles) the draws hide behind them
    rep1 = cm.cost(reschedule(tiny_ir(), 1), samples=T)
    assert rep1["totals"]["element_window"]["cycles_bound_per_sample"] == 16 * 16 + 10 + 2 * READ_LATENCY


def test_report_text_and_png_show_three_baselines(tmp_path):
    rep = cm.cost(reschedule(tiny_ir(), 8), samples=2)
    text = cm.render(rep)
    assert "element_window / spatial: modules 5.67x, draws 50.67x" in text
    assert "per window" in text and f"{1216 * 2:,}" in text
    png = cm.plot_png(rep, caption="made by a test")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png == cm.plot_png(rep, caption="made by a test")


def test_multibit_first_layer_costs_one_pass_per_plane():
    from hwgen.hw.plan import cycle_bound
    ir = tiny_ir()
    ir8 = core.replace(ir, input=core.InputEncoding(mode="unsigned", bits=8, mul=255.0))
    a, b = cm.cost(reschedule(ir, 8), 16), cm.cost(reschedule(ir8, 8), 16)
    l0a, l0b = a["layers"][0], b["layers"][0]
    assert l0b["reads_per_pass"] == 8 * l0a["reads_per_pass"]
    assert l0b["cycles_bound_per_pass"] == cycle_bound(reschedule(ir8, 8)).per_layer[0] == 8 * l0a["cycles_bound_per_pass"]
    assert a["layers"][1:] == b["layers"][1:]


@pytest.mark.parametrize("spec, shape", [("c4s2,p3,c5k5s3,f3", (2, 23, 21)),
                                         ("c3k5s2,p2s3,f4", (1, 20, 17)),
                                         ("c3,p2,c4,f3", (1, 7, 7))])
def test_strided_reads_bound_and_driven_rows_follow_the_walk(spec, shape):
    """A pass reads each pool block's windows (gaps and the floor-mode edge never): the cycle bound is the
    hardware walk's (reads * beats plus the ring steps beyond them), and the driven rows
    are those of the walked windows as the golden model forms them (padding per strided
    window)."""
    from support import random_ir
    from hwgen.hw.plan import cycle_bound, walk_cycles
    from hwgen.ir.core import layer_read_plan
    from hwgen.ir import interp
    ir = random_ir(spec, shape, tile=(16, 8))
    for i, lay in enumerate(ir.layers):
        _, oh, ow = lay.conv_shape
        _, hp, wp = lay.out_shape
        k, t = lay.pool, lay.pool_step
        if k > 1:                      # each block's windows; the floor-mode edge is skipped
            ys = [py * t + dy for py in range(hp) for dy in range(k)]
            xs = [px * t + dx for px in range(wp) for dx in range(k)]
        else:
            ys, xs = range(oh), range(ow)
        assert lay.reads == len(ys) * len(xs)
        r = layer_read_plan(lay, 4).beats
        assert cycle_bound(reschedule(ir, 4)).per_layer[i] == walk_cycles(lay, r)
        driven = interp._im2col(np.zeros((1,) + lay.in_shape, np.uint8), lay)[1]
        driven = driven.reshape(oh, ow, -1)[np.ix_(list(ys), list(xs))].reshape(-1, lay.rows)
        assert cm.driven_rows_per_tile(lay) == [int(driven[:, a:b].sum()) for a, b in lay.row_tiles]
