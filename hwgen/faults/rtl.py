"""Fault regressions on the RTL: independent tasks (outdir, faults, inputs, seed) ->
one result per fault, with no state shared between tasks but the cached simulator build,
so a cluster can run them anywhere (the results do not depend on where).

The synthesised design is never modified and never rebuilt per fault; the bench's one
cached build serves every fault:

- MTJ and sense-line faults (mtj-stuck, mtj-p-scale, keep-stuck, sense-swap) are faults
  of what sits outside the design in the bench: the Python device model and the sense
  wiring (`hwgen.sim.bench_top.MtjPins`, config key `device_fault`). The RTL then runs
  against a faulty device, and the unchanged scoreboard (clean IR, the recorded history,
  the devices' replay) must catch it.
- Crossbar cells and thresholds are constants of the generated Verilog (a one-beat
  tile's weights are a `Const`, a multi-beat tile's a ROM initialiser, the thresholds
  literals of the comparators), which Verilator folds into the logic: no VPI deposit or
  force can reach them, and a run-time fault-select build would change the generator.
  These kinds run the clean RTL against a scoreboard that believes the faulty IR. Since
  the clean RTL equals the clean golden model bit for bit (what `hwgen sim` proves), a
  class integer differs there exactly where the faulty hardware would differ from the
  clean golden model: the same detection, without a build per fault.

Faults run in batches (`run_faults`): one simulator process runs the clean control, the
batch's faults and the clean control again, the design reset between runs (every fault
lives outside the design, so a reset brings it back to power-up; the devices are
re-created). Start-up (Python, cocotb, the model load: about 10 s) is paid once per batch,
not per fault. A fault's verdict depends only on (design, fault, inputs, seed): the
closing control shows the reset left nothing behind, and a test shows a fault gives the
same verdict alone, first or last in a batch.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..errors import HwgenError
from ..ir.core import dumps
from ..sim import runner
from .golden import faulty_ir

__all__ = ["run_faults", "build", "IR_KINDS"]

IR_KINDS = ("cell-stuck", "threshold-flip")


def build(outdir, simulator: str = "verilator", build_root=None) -> Path:
    """The cached simulator build of `outdir` (built here if missing); its directory."""
    from ..sim.regression import build_root as default_root
    root = Path(build_root) if build_root is not None else default_root()
    if simulator == "verilator":
        runner.ensure_verilator_on_path()
    return runner.build(Path(outdir).resolve(), simulator, root)


def run_faults(outdir, faults: list[dict], inputs, seed: int, samples: int = 4,
               simulator: str = "verilator", build_root=None, keep: bool = False) -> list:
    """Regression of the compiled `outdir` with each of `faults` in turn, in one simulator
    process, over inputs [N, ...] (the `img` port's bits of N images, draws from 0), device
    seeds from `seed`; a clean control runs before and after them. Returns, per fault,
    {'fault', 'detected', 'mismatches', 'device_mismatches', 'images', 'samples',
    'sim_s'} (sim_s: the fault's own simulated run). HwgenError if a control fails."""
    from ..design import load_design
    from ..device import device_seeds
    outdir = Path(outdir).resolve()
    ir = load_design(outdir).ir
    bits = np.asarray(inputs, np.uint8).reshape(len(inputs), -1)
    bdir = build(outdir, simulator, build_root)
    runs_root = bdir.parent / "runs"
    runs_root.mkdir(parents=True, exist_ok=True)
    rdir = Path(tempfile.mkdtemp(prefix="faults-", dir=runs_root))
    try:
        runs = [{}]
        for k, f in enumerate(faults):
            if f["kind"] in IR_KINDS:
                path = rdir / f"faulty_ir_{k}.json"
                path.write_text(dumps(faulty_ir(ir, f)))
                runs.append({"ir_path": path})
            else:
                runs.append({"device_fault": f})
        runs.append({})
        res = runner.run_network(outdir, simulator, bits, np.arange(len(bits)), samples,
                                 device_seeds(seed, ir.n_interfaces), 0, bdir, rdir / "run",
                                 record=False, runs=runs)["runs"]
    finally:
        if not keep:
            shutil.rmtree(rdir, ignore_errors=True)
    for where, c in (("before", res[0]), ("after", res[-1])):
        if _detected(c):
            raise HwgenError(f"{outdir}: the clean RTL fails its regression {where} the "
                             f"batch's faults ({c['mismatches']} class-integer, "
                             f"{c['device_mismatches']} device mismatches)")
    return [_verdict(f, r, samples) for f, r in zip(faults, res[1:-1])]


def _detected(r: dict) -> bool:
    return bool(r["mismatches"] or r["device_mismatches"])


def _verdict(fault, r: dict, samples: int) -> dict:
    return {"fault": fault, "detected": _detected(r), "mismatches": int(r["mismatches"]),
            "device_mismatches": int(r["device_mismatches"]), "images": int(r["images"]),
            "samples": int(samples), "sim_s": round(float(r["sim_wall_s"]), 3)}
