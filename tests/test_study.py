"""`hwgen study`: the config, the cached flow, the golden-path evaluation against `hwgen
eval`, the RTL comparison, and the tiny study end to end (twice: the second run must come
from the cache)."""

import hashlib
import inspect
import json
import logging
from dataclasses import replace

import numpy as np
import pytest

from hwgen.cli import main
from hwgen.errors import HwgenError
from hwgen.study import config as sc
from hwgen.study.flow import Step, run_study


# -- config ------------------------------------------------------------------------------------

def test_every_config_field_is_documented():
    """FINN style: each field is preceded by a `#:` comment saying what it means."""
    src = inspect.getsource(sc.StudyConfig).splitlines()
    for f in sc.StudyConfig.__dataclass_fields__:
        i = next(k for k, l in enumerate(src) if l.strip().startswith(f"{f}:"))
        assert src[i - 1].strip().startswith("#:"), f"field {f} has no #: comment"


def test_presets():
    t, p = sc.tiny().validate(), sc.paper().validate()
    assert t.dataset == "digits" and len(t.seeds) == 1 and t.rtl_images <= 3
    assert t.simulator == "icarus" and t.epochs <= 2
    assert p.dataset == "fashion-mnist" and p.seeds == (0, 1, 2) and p.arch == "c16,p2,c32,p2,f10"
    assert p.input_mode == "bitserial-8" and p.rtl_images >= 200 and p.simulator == "verilator"
    assert t.samples == p.samples == (1, 4, 8, 16, 32)
    assert set(p.kinds) == {"deterministic", "element", "spatial"}
    assert t.fingerprint() != p.fingerprint()
    assert replace(t, output_dir="elsewhere").fingerprint() == t.fingerprint()
    assert sc.load_config("tiny") == t and sc.load_config(None) == p


@pytest.mark.parametrize("fields, needle", [
    ({"seeds": []}, "seeds"),
    ({"kinds": ["spatial", "gaussian"]}, "kinds"),
    ({"report_samples": 3}, "report_samples"),
    ({"p": 1.5}, "p must be in (0, 1)"),
    ({"simulator": "xsim"}, "simulator"),
    ({"arch": "c8,q2,f10"}, "bad spec token 'q2'"),
    ({"input_mode": "ternary"}, "input_mode"),
    ({"tile": "128"}, "tile"),
    ({"epocs": 3}, "unknown study config field 'epocs'"),
])
def test_bad_config_is_one_line_and_writes_nothing(tmp_path, capsys, fields, needle):
    f = tmp_path / "study.json"
    f.write_text(json.dumps(fields))
    out = tmp_path / "out"
    assert main(["study", "--config", str(f), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert not out.exists()


def test_config_file_and_bad_names(tmp_path, capsys):
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"dataset": "digits", "seeds": [3, 4], "samples": [2, 16]}))
    c = sc.load_config(str(f))
    assert c.seeds == (3, 4) and c.samples == (2, 16) and c.dataset == "digits"
    with pytest.raises(HwgenError, match="no such file"):
        sc.load_config(str(tmp_path / "nope.json"))
    f.write_text("[1]")
    with pytest.raises(HwgenError, match="JSON object"):
        sc.load_config(str(f))
    assert main(["study", "--tiny", "--config", "paper"]) == 2
    assert "contradict" in capsys.readouterr().err


# -- the flow: cache keys, artifacts, units ----------------------------------------------------

def _toy_steps(calls):
    def a(ctx):
        calls.append("a")
        p = ctx.path("art/a.txt")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"seeds {ctx.cfg.seeds}")
        units = {str(s): ctx.unit(f"u{s}", {"seed": s}, lambda s=s: (calls.append(f"u{s}") or
                                                                   {"v": s * 10}, [], {}))
                 for s in ctx.cfg.seeds}
        return {"seeds": list(ctx.cfg.seeds), "units": units}, ["art/a.txt"]

    def b(ctx):
        calls.append("b")
        return {"n": len(ctx.results["a"]["seeds"]) * (ctx.cfg.lanes or 8)}, []   # None: array
    return (Step("a", a, reads=("seeds",), code=("errors.py",)),
            Step("b", b, reads=("lanes",), inputs=("a",), code=("errors.py",)))


