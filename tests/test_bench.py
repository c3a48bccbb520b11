"""`hwgen bench {train,golden,cycles,sim}`: the plumbing of each bench on tiny inputs (the
numbers they measure are printed and recorded, never asserted as speeds)."""

import json
import re

import pytest

from hwgen.bench import common
from hwgen.bench.cycles import measure_cycles
from hwgen.bench.golden import bench_golden
from hwgen.cli import main
from hwgen.hw.plan import READ_LATENCY, cycle_bound
from hwgen.passes import reschedule
from support import random_ir, seal_outdir
from hwgen.ir.core import dumps
from hwgen.model.io import save_model

from support import random_net, require_simulator

SPEC = "c4,p2,f10"


@pytest.fixture(scope="module")
def digits_pt(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "tiny.pt"
    save_model(path, random_net(SPEC, (1, 8, 8), "spatial", seed=3), {"dataset": "digits"})
    return path


def _record(path, bench):
    rec = json.loads(path.read_text())
    assert rec["format"] == common.FORMAT and rec["version"] == common.VERSION
    assert rec["bench"] == bench
    ctx = rec["context"]
    assert ctx["commit"] is None or re.fullmatch(r"[0-9a-f]{40}", ctx["commit"])
    assert len(ctx["load_avg_start"]) == 3 and len(ctx["load_avg_end"]) == 3
    return rec


def test_table_aligns_and_formats():
    text = common.table(["name", "n", "rate"], [["a", 1234, 0.5], ["bb", None, 12.25]], "T")
    lines = text.splitlines()
    assert lines[0] == "T" and set(lines[2]) == {"-"}
    assert lines[1] == "name      n    rate"
    assert lines[3] == "a     1,234   0.500" and lines[4] == "bb        -  12.250"
    assert common.fmt(0.0123) == "0.0123" and common.fmt(True) == "True"


def test_finish_writes_the_record_atomically(tmp_path, capsys):
    rec = common.new_record("x", "lbl")
    rec["value"] = 3
    assert common.finish(rec, "hello", tmp_path / "sub" / "r.json") == "hello\n"
    assert capsys.readouterr().out == ""           # the library prints nothing
    got = _record(tmp_path / "sub" / "r.json", "x")
    assert got["value"] == 3 and got["label"] == "lbl"
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["r.json"]


def test_bench_cycles_on_a_random_ir(tmp_path, capsys):
    ir = random_ir(SPEC, (1, 8, 8), seed=1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "ir.json").write_text(dumps(reschedule(ir, 3)))
    # the lanes are the IR's plans: a ports.json that says otherwise is not read
    (out / "ports.json").write_text(json.dumps({"params": {"lanes": 5}}))
    seal_outdir(out)
    irf = tmp_path / "ir.json"
    irf.write_text(dumps(ir))
    assert main(["bench", "cycles", str(out), str(irf), "--samples", "3",
                 "--json", str(tmp_path / "c.json"), "--label", "tiny"]) == 0
    rec = _record(tmp_path / "c.json", "cycles")
    assert rec["label"] == "tiny"
    # each at its IR's read plans: 3 lanes, and the default (the array)
    assert [(r["target"], r["lanes"]) for r in rec["results"]] == [(str(out), 3),
                                                                   (str(irf), "array")]
    for r in rec["results"]:
        cb = cycle_bound(reschedule(ir, None if r["lanes"] == "array" else r["lanes"]))
        assert r["bound"] == cb.per_sample and r["spec"] == SPEC
        assert [l["bound"] for l in r["layers"]] == list(cb.per_layer)
        assert len(r["cycles_per_sample"]) == 2
        # each layer exactly the schedule's walk, plus its start cycle and the tile's read
        # latency; the sample period is the schedule's or, for a sample this short, the
        # MTJ-RNG cycle's (reset, write, latch)
        assert [l["start_to_done"] for l in r["layers"]] == [b + 1 + READ_LATENCY
                                                             for b in cb.per_layer]
        assert min(r["cycles_per_sample"]) >= cb.per_sample
    text = capsys.readouterr().out
    assert "bench cycles" in text and SPEC in text
    # the bound depends on lanes, and so does the measurement
    assert (measure_cycles(reschedule(ir, 1), samples=2)["bound"]
            > measure_cycles(reschedule(ir, 8), samples=2)["bound"])
    # --lanes re-runs the schedule pass on the IR
    assert main(["bench", "cycles", str(irf), "--lanes", "1", "--samples", "2",
                 "--json", str(tmp_path / "c1.json")]) == 0
    (r1,) = _record(tmp_path / "c1.json", "cycles")["results"]
    assert r1["lanes"] == 1 and r1["bound"] == cycle_bound(reschedule(ir, 1)).per_sample
    # --row-splits too, at the IR's lanes without --lanes: the row-serial schedule's
    # bound, met, on a tiling with row splits
    small = random_ir(SPEC, (1, 8, 8), seed=1, tile=(16, 8))
    irs = tmp_path / "small.json"
    irs.write_text(dumps(reschedule(small, 3)))
    assert main(["bench", "cycles", str(irs), "--row-splits", "1", "--samples", "2",
                 "--json", str(tmp_path / "c2.json")]) == 0
    (r2,) = _record(tmp_path / "c2.json", "cycles")["results"]
    ser = reschedule(small, 3, 1)
    assert [l["passes"] for l in r2["layers"]] == [l.plan.passes for l in ser.layers]
    assert max(l["passes"] for l in r2["layers"]) > 1
    assert r2["bound"] == cycle_bound(ser).per_sample
    assert [l["start_to_done"] for l in r2["layers"]] == [
        b + 1 + READ_LATENCY for b in cycle_bound(ser).per_layer]


def test_bench_cycles_bad_input_is_one_line(tmp_path, capsys):
    assert main(["bench", "cycles", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0]
    (tmp_path / "ir.json").write_text('{"format": "x"}')
    assert main(["bench", "cycles", str(tmp_path / "ir.json"), "--json", str(tmp_path / "c.json")]) == 2
    assert "not a valid hwgen IR" in capsys.readouterr().err
    assert not (tmp_path / "c.json").exists()


def test_bench_golden(digits_pt, tmp_path, capsys):
    r = bench_golden(digits_pt, images=8, samples=2, repeats=1)
    assert (r["images"], r["samples"], r["spec"]) == (8, 2, SPEC)
    assert r["sample_agreement"] == 1.0
    assert r["golden_samples_per_s"] > 0 and r["torch_samples_per_s"] > 0
    assert main(["bench", "golden", "--model", str(digits_pt), "--images", "4", "--samples", "2",
                 "--repeats", "1", "--json", str(tmp_path / "g.json")]) == 0
    rec = _record(tmp_path / "g.json", "golden")
    assert rec["images"] == 4 and rec["sample_agreement"] == 1.0
    assert "golden interp" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["bench", "golden"])
    assert e.value.code == 2 and "--model" in capsys.readouterr().err


def test_bench_train_on_digits(tmp_path, capsys):
    assert main(["bench", "train", "--dataset", "digits", "--images", "16", "--samples", "2",
                 "--json", str(tmp_path / "t.json")]) == 0
    rec = _record(tmp_path / "t.json", "train")
    assert set(rec["train"]) == {"spatial", "element"} and rec["dataset"] == "digits"
    assert all(t["seconds_per_epoch"] > 0 and t["images"] > 0 for t in rec["train"].values())
    assert (rec["mc"]["images"], rec["mc"]["samples"]) == (16, 2)
    assert rec["context"]["torch_threads"] >= 1
    assert "MC inference T=2" in capsys.readouterr().out


def _bench_sim(tmp_path, capsys, model, simulator):
    out = tmp_path / "out"
    argv = ["bench", "sim", str(model), "--simulator", simulator, "--images", "1",
            "--samples", "2", "--check-images", "4", "--lanes", "4", "-o", str(out),
            "--json", str(tmp_path / "s.json")]
    assert main(argv) == 0, capsys.readouterr().err
    rec = _record(tmp_path / "s.json", "sim")
    assert rec["input"]["kind"] == "model"
    c = rec["compile"]
    assert all(c[k] > 0 for k in ("ir_s", "float_check_s", "export_s", "total_s"))
    assert c["total_s"] >= c["ir_s"] + c["float_check_s"] + c["export_s"]
    assert c["check_images"] == 4 and c["bit_agreement"] == 1.0
    assert rec["verilog_bytes"] == (out / "hwgen_top.v").stat().st_size > 0
    assert rec["design"]["lanes"] == 4 and rec["design"]["spec"] == SPEC
    assert rec["build"]["simulator"] == simulator and rec["build"]["seconds"] > 0
    s = rec["sim"]
    assert (s["images"], s["mc_samples"], s["mismatches"], s["ok"]) == (1, 2, 0, True)
    assert s["sim_samples_per_s"] > 0
    text = capsys.readouterr().out
    assert "Verilog export" in text and f"{simulator} build (cold)" in text
    # an OUTDIR: no compile, the same design
    assert main(["bench", "sim", str(out), "--simulator", simulator, "--images", "1",
                 "--samples", "2", "--json", str(tmp_path / "s2.json")]) == 0
    rec2 = _record(tmp_path / "s2.json", "sim")
    assert rec2["compile"] is None and rec2["input"]["kind"] == "outdir"
    assert rec2["verilog_bytes"] == rec["verilog_bytes"] and rec2["sim"]["mismatches"] == 0
    return rec


def test_bench_sim_icarus(digits_pt, tmp_path, capsys):
    _bench_sim(tmp_path, capsys, digits_pt, require_simulator("icarus"))


@pytest.mark.slow
def test_bench_sim_verilator(digits_pt, tmp_path, capsys):
    _bench_sim(tmp_path, capsys, digits_pt, require_simulator("verilator"))


def test_bench_sim_bad_input(digits_pt, tmp_path, capsys):
    assert main(["bench", "sim", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.pt" in err[0]
    out = tmp_path / "out"
    out.mkdir()
    assert main(["bench", "sim", str(out), "--lanes", "2"]) == 2
    assert "--lanes and --tile apply to a model" in capsys.readouterr().err
    assert main(["bench", "sim", str(out), "--json", str(tmp_path / "s.json")]) == 2
    assert "no manifest.json" in capsys.readouterr().err
    assert main(["bench", "sim", str(digits_pt), "--tile", "0x3", "-o", str(tmp_path / "o")]) == 2
    assert "--tile" in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists() and not (tmp_path / "o").exists()


def test_bench_shapes_runs_a_named_shape(tmp_path, capsys):
    rc = main(["bench", "shapes", "--shapes", "digits", "--simulator",
               require_simulator("icarus"), "--images", "1", "--samples", "2", "--lanes", "4",
               "--json", str(tmp_path / "s.json")])
    assert rc == 0
    rec = json.loads((tmp_path / "s.json").read_text())
    (row,) = rec["shapes"]
    assert row["shape"] == "digits" and row["spec"] == "c32,p2,f10"
    assert row["lanes"] == row["design"]["lanes"] == 4
    assert row["sim"]["mismatches"] == 0 and row["sim"]["reference"]["ok"] is True
    assert row["verilog_bytes"] > 0 and row["compile"]["export_s"] > 0
    assert "digits" in capsys.readouterr().out
    assert main(["bench", "shapes", "--shapes", "nope"]) == 2
