"""`hwgen study [--config study.json|paper|tiny] [--tiny] [-o DIR]`: the spatial-vs-element
study as one command.

config.py  StudyConfig, every field documented; the tiny() and paper() presets
flow.py    Step, the cached, timed runner (run_study)
steps.py   the steps in order: train -> evaluate -> compile -> verify_rtl -> cost ->
           summary -> report (STEPS)
golden.py  MC evaluation on the golden path (compiled integer IR, hwgen eval's masks)
report.py  results.json and REPORT.md
plots.py   the figures
"""

from __future__ import annotations

import logging
from dataclasses import replace

from .config import PRESETS, StudyConfig, load_config, paper, tiny

__all__ = ["StudyConfig", "tiny", "paper", "load_config", "run", "cmd_study", "PRESETS"]

log = logging.getLogger("hwgen.study")


def run(cfg: StudyConfig, command: str = "hwgen study", progress: bool = True):
    """Run the whole study on a validated config; return the flow's Context."""
    from .flow import run_study
    from .steps import STEPS
    return run_study(cfg.validate(), STEPS, command, progress=progress)


def cmd_study(args) -> int:
    """Exit 0, or 1 when an RTL regression found a mismatch (the report is still written)."""
    name = "tiny" if args.tiny else args.config
    if args.tiny and args.config not in (None, "tiny"):
        from ..errors import HwgenError
        raise HwgenError(f"--tiny and --config {args.config} contradict each other")
    cfg = load_config(name)
    if args.output:
        cfg = replace(cfg, output_dir=args.output).validate()
    command = "hwgen study " + ("--tiny" if name == "tiny" else f"--config {name or 'paper'}")
    ctx = run(cfg, command)
    rtl = ctx.results["verify_rtl"]["designs"]
    bad = [n for n, r in rtl.items() if not r["ok"]]
    print(f"hwgen study: wrote {cfg.output_dir}/REPORT.md and {cfg.output_dir}/results.json"
          f" ({len(ctx.results['train']['models'])} models, {len(rtl)} RTL designs"
          f"{', MISMATCHES in ' + ', '.join(bad) if bad else ', 0 RTL mismatches'})")
    return 1 if bad else 0
