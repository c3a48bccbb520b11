"""The simulation popcount modules (popcount_sim.v, `$countones`) equal the synthesised
adder trees (hwgen_top.v): a Yosys miter decided by ABC's BDD collapse, per width."""

import shutil

import numpy as np
import pytest

from hwgen.export import POPCOUNT_SIM, VERILOG, popcount_sim_verilog, popcount_widths, to_verilog
from hwgen.hw.tile import CrossbarTile
from hwgen.sim.equiv import EquivFailed, prove_outdir, prove_popcount

from support import GOLDEN, require_tool


@pytest.fixture(autouse=True)
def _yosys():
    """The proof runs Debian's yosys and yosys-abc, which ./setup.sh installs."""
    require_tool("yosys")
    require_tool("yosys-abc")


def _synth(width):
    w = np.random.default_rng(width).integers(0, 2, (2, width))
    return to_verilog(CrossbarTile(width, 2, 1, w), name="tile")


@pytest.mark.parametrize("width", [1, 3, 16, 17, 72, 128])
def test_sim_popcount_equals_the_tree(width):
    v = _synth(width)
    assert popcount_widths(v) == [width]
    prove_popcount(v, popcount_sim_verilog([width]), width)


def test_golden_design_widths_proven():
    widths = [r["width"] for r in prove_outdir(GOLDEN)]
    assert widths and widths == popcount_widths((GOLDEN / VERILOG).read_text())
    assert (GOLDEN / POPCOUNT_SIM).read_text() == popcount_sim_verilog(widths)


# Each fault: (width, text of the simulation module, its replacement); {b} = y's width.
# Narrower modules where a wrong next-state function has a large BDD (v[0] & v[127]
# took 4 minutes at 128 bits). A group of 16 bits counts into 5 bits (count16).
FAULTS = {
    "wrong on all-ones": (128, "count16 = k[4:0]", "count16 = k[4:0] ^ {{4'h0, &v}}"),
    "wrong on two bits": (16, "count16 = k[4:0]", "count16 = k[4:0] + {{4'h0, v[0] & v[15]}}"),
    "halved": (64, "count16 = k[4:0]", "count16 = {{1'b0, k[4:1]}}"),
    "a group misread": (72, "c1 <= count16(a[31:16])", "c1 <= count16(a[32:17])"),
    "sum drops a group": (72, " + {{3'd0, c4}}", ""),
    "enable ignored": (16, "end else if (en_a) begin", "end else begin"),
    "enable inverted": (16, "end else if (en_a) begin", "end else if (!en_a) begin"),
    "enables swapped": (16, "else if (en_y) y <=", "else if (en_a) y <="),
    "sum enable ignored": (16, "else if (en_y) y <=", "else y <="),
    "reset ignored": (16, "if (rst) y <= {b}'d0;", "if (1'b0) y <= {b}'d0;"),
    "group reset ignored": (16, "if (rst) begin", "if (1'b0) begin"),
    "reset loses to enable": (16, "if (rst) y <= {b}'d0;\n    else if (en_y) y <= c0;",
                              "if (en_y) y <= c0;\n    else if (rst) y <= {b}'d0;"),
    "initial value": (16, "y = {b}'d0;", "y = {b}'d1;"),
    "group initial value": (16, "c0 = 5'd0;", "c0 = 5'd1;"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_proof_catches_a_planted_fault(fault):
    width, old, new = FAULTS[fault]
    b = width.bit_length()
    good = popcount_sim_verilog([width])
    old, new = (t.format(b=b) for t in (old, new))
    assert good.count(old) == 1
    with pytest.raises(EquivFailed):
        prove_popcount(_synth(width), good.replace(old, new), width)


def test_verilator_sim_sources_lint_clean(tmp_path):
    """What runner.build gives Verilator: the simulation set (hwgen_top_sim.f: hwgen_top.v
    without the trees + popcount_sim.v, in sim_only/)."""
    from hwgen.export import SIM_FILE_LIST, WAIVERS
    shutil.copytree(GOLDEN, tmp_path / "g")
    import subprocess
    r = subprocess.run([require_tool("verilator"), "--lint-only", "-Wall", WAIVERS, "-f",
                        SIM_FILE_LIST], cwd=tmp_path / "g", capture_output=True, text=True)
    assert r.returncode == 0 and "%Warning" not in r.stderr, r.stderr[:2000]
