"""The cost report's bar chart: spatial vs element (modules, draws, RNG energy)."""

from __future__ import annotations

import io

from .model import KINDS

__all__ = ["plot_png"]


def plot_png(rep: dict) -> bytes:
    """Spatial vs element bar chart (modules, draws, RNG energy) as deterministic PNG bytes."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = rep["totals"]
    panels = (("dropout modules", "modules", 1), ("random draws / inference", "draws", 1),
              ("RNG energy / inference (nJ)", "rng_pj", 1e-3))
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    for ax, (title, key, scale) in zip(axes, panels):
        vals = [t[k][key] * scale for k in KINDS]
        bars = ax.bar(KINDS, vals, color=["tab:blue", "tab:orange"])
        ax.bar_label(bars, labels=[f"{v:,.4g}" for v in vals])
        ax.set_title(title)
        ax.margins(y=0.15)
    r = rep["ratios_element_over_spatial"]["modules"]
    fig.suptitle(f"spatial vs element dropout, T = {rep['design']['samples']}"
                 + (f" (element/spatial = {r:.2f}x; paper 9x modules, 94.11x energy)" if r else ""))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
