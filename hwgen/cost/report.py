"""`hwgen report OUTDIR [--samples T] [--json F]`: the cost model of a compiled design.

Reads OUTDIR/ir.json (the folder checked first: hwgen.design.load_design; its read plans
give the lanes and beats) and, when `hwgen sim` left a report of this very ir.json
in OUTDIR, the measured cycles per MC sample; prints the text report and writes
OUTDIR/cost.json (or F) and OUTDIR/cost.png atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from ..atomic import check_output_file, write_bytes, write_text
from ..design import load_design
from ..errors import HwgenError
from ..sim.regression import REPORT_FORMAT
from .model import cost
from .plot import plot_png
from .render import render

__all__ = ["find_measured", "find_synth", "render_parts",
           "render_dropout", "SIM_REPORTS", "DEFAULT_SAMPLES", "SYNTH_REPORT",
           "PARTS", "PAPER_RATIO"]

log = logging.getLogger("hwgen.cost")

DEFAULT_SAMPLES = 16
# Files `hwgen sim` may leave in OUTDIR, in order of preference.
SIM_REPORTS = ("sim_report.json", "sim.json")
SIM_FORMAT = REPORT_FORMAT


def find_measured(outdir: Path, ir_text: str) -> dict | None:
    """Cycles per MC sample measured by `hwgen sim` (`--json OUTDIR/sim_report.json`, or
    any OUTDIR/sim*.json sim report); reports of another ir.json are ignored as stale."""
    sha = hashlib.sha256(ir_text.encode()).hexdigest()
    names = [n for n in SIM_REPORTS if (outdir / n).exists()]
    names += sorted(p.name for p in outdir.glob("sim*.json") if p.name not in names)
    for name in names:
        f = outdir / name
        try:
            d = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            raise HwgenError(f"{f}: not valid JSON ({e.msg} at line {e.lineno})") from None
        if not isinstance(d, dict) or d.get("format") != SIM_FORMAT:
            continue
        if d.get("ir_sha256") not in (None, sha):
            log.warning("%s was simulated from another ir.json: ignored", f)
            continue
        c = d.get("cycles_per_sample")
        if isinstance(c, (int, float)):
            t = d.get("samples")
            return {"cycles_per_sample": float(c), "source": name,
                    "samples": t if isinstance(t, int) and t > 0 else None,
                    "simulator": d.get("simulator"), "images": d.get("images")}
        log.warning("%s has no cycles_per_sample; cycles are reported as not measured", f)
    return None


# -- the synthesised section: OUTDIR/synth.json of `flows/synth.py OUTDIR --dropout-cost` --

SYNTH_REPORT = "synth.json"
SYNTH_FORMAT = "hwgen-synth"
# The lines every cell count is reported in: the crossbar emulation (the tiles with their
# popcounts), the controllers and periphery, and the dropout hardware.
PARTS = ("crossbar", "periphery", "dropout")
PART_NAMES = {"crossbar": "crossbar emulation", "periphery": "controllers and periphery",
              "dropout": "dropout hardware (RNG bank)",
              "stand_in": "board: LFSR stand-in MTJs"}
# the paper's reduction of dropout modules, element-wise over spatial
PAPER_RATIO = 9.0


def find_synth(outdir: Path, ir_text: str) -> dict | None:
    """The synthesis report of this very ir.json in OUTDIR (with its parts and, after
    `--dropout-cost`, its dropout section), or None; a report of another IR is ignored."""
    f = outdir / SYNTH_REPORT
    if not f.exists():
        return None
    try:
        d = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise HwgenError(f"{f}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(d, dict) or d.get("format") != SYNTH_FORMAT or "parts" not in d:
        log.warning("%s is not a flows/synth.py report with parts: ignored", f)
        return None
    sha = hashlib.sha256(ir_text.encode()).hexdigest()
    if d.get("ir_sha256") != sha:
        log.warning("%s was not synthesised from this ir.json (run flows/synth.py OUTDIR "
                    "--dropout-cost): ignored", f)
        return None
    return {"yosys": d.get("yosys"), "parts": d["parts"], "dropout": d.get("dropout")}


def render_parts(parts: dict, title: str = "") -> str:
    """The three-line cell table (and the total); FPGA columns when they hold anything."""
    cols = ["cells", "flops", "muxes"] + [k for k in ("luts", "brams", "lutrams")
                                          if any(v.get(k) for v in parts.values())]
    out = ([title] if title else []) + [f"{'part':<30}" + "".join(f"{c:>10}" for c in cols)]
    names = [p for p in PART_NAMES if p in parts]
    for p in names:
        out.append(f"{PART_NAMES[p]:<30}" + "".join(f"{parts[p][c]:>10,}" for c in cols))
    out.append(f"{'total':<30}" + "".join(f"{sum(parts[p][c] for p in names):>10,}"
                                          for c in cols))
    return "\n".join(out) + "\n"


def render_dropout(d: dict) -> str:
    """The synthesised dropout hardware, spatial and element, beside the module ratio."""
    out = [f"dropout hardware, synthesised (sites at layers {d['site_layers']}, p = {d['p']}; "
           f"design: {d['design_kind']})",
           "keep+gate: cells outside the tiles and the RNG bank, minus the same weights' "
           "without sites",
           f"{'kind':<9}{'interfaces':>11}{'RNG cells':>11}{'keep+gate':>11}{'total':>9}"
           f"{'flops':>8}{'muxes':>8}{'xbar delta':>12}"]
    for kind in ("spatial", "element"):
        k = d["kinds"][kind]
        out.append(f"{kind:<9}{k['interfaces']:>11,}{k['rng']['cells']:>11,}"
                   f"{k['keep_and_gating']['cells']:>11,}{k['total']['cells']:>9,}"
                   f"{k['total']['flops']:>8,}{k['total']['muxes']:>8,}{k['crossbar_delta']:>12,}")
    cr = d["cell_ratio"]
    out.append(f"element / spatial: modules {d['module_ratio']:.2f}x, synthesised cells "
               + (f"{cr:.2f}x" if cr is not None else "n/a") + f" (paper: {d['paper_ratio']:g}x)")
    if d["mc_start_moves"]:
        out.append("note: without sites the first MC layer moves, so keep+gate sums the walkers "
                   "only (row gating):")
        out.append("      the keep register is not in it (a lower bound)")
    return "\n".join(out) + "\n"


def render_synth(s: dict) -> str:
    out = ["", render_parts(s["parts"], f"synthesised ({s['yosys']}), generic cells")]
    if s.get("dropout"):
        out.append(render_dropout(s["dropout"]))
    return "\n".join(out)


def write_report(outdir, json_path=None, samples: int | None = None) -> tuple[dict, str]:
    """`hwgen report`: cost the design in `outdir`, write cost.json (or `json_path`) and
    cost.png there, and return (report, its text)."""
    outdir = Path(outdir)
    jpath = Path(json_path) if json_path else outdir / "cost.json"
    design = load_design(outdir)        # every file checked against the manifest
    for f in (jpath, outdir / "cost.png"):
        check_output_file(f)            # before any work
    ir = design.ir
    measured = find_measured(outdir, design.path("ir.json").read_text())
    samples = samples or (measured or {}).get("samples") or DEFAULT_SAMPLES
    rep = cost(ir, samples, measured)
    synthesised = find_synth(outdir, design.path("ir.json").read_text())
    rep["synthesised"] = synthesised
    text = render(rep) + (render_synth(synthesised) if synthesised else "")
    png = plot_png(rep)
    try:
        write_text(jpath, json.dumps(rep, sort_keys=True, indent=1, allow_nan=False) + "\n")
        write_bytes(outdir / "cost.png", png)
    except OSError as e:
        raise HwgenError(f"writing the cost report failed: {e}") from None
    log.info("wrote %s and %s", jpath, outdir / "cost.png")
    return rep, text
