"""Yosys synthesis report of a generated design: cell counts per module and in total.

    python flows/synth.py OUTDIR [--top hwgen_top] [--yosys yosys] [--json F]

Reads OUTDIR/hwgen_top.v (from `hwgen compile`), runs the generic `synth -top TOP`
(no flattening, so every Amaranth submodule keeps its own gate counts) and `stat -json`,
and writes OUTDIR/synth.json (deterministic: no timings) and OUTDIR/synth.log (Yosys's
own log). Debian's yosys 0.23 reads Amaranth's Verilog; synthesis of a whole network is
slow (minutes per 128x128 tile: docs/BENCHMARKS.md), so the passes are logged as they
start.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hwgen.atomic import check_output_file, write_text  # noqa: E402
from hwgen.cost.report import PARTS, PAPER_RATIO, render_dropout, render_parts  # noqa: E402
from hwgen.design import load_design  # noqa: E402
from hwgen.errors import HwgenError  # noqa: E402

__all__ = ["synthesize", "render", "main", "part_of", "split_parts", "variant_irs",
           "dropout_cost", "render_parts", "PARTS"]

log = logging.getLogger("flows.synth")

FORMAT = "hwgen-synth"
_PASS = re.compile(r"^(\d+(?:\.\d+)?)\. Executing (.*)$")


def _script(verilog: Path, top: str, stat_json: Path) -> str:
    return (f"read_verilog -sv {verilog}; synth -top {top}; "
            f"tee -q -o {stat_json} stat -json")


def _load_stat(text: str) -> dict:
    """`stat -json` of Yosys 0.23 prints the hierarchy's instance counts as plain text
    lines inside the JSON when a module is instantiated more than once; every real JSON
    line of that output holds a quote or a bracket, so drop the others."""
    return json.loads("\n".join(l for l in text.splitlines() if any(c in l for c in '"{}[]')))


def _modules(stat: dict) -> dict:
    """Yosys module names carry a leading backslash; drop it, keep the counts we report."""
    out = {}
    for name, m in sorted(stat["modules"].items()):
        out[name.lstrip("\\")] = dict(cells=m["num_cells"], wire_bits=m["num_wire_bits"],
                                      memory_bits=m["num_memory_bits"],
                                      cells_by_type=dict(sorted(m["num_cells_by_type"].items())))
    return out


def synthesize(verilog, top: str = "hwgen_top", yosys: str = "yosys", log_path=None) -> dict:
    """Run Yosys on `verilog` and return {"top", "yosys", "modules", "design"}.

    Raises HwgenError with Yosys's first ERROR line if it fails.
    """
    verilog = Path(verilog)
    if not verilog.exists():
        raise HwgenError(f"{verilog} not found: run `hwgen compile MODEL -o {verilog.parent}` first")
    exe = shutil.which(yosys)
    if exe is None:
        raise HwgenError(f"yosys executable {yosys!r} not found (apt-get install yosys)")
    with tempfile.TemporaryDirectory(prefix="hwgen-synth-") as tmp:
        stat_json = Path(tmp) / "stat.json"
        cmd = [exe, "-p", _script(verilog.resolve(), top, stat_json)]
        log.info("running %s", " ".join(cmd))
        t0 = time.monotonic()
        lines = []
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              cwd=tmp) as proc:
            for line in proc.stdout:
                lines.append(line)
                m = _PASS.match(line.strip())
                if m and m.group(1).count(".") <= 1:
                    log.info("[%6.1f s] %s %s", time.monotonic() - t0, m.group(1), m.group(2))
        if log_path is not None:
            # the first line marks the log as hwgen's (hwgen.atomic.is_own_file)
            write_text(log_path, f"hwgen flows/synth.py: yosys log of {verilog.name}\n"
                       + "".join(lines))
        if proc.returncode != 0 or not stat_json.exists():
            err = next((l.strip() for l in lines if "ERROR" in l),
                       f"yosys exited with status {proc.returncode}")
            raise HwgenError(f"synthesis of {verilog} failed: {err}")
        log.info("synthesis finished in %.1f s wall", time.monotonic() - t0)
        stat = _load_stat(stat_json.read_text())
    design = stat["design"]
    modules = _modules(stat)
    return {
        "format": FORMAT, "version": 2, "top": top, "yosys": stat["creator"],
        "script": "read_verilog -sv; synth -top TOP; stat -json",
        "modules": modules, "parts": split_parts(modules, top),
        "design": dict(cells=design["num_cells"], wire_bits=design["num_wire_bits"],
                       memory_bits=design["num_memory_bits"],
                       cells_by_type=dict(sorted(design["num_cells_by_type"].items()))),
    }


# ---------------------------------------------------------------- parts of the design

# Every count is split into hwgen.cost.report.PARTS: the crossbar emulation (each tile with
# its popcounts), the dropout hardware (the MTJ-RNG interfaces; the keep register and the
# row gating live inside other modules, see `dropout_cost`), and the rest.
# Cell types counted apart within each part: flip-flops (generic and FPGA), 2:1 muxes,
# FPGA LUTs, block RAMs and LUT RAMs
KINDS = {
    "flops": lambda t: "DFF" in t.upper() or t == "TRELLIS_FF",
    "muxes": lambda t: t == "$_MUX_",
    "luts": lambda t: t in ("LUT4", "SB_LUT4"),
    "brams": lambda t: t in ("DP16KD", "PDPW16KD", "SB_RAM40_4K", "SB_SPRAM256KA"),
    "lutrams": lambda t: t == "TRELLIS_DPR16X4",
}


# flows/fpga.py's board top: its LFSR stand-ins of the MTJ devices (not in the generated
# design) are a line of their own
STAND_IN = "hwgen_board.rng"


def part_of(module: str, parent: str | None = None) -> str:
    """The part of `module` (a hierarchical name as Amaranth writes it, e.g.
    `hwgen_top.layer1.tiles.tile_r0_c0`): what a crossbar tile instantiates (its popcount
    modules too) is crossbar, the RNG bank and what it instantiates is dropout."""
    if parent in ("crossbar", "dropout", "stand_in"):
        return parent
    if module == STAND_IN:
        return "stand_in"
    leaf = module.rsplit(".", 1)[-1]
    if leaf.startswith("tile_r") and ".tiles." in module:
        return "crossbar"
    if leaf == "rng":
        return "dropout"
    return "periphery"


def split_parts(modules: dict, top: str) -> dict:
    """Cells of each part of the design below `top`, each module counted once per instance:
    {part: {"cells", "flops", "muxes", "luts", "brams", "lutrams"}} for the PARTS (and
    "stand_in" on a board top). The parts sum to the hierarchy-expanded total (`stat`'s
    design line)."""
    parts = {p: dict.fromkeys(("cells", *KINDS), 0) for p in (*PARTS, "stand_in")}

    def walk(name, mult, parent, depth=0):
        if depth > 64:
            raise HwgenError(f"module hierarchy below {top} is deeper than 64 (a loop?)")
        part = part_of(name, parent)
        for typ, n in modules[name]["cells_by_type"].items():
            if typ == "$scopeinfo":         # Yosys >= 0.4x's record of a flattened scope
                continue
            sub = typ.lstrip("\\")
            if sub in modules:
                walk(sub, mult * n, part, depth + 1)
                continue
            parts[part]["cells"] += mult * n
            for kind, test in KINDS.items():
                if test(typ):
                    parts[part][kind] += mult * n

    if top not in modules:
        raise HwgenError(f"top module {top!r} not in the synthesised design")
    walk(top, 1, None)
    if not any(parts["stand_in"].values()):
        del parts["stand_in"]
    return parts


# ---------------------------------------------------------------- the dropout hardware

OTHER = {"spatial": "element", "element": "spatial"}


def variant_irs(ir) -> dict:
    """The design's IR, the same weights with the other dropout kind at the same layers and
    p (hwgen.passes.add_sites, then interface numbering and MTJ codes as the compiler does),
    and the same weights with no sites: {"spatial", "element", "none"}, each scheduled at
    the design's lanes (the schedule pass again: the first MC layer, whose store has two
    banks, may move)."""
    from hwgen.ir.core import replace
    from hwgen.passes import reschedule
    from hwgen.passes.add_sites import add_sites
    from hwgen.passes.sites import choose_mtj_codes, number_interfaces

    if not ir.sites:
        raise HwgenError("the design has no dropout sites: nothing to cost (compile it with "
                         "dropout)")
    kind = ir.sites[0].kind
    if any(s.kind != kind for s in ir.sites) or kind not in OTHER:
        raise HwgenError(f"dropout sites of mixed or unknown kinds: "
                         f"{sorted({s.kind for s in ir.sites})}")
    none = replace(ir, sites=())
    other = add_sites(none, OTHER[kind], ir.sites[0].p, [s.layer for s in ir.sites])
    # each site keeps its own p (add_sites takes one)
    other = replace(other, sites=tuple(replace(o, p=s.p) for o, s in zip(other.sites, ir.sites)))
    other = choose_mtj_codes(number_interfaces(other))
    return {kind: ir, OTHER[kind]: reschedule(other, ir.lanes), "none": reschedule(none, ir.lanes)}


def _local_counts(modules: dict) -> dict:
    """Per module, its own cells (no submodule instances), flops and muxes."""
    out = {}
    for name, m in modules.items():
        prim = {t: n for t, n in m["cells_by_type"].items()
                if t.lstrip("\\") not in modules and t != "$scopeinfo"}
        out[name] = {"cells": sum(prim.values()),
                     "flops": sum(n for t, n in prim.items() if KINDS["flops"](t)),
                     "muxes": sum(n for t, n in prim.items() if KINDS["muxes"](t))}
    return out


def dropout_cost(ir, yosys: str = "yosys", top: str = "hwgen_top",
                 synthesized: dict | None = None) -> dict:
    """Synthesised cells of the dropout hardware, for the design's kind and the other kind.

    The RNG bank is a module of its own (`part_of`). The keep register (in the top) and the
    row gating (in each walker) are not, so they are measured as the difference between the
    design and the same weights compiled without dropout sites, in the modules outside the
    tiles and the RNG bank (`periphery`), module by module (`module_delta`): dropout = rng
    + the sum of those differences. Error of the difference: it also holds whatever the
    synthesis optimised differently in the two netlists. When removing the sites moves the
    first MC layer (`mc_start_moves`), the top and the layer controllers change beyond the
    dropout hardware (the prefix's second buffer bank, the sampling control), so only the
    walkers' differences (the row gating) are summed and the keep register is left out: a
    lower bound. The AND of each row with its gate bit sits in the tile, which takes a gate
    input with or without dropout: without flattening it is synthesised either way, so it
    is counted in the crossbar, not here (the walker only routes the keep bits onto the gate
    bits, ANDed there with the padding and plane gates where a layer has them). The crossbar's
    own difference (the tiles do not depend on dropout) is reported as `crossbar_delta`, a
    check on the method: nonzero means the synthesis did not treat the tiles alike.

    `synthesized` maps a variant name to an already synthesised report (`synthesize`) to
    reuse (the design's own). Returns {"kinds": {kind: {...}}, "none": parts, ...}.
    """
    from hwgen import export

    irs = variant_irs(ir)
    reps = dict(synthesized or {})
    for name, v in irs.items():
        if name in reps:
            continue
        with tempfile.TemporaryDirectory(prefix=f"hwgen-synth-{name}-") as tmp:
            log.info("synthesising the same weights with dropout %s", name)
            export.export(v, tmp)
            reps[name] = synthesize(Path(tmp) / f"{top}.v", top, yosys)
    parts = {n: split_parts(r["modules"], top) for n, r in reps.items()}
    local = {n: _local_counts(r["modules"]) for n, r in reps.items()}
    base = parts["none"]
    moves = irs["none"].mc_start != ir.mc_start
    keys = ("cells", "flops", "muxes")
    kinds = {}
    for kind in ("spatial", "element"):
        pk = parts[kind]
        # per module outside the tiles and the RNG bank: design minus no-site design
        mdelta = {}
        for name in sorted(set(local[kind]) | set(local["none"])):
            if part_of(name) != "periphery" or name.startswith("hwgen_popcount_"):
                continue
            a, b = local[kind].get(name), local["none"].get(name)
            d = {k: (a or {}).get(k, 0) - (b or {}).get(k, 0) for k in keys}
            if any(d.values()):
                mdelta[name] = d
        # with the first MC layer moved, only the walkers (the row gating) compare alike
        use = [n for n in mdelta if not moves or n.endswith(".walker")]
        delta = {k: sum(mdelta[n][k] for n in use) for k in keys}
        kinds[kind] = {
            "interfaces": irs[kind].n_interfaces,
            "rng": {k: pk["dropout"][k] for k in keys},
            "keep_and_gating": delta,
            "keep_and_gating_modules": use,
            "module_delta": mdelta,
            "total": {k: pk["dropout"][k] + delta[k] for k in keys},
            "crossbar_delta": pk["crossbar"]["cells"] - base["crossbar"]["cells"],
            "parts": pk,
        }
    sp, el = kinds["spatial"], kinds["element"]
    return {"design_kind": ir.sites[0].kind, "lanes": "array" if ir.lanes is None else ir.lanes,
            "site_layers": [s.layer for s in ir.sites], "p": ir.sites[0].p,
            "mc_start_moves": moves,
            "none": base, "kinds": kinds,
            "module_ratio": el["interfaces"] / sp["interfaces"],
            "cell_ratio": (el["total"]["cells"] / sp["total"]["cells"]
                           if sp["total"]["cells"] else None),
            "paper_ratio": PAPER_RATIO}


def render(rep: dict) -> str:
    """Cell counts as a readable table: per module, then the whole design by cell type."""
    mods = rep["modules"]
    w = max([len(n) for n in mods] + [6])
    out = [f"{rep['yosys']}: synth -top {rep['top']}", "",
           f"{'module':<{w}} {'cells':>9} {'DFFs':>7} {'wire bits':>10}", "-" * (w + 30)]
    for name, m in mods.items():
        dffs = sum(v for k, v in m["cells_by_type"].items() if "DFF" in k.upper())
        out.append(f"{name:<{w}} {m['cells']:>9,} {dffs:>7,} {m['wire_bits']:>10,}")
    d = rep["design"]
    out += ["", f"design total (hierarchy expanded): {d['cells']:,} cells"]
    out += [f"  {k:<20} {v:>9,}" for k, v in d["cells_by_type"].items()]
    out += ["", render_parts(rep["parts"]).rstrip("\n")]
    if rep.get("dropout"):
        out += ["", render_dropout(rep["dropout"]).rstrip("\n")]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="flows/synth.py", description=__doc__.splitlines()[0])
    ap.add_argument("outdir")
    ap.add_argument("--top", default="hwgen_top")
    ap.add_argument("--verilog", default=None, help="default OUTDIR/<top>.v")
    ap.add_argument("--yosys", default="yosys", help="yosys executable (default: Debian's)")
    ap.add_argument("--json", default=None, help="default OUTDIR/synth.json")
    ap.add_argument("--dropout-cost", action="store_true",
                    help="also synthesise the same weights with the other dropout kind and "
                         "with none, and cost the dropout hardware (3 syntheses)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    outdir = Path(args.outdir)
    jpath = Path(args.json) if args.json else outdir / "synth.json"
    try:
        for f in (jpath, outdir / "synth.log"):
            check_output_file(f)            # before any work
        rep = synthesize(Path(args.verilog) if args.verilog else outdir / f"{args.top}.v",
                         args.top, args.yosys, log_path=outdir / "synth.log")
        if args.dropout_cost:
            design = load_design(outdir)
            ir = design.ir
            rep["ir_sha256"] = hashlib.sha256(design.path("ir.json").read_bytes()).hexdigest()
            rep["dropout"] = dropout_cost(ir, args.yosys, args.top,
                                          {ir.sites[0].kind: rep} if ir.sites else None)
    except HwgenError as e:
        sys.stderr.write(f"synth: error: {e}\n")
        return 2
    write_text(jpath, json.dumps(rep, sort_keys=True, indent=1) + "\n")
    print(render(rep), end="")
    log.info("wrote %s", jpath)
    return 0


if __name__ == "__main__":
    sys.exit(main())
