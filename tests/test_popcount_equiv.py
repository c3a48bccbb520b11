"""The simulation popcount modules (popcount_sim.v, 64-bit word counts) equal the synthesised
adder trees (hwgen_top.v): a Yosys miter decided by ABC's BDD collapse, per width and
kind (plain, and xnor: the count of a column's agree bits a & ~(x ^ w))."""

import shutil

import numpy as np
import pytest

from hwgen.export import (POPCOUNT_SIM, VERILOG, popcount_kinds, popcount_sim_verilog,
                          to_verilog)
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
    """A tile instantiates both kinds: the row gates' count and its lanes' agree counts."""
    v = _synth(width)
    kinds = [(width, False), (width, True)]
    assert popcount_kinds(v) == kinds
    sim = popcount_sim_verilog(kinds)
    for kind in kinds:
        prove_popcount(v, sim, *kind)


def test_golden_design_kinds_proven():
    kinds = [(r["width"], r["xnor"]) for r in prove_outdir(GOLDEN)]
    assert kinds and kinds == popcount_kinds((GOLDEN / VERILOG).read_text())
    assert any(x for _, x in kinds) and not all(x for _, x in kinds)
    assert (GOLDEN / POPCOUNT_SIM).read_text() == popcount_sim_verilog(kinds)


# Each fault: (width, xnor, text of the kind's simulation module, its replacement);
# {b} = y's width.
# Narrower modules where a wrong next-state function has a large BDD (v[0] & v[127]
# took 4 minutes at 128 bits). A group of 16 bits counts into 5 bits (count4x16: four
# groups of a 64-bit chunk k<j>).
FAULTS = {
    "a full group counted as 0": (128, False, "& 64'h001f001f001f001f;", "& 64'h000f000f000f000f;"),
    "wrong on two bits": (16, False, "s[20:16], s[4:0]}}",
                          "s[20:16], s[4:0] + {{4'd0, v[0] & v[15]}}}}"),
    "halved": (64, False, "s[20:16], s[4:0]}}", "s[20:16], s[5:1]}}"),
    "one SWAR mask bit": (16, False, "((v >> 1) & 64'h5555555555555555)",
                          "((v >> 1) & 64'h5555555555555554)"),
    "a group misread": (72, False, "c1 <= k0[9:5];", "c1 <= k0[14:10];"),
    "a chunk misread": (128, False, "k1 = count4x16(a[127:64]);", "k1 = count4x16(a[126:63]);"),
    "sum drops a group": (72, False, " + {{3'd0, c4}}", ""),
    "enable ignored": (16, False, "end else if (en_a) begin", "end else begin"),
    "enable inverted": (16, False, "end else if (en_a) begin", "end else if (!en_a) begin"),
    "enables swapped": (16, False, "else if (en_y) y <=", "else if (en_a) y <="),
    "sum enable ignored": (16, False, "else if (en_y) y <=", "else y <="),
    "reset ignored": (16, False, "if (rst) y <= {b}'d0;", "if (1'b0) y <= {b}'d0;"),
    "group reset ignored": (16, False, "if (rst) begin", "if (1'b0) begin"),
    "reset loses to enable": (16, False, "if (rst) y <= {b}'d0;\n    else if (en_y) y <= c0;",
                              "if (en_y) y <= c0;\n    else if (rst) y <= {b}'d0;"),
    "initial value": (16, False, "y = {b}'d0;", "y = {b}'d1;"),
    "group initial value": (16, False, "c0 = 5'd0;", "c0 = 5'd1;"),
    # the xnor kind: its agree word
    "xor for xnor": (16, True, "a[15:0] & ~(x[15:0] ^ w[15:0])", "a[15:0] & (x[15:0] ^ w[15:0])"),
    "gates ignored": (16, True, "a[15:0] & ~(x[15:0] ^ w[15:0])", "~(x[15:0] ^ w[15:0])"),
    "weights ignored": (128, True, "a[127:64] & ~(x[127:64] ^ w[127:64])", "a[127:64] & x[127:64]"),
    "gates and word lines swapped": (16, True, "a[15:0] & ~(x[15:0] ^ w[15:0])",
                                     "x[15:0] & ~(a[15:0] ^ w[15:0])"),
    "a row of another column": (17, True, "a[16:0] & ~(x[16:0] ^ w[16:0])",
                                "a[16:0] & ~(x[16:0] ^ {{w[15], w[15:0]}})"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_proof_catches_a_planted_fault(fault):
    width, xnor, old, new = FAULTS[fault]
    b = width.bit_length()
    good = popcount_sim_verilog([(width, False), (width, True)])
    old, new = (t.format(b=b) for t in (old, new))
    head = good.index(f"module hwgen_popcount_xnor_{width}(")
    plain, agree = good[:head], good[head:]
    assert (agree if xnor else plain).count(old) == 1
    bad = plain + agree.replace(old, new) if xnor else plain.replace(old, new) + agree
    with pytest.raises(EquivFailed):
        prove_popcount(_synth(width), bad, width, xnor)


def test_verilator_sim_sources_lint_clean(tmp_path):
    """What runner.build gives Verilator: the simulation set (hwgen_top_sim.f: hwgen_top.v
    without the trees + popcount_sim.v, in sim_only/)."""
    from hwgen.export import SIM_FILE_LIST, WAIVERS
    shutil.copytree(GOLDEN, tmp_path / "g")
    import subprocess
    r = subprocess.run([require_tool("verilator"), "--lint-only", "-Wall", WAIVERS, "-f",
                        SIM_FILE_LIST], cwd=tmp_path / "g", capture_output=True, text=True)
    assert r.returncode == 0 and "%Warning" not in r.stderr, r.stderr[:2000]
