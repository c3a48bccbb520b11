"""The study's figures (matplotlib Agg, deterministic PNG bytes). Each figure names the
command and config that made it in its title."""

from __future__ import annotations

import numpy as np

from ..atomic import write_bytes
from ..figures import png_bytes, pyplot

__all__ = ["write_figures", "COLORS"]

COLORS = {"deterministic": "tab:gray", "element": "tab:orange", "spatial": "tab:blue"}
STYLE = {"every": "-", "last": "--"}


def _label(g: dict) -> str:
    return g["kind"] + ("" if g["variant"] == "every" else f" ({g['variant']} sites)")


def fig_vs_t(res: dict, caption: str) -> bytes:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, name in ((axes[0], "accuracy", "accuracy"), (axes[1], "ece", "ECE (15 bins)")):
        for g in res["groups"]:
            pts = res["vs_T"][g["id"]]
            ts = sorted(int(t) for t in pts)
            mean = [pts[str(t)][key]["mean"] for t in ts]
            std = [pts[str(t)][key]["std"] or 0.0 for t in ts]
            if g["kind"] == "deterministic":
                ax.axhline(mean[0], color=COLORS[g["kind"]], ls=":", label=_label(g) + " (T = 1)")
                continue
            ax.errorbar(ts, mean, yerr=std, color=COLORS[g["kind"]], ls=STYLE[g["variant"]],
                        marker="o", ms=4, capsize=3, label=_label(g))
        ax.set_xscale("log", base=2)
        ax.set_xticks(res["samples"], [str(t) for t in res["samples"]])
        ax.set_xlabel("MC samples T")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{name_seeds(res)}: accuracy and ECE vs T (mean +- std over seeds)\n{caption}",
                 fontsize=9)
    return png_bytes(fig)


def name_seeds(res: dict) -> str:
    n = len(res["config"]["seeds"])
    return f"{res['config']['dataset']} {res['arch']}, {n} seed{'s' if n > 1 else ''}"


def fig_hist(res: dict, raws: dict, caption: str) -> bytes:
    plt = pyplot()
    gs = res["groups"]
    fig, axes = plt.subplots(len(gs), 2, figsize=(9, 2.6 * len(gs)), squeeze=False)
    for row, g in zip(axes, gs):
        raw = raws[g["first"]]
        for ax, key, name in ((row[0], "entropy", "predictive entropy"),
                              (row[1], "mi", "mutual information")):
            a, b = raw[f"{key}_id"], raw[f"{key}_ood"]
            auroc = res["eval"][g["first"]]["T"][str(g["T"])]["ood"][key]["auroc"]
            ax.set_title(f"{_label(g)}, T = {g['T']}, seed {g['seeds'][0]}: AUROC {auroc:.3f}",
                         fontsize=8)
            if not (a.any() or b.any()):
                ax.text(0.5, 0.5, f"{name} is 0 for every image\n(all T samples are equal)",
                        ha="center", va="center", transform=ax.transAxes, fontsize=8)
                ax.set_xticks([])
                ax.set_yticks([])
                continue
            hi = max(float(a.max()), float(b.max()), 1e-6)
            bins = np.linspace(0, hi, 41)
            ax.hist(a, bins=bins, alpha=0.6, density=True, label=f"in-distribution ({len(a)})")
            ax.hist(b, bins=bins, alpha=0.6, density=True, label=f"OOD ({len(b)})")
            ax.set_xlabel(f"{name} (nats)", fontsize=8)
            ax.set_ylabel("density", fontsize=8)
            ax.legend(fontsize=7)
    import textwrap
    ood = textwrap.fill(f"OOD: {res['ood_set']}", 110)
    fig.suptitle(f"{name_seeds(res)}: ID vs OOD uncertainty\n{ood}\n{caption}", fontsize=8)
    return png_bytes(fig)


def fig_reliability(res: dict, caption: str) -> bytes:
    from ..model.evaluate import draw_reliability

    plt = pyplot()
    gs = res["groups"]
    fig, axes = plt.subplots(1, len(gs), figsize=(4.2 * len(gs), 4.4), squeeze=False)
    for ax, g in zip(axes[0], gs):
        e = res["eval"][g["first"]]["T"][str(g["T"])]
        rt = e["reliability"]
        rel = {"edges": np.array(rt["lower"] + rt["upper"][-1:]), "count": np.array(rt["count"]),
               "accuracy": np.array(rt["accuracy"]), "confidence": np.array(rt["confidence"])}
        draw_reliability(ax, rel)
        ax.set_title(f"{_label(g)}, T = {g['T']}, seed {g['seeds'][0]}\n"
                     f"ECE {e['ece']:.4f}, {sum(rt['count'])} images", fontsize=8)
    fig.suptitle(f"{name_seeds(res)}: reliability diagrams\n{caption}", fontsize=8)
    return png_bytes(fig)


def fig_rejection(res: dict, caption: str) -> bytes:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, by in zip(axes, ("entropy", "mi")):
        for g in res["groups"]:
            curves = [res["eval"][n]["T"][str(g["T"])]["rejection"][by] for n in g["models"]]
            f = curves[0]["fraction"]
            acc = np.array([c["accuracy"] for c in curves])
            ax.plot(f, acc.mean(0), color=COLORS[g["kind"]], ls=STYLE[g["variant"]],
                    label=f"{_label(g)} (T = {g['T']})")
            if len(curves) > 1:
                ax.fill_between(f, acc.min(0), acc.max(0), color=COLORS[g["kind"]], alpha=0.15)
        ax.set_xlabel(f"fraction rejected (most uncertain first, by {by})")
        ax.set_ylabel("accuracy on the retained images")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{name_seeds(res)}: rejection curves (mean over seeds, band = min..max)\n"
                 f"{caption}", fontsize=9)
    return png_bytes(fig)


def write_figures(outdir, res: dict, raws: dict, caption: str) -> list[str]:
    """Write every figure under outdir/figures; return their paths relative to outdir."""
    from ..cost import plot_png

    figs = {"figures/accuracy_ece_vs_T.png": fig_vs_t(res, caption),
            "figures/entropy_hist.png": fig_hist(res, raws, caption),
            "figures/reliability.png": fig_reliability(res, caption),
            "figures/rejection.png": fig_rejection(res, caption)}
    if res.get("cost_design"):
        figs["figures/cost.png"] = plot_png(res["cost"][res["cost_design"]],
                                            caption=f"{res['cost_design']}: {caption}")
    for rel, png in figs.items():
        write_bytes(outdir / rel, png)
    return list(figs)
