"""MC inference and `hwgen eval` (SPEC section 5): T stochastic forward passes per
image, prediction = argmax of the mean softmax, uncertainty = predictive entropy and
mutual information, OOD detection against a locally made OOD set."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .. import metrics
from ..atomic import write_bytes
from ..data import load_dataset, load_ood, ood_description
from ..errors import HwgenError
from ..figures import png_bytes, pyplot
from .io import build_model
from ..ir.masks import CHUNK as MASK_CHUNK, draw_masks, realised_p
from .net import BinaryNet

log = logging.getLogger(__name__)

__all__ = ["mc_logits", "draw_mc_masks", "evaluate", "write_plots", "draw_reliability"]

# Images per forward chunk; masks are drawn per chunk of hwgen.ir.masks.CHUNK images (the
# same size), so the keep bits of image i depend only on (seed, i), never on batching.
CHUNK = MASK_CHUNK
EVAL_FORMAT = "hwgen-eval"       # the --json report's format tag (marks it as hwgen's)
PLOTS = ("reliability.png", "entropy_hist.png")   # what --plots DIR holds


def _site_ps(model: BinaryNet) -> list[tuple[float, int]]:
    """(realised p, groups) per site: the default MTJ's realised p, what compiling the model
    records and what the hardware drops at (hwgen.ir.masks)."""
    return [(realised_p(s["p"]), s["n_groups"]) for s in model.sites]


def draw_mc_masks(model: BinaryNet, n: int, samples: int, seed: int = 0) -> list[torch.Tensor]:
    """The keep bits `mc_logits` draws for n images: one uint8 [n, T, n_groups] per site
    (`hwgen.ir.masks.draw_masks` at the realised p)."""
    return [torch.from_numpy(m) for m in draw_masks(_site_ps(model), n, samples, seed)]


@torch.no_grad()
def mc_logits(model: BinaryNet, x: torch.Tensor, T: int, masks=None, seed: int = 0,
              progress: bool = False) -> torch.Tensor:
    """MC forward passes: logits [T, N, classes].

    Parameters
    ----------
    model : BinaryNet (batch norm in eval mode; dropout forced on via `model.mc`)
    x : float images [N, C, H, W] in [0, 1]
    T : samples per image
    masks : None, or one keep-bit array per site shaped [N, T, n_groups] (the golden
        interpreter's layout) or [N*T, n_groups] (image-major: row n*T + t). Without masks,
        keep bits are drawn from a generator seeded with `seed` (see `draw_mc_masks`).
        With dropout 'none' the T samples are identical.
    """
    was_training, was_mc = model.training, model.mc
    model.eval()
    model.mc = True
    n = x.shape[0]
    sites = model.sites
    if masks is not None:
        if len(masks) != len(sites):
            raise ValueError(f"expected {len(sites)} site masks, got {len(masks)}")
        masks = [torch.as_tensor(np.asarray(m) if not isinstance(m, torch.Tensor) else m)
                 .reshape(n, T, s["n_groups"]) for m, s in zip(masks, sites)]
    ps = _site_ps(model)
    out = []
    try:
        for start in tqdm(range(0, n, CHUNK), disable=not progress, unit="chunk",
                          desc=f"MC T={T}", mininterval=2.0):
            b = min(CHUNK, n - start)
            if masks is None:
                m = [torch.from_numpy(mk) for mk in draw_masks(ps, b, T, seed, start)]
            else:
                m = [mk[start:start + b] for mk in masks]
            if not sites:  # no dropout: the T samples are one deterministic pass
                out.append(model(x[start:start + b])[:, None].expand(b, T, -1))
                continue
            m = [mk.reshape(b * T, -1).float() for mk in m]
            xb = x[start:start + b].repeat_interleave(T, dim=0)
            out.append(model(xb, masks=m).reshape(b, T, -1))
    finally:
        model.train(was_training)
        model.mc = was_mc
    return torch.cat(out).transpose(0, 1).contiguous() if out else torch.zeros(T, 0, 0)


def _scores(logits: torch.Tensor) -> dict:
    probs = logits.double().softmax(-1).numpy()
    return {"probs": probs, "entropy": metrics.predictive_entropy(probs),
            "mi": metrics.mutual_information(probs)}


def evaluate(ckpt: dict, samples: int, seed: int = 0, limit: int | None = None,
             progress: bool = True) -> tuple[dict, dict]:
    """Metrics of a checkpoint on its test set and OOD set; returns (report, raw scores)."""
    model = build_model(ckpt)
    dataset = ckpt["meta"].get("dataset")
    if dataset not in ("digits", "fashion-mnist"):
        raise HwgenError(f"model meta names no known dataset (dataset={dataset!r})")
    torch.set_num_threads(int(os.environ.get("HWGEN_THREADS", "1")))
    x, y = load_dataset(dataset, "test")
    xo = load_ood(dataset, seed=seed)
    if limit is not None:
        x, y, xo = x[:limit], y[:limit], xo[:limit]
    t = samples
    id_ = _scores(mc_logits(model, x, t, seed=seed, progress=progress))
    ood = _scores(mc_logits(model, xo, t, seed=seed + 1, progress=progress))
    labels = y.numpy()
    report = {
        "dataset": dataset, "dropout": model.kind, "p": model.p, "arch": model.arch["spec"],
        "samples": t, "seed": seed, "n_test": len(labels), "n_ood": len(xo),
        "ood_set": ood_description(dataset),
        **metrics.classification_metrics(id_["probs"], labels),
        "ood": {
            by: metrics.ood_metrics(id_[key], ood[key])
            for by, key in (("entropy", "entropy"), ("mi", "mi"))
        },
        "reliability": metrics.reliability_table(id_["probs"].mean(0), labels),
        "ood_mean_entropy": float(ood["entropy"].mean()),
        "ood_mean_mi": float(ood["mi"].mean()),
        "train_meta": {k: v for k, v in ckpt["meta"].items() if k != "history"},
    }
    return report, {"id": id_, "ood": ood, "labels": labels}


def write_plots(outdir, report: dict, raw: dict) -> None:
    """Reliability diagram and ID-vs-OOD entropy histograms, as PNG (matplotlib Agg)."""
    plt = pyplot()
    outdir = Path(outdir)
    title = f"{report['dataset']} {report['arch']} dropout={report['dropout']} T={report['samples']}"
    rel = metrics.reliability(raw["id"]["probs"].mean(0), raw["labels"])
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    draw_reliability(ax, rel)
    ax.set_title(f"{title}\nECE {report['ece']:.4f}, {int(rel['count'].sum())} images", fontsize=8)
    write_bytes(outdir / PLOTS[0], png_bytes(fig))

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), dpi=100)
    for ax, key, name in ((axes[0], "entropy", "predictive entropy"),
                          (axes[1], "mi", "mutual information")):
        hi = max(float(raw["id"][key].max()), float(raw["ood"][key].max()), 1e-6)
        bins = np.linspace(0, hi, 41)
        ax.hist(raw["id"][key], bins=bins, alpha=0.6, density=True, label="in-distribution")
        ax.hist(raw["ood"][key], bins=bins, alpha=0.6, density=True, label="OOD")
        ax.set_xlabel(f"{name} (nats)")
        ax.set_title(f"AUROC {report['ood'][key]['auroc']:.3f}", fontsize=8)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=8)
    write_bytes(outdir / PLOTS[1], png_bytes(fig))


FEW = 10   # a reliability bin with fewer images than this is drawn hatched


def draw_reliability(ax, rel: dict) -> None:
    """A reliability diagram on `ax` from `metrics.reliability`: accuracy per confidence
    bin, each bar labelled with its image count, bins of fewer than FEW images hatched (a
    bar at accuracy 1.0 made of three images says little, and the reader must see that)."""
    from matplotlib.patches import Patch

    centers = (rel["edges"][:-1] + rel["edges"][1:]) / 2
    width = rel["edges"][1] - rel["edges"][0]
    ok = rel["count"] > 0
    few = ok & (rel["count"] < FEW)
    bars = ax.bar(centers[ok], rel["accuracy"][ok], width=width, edgecolor="k", color="tab:blue")
    for b, is_few in zip(bars, few[ok]):
        if is_few:
            b.set_hatch("//")
            b.set_alpha(0.5)
    ax.bar_label(bars, labels=[f"{int(c)}" for c in rel["count"][ok]], fontsize=6,
                 rotation=90, padding=2)
    line, = ax.plot([0, 1], [0, 1], "r--")
    handles = [Patch(facecolor="tab:blue", edgecolor="k"), line]
    labels = ["accuracy (bar label: images in the bin)", "perfect calibration"]
    if few.any():
        handles.append(Patch(facecolor="tab:blue", edgecolor="k", hatch="//", alpha=0.5))
        labels.append(f"fewer than {FEW} images")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.32)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_xlabel("confidence (max mean softmax)")
    ax.set_ylabel("accuracy")
    ax.legend(handles, labels, fontsize=7, loc="upper left")
