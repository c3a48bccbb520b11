"""The cost model (SPEC section 11) and `hwgen report`.

model.py   pure numbers from an IR, the lanes and T: modules, draws, reads, cycles, energy
render.py  the report as text tables
plot.py    the bar chart: spatial vs both element baselines (PNG)
report.py  `hwgen report OUTDIR`: finds the lanes and a sim report in OUTDIR, writes
           cost.json and cost.png
"""

from .model import (BASELINES, FORMAT, KINDS, PAPER, VERSION, cost, draws_per_sample,
                    driven_rows_per_tile, groups, rng_cycles)
from .plot import plot_png
from .render import render
from .report import SIM_REPORTS

__all__ = ["cost", "groups", "draws_per_sample", "rng_cycles", "driven_rows_per_tile", "render",
           "plot_png", "KINDS", "BASELINES", "PAPER", "FORMAT", "VERSION",
           "SIM_REPORTS"]
