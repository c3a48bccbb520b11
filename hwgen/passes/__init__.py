"""Lowering passes: IR -> IR, one function each, run in the explicit order of PIPELINE
with hwgen.ir.verify.verify after every pass. Each pass leaves the interpreter's output
unchanged (tests/test_passes.py checks that on random networks)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

from ..ir.core import IR
from ..ir.verify import verify
from .add_sites import add_sites
from .fold import fold_decisions, fold_thresholds, lower
from .sites import choose_mtj_codes, number_interfaces
from .schedule import reschedule, schedule
from .tile import parse_tile, tile

__all__ = ["PassConfig", "PIPELINE", "run_pipeline", "parse_tile", "lower", "fold_thresholds",
           "fold_decisions",
           "number_interfaces", "choose_mtj_codes", "tile", "schedule", "reschedule",
           "add_sites"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PassConfig:
    """Options of the lowering.

    tile: (R, C) crossbar size every layer is split onto (R rows, C columns, both >= 1).
    lanes: columns per cycle of a tile read (the emulation knob), or None: the array, one
    read delivers all the columns of a tile (hwgen.passes.schedule).
    row_splits: row splits of a layer read at once (the second knob), or None: all.
    """
    tile: tuple[int, int] = (128, 128)
    lanes: int | None = None
    row_splits: int | None = None


PIPELINE: tuple[Callable[[IR, PassConfig], IR], ...] = (
    lower,               # float stage -> integer stage: (s, t) from batch norm + sign
                         # (+ dropout scale), logit affine, packed weight bits
    number_interfaces,   # global MTJ-RNG interface numbering, site by site, group by group
    choose_mtj_codes,    # write-current code per site from the device curve, realised p
    tile,                # split every layer onto R x C crossbars
    schedule,            # each layer's read plan: lanes, beats per read, buffer organisation
)


def run_pipeline(ir: IR, cfg: PassConfig = PassConfig(), on_pass=None) -> IR:
    """Verify `ir`, then apply PIPELINE, verifying after each pass.
    on_pass(name, ir) is called after each pass (tests use it to check every stage)."""
    verify(ir)
    for p in PIPELINE:
        t0 = time.perf_counter()
        ir = p(ir, cfg)
        verify(ir)
        log.debug("pass %s: %.3f s (with verify)", p.__name__, time.perf_counter() - t0)
        if on_pass is not None:
            on_pass(p.__name__, ir)
    return ir