def test_flow_caches_by_fields_inputs_and_artifacts(tmp_path):
    calls = []
    steps = _toy_steps(calls)
    cfg = replace(sc.tiny(), output_dir=str(tmp_path / "s"), seeds=(0, 1))
    ctx = run_study(cfg, steps, "toy")
    assert calls == ["a", "u0", "u1", "b"] and ctx.results["b"] == {"n": 2 * 8}
    calls.clear()
    ctx = run_study(cfg, steps, "toy")                    # everything from the cache
    assert calls == [] and ctx.timings["a"]["cached"] and ctx.timings["b"]["cached"]
    assert ctx.results["a"]["units"] == {"0": {"v": 0}, "1": {"v": 10}}
    run_study(replace(cfg, lanes=2), steps, "toy")        # b reads lanes; a does not
    assert calls == ["b"]
    calls.clear()
    run_study(replace(cfg, lanes=2, seeds=(0, 1, 2)), steps, "toy")
    assert calls == ["a", "u2", "b"]                      # units 0 and 1 re-used
    calls.clear()
    (tmp_path / "s" / "art" / "a.txt").write_text("tampered")
    run_study(replace(cfg, lanes=2, seeds=(0, 1, 2)), steps, "toy")
    assert calls == ["a"]              # a changed artifact: a reruns, b sees the same result
    calls.clear()
    run_study(replace(cfg, lanes=2, seeds=(0, 1, 2), dataset="fashion-mnist"), steps, "toy")
    assert calls == []                                    # a field no step reads


def test_sites_variant_skipped_with_a_log_line_when_the_spec_is_rejected(caplog):
    from hwgen.study.steps import model_plan

    cfg = replace(sc.tiny(), sites_arch="c8,p2,x9,f10")
    with caplog.at_level(logging.WARNING, logger="hwgen.study"):
        arch, models, skipped = model_plan(cfg)
    assert skipped == [{"variant": "last", "spec": "c8,p2,x9,f10",
                        "reason": "bad spec token 'x9': expected cN, cNkK, cNv, cNkKv (each "
                                  "optionally followed by sS), pS, pSsT, fN or d"}]
    assert "sites variant 'last' skipped" in caplog.text and "x9" in caplog.text
    assert {m["variant"] for m in models} == {"every"} and arch == "c8,p2,c16,p2,f10"
    # an accepted SPEC gives the MC kinds a second variant (the deterministic model has no sites)
    _, models, skipped = model_plan(replace(cfg, sites_arch="c8,p2,f10", seeds=(0, 5)))
    assert skipped == []
    last = sorted(m["name"] for m in models if m["variant"] == "last")
    assert last == ["element-last-s0", "element-last-s5", "spatial-last-s0", "spatial-last-s5"]


# -- golden-path evaluation == hwgen eval ------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from hwgen.model.io import load_checkpoint, save_model
    from hwgen.model.train import TrainConfig, train

    out = {}
    d = tmp_path_factory.mktemp("models")
    for kind in ("spatial", "element"):
        model, meta = train(TrainConfig(dataset="digits", arch="c8,p2,c16,p2,f10", dropout=kind,
                                        epochs=1), progress=False)
        save_model(d / f"{kind}.pt", model, meta)
        out[kind] = load_checkpoint(d / f"{kind}.pt")
    return out


@pytest.mark.parametrize("kind", ["spatial", "element"])
def test_golden_eval_equals_hwgen_eval(tiny_models, kind):
    """Same masks (draw_mc_masks) -> the golden integers give hwgen eval's predictions and,
    to float rounding (torch's logits are float32), its figures."""
    from hwgen.model.evaluate import evaluate
    from hwgen.study.golden import golden_eval

    ckpt = tiny_models[kind]
    ref, raw = evaluate(ckpt, 8, seed=5, limit=200, progress=False)
    g, graw = golden_eval(ckpt, [8], seed=5, limit=200)
    assert (raw["id"]["probs"].mean(0).argmax(-1) == graw[8]["p_mean"].argmax(-1)).all()
    assert g[8]["accuracy"] == ref["accuracy"]
    for k in ("nll", "ece", "brier", "mean_entropy", "mean_mi"):
        assert g[8][k] == pytest.approx(ref[k], rel=1e-5, abs=1e-7), k
    for by in ("entropy", "mi"):
        for k in ("auroc", "aupr", "fpr95"):
            assert g[8]["ood"][by][k] == pytest.approx(ref["ood"][by][k], abs=1e-3), (by, k)
    assert np.abs(raw["id"]["entropy"] - graw[8]["entropy_id"]).max() < 1e-5
    assert (g["n_test"], g["n_ood"]) == (ref["n_test"], ref["n_ood"])
    # another seed draws other masks: the figures move (the comparison can fail)
    g2, _ = golden_eval(ckpt, [8], seed=6, limit=200)
    assert g2[8]["nll"] != g[8]["nll"]


