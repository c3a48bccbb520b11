"""One fault's regression on the RTL: an independent task (outdir, fault, inputs, seed)
-> result dict, with no state shared between tasks but the cached simulator build, so a
cluster can run them anywhere (the results do not depend on where).

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
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ..ir.core import dumps
from ..sim import runner
from .golden import faulty_ir

__all__ = ["run_fault", "IR_KINDS"]

IR_KINDS = ("cell-stuck", "threshold-flip")


def run_fault(outdir, fault: dict | None, inputs, seed: int, samples: int = 4,
              simulator: str = "verilator", build_root=None, keep: bool = False) -> dict:
    """Regression of the compiled `outdir` with `fault` (None: the clean control) over
    inputs [N, ...] (the `img` port's bits of N images, draws from 0), device seeds
    from `seed`. Returns {'fault', 'detected', 'mismatches', 'device_mismatches',
    'wall_s'}."""
    from ..design import load_design
    from ..device import device_seeds
    from ..sim.regression import build_root as default_root
    outdir = Path(outdir).resolve()
    ir = load_design(outdir).ir
    bits = np.asarray(inputs, np.uint8).reshape(len(inputs), -1)
    root = Path(build_root) if build_root is not None else default_root()
    if simulator == "verilator":
        runner.ensure_verilator_on_path()
    bdir = runner.build(outdir, simulator, root)
    runs = root / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    rdir = Path(tempfile.mkdtemp(prefix="fault-", dir=runs))
    t0 = time.perf_counter()
    try:
        ir_path, dev = None, None
        if fault is not None and fault["kind"] in IR_KINDS:
            ir_path = rdir / "faulty_ir.json"
            ir_path.write_text(dumps(faulty_ir(ir, fault)))
        elif fault is not None:
            dev = fault
        res = runner.run_network(outdir, simulator, bits, np.arange(len(bits)), samples,
                                 device_seeds(seed, ir.n_interfaces), 0, bdir, rdir / "run",
                                 ir_path=ir_path, record=False, device_fault=dev)
    finally:
        if not keep:
            shutil.rmtree(rdir, ignore_errors=True)
    return {"fault": fault, "detected": bool(res["mismatches"] or res["device_mismatches"]),
            "mismatches": int(res["mismatches"]),
            "device_mismatches": int(res["device_mismatches"]),
            "images": int(res["images"]), "samples": int(samples),
            "wall_s": round(time.perf_counter() - t0, 3)}
