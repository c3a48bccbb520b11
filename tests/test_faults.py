"""Fault campaigns (hwgen.faults): the plan, the golden model carrying each fault kind,
the classifier and its planted misclassifications, the RTL campaign on a tiny design
(one build, the design unchanged) agreeing with the golden prediction fault for fault,
test-vector selection, the online monitor and the command."""

import json

import numpy as np
import pytest

from hwgen.cli import main
from hwgen.compiler import compile_model
from hwgen.design import load_design
from hwgen.device import device_seeds
from hwgen.errors import HwgenError
from hwgen.faults import campaign, classify, golden, monitor, plan, rtl, vectors
from hwgen.ir import interp
from hwgen.ir.core import masks_from_ap
from hwgen.sim.scoreboard import interface_p, replay_ap
from hwgen.sim.regression import image_bits
from support import random_model, require_simulator

SPEC = "c4,p2,f10"          # digits 8x8; one spatial site before f10: 4 MTJ interfaces


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("faults")
    model = random_model(d / "model.pt", SPEC)
    compile_model(model, d / "out", check_images=0)
    return d / "out"


@pytest.fixture(scope="module")
def held(tiny):
    ir = load_design(tiny).ir
    bits, _, _ = image_bits(ir, 64)
    return ir, bits.reshape(64, *ir.input_bits_shape)


def test_plan_is_seeded_covers_kinds_and_checks_fields(held, tmp_path):
    ir, _ = held
    a = plan.sample_plan(ir, 30, seed=5)
    assert a == plan.sample_plan(ir, 30, seed=5) != plan.sample_plan(ir, 30, seed=6)
    assert [f["kind"] for f in a[:6]] == list(plan.KINDS)
    assert plan.sample_plan(ir, 12, seed=5)[:12] == a[:12]       # a prefix of a longer plan
    assert {f["kind"] for f in plan.sample_plan(ir, 4, ["mtj-stuck"], 1)} == {"mtj-stuck"}
    with pytest.raises(HwgenError, match="unknown fault kind"):
        plan.sample_plan(ir, 3, ["cell-stuck", "stuck-cell"])
    (tmp_path / "p.json").write_text(json.dumps({"faults": a[:3]}))
    assert plan.load_plan(ir, tmp_path / "p.json") == a[:3]
    for bad, msg in (({"kind": "cell-stuck", "layer": 0, "col": 0, "row": 10 ** 6, "value": 1},
                      "'row'"),
                     ({"kind": "sense-swap", "interface": 1, "other": 1}, "'other'"),
                     ({"kind": "threshold-flip", "layer": len(ir.layers) - 1, "col": 0,
                       "bit": 0}, "classifier"),
                     ({"kind": "mtj-stuck", "interface": 0, "state": "X"}, "'state'")):
        (tmp_path / "bad.json").write_text(json.dumps([bad]))
        with pytest.raises(HwgenError, match=msg):
            plan.load_plan(ir, tmp_path / "bad.json")


def test_golden_faults_change_exactly_what_they_name(held):
    ir, _ = held
    f = {"kind": "cell-stuck", "layer": 1, "col": 3, "row": 5, "value": 1}
    w0, w1 = ir.layers[1].weight_bits(), golden.faulty_ir(ir, f).layers[1].weight_bits()
    diff = np.argwhere(w0 != w1)
    assert w1[3, 5] == 1 and (len(diff) == 0 or diff.tolist() == [[3, 5]])
    f = {"kind": "threshold-flip", "layer": 0, "col": 2, "bit": 1}
    t0, t1 = ir.layers[0].thresh, golden.faulty_ir(ir, f).layers[0].thresh
    assert [abs(a - b) for a, b in zip(t0, t1)] == [0, 0, 2, 0]
    assert golden.faulty_ir(golden.faulty_ir(ir, f), f) == ir       # a flip undoes itself
    seeds = device_seeds(3, ir.n_interfaces)
    clean = replay_ap(ir, seeds, 7, 500)
    for fault, col in (({"kind": "mtj-stuck", "interface": 2, "state": "AP"}, np.ones(500)),
                       ({"kind": "mtj-stuck", "interface": 2, "state": "P"}, np.zeros(500)),
                       ({"kind": "mtj-p-scale", "interface": 2, "scale": 0.0}, np.zeros(500)),
                       ({"kind": "mtj-p-scale", "interface": 2, "scale": 1.0}, clean[:, 2])):
        dev = golden.device_ap(ir, fault, seeds, 7, 500)
        assert np.array_equal(dev[:, 2], col) and np.array_equal(np.delete(dev, 2, 1),
                                                                 np.delete(clean, 2, 1))
    big = golden.device_ap(ir, {"kind": "mtj-p-scale", "interface": 2, "scale": 3.0}, seeds, 7, 500)
    assert (big[:, 2] >= clean[:, 2]).all() and big[:, 2].sum() > clean[:, 2].sum()
    sw = golden.design_ap({"kind": "sense-swap", "interface": 1, "other": 3}, clean)
    assert np.array_equal(sw[:, [3, 1]], clean[:, [1, 3]])
    assert np.array_equal(sw[:, [0, 2]], clean[:, [0, 2]])
    ks = golden.design_ap({"kind": "keep-stuck", "interface": 0, "value": 1}, clean)
    assert not ks[:, 0].any() and np.array_equal(ks[:, 1:], clean[:, 1:])


