"""schedule: record every layer's read plan in the IR, next to its tiling (SPEC section 7).

`PassConfig.lanes` None (the default) models the array: one read per window delivers
every column of a tile (lanes = the layer's widest column split, beats = 1), as an MRAM
macro does. An integer is the emulation knob (`hwgen compile --lanes`): a tile's columns
come `lanes` per cycle, r = ceil(widest split / lanes) beats per read. The plan also
names the input buffer's organisation and the two-bank re-read store of `IR.mc_start`
(hwgen.ir.core.read_plan). A float-stage IR is returned unchanged (the hardware is built
from the integer stage). Run it again (`reschedule`) after anything that moves
`mc_start` or the tiling, or to build the same design at other lanes (the FPGA flow).

`PassConfig.row_splits` is the second emulation knob: None (the array) reads every row
split of a layer at once; K reads K at a time, so a layer of n row splits takes
ceil(n / K) passes per beat through K tiles' worth of popcounts (`ReadPlan.passes`; a
small FPGA's build: one 128-row datapath for the digits demo's 512-row classifier).
"""

from __future__ import annotations

from ..ir.core import IR, read_plan, replace

__all__ = ["schedule", "reschedule"]


def schedule(ir: IR, cfg) -> IR:
    """Every Layer gets `read_plan(ir, i, cfg.lanes, cfg.row_splits)`."""
    if ir.stage != "integer":
        return ir
    lanes, splits = getattr(cfg, "lanes", None), getattr(cfg, "row_splits", None)
    return replace(ir, layers=tuple(replace(l, plan=read_plan(ir, i, lanes, splits))
                                    for i, l in enumerate(ir.layers)))


def reschedule(ir: IR, lanes: int | None, row_splits: int | None = None) -> IR:
    """`ir` scheduled at `lanes` and `row_splits` (None: the array): the pass alone, with
    no verify (a test's planted fault stays in; the compiler's pipeline verifies after
    the pass)."""
    from . import PassConfig
    return schedule(ir, PassConfig(lanes=lanes, row_splits=row_splits))