def test_compare_rtl_catches_a_changed_class_integer(tiny_models):
    """compare_rtl recounts against the definition: an RTL integer off by one is found."""
    from hwgen.data import first_test_images
    from hwgen.frontend import build_ir
    from hwgen.ir import interp
    from hwgen.model.io import build_model
    from hwgen.passes import run_pipeline
    from hwgen.study.steps import compare_rtl

    ckpt = tiny_models["spatial"]
    ir = run_pipeline(build_ir(ckpt))
    x, y = first_test_images("digits", 3, ir.in_shape)
    t = 4
    ap = np.random.default_rng(0).random((3 * t, ir.n_interfaces)) < 0.3
    from hwgen.ir.core import masks_from_ap
    observed = interp.run(ir, interp.input_bits(ir, x), masks_from_ap(ir, ap, 3, t))
    ok = compare_rtl(ir, build_model(ckpt), x, y, observed, ap)
    assert ok["recount_mismatches"] == 0 and ok["predictions_equal"]
    assert ok["max_abs_entropy_diff"] == 0.0 and ok["max_abs_mi_diff"] == 0.0
    assert ok["float_prediction_agreement"] == 1.0 and len(ok["rtl_entropy"]) == 3
    bad = observed.copy()
    bad[1, 2, 0] += 1
    r = compare_rtl(ir, build_model(ckpt), x, y, bad, ap)
    assert r["recount_mismatches"] == 1 and r["max_abs_entropy_diff"] > 0


# -- the tiny study, end to end ----------------------------------------------------------------

