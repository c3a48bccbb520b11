"""`hwgen compile`: atomic, deterministic OUTDIR; tile option; float-vs-integer check wired
in; the Verilog hook."""

import hashlib
import json
import sys
import types
from dataclasses import replace

import pytest

import hwgen.compiler as compile_mod
from hwgen.cli import main
from hwgen.ir.core import loads
from hwgen.ir.verify import verify
from hwgen.model.io import save_model

from support import random_net


@pytest.fixture(scope="module")
def model_pt(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "digits_net.pt"
    save_model(path, random_net("c6,p2,c8,p2,f10", (1, 8, 8), "spatial", seed=5),
               {"dataset": "digits"})
    return path


def _compile(capsys, *argv):
    rc = main(["compile", *map(str, argv)])
    return rc, capsys.readouterr().err.strip().splitlines()


def _tree(d):
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_compile_twice_is_byte_identical(tmp_path, model_pt, capsys):
    for out in ("a", "b"):
        rc, err = _compile(capsys, model_pt, "-o", tmp_path / out, "--check-images", "16",
                           "--no-verilog", "--tile", "5x3")
        assert rc == 0, err
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert a == b
    assert set(a) == {"ir.json", "ir.txt", "check.json", "manifest.json", "model.pt"}
    man = json.loads(a["manifest.json"])
    assert man["input"]["sha256"] == hashlib.sha256(model_pt.read_bytes()).hexdigest()
    assert man["options"]["tile"] == [5, 3] and man["options"]["verilog"] is False
    assert set(man["tools"]) == {"hwgen", "numpy", "torch", "amaranth"}
    for name, digest in man["files"].items():
        assert hashlib.sha256(a[name]).hexdigest() == digest
    ir = loads(a["ir.json"].decode())
    verify(ir)
    assert all(l.tile == (5, 3) for l in ir.layers)
    check = json.loads(a["check.json"])
    assert check["ok"] and check["images"] == 16 and check["image_source"].startswith("digits")
    # a second compile into the same OUTDIR replaces it whole, hwgen's by-products included,
    # but a file hwgen did not write stops it (tests/test_outputs.py has the other cases)
    (tmp_path / "a" / "stale.txt").write_text("x")
    rc, err = _compile(capsys, model_pt, "-o", tmp_path / "a", "--check-images", "16",
                       "--no-verilog", "--tile", "5x3")
    assert rc == 2 and len(err) == 1 and "stale.txt" in err[0]
    (tmp_path / "a" / "stale.txt").unlink()
    (tmp_path / "a" / "cost.json").write_text('{"format": "hwgen-cost"}')
    assert _compile(capsys, model_pt, "-o", tmp_path / "a", "--check-images", "16",
                    "--no-verilog", "--tile", "5x3")[0] == 0
    assert _tree(tmp_path / "a") == b


def test_default_outdir(tmp_path, model_pt, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, err = _compile(capsys, model_pt, "--check-images", "0", "--no-verilog")
    assert rc == 0, err
    out = tmp_path / "rtl_out" / f"{model_pt.parent.name}-digits_net"    # folder-stem
    assert (out / "ir.json").is_file()
    assert not (out / "check.json").exists()


@pytest.mark.parametrize("tile", ["0x4", "4x0", "-2x3", "2.5x3", "3", "ax3", "3x3x3"])
def test_impossible_tile(tmp_path, model_pt, capsys, tile):
    rc, err = _compile(capsys, model_pt, "-o", tmp_path / "out", f"--tile={tile}", "--no-verilog")
    assert rc == 2 and len(err) == 1 and "--tile must be RxC" in err[0], err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("tile", ["1x1", "7x3", "1000x1000"])
def test_any_positive_tile_compiles(tmp_path, model_pt, capsys, tile):
    rc, err = _compile(capsys, model_pt, "-o", tmp_path / "out", "--tile", tile,
                       "--check-images", "8", "--no-verilog")
    assert rc == 0, err
    r, c = map(int, tile.split("x"))
    assert loads((tmp_path / "out" / "ir.json").read_text()).layers[1].tile == (r, c)


def test_check_failure_fails_compile_and_writes_nothing(tmp_path, model_pt, capsys, monkeypatch):
    real = compile_mod.run_pipeline

    def planted(ir, cfg):                      # a fold bug: every threshold one higher
        ir = real(ir, cfg)
        l = ir.layers[1]
        return replace(ir, layers=(ir.layers[0], replace(l, thresh=tuple(t + 1 for t in l.thresh)))
                       + ir.layers[2:])
    monkeypatch.setattr(compile_mod, "run_pipeline", planted)
    rc, err = _compile(capsys, model_pt, "-o", tmp_path / "out", "--check-images", "32", "--no-verilog")
    assert rc == 2 and len(err) == 1 and "float-vs-integer check failed" in err[0], err
    assert not (tmp_path / "out").exists()


def test_verilog_hook(tmp_path, model_pt, capsys, monkeypatch):
    calls = []
    fake = types.ModuleType("hwgen.export")

    def export(ir, outdir):
        calls.append(ir.lanes)           # the plan is in the IR, no lanes on the side
        (outdir / "hwgen_top.v").write_text("module hwgen_top; endmodule\n")
    fake.export = export
    monkeypatch.setitem(sys.modules, "hwgen.export", fake)
    rc, err = _compile(capsys, model_pt, "-o", tmp_path / "v", "--check-images", "0", "--lanes", "4")
    assert rc == 0, err
    assert calls == [4]
    # --lanes 4: every layer's reads take ceil(widest column split / 4) beats
    plans = [l["plan"] for l in json.loads((tmp_path / "v" / "ir.json").read_text())["layers"]]
    ir = loads((tmp_path / "v" / "ir.json").read_text())
    assert [p["beats"] for p in plans] == [-(-max(b - a for a, b in l.col_tiles) // 4)
                                           for l in ir.layers]
    assert max(p["beats"] for p in plans) > 1
    man = json.loads((tmp_path / "v" / "manifest.json").read_text())
    assert "hwgen_top.v" in man["files"] and man["options"]["lanes"] == 4
    rc, _ = _compile(capsys, model_pt, "-o", tmp_path / "nv", "--check-images", "0", "--no-verilog")
    assert rc == 0 and calls == [4] and not (tmp_path / "nv" / "hwgen_top.v").exists()
    # the default: the array, one beat per read, "array" in the manifest
    rc, _ = _compile(capsys, model_pt, "-o", tmp_path / "a", "--check-images", "0")
    assert rc == 0 and calls == [4, None]
    man = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert man["options"]["lanes"] == "array"
    plans = [l["plan"] for l in json.loads((tmp_path / "a" / "ir.json").read_text())["layers"]]
    assert [p["beats"] for p in plans] == [1] * len(plans)


def test_export_failure_leaves_no_outdir(tmp_path, model_pt, capsys, monkeypatch):
    from hwgen.errors import HwgenError
    fake = types.ModuleType("hwgen.export")

    def export(ir, outdir):
        (outdir / "half.v").write_text("module")
        raise HwgenError("export failed")
    fake.export = export
    monkeypatch.setitem(sys.modules, "hwgen.export", fake)
    rc, err = _compile(capsys, model_pt, "-o", tmp_path / "v", "--check-images", "0")
    assert rc == 2 and err == ["hwgen: error: export failed"]
    assert not (tmp_path / "v").exists()
    assert [p.name for p in tmp_path.iterdir()] == []      # no temporary directory left


def test_compile_with_verilog_twice_is_byte_identical(tmp_path, capsys):
    """The whole OUTDIR, Verilog from hwgen.export included."""
    path = tmp_path / "tiny.pt"
    save_model(path, random_net("c3,p2,f10", (1, 8, 8), "spatial", seed=2), {"dataset": "digits"})
    for out in ("a", "b"):
        rc, err = _compile(capsys, path, "-o", tmp_path / out, "--check-images", "4", "--lanes", "2")
        assert rc == 0, err
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert a == b and any(name.endswith(".v") for name in a)
    assert set(json.loads(a["manifest.json"])["files"]) == set(a) - {"manifest.json"}


def test_unknown_dataset_checks_on_seeded_images(tmp_path, capsys):
    path = tmp_path / "odd.pt"
    save_model(path, random_net("c3k5,p2,f4", (2, 7, 9), "element", seed=1), {})
    rc, err = _compile(capsys, path, "-o", tmp_path / "o", "--check-images", "8", "--no-verilog")
    assert rc == 0, err
    check = json.loads((tmp_path / "o" / "check.json").read_text())
    assert check["ok"] and check["image_source"].startswith("uniform")


def test_bad_output_paths(tmp_path, model_pt, capsys):
    f = tmp_path / "file"
    f.write_text("keep me")
    for out in (f, f / "sub"):
        rc, err = _compile(capsys, model_pt, "-o", out, "--check-images", "0", "--no-verilog")
        assert rc == 2 and len(err) == 1 and err[0].startswith("hwgen: error: "), err
    assert f.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["file"]