def test_judge_equals_the_definition(held):
    """The judge runs hwgen.ir.fast; the faulty class integers equal the definition's
    (hwgen.ir.interp) fed the same faulty IR and masks, for every kind."""
    ir, bits = held
    seeds, T = device_seeds(1, ir.n_interfaces), 3
    clean = golden.run_clean(ir, bits, T, seeds)
    for f in plan.sample_plan(ir, 12, seed=2):
        j = classify.judge(ir, f, bits, T, seeds, clean)
        ap = golden.design_ap(f, golden.device_ap(ir, f, seeds, 0, len(bits) * T))
        want = interp.run(golden.faulty_ir(ir, f), bits, masks_from_ap(ir, ap, len(bits), T))
        assert np.array_equal(j["out"], want), f
        assert np.array_equal(j["changed"], (want != clean).reshape(len(bits), -1).any(1))


def test_classifier_catches_planted_misclassifications(held):
    ir, bits = held
    seeds, T = device_seeds(0, ir.n_interfaces), 4
    clean = golden.run_clean(ir, bits, T, seeds)
    # a classifier cell stuck at the opposite of its bit changes class integers
    last = len(ir.layers) - 1
    f = {"kind": "cell-stuck", "layer": last, "col": 0, "row": 0,
         "value": int(1 - ir.layers[last].weight_bits()[0, 0])}
    j = classify.judge(ir, f, bits, T, seeds, clean)
    assert j["changed"].any() and classify.classify(bool(j["detect"][:8].any()),
                                                    bool(j["changed"].any())) == "detected"
    # planted: the regression forced to pass on a fault that changes outputs: it must be
    # an escape, never masked
    assert classify.classify(False, bool(j["changed"].any())) == "escape"
    # planted: a plan that claims a harmless fault (stuck at the bit it already has) is
    # masked must be confirmed by the judge, and a real one's claim refuted
    same = dict(f, value=int(ir.layers[last].weight_bits()[0, 0]))
    assert not classify.judge(ir, same, bits, T, seeds, clean)["changed"].any()
    assert classify.classify(False, False) == "masked"
    # a device fault is detected by the device check even where no class integer moves
    d = classify.judge(ir, {"kind": "mtj-stuck", "interface": 0, "state": "AP"}, bits, T,
                       seeds, clean)
    assert d["detect"].all()
    table = classify.tally([{"kind": "a", "class": "detected"}, {"kind": "a", "class": "escape"},
                            {"kind": "b", "class": "masked"}])
    assert table["a"]["coverage"] == 0.5 and table["b"]["coverage"] is None
    assert table["all"] == {"detected": 1, "masked": 1, "escape": 1, "faults": 3,
                            "coverage": 0.5}


def test_campaign_flags_a_forced_passing_regression(tiny, monkeypatch):
    """The RTL part must agree with the golden prediction fault for fault: a regression
    forced to pass (planted) turns detected faults into escapes and fails the campaign."""
    def forced_pass(outdir, faults, inputs, seed, samples=4, simulator="verilator", **kw):
        return [{"fault": f, "detected": False, "mismatches": 0, "device_mismatches": 0,
                 "sim_s": 0.0} for f in faults]
    monkeypatch.setattr(rtl, "run_faults", forced_pass)
    monkeypatch.setattr(rtl, "build", lambda *a, **k: None)
    rep = campaign.run_campaign(tiny, faults=6, held=48, test_images=4, samples=3, rtl=6,
                                progress=False, batch=4)
    assert not rep["ok"] and rep["rtl"]["agree"] < 6 and rep["rtl"]["batches"] == 2
    detected = [r for r in rep["results"] if r["class"] == "detected"]
    assert detected and all(r["rtl_class"] == "escape" for r in detected)


