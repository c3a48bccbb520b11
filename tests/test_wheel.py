"""The wheel is the product: built from this checkout, installed non-editable into a
fresh virtual environment, its `hwgen sim` verifies the checked-in golden example from a
directory outside the checkout (the benches and their runner ship in the package)."""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "rtl_out" / "golden"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Build from a copy of what the sdist would hold: setuptools writes build/ and
    # *.egg-info next to the sources, which must not litter the checkout.
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "hwgen", src / "hwgen", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(src)], check=True)
    (whl,) = out.glob("hwgen-*.whl")
    return whl


def test_the_wheel_holds_the_benches_and_their_runner(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ("hwgen/sim/bench_top.py", "hwgen/sim/bench_layer.py", "hwgen/sim/runner.py",
              "hwgen/sim/regression.py", "hwgen/sim/scoreboard.py", "hwgen/ir/interp.py"):
        assert f in names, f
    assert not any(n.startswith(("sim/", "tests/")) for n in names)


def test_installed_wheel_runs_hwgen_sim_outside_the_checkout(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # The dependencies come from this environment's site-packages, added as a plain path:
    # its .pth files (the editable install of this checkout among them) are not run.
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q",
                    "--no-deps", str(wheel)], check=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["HWGEN_SIM_BUILD"] = str(tmp_path / "build")
    where = subprocess.run([py, "-c", "import hwgen; print(hwgen.__file__)"], cwd=work, env=env,
                           check=True, capture_output=True, text=True).stdout
    assert str(venv) in where and str(ROOT) not in where, where
    rng = np.random.default_rng(0)
    np.save(work / "x.npy", rng.random((3, 1, 6, 6), dtype=np.float32))
    r = subprocess.run([venv / "bin" / "hwgen", "sim", str(GOLDEN), "--simulator", "icarus",
                        "--inputs", "x.npy", "--images", "3", "--samples", "4", "--json",
                        "sim.json"], cwd=work, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "mismatches 0 (device 0)" in r.stdout and "PASS" in r.stdout, r.stdout
