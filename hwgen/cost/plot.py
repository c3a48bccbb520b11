"""The cost report's bar chart: spatial vs the two element baselines (modules, draws, RNG
energy, total energy)."""

from __future__ import annotations

from ..figures import png_bytes, pyplot
from .model import BASELINES

__all__ = ["plot_png"]


LABELS = {"spatial": "spatial", "element": "element\n(per image)",
          "element_window": "element\n(per window)"}


def plot_png(rep: dict, caption: str | None = None) -> bytes:
    """Bar chart of spatial vs both element baselines (modules, draws, RNG and total
    energy) as deterministic PNG bytes; `caption` (e.g. the command that made it) goes
    under the title."""
    plt = pyplot()
    t = rep["totals"]
    panels = (("dropout modules", "modules", 1), ("random draws / inference", "draws", 1),
              ("RNG energy / inference (nJ)", "rng_pj", 1e-3),
              ("total energy / inference (nJ)", "energy_pj", 1e-3))
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.9))
    for ax, (title, key, scale) in zip(axes, panels):
        vals = [t[k][key] * scale for k in BASELINES]
        bars = ax.bar([LABELS[k] for k in BASELINES], vals,
                      color=["tab:blue", "tab:orange", "tab:red"])
        ax.bar_label(bars, labels=[f"{v:,.4g}" for v in vals], fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
        ax.margins(y=0.15)
    r = rep["ratios_over_spatial"]
    head = f"spatial vs element dropout, T = {rep['design']['samples']}"
    if r["element"]["modules"]:
        head += (f": element/spatial modules {r['element']['modules']:.2f}x, energy "
                 f"{r['element']['total_energy']:.2f}x (per window {r['element_window']['total_energy']:.2f}x); "
                 f"paper 9x modules, 94.11x energy")
    fig.suptitle(head + (f"\n{caption}" if caption else ""), fontsize=9)
    return png_bytes(fig)