def _sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_tiny_study_end_to_end_then_from_the_cache(tmp_path, capsys):
    from support import require_simulator

    require_simulator("icarus")
    out = tmp_path / "study"
    assert main(["study", "--tiny", "-o", str(out)]) == 0
    assert "0 RTL mismatches" in capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    cfg = sc.tiny()
    assert res["format"] == "hwgen-study" and res["config_fingerprint"] == cfg.fingerprint()
    assert res["samples"] == [1, 4, 8, 16, 32] and res["config"]["samples"] == [1, 4, 8, 16, 32]

    # models: every kind, one seed; the sites variant while the `d` token is not parsed
    from hwgen.model.spec import SpecError, parse_spec
    try:
        parse_spec(cfg.sites_arch)
        assert any(m["variant"] == "last" for m in res["models"].values())
    except SpecError:
        assert [s["variant"] for s in res["skipped"]] == ["last"]
    kinds = sorted(m["kind"] for m in res["models"].values() if m["variant"] == "every")
    assert kinds == ["deterministic", "element", "spatial"]

    # every MC model at every T; the deterministic one at T = 1; headline = T 16 figures
    for n, e in res["eval"].items():
        want = ["1"] if n.startswith("deterministic") else ["1", "16", "32", "4", "8"]
        assert sorted(e["T"]) == want
        for t in e["T"].values():
            assert len(t["rejection"]["entropy"]["accuracy"]) == 19
            assert sum(t["reliability"]["count"]) == res["n_test"]
    for h in res["headline"]:
        g = next(g for g in res["groups"] if g["id"] == h["id"])
        assert h["metrics"]["accuracy"]["mean"] == res["eval"][g["first"]]["T"][str(g["T"])]["accuracy"]

    # RTL: both designs, 2 images x T = 16, nothing differs from the golden model
    assert sorted(res["rtl"]) == ["element-every-s0", "spatial-every-s0"]
    for r in res["rtl"].values():
        assert (r["images"], r["samples"], r["simulator"]) == (2, 16, "icarus")
        assert r["mismatches"] == 0 and r["device_mismatches"] == 0 and r["recount_mismatches"] == 0
        assert r["predictions_equal"] and r["max_abs_entropy_diff"] == 0.0 == r["max_abs_mi_diff"]
        assert r["cycles_per_sample"] is not None

    # cost: per conv site the module ratio is K*K exactly, from the IR's own shapes
    from hwgen.ir.core import loads
    ir = loads((out / res["compile"]["spatial-every-s0"]["dir"] / "ir.json").read_text())
    sites = res["paper_comparison"]["sites"]
    assert [s["layer"] for s in sites] == [s.layer for s in ir.sites]
    for s in sites:
        lay = ir.layers[s["layer"]]
        c, (kh, kw) = lay.in_shape[0], lay.kernel
        assert (s["spatial_modules"], s["element_modules"]) == (c, c * kh * kw)
        if lay.op == "conv":
            assert s["module_ratio"] == kh * kw == 9
        assert s["window_draws"] == c * kh * kw * lay.windows
    assert res["paper_comparison"]["paper"] == {"modules": 9.0, "energy": 94.11}
    rep = res["cost"]["spatial-every-s0"]
    assert rep["cycles"]["measured_per_sample"] == res["rtl"]["spatial-every-s0"]["cycles_per_sample"]
    assert rep["totals"]["element_window"]["draws_per_sample"] == sum(s["window_draws"] for s in sites)

    # the summary of each design
    s = res["summary"]["spatial-every-s0"]
    assert s["totals"]["weights_1bit"] == sum(l.out_channels * l.rows for l in ir.layers)

    # REPORT.md names the command and config, and holds the tables
    md = (out / "REPORT.md").read_text()
    assert md.count(f"_Made by `hwgen study --tiny` (config `{cfg.fingerprint()}`)") >= 6
    for needle in ("| deterministic | 1 |", "| spatial | 1 |", "| element | 1 |",
                   "| spatial-every-s0 | icarus | 2 x 16 | 0 | 0 | 0 | yes |",
                   "9.0x per layer", "94.11x", "| layer 1 (conv 3x3, 16 windows) | 8 | 72 | 9.00x |",
                   "hwgen summary rtl/spatial-every-s0", "T = 32: acc / ECE"):
        assert needle in md, needle
    for f in res["figures"]:
        assert (out / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f
    assert {f.split("/")[-1] for f in res["figures"]} == {
        "accuracy_ece_vs_T.png", "entropy_hist.png", "reliability.png", "rejection.png", "cost.png"}

    # the same command again: every step from the cache, no retraining, the same results
    models = {p.name: _sha(p) for p in (out / "models").iterdir()}
    assert main(["study", "--tiny", "-o", str(out)]) == 0
    res2 = json.loads((out / "results.json").read_text())
    steps = res2["run"]["steps"]
    assert all(steps[s]["cached"] for s in ("train", "evaluate", "compile", "verify_rtl", "cost",
                                            "summary")), steps
    assert not steps["report"]["cached"]
    assert {p.name: _sha(p) for p in (out / "models").iterdir()} == models
    res.pop("run"), res2.pop("run")
    assert res2 == res


def test_reliability_diagram_labels_every_bin_with_its_count():
    """hwgen eval's and the study's diagrams: a bin of 3 images at accuracy 1.0 says so."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hwgen import metrics
    from hwgen.model.evaluate import draw_reliability

    p = np.array([[0.95, 0.05]] * 3 + [[0.55, 0.45]] * 20)
    y = np.array([0] * 3 + [0] * 12 + [1] * 8)
    rel = metrics.reliability(p, y)
    fig, ax = plt.subplots()
    draw_reliability(ax, rel)
    assert [t.get_text() for t in ax.texts] == ["20", "3"]
    bars = [b for b in ax.patches if b.get_height() > 0]
    assert [(round(b.get_height(), 3), b.get_hatch()) for b in bars] == [(0.6, None), (1.0, "//")]
    assert "fewer than 10 images" in [t.get_text() for t in ax.get_legend().get_texts()]
    plt.close(fig)
