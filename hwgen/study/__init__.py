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

from .config import PRESETS, StudyConfig, load_config, paper, tiny

__all__ = ["StudyConfig", "tiny", "paper", "load_config", "run", "PRESETS"]

log = logging.getLogger("hwgen.study")


def run(cfg: StudyConfig, command: str = "hwgen study", progress: bool = True, engine=None):
    """Run the whole study on a validated config; return the flow's Context. Each step's
    units (one model's training, evaluation, compilation, RTL regression) run as tasks of
    `engine` (a hwgen.engine.Engine; None: in this process)."""
    from .flow import run_study
    from .steps import STEPS
    return run_study(cfg.validate(), STEPS, command, progress=progress, engine=engine)
