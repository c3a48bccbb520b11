"""Network level: the generated `hwgen_top` of the default digits architecture, on Icarus
and Verilator, against the golden interpreter with the MTJ devices in the loop; the
checker's planted faults; the statistics of the devices as the RTL drives them.

The model has seeded random weights and batch norms (negative gains included) rather
than trained ones: bit-exactness does not depend on training, and this keeps the suite
fast. Builds are cached by content hash (hwgen.sim.regression.build_root), one per simulator."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hwgen.atomic import sha256_file
from hwgen.sim import regression
from hwgen.cli import main
from hwgen.compiler import compile_model
from hwgen.device import device_seeds
from hwgen.ir.core import dumps, loads, replace
from hwgen.ir.interp import run
from hwgen.model.train import DEFAULTS
from support import random_model, require_simulator



@pytest.fixture(scope="session")
def digits_outdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("digits")
    model = random_model(d / "model.pt", DEFAULTS["digits"].arch)
    compile_model(model, d / "out", check_images=16)
    return d / "out"


def test_network_bit_exact(digits_outdir, simulator):
    rep = regression.run_regression(digits_outdir, simulator, images=4, samples=3, seed=3,
                                progress=False)
    assert (rep["images"], rep["mc_samples"]) == (4, 12)
    assert rep["mismatches"] == 0 and rep["device_mismatches"] == 0 and rep["ok"], rep
    assert rep["write_pulse_ns"] == [loads((digits_outdir / "ir.json").read_text()).mtj.write_ns]
    assert rep["cycles_per_sample"] > 0
    # the check is not vacuous: these images' class integers depend on the masks
    ir = loads((digits_outdir / "ir.json").read_text())
    bits, _, _ = regression.image_bits(ir, 4)
    rng = np.random.default_rng(0)
    masks = [(rng.random((4, 8, s.n_groups)) >= 0.5).astype(np.uint8) for s in ir.sites]
    out = run(ir, bits.reshape(4, *ir.in_shape), masks)
    assert (out != out[:, :1]).any()


def _corrupt_weight(src, dst):
    """A copy of OUTDIR whose ir.json (only) has classifier weight (class 0, row 0) flipped:
    that changes class 0's integer by 2 in every sample that keeps row 0's group."""
    shutil.copytree(src, dst)
    ir = loads((dst / "ir.json").read_text())
    last = ir.layers[-1]
    w = bytearray(bytes.fromhex(last.weights[0]))
    w[0] ^= 1
    bad = replace(last, weights=(w.hex(),) + last.weights[1:])
    (dst / "ir.json").write_text(dumps(replace(ir, layers=ir.layers[:-1] + (bad,))))
    # as if compiled so (the manifest names the new ir.json), or sim would refuse the edit
    man = json.loads((dst / "manifest.json").read_text())
    man["files"]["ir.json"] = sha256_file(dst / "ir.json")
    (dst / "manifest.json").write_text(json.dumps(man))
    return dst


def test_cli_sim_exits_nonzero_on_corrupted_ir(digits_outdir, tmp_path, capsys):
    sim = require_simulator("icarus")
    good = tmp_path / "good.json"
    assert main(["sim", str(digits_outdir), "--simulator", sim, "--images", "3",
                 "--samples", "2", "--json", str(good)]) == 0
    assert json.loads(good.read_text())["mismatches"] == 0
    bad_dir = _corrupt_weight(digits_outdir, tmp_path / "bad")
    bad = tmp_path / "bad.json"
    assert main(["sim", str(bad_dir), "--simulator", sim, "--images", "3", "--samples", "2",
                 "--json", str(bad)]) == 1
    rep = json.loads(bad.read_text())
    assert rep["mismatches"] > 0 and not rep["ok"]
    fm = rep["first_mismatch"]
    assert fm["class"] == 0 and abs(fm["expected"][0] - fm["observed"][0]) == 2
    out = capsys.readouterr().out
    assert "FAIL" in out and f"waveform: {rep['waveform']}" in out
    assert Path(rep["waveform"]).stat().st_size > 0


def test_swapped_device_seeds_in_scoreboard_are_caught(digits_outdir):
    ir = loads((digits_outdir / "ir.json").read_text())
    seeds = device_seeds(0, ir.n_interfaces)
    seeds[[0, ir.n_interfaces - 1]] = seeds[[ir.n_interfaces - 1, 0]]
    rep = regression.run_regression(digits_outdir, require_simulator("icarus"), images=3, samples=2, seed=0,
                                progress=False, waves_on_mismatch=False, scoreboard_seeds=seeds)
    assert rep["device_mismatches"] > 0 and not rep["ok"]
    assert rep["first_device_mismatch"]["interface"] in (0, ir.n_interfaces - 1)


def test_shards_merge_to_the_whole_run(digits_outdir, tmp_path):
    sim = require_simulator("verilator")
    whole = regression.run_regression(digits_outdir, sim, images=5, samples=2, seed=1,
                                  progress=False)
    parts = [regression.run_regression(digits_outdir, sim, images=5, samples=2, seed=1,
                                   shard=(i, 2), progress=False) for i in range(2)]
    merged = regression.merge_reports(parts)
    assert [p["image_range"] for p in parts] == [[0, 2], [2, 5]]
    for k in ("images", "mc_samples", "mismatches", "device_mismatches"):
        assert merged[k] == whole[k]
    assert [s["drops"] for s in merged["sites"]] == [s["drops"] for s in whole["sites"]]
    # local parallel shards (--jobs) merge into the same report
    jobs = regression.run_regression(digits_outdir, sim, images=5, samples=2, seed=1, jobs=2,
                                 progress=False)
    assert [s["image_range"] for s in jobs["shards"]] == [[0, 2], [2, 5]]
    assert [s["drops"] for s in jobs["sites"]] == [s["drops"] for s in whole["sites"]]
    # the CLI merge of the shard reports gives the same counts
    files = []
    for i, p in enumerate(parts):
        files.append(tmp_path / f"s{i}.json")
        files[-1].write_text(json.dumps(p))
    assert main(["sim", str(digits_outdir), "--merge", *map(str, files),
                 "--json", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["mc_samples"] == 10


def test_device_statistics_through_the_rtl(digits_outdir):
    """Statistics level: the draws the RTL's pins produced (reset before every write, the
    IR's pulse width and code) have each interface's realised rate and no correlation
    between interfaces or consecutive samples (bounds in sim/stats.py)."""
    rep = regression.run_regression(digits_outdir, require_simulator("verilator"), images=20, samples=32, seed=5,
                                progress=False)
    assert rep["ok"]
    assert all(s["inside"] for s in rep["sites"]), rep["sites"]
    ind = rep["independence"]
    assert ind["draws"] == 640 and ind["rate_failures"] == 0
    assert ind["max_pair_r"] < ind["pair_bound"] and ind["max_lag1_r"] < ind["lag1_bound"]


def test_rtl_is_checked_against_the_torch_model_directly(digits_outdir, tmp_path):
    """The regression runs the model.pt that OUTDIR was compiled from (its copy, checked by
    hash) in MC mode with the devices' masks; a torch model with one flipped weight is
    caught although the RTL still equals the golden model."""
    import torch as _torch

    from hwgen.model.io import load_checkpoint, save_model
    from hwgen.model.io import build_model
    rep = regression.run_regression(digits_outdir, require_simulator("icarus"), images=4,
                                    samples=3, seed=5, progress=False)
    ref = rep["reference"]
    assert ref["kind"] == "torch" and ref["ok"] and ref["samples"] == 12
    assert ref["sample_mismatches"] == 0 and ref["prediction_mismatches"] == 0
    assert "vs torch: 12/12 samples equal" in regression.summary_line(rep)
    ckpt = load_checkpoint(digits_outdir / "model.pt")
    net = build_model(ckpt)
    with _torch.no_grad():                      # flip one classifier weight's sign
        w = net.blocks[-1].layer.weight
        w[3, 5] = -w[3, 5] if w[3, 5] != 0 else -1.0
    save_model(tmp_path / "bad.pt", net, ckpt["meta"])
    bad = regression.run_regression(digits_outdir, "icarus", images=4, samples=3, seed=5,
                                    progress=False, waves_on_mismatch=False,
                                    reference_model=tmp_path / "bad.pt")
    assert bad["mismatches"] == 0 and bad["device_mismatches"] == 0     # RTL == golden
    assert bad["reference"]["ok"] is False and not bad["ok"]
    assert bad["reference"]["sample_mismatches"] > 0


def test_trained_strided_model_compiles_and_simulates_bit_exact(tmp_path, capsys):
    """A model hwgen trains with a stride-2 conv and a gapped pool (2, stride 3; the
    hardware refuses overlapping pools) passes compile's float-vs-integer check, and its RTL on Icarus equals the golden
    model (devices in the loop) and the torch model, sample by sample."""
    m, out, j = tmp_path / "m.pt", tmp_path / "out", tmp_path / "sim.json"
    assert main(["train", "--dataset", "digits", "--epochs", "2", "--dropout", "spatial",
                 "--arch", "c8,p2s3,c8s2,f10", "-o", str(m)]) == 0, capsys.readouterr().err
    assert main(["compile", str(m), "-o", str(out), "--check-images", "64", "--lanes", "4"]) == 0, \
        capsys.readouterr().err
    ir = loads((out / "ir.json").read_text())
    assert [(l.stride, l.pool, l.pool_stride) for l in ir.layers] == [
        ((1, 1), 2, 3), ((2, 2), 1, None), ((1, 1), 1, None)]
    assert main(["sim", str(out), "--simulator", require_simulator("icarus"), "--images", "3",
                 "--samples", "3", "--seed", "2", "--json", str(j)]) == 0, capsys.readouterr().err
    rep = json.loads(j.read_text())
    assert rep["ok"] and rep["mismatches"] == 0 and rep["device_mismatches"] == 0, rep
    ref = rep["reference"]
    assert ref["kind"] == "torch" and ref["ok"] and ref["sample_mismatches"] == 0


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_row_serial_design_simulates_bit_exact(tmp_path, capsys, simulator):
    """`hwgen compile --row-splits 1` on the digits demo's architecture (a 512-row
    classifier: four 128-row splits read one at a time through one tile row): the
    exported Verilog equals the golden model (devices in the loop) and the torch model,
    sample by sample, at the schedule's cycles per sample."""
    m, out, j = tmp_path / "m.pt", tmp_path / "out", tmp_path / "sim.json"
    assert main(["train", "--dataset", "digits", "--epochs", "1", "--dropout", "spatial",
                 "-o", str(m)]) == 0, capsys.readouterr().err
    assert main(["compile", str(m), "-o", str(out), "--check-images", "16", "--lanes", "2",
                 "--row-splits", "1"]) == 0, capsys.readouterr().err
    ir = loads((out / "ir.json").read_text())
    assert [l.plan.passes for l in ir.layers] == [1, 4]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["row_splits"] == 1
    assert main(["sim", str(out), "--simulator", require_simulator(simulator), "--images", "3",
                 "--samples", "3", "--json", str(j)]) == 0, capsys.readouterr().err
    rep = json.loads(j.read_text())
    assert rep["ok"] and rep["mismatches"] == 0 and rep["device_mismatches"] == 0, rep
    assert rep["reference"]["ok"] and rep["reference"]["sample_mismatches"] == 0
    from hwgen.hw.plan import cycle_bound
    assert rep["cycles_per_sample"] == cycle_bound(ir).per_sample
