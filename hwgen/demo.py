"""`hwgen demo`: the whole chain on the bundled digits, end to end.

train (default digits architecture, spatial dropout, a few epochs) -> compile (IR,
Verilog, ports, manifest) -> sim (the RTL against the golden model with the MTJ devices
in the loop, on Verilator by default) -> the summary line. Everything goes under
`--workdir`: model.pt, rtl/ (the compiled OUTDIR) and sim.json (the regression report).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from .atomic import check_output_dir, check_output_file, write_text

__all__ = ["DEMO_EPOCHS", "DEMO_IMAGES", "DEMO_SAMPLES"]

log = logging.getLogger("hwgen.demo")

DEMO_EPOCHS = 8      # quick: enough for a digits model well above chance
DEMO_IMAGES = 20
DEMO_SAMPLES = 8


def run_demo(workdir, simulator: str = "verilator") -> tuple[float | None, dict]:
    """`hwgen demo`: train on the digits, compile, simulate; (test accuracy, sim report)."""
    from .compiler import compile_model
    from .model.io import save_model
    from .model.train import TrainConfig, train
    from .sim.regression import run_regression

    work = Path(workdir)
    # before any work: the outputs may replace only what an earlier demo wrote
    check_output_file(work / "model.pt")
    check_output_dir(work / "rtl", inputs=(work / "model.pt",))
    check_output_file(work / "sim.json")
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    log.info("1/3 train: digits, default architecture, spatial dropout, %d epochs", DEMO_EPOCHS)
    model, meta = train(TrainConfig(dataset="digits", dropout="spatial", epochs=DEMO_EPOCHS))
    save_model(work / "model.pt", model, meta)
    t1 = time.perf_counter()
    log.info("2/3 compile: %s -> %s", work / "model.pt", work / "rtl")
    compile_model(work / "model.pt", work / "rtl")
    t2 = time.perf_counter()
    log.info("3/3 sim: %d images x %d samples on %s", DEMO_IMAGES, DEMO_SAMPLES, simulator)
    report = run_regression(work / "rtl", simulator, DEMO_IMAGES, DEMO_SAMPLES, seed=0)
    t3 = time.perf_counter()
    write_text(work / "sim.json", json.dumps(report, indent=1, sort_keys=True) + "\n")
    acc = meta.get("test_acc")
    log.info("train %.0f s, compile %.0f s, sim %.0f s (build included)", t1 - t0, t2 - t1, t3 - t2)
    return acc, report
