"""Pure-Python parts of the verification: port packing, mask assembly from device
history, the device replay, the statistics checks, shards and report merging. No simulator."""

import json

import numpy as np
import pytest

from hwgen.device import MtjArray, MtjParams, device_seeds
from hwgen.errors import HwgenError
from hwgen.ir.core import IR, InputEncoding, Layer, Site, masks_from_ap, pack_rows, replace
from hwgen.sim.regression import merge_reports, parse_shard, shard_range
from hwgen.sim.ports import image_words, int_of, load_ports, unpack_beat
from hwgen.sim.scoreboard import Scoreboard, interface_p, replay_ap
from hwgen.sim.stats import binom_interval, corr_bound, interface_stats, site_stats
from support import STUB_DIR


def two_site_ir(p=0.25) -> IR:
    """conv 2->3 (3x3 on 4x4) -> site A (3 groups of 9 rows) -> conv 3->2 -> site B
    (2 groups of 16 rows, spatial before a flatten-fed linear) -> linear 4 classes."""
    rng = np.random.default_rng(0)
    prm = MtjParams()
    code, pr = prm.choose_code(p, 20.0)

    def lay(shape, o, k, pad, thr):
        rows = shape[0] * k * k
        w = pack_rows(rng.integers(0, 2, (o, rows)))
        if thr:
            return Layer(op="conv", in_shape=shape, out_channels=o, kernel=(k, k),
                         pad=(pad, pad), pool=1, weights=w, sign=(1,) * o, thresh=(0,) * o)
        return Layer(op="linear", in_shape=shape, out_channels=o, kernel=(k, k), pad=(0, 0),
                     pool=1, weights=w, logit_scale=(1.0,) * o, logit_bias=(0.0,) * o)
    layers = (lay((2, 4, 4), 3, 3, 1, True), lay((3, 4, 4), 2, 3, 1, True),
              lay((2, 4, 4), 4, 4, 0, False))
    sites = (Site(layer=1, kind="spatial", p=p, n_groups=3, group_rows=9, first_interface=0,
                  mtj_code=code, p_realised=pr),
             Site(layer=2, kind="spatial", p=p, n_groups=2, group_rows=16, first_interface=3,
                  mtj_code=code, p_realised=pr))
    return IR(in_shape=(2, 4, 4), input=InputEncoding(), layers=layers, sites=sites)


def drive(arr: MtjArray, k: int, reset=True, pulse_ns=20.0) -> np.ndarray:
    """k protocol cycles on all devices (reset, write); AP after each write [k, n]."""
    out = []
    for _ in range(k):
        if reset:
            arr.reset(np.ones(arr.n, bool))
        arr.write(np.ones(arr.n, bool), pulse_ns)
        out.append(arr.sense().astype(bool))
    return np.array(out)


# ---- ports ------------------------------------------------------------------------------

def test_image_words_pack_lsb_first_and_pad():
    bits = np.array([1, 0, 1, 1, 0, 0, 0, 1, 1], np.uint8)       # 9 bits, IN_W = 4
    assert image_words(bits, 4) == [0b1101, 0b1000, 0b0001]
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 2, 784).astype(np.uint8)
    words = image_words(bits, 32)
    back = np.array([(w >> b) & 1 for w in words for b in range(32)])[:784]
    assert len(words) == 25 and (back == bits).all()


