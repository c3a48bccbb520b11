"""Outputs never destroy what hwgen did not write (hwgen.atomic), and a compiled folder is
checked before it is used (hwgen.design).

Set HWGEN_TEST_OLD_ATOMIC=FILE (a module holding the old `atomic_dir`, e.g. from
`git show <rev>:hwgen/atomic.py`) to run the folder cases against it with the up-front
check disabled: they must fail there.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import hwgen.atomic as atomic
import hwgen.compiler as compile_mod
from hwgen.atomic import is_own_file, write_bytes
from hwgen.cli import main
from hwgen.compiler import compile_model
from hwgen.design import Design, load_design, read_ir
from hwgen.errors import HwgenError
from hwgen.ir.core import dumps, loads, replace
from hwgen.ir.verify import verify
from hwgen.model.io import save_model
from support import random_net, seal_outdir

FAST = ("--no-verilog", "--check-images", "0")


@pytest.fixture(autouse=True)
def old_atomic(monkeypatch):
    """With HWGEN_TEST_OLD_ATOMIC set, compile writes through the old atomic_dir, unchecked."""
    src = os.environ.get("HWGEN_TEST_OLD_ATOMIC")
    if src:
        spec = importlib.util.spec_from_file_location("old_atomic", src)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        monkeypatch.setattr(compile_mod, "atomic_dir", lambda path, inputs=(): mod.atomic_dir(path))
        monkeypatch.setattr(compile_mod, "check_output_dir", lambda *a, **k: None)


@pytest.fixture(scope="module")
def model_pt(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "net.pt"
    save_model(path, random_net("c4,p2,f10", (1, 8, 8), "spatial", seed=3), {"dataset": "digits"})
    return path


@pytest.fixture(scope="module")
def verilog_outdir(tmp_path_factory, model_pt):
    """A compiled OUTDIR with Verilog (copied by the tests that edit it)."""
    out = tmp_path_factory.mktemp("v") / "out"
    compile_model(model_pt, out, check_images=0, lanes=4)
    return out


def tree(d: Path) -> dict:
    """Every entry under d (files by content, folders as None), hidden ones included."""
    return {p.relative_to(d).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in sorted(d.rglob("*"))}


def run(capsys, *argv) -> tuple[int, list[str]]:
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err.strip().splitlines()


def compile_cli(capsys, model, out, *extra):
    return run(capsys, "compile", model, "-o", out, *FAST, *extra)


def user_folder(d: Path) -> Path:
    (d / "sub").mkdir(parents=True)
    (d / "thesis.tex").write_text("\\chapter{Results}\n")
    (d / "sub" / "data.csv").write_text("a,b\n1,2\n")
    return d


# -- folders ------------------------------------------------------------------------------------

def test_a_user_folder_is_refused_and_unchanged(tmp_path, model_pt, capsys):
    d = user_folder(tmp_path / "mine")
    before = tree(tmp_path)
    rc, err = compile_cli(capsys, model_pt, d)
    assert rc == 2 and len(err) == 1, err
    assert str(d) in err[0] and "not an earlier hwgen output" in err[0] and "remove it" in err[0]
    assert tree(tmp_path) == before           # thesis.tex and sub/data.csv, nothing else


def test_an_empty_or_new_folder_is_fine(tmp_path, model_pt, capsys):
    (tmp_path / "empty").mkdir()
    for d in (tmp_path / "empty", tmp_path / "new" / "deeper"):
        rc, err = compile_cli(capsys, model_pt, d)
        assert rc == 0, err
        assert (d / "manifest.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "new"]


def test_recompiling_into_a_previous_output_works(tmp_path, model_pt, capsys):
    out = tmp_path / "out"
    assert compile_cli(capsys, model_pt, out)[0] == 0
    first = tree(out)
    # hwgen's own by-products in OUTDIR do not stop a recompile: report's cost.json/.png
    assert run(capsys, "report", out)[0] == 0
    capsys.readouterr()
    assert (out / "cost.json").is_file() and (out / "cost.png").is_file()
    (out / "sim_report.json").write_text(json.dumps({"format": "hwgen-sim-report"}))
    rc, err = compile_cli(capsys, model_pt, out)
    assert rc == 0, err
    assert tree(out) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_previous_output_with_a_foreign_file_is_refused(tmp_path, model_pt, capsys):
    out = tmp_path / "out"
    assert compile_cli(capsys, model_pt, out)[0] == 0
    (out / "notes").mkdir()
    (out / "notes" / "thesis.tex").write_text("mine")
    before = tree(tmp_path)
    rc, err = compile_cli(capsys, model_pt, out)
    assert rc == 2 and len(err) == 1 and "notes/thesis.tex" in err[0] and "did not write" in err[0]
    assert tree(tmp_path) == before
    # an edited file of its own (a tampered ir.json) is no obstacle: recompiling mends it
    (out / "notes" / "thesis.tex").unlink()
    (out / "notes").rmdir()
    (out / "ir.json").write_text("edited")
    assert compile_cli(capsys, model_pt, out)[0] == 0
    load_design(out)


@pytest.mark.parametrize("target", [".", ".."])
def test_dot_and_dotdot_are_refused_leaving_nothing(tmp_path, model_pt, capsys, monkeypatch,
                                                    target):
    work = tmp_path / "work"
    user_folder(work)
    shutil.copy(model_pt, work / "net.pt")
    monkeypatch.chdir(work)
    before = tree(tmp_path)
    rc, err = compile_cli(capsys, "net.pt", target)
    assert rc == 2 and len(err) == 1 and "current folder or one above it" in err[0], err
    assert tree(tmp_path) == before            # no ..tmp.XXXX folder, nothing removed


def test_the_models_own_folder_is_refused(tmp_path, model_pt, capsys, monkeypatch):
    proj = tmp_path / "proj"
    (proj / "models").mkdir(parents=True)
    (proj / "train.py").write_text("print('train')\n")
    shutil.copy(model_pt, proj / "models" / "net.pt")
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    for out in (proj / "models", proj):       # the model's folder, and one above it
        rc, err = compile_cli(capsys, proj / "models" / "net.pt", out)
        assert rc == 2 and len(err) == 1 and "holds the input" in err[0], err
    assert tree(tmp_path) == before


def test_an_existing_file_is_not_a_folder(tmp_path, model_pt, capsys):
    (tmp_path / "f").write_text("mine")
    rc, err = compile_cli(capsys, model_pt, tmp_path / "f")
    assert rc == 2 and "not a folder" in err[0]
    assert (tmp_path / "f").read_text() == "mine"


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_write_leaves_the_old_output_and_no_temporary(tmp_path, model_pt,
                                                                     monkeypatch, exc):
    out = tmp_path / "out"
    compile_model(model_pt, out, check_images=0, verilog=False)
    before = tree(tmp_path)

    def boom(ir):
        raise exc("interrupted")
    monkeypatch.setattr(compile_mod, "dump", boom)        # after ir.json, before ir.txt
    with pytest.raises(exc):
        compile_model(model_pt, out, check_images=0, verilog=False)
    assert tree(tmp_path) == before
    with pytest.raises(exc):                               # and with no earlier output
        compile_model(model_pt, tmp_path / "fresh", check_images=0, verilog=False)
    assert tree(tmp_path) == before


@pytest.mark.parametrize("previous", [True, False])
def test_a_failed_final_rename_restores_the_old_output(tmp_path, model_pt, monkeypatch, previous):
    out = tmp_path / "out"
    if previous:
        compile_model(model_pt, out, check_images=0, verilog=False)
    before = tree(tmp_path)
    real = os.replace

    def failing(src, dst):
        if ".tmp." in Path(src).name:                      # the new folder's rename into place
            raise OSError(16, "Device or resource busy")
        return real(src, dst)
    monkeypatch.setattr(atomic.os, "replace", failing)
    with pytest.raises(HwgenError, match="Device or resource busy"):
        compile_model(model_pt, out, check_images=0, verilog=False)
    assert tree(tmp_path) == before                        # old output back, no .tmp./.old.


def test_an_interrupt_after_the_old_folder_moved_aside_restores_it(tmp_path, model_pt,
                                                                  monkeypatch):
    out = tmp_path / "out"
    compile_model(model_pt, out, check_images=0, verilog=False)
    before = tree(tmp_path)
    real = os.replace

    def interrupted(src, dst):
        if ".tmp." in Path(src).name:
            raise KeyboardInterrupt
        return real(src, dst)
    monkeypatch.setattr(atomic.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compile_model(model_pt, out, check_images=0, verilog=False)
    assert tree(tmp_path) == before


# -- single files ------------------------------------------------------------------------------

def test_own_files_are_recognised_by_their_mark(tmp_path):
    import io

    from hwgen.figures import png_bytes, pyplot

    fig = pyplot().figure()
    (tmp_path / "a.png").write_bytes(png_bytes(fig))
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (tmp_path / "a.json").write_text('{"format": "hwgen-cost"}')
    (tmp_path / "b.json").write_text('{"format": "mine"}')
    (tmp_path / "c.json").write_text('[1, 2]')
    buf = io.BytesIO()
    np.savez(buf, x=np.zeros(2), **{atomic.NPZ_MARK: np.array("hwgen-predict")})
    (tmp_path / "a.npz").write_bytes(buf.getvalue())
    np.savez(tmp_path / "b.npz", x=np.zeros(2))
    save_model(tmp_path / "a.pt", random_net("f10", (1, 4, 4), "none", seed=0), {})
    import torch
    torch.save({"format": "something"}, tmp_path / "b.pt")
    (tmp_path / "a.md").write_text("# hwgen study: x\n")
    (tmp_path / "b.md").write_text("# my notes\n")
    (tmp_path / "a.tex").write_text("hwgen")
    for name in ("a.png", "a.json", "a.npz", "a.pt", "a.md"):
        assert is_own_file(tmp_path / name), name
    for name in ("b.png", "b.json", "c.json", "b.npz", "b.pt", "b.md", "a.tex", "none.json"):
        assert not is_own_file(tmp_path / name), name


def test_write_bytes_refuses_a_foreign_file_and_keeps_it(tmp_path):
    f = tmp_path / "r.json"
    f.write_text('{"mine": 1}')
    with pytest.raises(HwgenError, match="not an earlier hwgen output"):
        write_bytes(f, b'{"format": "hwgen-x"}\n')
    assert f.read_text() == '{"mine": 1}'
    with pytest.raises(HwgenError, match="is a folder"):
        write_bytes(tmp_path, b"x")
    write_bytes(tmp_path / "new.json", b'{"format": "hwgen-x"}\n')
    write_bytes(tmp_path / "new.json", b'{"format": "hwgen-x", "v": 2}\n')    # its own: fine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.json", "r.json"]


def test_an_interrupted_file_write_leaves_no_temporary(tmp_path, monkeypatch):
    f = tmp_path / "r.json"
    f.write_text('{"format": "hwgen-x"}')

    def failing(*a):
        raise KeyboardInterrupt
    monkeypatch.setattr(atomic.os, "chmod", failing)
    with pytest.raises(KeyboardInterrupt):
        write_bytes(f, b'{"format": "hwgen-x", "v": 2}')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
    assert f.read_text() == '{"format": "hwgen-x"}'


def test_train_output_refuses_a_foreign_model_pt(tmp_path):
    f = tmp_path / "model.pt"
    f.write_bytes(b"my own weights")
    with pytest.raises(HwgenError, match="not an earlier hwgen output"):
        save_model(f, random_net("f10", (1, 4, 4), "none", seed=0), {})
    assert f.read_bytes() == b"my own weights"
    rc = main(["train", "--arch", "f10", "-o", str(f)])    # refused before training
    assert rc == 2 and f.read_bytes() == b"my own weights"


def test_every_command_refuses_to_overwrite_a_foreign_file(tmp_path, model_pt, verilog_outdir,
                                                          capsys):
    out = tmp_path / "out"
    compile_model(model_pt, out, check_images=0, verilog=False)
    x = np.random.default_rng(0).random((3, 1, 8, 8), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    mine = {"y.npz": b"PK not hwgen's", "r.json": b'{"mine": true}', "p": None}
    for name, body in mine.items():
        if body is None:
            (tmp_path / name).mkdir()
        else:
            (tmp_path / name).write_bytes(body)
    (tmp_path / "p" / "reliability.png").write_bytes(b"mine")
    before = tree(tmp_path)
    cases = [
        ("predict", out, "--inputs", tmp_path / "x.npy", "-o", tmp_path / "y.npz"),
        ("predict", out, "--inputs", tmp_path / "x.npy", "-o", tmp_path / "x.npy"),
        ("report", out, "--json", tmp_path / "r.json"),
        ("summary", out, "--json", tmp_path / "r.json"),
        ("sim", verilog_outdir, "--json", tmp_path / "r.json"),
        ("bench", "cycles", out, "--json", tmp_path / "r.json"),
        ("eval", model_pt, "--json", tmp_path / "r.json"),
        ("eval", model_pt, "--plots", tmp_path / "p"),
    ]
    for argv in cases:
        rc, err = run(capsys, *argv)
        assert rc == 2 and len(err) == 1 and "not an earlier hwgen output" in err[0], (argv, err)
    assert tree(tmp_path) == before
    # a report's own files are hwgen's, so a second report replaces them
    (out / "cost.png").write_bytes(b"mine")
    rc, err = run(capsys, "report", out)
    assert rc == 2 and "cost.png" in err[0]
    (out / "cost.png").unlink()
    assert run(capsys, "report", out)[0] == 0
    assert run(capsys, "report", out)[0] == 0
    # predict overwrites its own earlier output
    for _ in range(2):
        assert run(capsys, "predict", out, "--inputs", tmp_path / "x.npy", "-o",
                   tmp_path / "y2.npz")[0] == 0
    with np.load(tmp_path / "y2.npz") as z:
        assert str(z[atomic.NPZ_MARK]) == "hwgen-predict" and z["prediction"].shape == (3,)


def test_the_demo_checks_its_outputs_first(tmp_path, capsys):
    work = tmp_path / "demo"
    (work / "rtl").mkdir(parents=True)
    (work / "rtl" / "thesis.tex").write_text("mine")
    before = tree(tmp_path)
    rc, err = run(capsys, "demo", "--workdir", work)
    assert rc == 2 and len(err) == 1 and "rtl" in err[0]
    assert tree(tmp_path) == before


# -- a compiled folder is checked before it is used -----------------------------------------------

def test_load_design_of_a_compiled_folder(verilog_outdir):
    d = load_design(verilog_outdir)
    assert isinstance(d, Design) and d.outdir == verilog_outdir
    assert d.ir == loads((verilog_outdir / "ir.json").read_text())
    assert d.lanes == 4 and d.options["lanes"] == 4 and d.has_verilog
    assert d.model_file == verilog_outdir / "model.pt"
    assert d.path("hwgen_top.v") == verilog_outdir / "hwgen_top.v"
    with pytest.raises(HwgenError, match="has no cost.json"):
        d.path("cost.json")
    with pytest.raises(Exception):
        d.lanes = 8                                   # frozen
    assert read_ir(verilog_outdir / "ir.json")[1] is not None


def _tampered(src: Path, dst: Path, name: str) -> Path:
    shutil.copytree(src, dst)
    f = dst / name
    if name == "ir.json":       # a valid IR, one classifier weight flipped: only the hash tells
        ir = loads(f.read_text())
        last = ir.layers[-1]
        w = bytearray(bytes.fromhex(last.weights[0]))
        w[0] ^= 1
        bad = replace(last, weights=(w.hex(),) + last.weights[1:])
        f.write_text(dumps(replace(ir, layers=ir.layers[:-1] + (bad,))))
        verify(loads(f.read_text()))
    else:
        f.write_bytes(f.read_bytes() + b"\n// edited\n")
    return dst


@pytest.mark.parametrize("name", ["ir.json", "hwgen_top.v", "ports.json"])
def test_an_edited_file_is_refused_by_every_reader(tmp_path, verilog_outdir, capsys, name):
    bad = _tampered(verilog_outdir, tmp_path / "bad", name)
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 8, 8), np.float32))
    before = tree(tmp_path)
    want = (f"{bad / name}: sha256 differs from manifest.json (edited after hwgen compile?); "
            f"recompile")
    for argv in (("predict", bad, "--inputs", tmp_path / "x.npy", "-o", tmp_path / "y.npz"),
                 ("sim", bad, "--images", "1", "--samples", "1"),
                 ("report", bad), ("summary", bad), ("summary", bad / "ir.json"),
                 ("bench", "cycles", bad), ("bench", "sim", bad),
                 ("faults", bad, "--faults", "1", "--held", "2", "--test-images", "1")):
        rc, err = run(capsys, *argv)
        assert rc == 2 and err == [f"hwgen: error: {want}"], (argv, err)
    import hwgen
    with pytest.raises(HwgenError, match="sha256 differs"):      # the Python API
        hwgen.load(bad)
    assert tree(tmp_path) == before                   # nothing written, no cost.json


def test_an_untampered_folder_still_works(tmp_path, verilog_outdir, capsys):
    from hwgen.sim.regression import load_outdir

    good = tmp_path / "good"
    shutil.copytree(verilog_outdir, good)
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 8, 8), np.float32))
    assert run(capsys, "predict", good, "--inputs", tmp_path / "x.npy", "-o",
               tmp_path / "y.npz")[0] == 0
    assert run(capsys, "report", good)[0] == 0
    assert run(capsys, "summary", good)[0] == 0
    ir, tp = load_outdir(good)                        # what `hwgen sim` starts from
    assert ir == load_design(good).ir and tp.classes == ir.n_classes


def test_a_missing_or_unlisted_file_and_an_invalid_ir_are_refused(tmp_path, verilog_outdir):
    d = tmp_path / "d"
    shutil.copytree(verilog_outdir, d)
    (d / "ir.txt").unlink()
    with pytest.raises(HwgenError, match=r"ir.txt: missing \(listed in manifest.json\)"):
        load_design(d)
    # an IR that fails verification is refused even when the manifest names its hash
    e = tmp_path / "e"
    e.mkdir()
    ir = loads((verilog_outdir / "ir.json").read_text())
    (e / "ir.json").write_text(dumps(replace(ir, layers=ir.layers[:1])))
    seal_outdir(e)
    with pytest.raises(HwgenError, match="not a valid hwgen IR"):
        load_design(e)
    # no manifest at all
    (e / "manifest.json").unlink()
    with pytest.raises(HwgenError, match="no manifest.json"):
        load_design(e)
    # a no-Verilog folder has no Verilog for sim
    f = tmp_path / "f"
    shutil.copytree(verilog_outdir, f)
    (f / "hwgen_top.v").unlink()
    man = json.loads((f / "manifest.json").read_text())
    for n in ("hwgen_top.v", "ports.json"):
        del man["files"][n]
    (f / "manifest.json").write_text(json.dumps(man))
    from hwgen.sim.regression import load_outdir
    with pytest.raises(HwgenError, match="has no ports.json"):
        load_outdir(f)
