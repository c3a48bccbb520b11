"""Yosys synthesis report of a generated design: cell counts per module and in total.

    python flows/synth.py OUTDIR [--top hwgen_top] [--yosys yosys] [--json F]

Reads OUTDIR/hwgen_top.v (from `hwgen compile`), runs the generic `synth -top TOP`
(no flattening, so every Amaranth submodule keeps its own gate counts) and `stat -json`,
and writes OUTDIR/synth.json (deterministic: no timings) and OUTDIR/synth.log (Yosys's
own log). Debian's yosys 0.23 reads Amaranth's Verilog; synthesis of a whole network is
slow (one 128x128 tile took about 100 s), so the passes are logged as they start.
"""

from __future__ import annotations

import argparse
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

from hwgen.atomic import write_text  # noqa: E402
from hwgen.errors import HwgenError  # noqa: E402

__all__ = ["synthesize", "render", "main"]

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
            write_text(log_path, "".join(lines))
        if proc.returncode != 0 or not stat_json.exists():
            err = next((l.strip() for l in lines if "ERROR" in l),
                       f"yosys exited with status {proc.returncode}")
            raise HwgenError(f"synthesis of {verilog} failed: {err}")
        log.info("synthesis finished in %.1f s wall", time.monotonic() - t0)
        stat = _load_stat(stat_json.read_text())
    design = stat["design"]
    return {
        "format": FORMAT, "version": 1, "top": top, "yosys": stat["creator"],
        "script": "read_verilog -sv; synth -top TOP; stat -json",
        "modules": _modules(stat),
        "design": dict(cells=design["num_cells"], wire_bits=design["num_wire_bits"],
                       memory_bits=design["num_memory_bits"],
                       cells_by_type=dict(sorted(design["num_cells_by_type"].items()))),
    }


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
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="flows/synth.py", description=__doc__.splitlines()[0])
    ap.add_argument("outdir")
    ap.add_argument("--top", default="hwgen_top")
    ap.add_argument("--verilog", default=None, help="default OUTDIR/<top>.v")
    ap.add_argument("--yosys", default="yosys", help="yosys executable (default: Debian's)")
    ap.add_argument("--json", default=None, help="default OUTDIR/synth.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    outdir = Path(args.outdir)
    try:
        rep = synthesize(Path(args.verilog) if args.verilog else outdir / f"{args.top}.v",
                         args.top, args.yosys, log_path=outdir / "synth.log")
    except HwgenError as e:
        sys.stderr.write(f"synth: error: {e}\n")
        return 2
    jpath = Path(args.json) if args.json else outdir / "synth.json"
    write_text(jpath, json.dumps(rep, sort_keys=True, indent=1) + "\n")
    print(render(rep), end="")
    log.info("wrote %s", jpath)
    return 0


if __name__ == "__main__":
    sys.exit(main())