def test_image_words_are_position_major():
    """[P, C, H, W] planes go out position by position in raster order, each position's
    P*C bits contiguous (plane k channel c at bit k*C + c): what the loader shifts into
    layer 0's ring store, one word per position."""
    rng = np.random.default_rng(2)
    planes = rng.integers(0, 2, (2, 3, 4, 5)).astype(np.uint8)      # P=2, C=3, 4x5
    words = image_words(planes, 7)
    stream = np.array([(w >> b) & 1 for w in words for b in range(7)])[:120]
    assert len(words) == -(-120 // 7)
    for y in range(4):
        for x in range(5):
            q = y * 5 + x
            for k in range(2):
                for c in range(3):
                    assert stream[q * 6 + k * 3 + c] == planes[k, c, y, x]
    # a [C, H, W] image is the same with P = 1; one channel is its raster order
    assert image_words(planes[0], 7) == image_words(planes[:1], 7)
    assert image_words(planes[0, :1], 5) == image_words(planes[0, 0].ravel(), 5)


def test_unpack_beat_signed_fields():
    acc_w, accs = 7, [-64, 63, -1, 0, 5]
    v = 1234
    for j, a in enumerate(accs):
        v |= (a & 0x7F) << (16 + j * acc_w)
    assert unpack_beat(v, 5, acc_w) == (1234, accs)
    assert int_of(np.array([1, 0, 1, 1], np.uint8)) == 0b1101


def test_load_ports_checks_widths(tmp_path):
    tp = load_ports(STUB_DIR / "ports.json")
    assert (tp.in_w, tp.acc_w, tp.n_if, tp.classes, tp.code_w) == (3, 8, 3, 2, 10)
    d = json.loads((STUB_DIR / "ports.json").read_text())
    for p in d["ports"]:
        if p["name"] == "out__payload":
            p["width"] = 31
    (tmp_path / "ports.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match="out__payload"):
        load_ports(tmp_path / "ports.json")


# ---- scoreboard -------------------------------------------------------------------------

def test_masks_from_ap_maps_interfaces_to_sites():
    ir = two_site_ir()
    n, t = 3, 4
    ap = np.random.default_rng(2).random((n * t, 5)) < 0.5
    ma, mb = masks_from_ap(ir, ap, n, t)
    assert ma.shape == (n, t, 3) and mb.shape == (n, t, 2)
    assert (ma[1, 2] == ~ap[1 * t + 2, :3]).all() and (mb[2, 3] == ~ap[2 * t + 3, 3:]).all()
    with pytest.raises(ValueError, match="writes"):
        masks_from_ap(ir, ap[:-1], n, t)


def test_replay_equals_device_driven_by_protocol():
    ir = two_site_ir()
    seeds = device_seeds(7, ir.n_interfaces)
    arr = MtjArray(ir.mtj.device, [s.mtj_code for s in ir.sites for _ in
                                                range(s.n_groups)], seeds)
    arr.writes[:] = 100
    got = drive(arr, 50)
    assert (replay_ap(ir, seeds, 100, 50) == got).all()
    # a device that is not reset before its writes stays AP: the replay disagrees
    arr2 = MtjArray(ir.mtj.device, arr.codes, seeds)
    assert (replay_ap(ir, seeds, 0, 50) != drive(arr2, 50, reset=False)).any()


def _checked(ir, seeds, sb_ir=None, sb_seeds=None, n=6, t=5):
    rng = np.random.default_rng(3)
    bits = rng.integers(0, 2, (n, *ir.in_shape)).astype(np.uint8)
    arr = MtjArray(ir.mtj.device, [s.mtj_code for s in ir.sites for _ in
                                                range(s.n_groups)], seeds)
    ap = drive(arr, n * t)
    from hwgen.ir.interp import run
    rtl = run(ir, bits, masks_from_ap(ir, ap, n, t))      # an RTL that is right
    sb = Scoreboard(sb_ir or ir, seeds if sb_seeds is None else sb_seeds)
    sb.check(bits, rtl, ap, np.arange(n))
    return sb


def test_scoreboard_passes_correct_and_catches_planted_faults():
    ir = two_site_ir()
    seeds = device_seeds(5, ir.n_interfaces)
    ok = _checked(ir, seeds)
    assert (ok.mismatches, ok.device_mismatches, ok.samples) == (0, 0, 30)
    # one threshold off in the IR the scoreboard reads
    l0 = ir.layers[0]
    bad = replace(ir, layers=(replace(l0, thresh=(l0.thresh[0] + 3,) + l0.thresh[1:]),)
                  + ir.layers[1:])
    sb = _checked(ir, seeds, sb_ir=bad)
    assert sb.mismatches > 0 and sb.first_mismatch["expected"] != sb.first_mismatch["observed"]
    # two interfaces' seeds swapped in the scoreboard only
    sw = seeds.copy()
    sw[[0, 4]] = sw[[4, 0]]
    sb = _checked(ir, seeds, sb_seeds=sw)
    assert sb.device_mismatches > 0 and sb.first_device_mismatch["interface"] in (0, 4)


# ---- statistics -------------------------------------------------------------------------

def test_binomial_interval_and_bound():
    lo, hi = binom_interval(1000, 0.2, 0.999)
    assert lo < 200 < hi and 150 < lo and hi < 250
    assert corr_bound(10_000, 1, 0.001) == pytest.approx(3.2905 / 100, rel=1e-3)


def test_interface_stats_accepts_device_and_rejects_faults():
    ir = two_site_ir(0.3)
    seeds = device_seeds(11, ir.n_interfaces)
    arr = MtjArray(ir.mtj.device, [s.mtj_code for s in ir.sites for _ in
                                                range(s.n_groups)], seeds)
    ap = drive(arr, 4000)
    p = interface_p(ir)
    st = interface_stats(ap, p)
    assert st["ok"], st
    assert all(s["inside"] for s in site_stats(ir, ap))
    # wrong rate: the device driven with a longer write pulse switches more often
    arr2 = MtjArray(ir.mtj.device, arr.codes, seeds)
    st = interface_stats(drive(arr2, 4000, pulse_ns=40.0), p)
    assert st["rate_failures"] > 0 and not st["ok"]
    # two interfaces wired to one device
    dup = ap.copy()
    dup[:, 1] = dup[:, 0]
    st = interface_stats(dup, p)
    assert not st["pair_ok"] and st["worst_pair"] == [0, 1]
    # a device that holds its state for two samples
    held = ap.copy()
    held[1::2, 2] = held[0::2, 2]
    assert not interface_stats(held, p)["lag1_ok"]


# ---- shards and reports -----------------------------------------------------------------

def test_shards_partition_the_images():
    for n_img in (1, 7, 100):
        for n in (1, 3, 8):
            got = [i for s in range(n) for i in range(*shard_range(n_img, s, n))]
            assert got == list(range(n_img))
    assert parse_shard("2/5") == (2, 5) and parse_shard(None) == (0, 1)
    for bad in ("5/5", "1", "a/b", "-1/3", "0/0"):
        with pytest.raises(HwgenError):
            parse_shard(bad)


def _rep(rng, mism=0, first=None, sites=None):
    return {"format": "hwgen-sim-report", "version": 1, "simulator": "icarus", "outdir": "x",
            "verilog_sha256": "v", "ir_sha256": "i", "dataset": "digits", "seed": 0,
            "samples": 4, "image_range": list(rng), "images": rng[1] - rng[0],
            "mc_samples": 4 * (rng[1] - rng[0]), "mismatches": mism,
            "mismatched_samples": int(mism > 0), "device_mismatches": 0,
            "first_mismatch": first, "first_device_mismatch": None,
            "cycles_per_image": 100.0, "cycles_per_sample": 20.0, "sim_wall_s": 1.0,
            "process_wall_s": 2.0, "write_pulse_ns": [20.0], "waveform": None,
            "sites": sites, "sim_samples_per_s": 4.0 * (rng[1] - rng[0])}


def test_merge_reports_adds_up_and_keeps_earliest_mismatch():
    s = lambda d: [{"layer": 1, "kind": "spatial", "interfaces": 3, "p_asked": 0.2,
                    "p_realised": 0.2, "draws": 1200, "drops": d, "observed_rate": d / 1200,
                    "interval_999": [0, 1], "inside": True}]
    a = _rep((0, 10), sites=s(240))
    b = _rep((10, 25), mism=3, first={"image": 12}, sites=s(250))
    c = _rep((25, 30), mism=1, first={"image": 27}, sites=s(230))
    m = merge_reports([c, a, b])
    assert (m["images"], m["mc_samples"], m["mismatches"]) == (30, 120, 4)
    assert m["first_mismatch"] == {"image": 12} and not m["ok"]
    assert m["sites"][0]["draws"] == 3600 and m["sites"][0]["drops"] == 720
    assert m["sites"][0]["inside"]
    assert m["sim_samples_per_s"] == 120.0 and m["per_process_samples_per_s"] == 40.0
    assert merge_reports([a])["ok"]
    with pytest.raises(HwgenError, match="overlap"):
        merge_reports([a, _rep((5, 12))])
    with pytest.raises(HwgenError, match="seed"):
        merge_reports([a, dict(b, seed=1)])


def test_user_inputs_are_checked_and_never_unpickled(tmp_path):
    from hwgen.data import load_inputs
    from hwgen.errors import HwgenError
    good = np.random.default_rng(0).random((4, 2, 4, 4), dtype=np.float32)
    np.save(tmp_path / "good.npy", good)
    assert np.array_equal(load_inputs(tmp_path / "good.npy", (2, 4, 4), 3), good[:3])
    np.save(tmp_path / "shape.npy", good[:, :1])
    np.save(tmp_path / "nan.npy", np.where(good > 0.5, np.nan, good))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY garbage")
    cases = {"shape.npy": "expected \\[N, 2, 4, 4\\]", "nan.npy": "NaN",
             "obj.npy": "not a readable", "junk.npy": "not a readable",
             "missing.npy": "no such file"}
    for name, msg in cases.items():
        with pytest.raises(HwgenError, match=msg):
            load_inputs(tmp_path / name, (2, 4, 4))
    with pytest.raises(HwgenError, match="5 images asked"):
        load_inputs(tmp_path / "good.npy", (2, 4, 4), 5)


def test_a_cached_build_is_tied_to_its_cocotb_install(monkeypatch, tmp_path):
    """A Verilator binary links cocotb's VPI library by path: the build cache key must
    change with where cocotb is installed (two venvs share ~/.cache/hwgen/sim)."""
    import cocotb

    from hwgen.sim import runner
    here = runner._tool_version("verilator")
    fake = tmp_path / "other-venv" / "cocotb" / "__init__.py"
    fake.parent.mkdir(parents=True)
    fake.touch()
    monkeypatch.setattr(cocotb, "__file__", str(fake))
    assert runner._tool_version("verilator") != here


@pytest.mark.parametrize("edit", ["direction", "lower", "table"])
def test_load_ports_takes_only_what_hwgen_writes(tmp_path, edit):
    """ports.json is read as hwgen.export writes it: other spellings are refused."""
    import json
    d = json.loads((STUB_DIR / "ports.json").read_text())
    if edit == "direction":
        d["ports"][0] = {k if k != "dir" else "direction": v for k, v in d["ports"][0].items()}
    elif edit == "lower":
        d["params"]["in_w"] = d["params"].pop("IN_W")
    else:
        d["ports"] = {p["name"]: p for p in d["ports"]}
    (tmp_path / "ports.json").write_text(json.dumps(d))
    load_ports(STUB_DIR / "ports.json")                       # the original reads
    with pytest.raises(ValueError):
        load_ports(tmp_path / "ports.json")
