"""The cost model (DESIGN section 11) and `hwgen report`.

model.py   pure numbers from an IR, the lanes and T: modules, draws, reads, cycles, energy
render.py  the report as text tables
plot.py    the spatial-vs-element bar chart (PNG)
report.py  `hwgen report OUTDIR`: finds the lanes and a sim report in OUTDIR, writes
           cost.json and cost.png
"""

from .model import FORMAT, KINDS, PAPER, VERSION, cost, driven_rows_per_tile, groups
from .plot import plot_png
from .render import render
from .report import SIM_REPORTS, cmd_report

__all__ = ["cost", "groups", "driven_rows_per_tile", "render", "plot_png", "cmd_report",
           "KINDS", "PAPER", "FORMAT", "VERSION", "SIM_REPORTS"]
