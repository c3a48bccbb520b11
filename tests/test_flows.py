"""The synthesis and FPGA flows (flows/). Both need tools and time: marked `synth` / `fpga`."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows import synth  # noqa: E402
from hwgen.errors import HwgenError  # noqa: E402

needs_yosys = pytest.mark.skipif(shutil.which("yosys") is None, reason="Debian yosys not installed")

# A 5-bit register fed by a 4-bit adder in a submodule: 5 flip-flops, two modules.
TWO_MODULES = """
module sub(input [3:0] a, b, output [4:0] y); assign y = a + b; endmodule
module hwgen_top(input clk, input [3:0] a, b, output reg [4:0] q);
  wire [4:0] y; sub u(.a(a), .b(b), .y(y));
  always @(posedge clk) q <= y;
endmodule
"""


def run_synth(*argv):
    return subprocess.run([sys.executable, str(ROOT / "flows" / "synth.py"), *argv],
                          capture_output=True, text=True)


@pytest.mark.synth
@needs_yosys
def test_synth_counts_cells_per_module(tmp_path):
    (tmp_path / "hwgen_top.v").write_text(TWO_MODULES)
    r = run_synth(str(tmp_path))
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "synth.json").read_text())
    assert set(rep["modules"]) == {"hwgen_top", "sub"}
    top = rep["modules"]["hwgen_top"]["cells_by_type"]
    assert top["sub"] == 1 and top["$_DFF_P_"] == 5
    assert "$_DFF_P_" not in rep["modules"]["sub"]["cells_by_type"]
    d = rep["design"]
    assert d["cells_by_type"]["$_DFF_P_"] == 5 and "sub" not in d["cells_by_type"]
    assert d["cells"] == sum(d["cells_by_type"].values())
    # the hierarchy-expanded total is the top's own cells plus the submodule's
    assert d["cells"] == rep["modules"]["hwgen_top"]["cells"] - 1 + rep["modules"]["sub"]["cells"]
    assert "hwgen_top" in r.stdout and "design total" in r.stdout
    first = (tmp_path / "synth.json").read_bytes()
    assert run_synth(str(tmp_path)).returncode == 0
    assert (tmp_path / "synth.json").read_bytes() == first


@pytest.mark.synth
@needs_yosys
def test_synth_bad_verilog_one_line_nothing_written(tmp_path):
    (tmp_path / "hwgen_top.v").write_text("module hwgen_top(input a; endmodule\n")
    r = run_synth(str(tmp_path))
    assert r.returncode == 2
    lines = [l for l in r.stderr.splitlines() if not l.startswith(("INFO", "DEBUG"))]
    assert len(lines) == 1 and "ERROR" in lines[0] and "syntax error" in lines[0], r.stderr
    assert not (tmp_path / "synth.json").exists()
    with pytest.raises(HwgenError, match="not found"):
        synth.synthesize(tmp_path / "missing.v")