def test_rtl_device_faults_are_injected_through_the_bench(tiny):
    """A stuck MTJ and a stuck keep line, injected into the bench's device model and
    sense wiring (the design unchanged): the regression fails as the golden model
    predicts, by the device check and by class integers respectively."""
    require_simulator("verilator")
    rep = campaign.run_campaign(tiny, faults=2, kinds=["mtj-stuck", "keep-stuck"], held=32,
                                test_images=2, samples=2, rtl=2, progress=False)
    runs = rep["rtl"]["runs"]
    assert rep["ok"] and [r["rtl_detected"] for r in runs] == [r["golden_detected"] for r in runs]
    assert runs[0]["device_mismatches"] > 0 and runs[0]["mismatches"] == 0


def test_rtl_campaign_agrees_with_golden(tiny):
    """One cached Verilator build, the design unchanged, 12 faults in 3 simulator
    processes (batches of 5): every kind's RTL verdict equals the golden model's
    prediction; the clean controls around each batch pass."""
    require_simulator("verilator")
    rep = campaign.run_campaign(tiny, faults=12, held=32, test_images=2, samples=2, rtl=12,
                                progress=False, batch=5)
    assert rep["ok"] and rep["rtl"]["agree"] == rep["rtl"]["faults"] == 12, rep["rtl"]["runs"]
    assert rep["rtl"]["detected"] > 0 and rep["rtl"]["batches"] == 3
    assert {r["kind"] for r in rep["rtl"]["runs"]} == set(plan.KINDS)


def _verdicts(out):
    return [(r["detected"], r["mismatches"], r["device_mismatches"]) for r in out]


def test_a_fault_gives_one_verdict_alone_or_anywhere_in_a_batch(tiny, held):
    """The design reset between a batch's runs leaves nothing behind: each fault's
    verdict (and its mismatch counts) is the same in a batch, in the reversed batch and
    run alone."""
    require_simulator("verilator")
    ir, bits = held
    faults = plan.sample_plan(ir, 6, plan.KINDS, 3)
    x = bits[:3]
    fwd = rtl.run_faults(tiny, faults, x, seed=0, samples=3)
    rev = rtl.run_faults(tiny, faults[::-1], x, seed=0, samples=3)
    alone = [rtl.run_faults(tiny, [f], x, seed=0, samples=3)[0] for f in (faults[0], faults[-1])]
    assert _verdicts(fwd) == _verdicts(rev[::-1])
    assert _verdicts(alone) == _verdicts([fwd[0], fwd[-1]])
    assert any(v[0] for v in _verdicts(fwd)) and [r["fault"] for r in fwd] == faults


def test_the_closing_control_catches_state_left_by_a_fault(tiny, held, tmp_path):
    """Planted: a reset that leaves the Python device model as the stuck-MTJ run left it
    (the clean runs on that model too, not played by the wrapper). The clean control
    after it then fails its device check, where the sound reset passes."""
    from hwgen.sim import runner
    require_simulator("verilator")
    ir, bits = held
    x = bits[:2].reshape(2, -1)
    stuck = {"kind": "mtj-stuck", "interface": 0, "state": "AP"}
    bdir = rtl.build(tiny)

    def run(power_up, where):
        runs = [{}, {"device_fault": stuck}, {"power_up": power_up}]
        return runner.run_network(tiny, "verilator", x, np.arange(2), 3,
                                  device_seeds(0, ir.n_interfaces), 0, bdir, where,
                                  record=False, runs=runs, devices="python")["runs"]
    sound, planted = run(True, tmp_path / "sound"), run(False, tmp_path / "planted")
    assert sound[1]["device_mismatches"] > 0 and planted[1]["device_mismatches"] > 0
    assert sound[2]["device_mismatches"] == 0 == sound[2]["mismatches"]
    assert planted[2]["device_mismatches"] > 0


