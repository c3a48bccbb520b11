"""`hwgen bench sim MODEL.pt|OUTDIR [--simulator S] [--images N] [--samples T] [--lanes L]
[--tile RxC]`: what a change costs from model to simulated RTL, in one record.

For a model, it compiles (into -o DIR, else a temporary directory) and times the stages
of `hwgen compile` separately: IR + passes, the float-vs-integer check, the Verilog
export. For an OUTDIR it skips the compile. Then, on the design:
- the Verilog size in bytes;
- a cold simulator build (a fresh, temporary build cache: nothing reused);
- the network regression (`hwgen sim`, N images x T samples): simulated MC samples/s as
  the cocotb bench measures it (`sim_samples_per_s`; per CPU second of the simulator
  process, `sim_samples_per_cpu_s`, which other load on a shared machine disturbs less),
  cycles per sample and per image, and the mismatch counts.

Exit status 1 when the regression mismatches (the record is still written), 2 on bad
input.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from ..config import DEFAULT
from ..errors import HwgenError
from .common import finish, new_record, table

__all__ = ["bench_sim", "run"]

log = logging.getLogger(__name__)


@contextmanager
def _fresh_build_root():
    """A temporary simulator build cache, also named in $HWGEN_SIM_BUILD so that the
    regression reuses the build timed here and nothing else."""
    root = Path(tempfile.mkdtemp(prefix="hwgen-bench-build-"))
    old = os.environ.get("HWGEN_SIM_BUILD")
    os.environ["HWGEN_SIM_BUILD"] = str(root)
    try:
        yield root
    finally:
        if old is None:
            os.environ.pop("HWGEN_SIM_BUILD", None)
        else:
            os.environ["HWGEN_SIM_BUILD"] = old
        shutil.rmtree(root, ignore_errors=True)


def _compile(model, outdir, tile, lanes, check_images) -> dict:
    from ..compiler import compile_model
    t = {}
    manifest = compile_model(model, outdir, tile=tile, lanes=lanes, check_images=check_images,
                             timings=t)
    out = {"ir_s": t["ir_s"], "float_check_s": t.get("float_check_s") if check_images else None,
           "export_s": t.get("export_s"), "total_s": t["total_s"],
           "check_images": check_images, "input_sha256": manifest["input"]["sha256"]}
    check = Path(outdir) / "check.json"
    if check.is_file():
        c = json.loads(check.read_text())
        out.update(check_samples=c["samples"], bit_agreement=c["bit_agreement"],
                   tie_rate=c["tie_rate"])
    return out


def _design(ir, outdir: Path) -> dict:
    from ..hw.plan import cycle_bound
    lanes = "array" if ir.lanes is None else ir.lanes
    return {"spec": ir.meta.spec, "dataset": ir.meta.dataset,
            "dropout": ir.sites[0].kind if ir.sites else "none",
            "p": ir.sites[0].p if ir.sites else None, "in_shape": list(ir.in_shape),
            "layers": len(ir.layers), "interfaces": ir.n_interfaces, "classes": ir.n_classes,
            "tiles": sorted({tuple(l.tile) for l in ir.layers}), "lanes": lanes,
            "beats": [l.plan.beats for l in ir.layers],
            "cycles_bound_per_sample": cycle_bound(ir).per_sample}


def bench_sim(target, simulator: str = "verilator", images: int = 10, samples: int = 4,
              seed: int = 0, lanes: int | None = None, tile: str | None = None,
              check_images: int = 64, outdir=None, progress: bool = True,
              inputs=None) -> dict:
    """Measure `target` (a model file, compiled first, or a compiled OUTDIR); return the
    record's fields: input, design, compile (None for an OUTDIR), verilog_bytes, build
    and sim."""
    from ..sim import regression, runner

    target = Path(target)
    if not target.exists():
        raise HwgenError(f"{target}: not found (give a model.pt or an OUTDIR of hwgen compile)")
    tmp = None
    try:
        if target.is_dir():
            if lanes is not None or tile is not None:
                raise HwgenError(f"--lanes and --tile apply to a model; {target} is compiled "
                                 "already (compile it again to change them)")
            design_dir, comp = target, None
        else:
            if outdir is None:
                tmp = Path(tempfile.mkdtemp(prefix="hwgen-bench-sim-"))
                outdir = tmp / "out"
            design_dir = Path(outdir)
            log.info("compiling %s into %s", target, design_dir)
            comp = _compile(target, design_dir, tile or DEFAULT.tile_text, lanes, check_images)
        ir, _ = regression.load_outdir(design_dir)
        rec = {"input": {"path": str(target), "kind": "outdir" if comp is None else "model"},
               "design": _design(ir, design_dir), "compile": comp,
               "verilog_bytes": (design_dir / "hwgen_top.v").stat().st_size}
        with _fresh_build_root() as root:
            log.info("cold %s build in %s", simulator, root)
            if simulator == "verilator":
                runner.ensure_verilator_on_path()
            t0 = time.perf_counter()
            try:
                runner.build(design_dir, simulator, root)
            except runner.RunFailed as e:
                raise HwgenError(str(e)) from None
            rec["build"] = {"simulator": simulator, "seconds": time.perf_counter() - t0}
            t0 = time.perf_counter()
            rep = regression.run_regression(design_dir, simulator, images, samples, seed,
                                            progress=progress, waves_on_mismatch=False,
                                            with_stats=False, inputs=inputs)
            wall = time.perf_counter() - t0
        rec["sim"] = {"simulator": simulator, "images": rep["images"], "samples": samples,
                      "seed": seed, "mc_samples": rep["mc_samples"],
                      "sim_wall_s": rep["sim_wall_s"], "process_wall_s": rep["process_wall_s"],
                      "wall_s": wall, "sim_samples_per_s": rep["sim_samples_per_s"],
                      "sim_samples_per_cpu_s": rep.get("sim_samples_per_cpu_s"),
                      "cycles_per_sample": rep["cycles_per_sample"],
                      "cycles_per_image": rep["cycles_per_image"],
                      "mismatches": rep["mismatches"],
                      "device_mismatches": rep["device_mismatches"],
                      "reference": rep.get("reference"), "ok": rep["ok"]}
        return rec
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _text(r: dict) -> str:
    d, c, b, s = r["design"], r["compile"], r["build"], r["sim"]
    rows = []
    if c:
        chk = (f"{c['check_images']} images x {c['check_samples']} samples, bit agreement "
               f"{c['bit_agreement']:.6f}" if c.get("check_samples") else "skipped")
        rows += [["IR + passes", c["ir_s"], ""], ["float check", c["float_check_s"], chk],
                 ["Verilog export", c["export_s"], f"{r['verilog_bytes']:,} bytes"],
                 ["compile total", c["total_s"], ""]]
    else:
        rows.append(["(compiled)", None, f"Verilog {r['verilog_bytes']:,} bytes"])
    rows.append([f"{b['simulator']} build (cold)", b["seconds"], ""])
    rate, cps = s["sim_samples_per_s"], s["cycles_per_sample"]
    cpu = s.get("sim_samples_per_cpu_s")
    rows.append(["regression", s["sim_wall_s"],
                 f"{s['images']} images x {s['samples']} samples: "
                 f"{'-' if rate is None else f'{rate:,.1f}'} MC samples/s "
                 f"({'-' if cpu is None else f'{cpu:,.1f}'} per CPU s), "
                 f"{s['mismatches']} mismatches ({s['device_mismatches']} device), "
                 f"{'-' if cps is None else f'{cps:,.1f}'} cycles/sample; "
                 f"{s['process_wall_s']:.1f} s with the simulator's start"])
    title = (f"bench sim: {r['input']['path']} ({d['spec']}, {d['dropout']}, {d['dataset']}; "
             f"lanes {d['lanes']}, tile {'/'.join('x'.join(map(str, t)) for t in d['tiles'])})")
    return table(["stage", "seconds", ""], rows, title)


def run(args) -> tuple[int, str]:
    rec = new_record("sim", args.label)
    rec.update(bench_sim(args.target, args.simulator, args.images, args.samples, args.seed,
                         args.lanes, args.tile, args.check_images, args.output))
    return 0 if rec["sim"]["ok"] else 1, finish(rec, _text(rec), args.json)
