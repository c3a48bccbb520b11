"""`hwgen report OUTDIR [--samples T] [--json F]`: the cost model of a compiled design.

Reads OUTDIR/ir.json, the lanes from ports.json (or the manifest) and, when `hwgen sim`
left a report of this very ir.json in OUTDIR, the measured cycles per MC sample; prints
the text report and writes OUTDIR/cost.json (or F) and OUTDIR/cost.png atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from ..atomic import write_bytes, write_text
from ..errors import HwgenError
from ..ir import core
from ..sim.regression import REPORT_FORMAT
from .model import cost
from .plot import plot_png
from .render import render

__all__ = ["cmd_report", "find_measured", "find_lanes", "SIM_REPORTS", "DEFAULT_SAMPLES",
           "DEFAULT_LANES"]

log = logging.getLogger("hwgen.cost")

DEFAULT_SAMPLES = 16
DEFAULT_LANES = 8      # `hwgen compile --lanes` default
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


def find_lanes(outdir: Path) -> tuple[int, str]:
    """The lanes OUTDIR was exported with (ports.json params, else the manifest's options)
    and where they came from."""
    for name in ("ports.json", "manifest.json"):
        f = outdir / name
        if not f.exists():
            continue
        try:
            d = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            raise HwgenError(f"{f}: not valid JSON ({e.msg} at line {e.lineno})") from None
        if not isinstance(d, dict):
            raise HwgenError(f"{f}: not a JSON object")
        for scope in (d, d.get("params") or {}, d.get("options") or {}):
            for key in ("lanes", "LANES"):
                if isinstance(scope.get(key), int):
                    return scope[key], name
    return DEFAULT_LANES, f"default (no lanes in ports.json/manifest.json; compile's default {DEFAULT_LANES})"


def cmd_report(args) -> int:
    """`hwgen report OUTDIR [--json F] [--samples T]`."""
    outdir = Path(args.outdir)
    irf = outdir / "ir.json"
    if not irf.exists():
        raise HwgenError(f"{irf} not found: run `hwgen compile MODEL -o {outdir}` first")
    text = irf.read_text()
    try:
        ir = core.loads(text)
    except (ValueError, TypeError, KeyError) as e:
        raise HwgenError(f"{irf}: not a valid hwgen IR ({e})") from None
    measured = find_measured(outdir, text)
    samples = getattr(args, "samples", None) or (measured or {}).get("samples") or DEFAULT_SAMPLES
    lanes, lanes_src = find_lanes(outdir)
    log.info("lanes = %d from %s", lanes, lanes_src)
    rep = cost(ir, samples, lanes, measured)
    rep["design"]["lanes_source"] = lanes_src
    text = render(rep)
    png = plot_png(rep)
    jpath = Path(args.json) if args.json else outdir / "cost.json"
    try:
        write_text(jpath, json.dumps(rep, sort_keys=True, indent=1, allow_nan=False) + "\n")
        write_bytes(outdir / "cost.png", png)
    except OSError as e:
        raise HwgenError(f"writing the cost report failed: {e}") from None
    print(text, end="")
    log.info("wrote %s and %s", jpath, outdir / "cost.png")
    return 0