def test_vectors_rank_and_cover():
    clean = np.zeros((3, 4, 3), np.int32)
    clean[0, :, 0] = 5                       # image 0: class 0 in all 4 samples, margin 5
    clean[1, :2, 1], clean[1, 2:, 2] = 2, 2  # image 1: half and half
    clean[2, :, 2] = 1                       # image 2: repeatable, margin 1
    rep, margin = vectors.repeatability(clean)
    assert rep.tolist() == [1.0, 0.5, 1.0] and vectors.rank_repeatable(clean).tolist() == [0, 2, 1]
    detect = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1], [0, 0, 0, 0]], bool)
    assert vectors.greedy_cover(detect).tolist() == [0, 2]
    changed = np.array([1, 1, 1, 1, 1], bool)                    # fault 4: never detected
    curve = vectors.coverage_curve(np.array([0, 2, 1, 3]), detect, changed, [0, 1, 2, 4])
    assert [c["coverage"] for c in curve] == [0.0, 0.4, 0.8, 0.8]


def test_monitor_flags_device_faults_not_clean_runs(held):
    ir, _ = held
    seeds, p = device_seeds(0, ir.n_interfaces), interface_p(ir)
    w = 256
    clean = golden.device_ap(ir, None, seeds, 0, 2000 * w)
    assert monitor.keep_rate_alarms(clean, p, w).mean() <= 0.005     # alpha = 0.001
    stuck = golden.device_ap(ir, {"kind": "mtj-stuck", "interface": 1, "state": "AP"},
                             seeds, 0, 50 * w)
    assert monitor.keep_rate_alarms(stuck, p, w).all()
    h = np.random.default_rng(0).normal(1.0, 0.1, 64 * 40)
    b = monitor.entropy_bounds(h, 64)
    assert not monitor.entropy_alarms(h, 64, b).any() and monitor.entropy_alarms(h + 1, 64, b).all()


def test_cli_faults(tiny, tmp_path, capsys):
    out = tmp_path / "f.json"
    assert main(["faults", str(tiny), "--faults", "12", "--held", "40", "--test-images", "4",
                 "--samples", "2", "--json", str(out), "--png", str(tmp_path / "c.png"),
                 "--no-progress"]) == 0
    rep = json.loads(out.read_text())
    assert rep["format"] == campaign.REPORT_FORMAT and rep["faults"] == 12
    assert sum(rep["table"]["all"][k] for k in classify.CLASSES) == 12
    assert "coverage" in capsys.readouterr().out
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["faults", str(tiny), "--kinds", "nope", "--no-progress"]) == 2
    assert "unknown fault kind nope" in capsys.readouterr().err


def test_nonideal_sweep_points(held):
    from hwgen.faults import nonideal
    ir, bits = held
    imgs = np.random.default_rng(0).random((40,) + tuple(ir.in_shape)).astype(np.float32)
    ood = np.random.default_rng(1).random((20,) + tuple(ir.in_shape)).astype(np.float32)
    labels = np.arange(40) % 10
    for what in nonideal.SWEEPS:                    # level 0 is the sound design
        q, p, stuck = nonideal.perturbed(ir, what, 0.0, 3)
        assert q == ir and np.array_equal(p, interface_p(ir)) and stuck == {}
    q, _, _ = nonideal.perturbed(ir, "stuck_cell_rate", 0.2, 3)
    flips = sum(int((a.weight_bits() != b.weight_bits()).sum())
                for a, b in zip(ir.layers, q.layers))
    cells = sum(a.rows * a.out_channels for a in ir.layers)
    assert 0.07 < flips / cells < 0.13               # stuck at a random value: half flip
    _, _, stuck = nonideal.perturbed(ir, "stuck_mtj_fraction", 0.5, 3)
    assert len(stuck) == 2 and sorted(stuck.values()) == [False, True]
    _, p, _ = nonideal.perturbed(ir, "p_spread_sigma", 1.0, 3)
    assert len(set(p.round(12))) == ir.n_interfaces and (p <= 1).all()
    res = nonideal.sweep(ir, imgs, labels, ood, T=2, repeats=1,
                         sweeps={"stuck_mtj_fraction": (0.0, 1.0)}, progress=False)
    pts = res["stuck_mtj_fraction"]
    assert [x["level"] for x in pts] == [0.0, 1.0] and 0 <= pts[0]["accuracy"] <= 1
    assert pts[1]["mean_entropy"] == 0.0 or pts[1] != pts[0]   # every MTJ stuck: deterministic
