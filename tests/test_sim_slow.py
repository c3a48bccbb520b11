"""Larger network regressions (marked slow: each is a Verilator build of a Fashion-MNIST
sized design plus minutes of simulation on a 2-core machine). Run with
`pytest -m slow tests/test_sim_slow.py`. Models have seeded random weights (see
test_sim_network.random_model); `hwgen sim` on a trained model is the same check."""


import pytest

from hwgen.sim import regression
from hwgen.compiler import compile_model
from hwgen.model.train import DEFAULTS
from support import require_simulator
from support import random_model

pytestmark = pytest.mark.slow
FASHION = DEFAULTS["fashion-mnist"].arch


@pytest.mark.parametrize("dropout,tile", [("spatial", "128x128"), ("element", "128x128"),
                                          ("spatial", "48x40")])
def test_fashion_network_bit_exact(tmp_path, dropout, tile):
    model = random_model(tmp_path / "m.pt", FASHION, "fashion-mnist", (1, 28, 28), dropout)
    compile_model(model, tmp_path / "out", tile=tile, check_images=8)
    rep = regression.run_regression(tmp_path / "out", require_simulator("verilator"), images=8, samples=16, seed=2,
                                progress=False)
    assert rep["mc_samples"] == 128 and rep["ok"], rep
    assert all(s["inside"] for s in rep["sites"])


def test_digits_network_longer(tmp_path, simulator):
    model = random_model(tmp_path / "m.pt", DEFAULTS["digits"].arch, seed=4)
    compile_model(model, tmp_path / "out", check_images=8)
    rep = regression.run_regression(tmp_path / "out", simulator, images=50, samples=16, seed=9,
                                progress=False)
    assert rep["mc_samples"] == 800 and rep["ok"], rep
    assert rep["independence"]["ok"] and all(s["inside"] for s in rep["sites"])


def test_demo_end_to_end(tmp_path, capsys):
    """`hwgen demo`: train on the digits, compile, export, simulate; a PASS summary."""
    from hwgen.cli import main
    assert main(["demo", "--workdir", str(tmp_path / "demo"), "--simulator", require_simulator("verilator")]) == 0
    out = capsys.readouterr().out
    assert "mismatches 0 (device 0)" in out and "PASS" in out
    assert (tmp_path / "demo" / "rtl" / "hwgen_top.v").is_file()
    assert (tmp_path / "demo" / "sim.json").is_file()
