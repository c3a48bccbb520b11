"""MC evaluation on the golden path: the compiled integer IR run by `hwgen.ir.fast` (held
equal to the definition, `hwgen.ir.interp`), logits by the IR's host-side affine
(`interp.logits`), with the keep bits `hwgen eval` would draw for the torch model
(`hwgen.model.evaluate.draw_mc_masks`: the test set from `seed`, the OOD set from
`seed + 1`). So every figure is `hwgen eval MODEL --samples T --seed S`'s, computed from
the integers the hardware produces instead of from torch floats.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import metrics
from ..data import load_dataset, load_ood, ood_description
from ..errors import HwgenError
from ..frontend import build_ir
from ..ir import fast, interp
from ..ir.core import IR
from ..model.evaluate import draw_mc_masks
from ..model.io import build_model
from ..passes import run_pipeline

__all__ = ["golden_probs", "ood_images", "golden_eval", "score_report"]


def golden_probs(ir: IR, model, bits: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """Softmax probabilities [T, N, classes] (float64) of the golden MC inference on image
    bits [N, C, H, W], with the masks `mc_logits(model, x, T, seed=seed)` would use."""
    n = bits.shape[0]
    masks = [m.numpy() for m in draw_mc_masks(model, n, samples, seed)]
    acc = fast.run(ir, bits, masks, samples=samples)                 # [N, T, classes]
    return metrics.softmax(interp.logits(ir, acc)).transpose(1, 0, 2)


def ood_images(dataset: str, ood: str, n_test: int, seed: int, in_shape) -> tuple[torch.Tensor, str]:
    """The OOD images of `ood` ("auto": hwgen.data.load_ood; "uniform": seeded noise, as
    many as the test images) and a one-line description."""
    if ood == "auto":
        return load_ood(dataset, seed=seed), ood_description(dataset)
    if ood == "uniform":
        g = torch.Generator().manual_seed(seed)
        return (torch.rand((n_test,) + tuple(in_shape), generator=g),
                f"{n_test} images of uniform noise in [0, 1) (seed {seed})")
    raise HwgenError(f"unknown OOD set {ood!r}; expected 'auto' or 'uniform'")


def score_report(probs_id: np.ndarray, probs_ood: np.ndarray, labels: np.ndarray) -> tuple[dict, dict]:
    """Every metric of one (model, T) from [T, N, C] probabilities; returns (the JSON-ready
    report, raw per-image scores for the figures)."""
    raw = {"entropy_id": metrics.predictive_entropy(probs_id),
           "mi_id": metrics.mutual_information(probs_id),
           "entropy_ood": metrics.predictive_entropy(probs_ood),
           "mi_ood": metrics.mutual_information(probs_ood),
           "p_mean": probs_id.mean(0), "labels": labels}
    rep = {
        **metrics.classification_metrics(probs_id, labels),
        "ood": {by: metrics.ood_metrics(raw[f"{by}_id"], raw[f"{by}_ood"]) for by in ("entropy", "mi")},
        "ood_mean_entropy": float(raw["entropy_ood"].mean()),
        "ood_mean_mi": float(raw["mi_ood"].mean()),
        "rejection": {by: metrics.rejection_curve(raw["p_mean"], labels, raw[f"{by}_id"])
                      for by in ("entropy", "mi")},
        "reliability": metrics.reliability_table(raw["p_mean"], labels),
    }
    return rep, raw


def golden_eval(ckpt: dict, samples, seed: int = 0, limit: int | None = None,
                ood: str = "auto", ir: IR | None = None) -> tuple[dict, dict]:
    """The golden-path evaluation of a checkpoint (hwgen.model.io.load_checkpoint) at each
    T in `samples` (an int or a sequence). Returns ({T: report}, {T: raw scores}) plus
    "n_test", "n_ood" and "ood_set" in the first dict. `ir`: the lowered IR, if the caller
    has it (else frontend + passes)."""
    dataset = ckpt["meta"].get("dataset")
    if dataset not in ("digits", "fashion-mnist"):
        raise HwgenError(f"model meta names no known dataset (dataset={dataset!r})")
    ir = ir if ir is not None else run_pipeline(build_ir(ckpt))
    model = build_model(ckpt)
    x, y = load_dataset(dataset, "test")
    xo, ood_set = ood_images(dataset, ood, len(x), seed, ir.in_shape)
    if limit is not None:
        x, y, xo = x[:limit], y[:limit], xo[:limit]
    bits, bits_o, labels = interp.input_bits(ir, x), interp.input_bits(ir, xo), y.numpy()
    reports, raws = {"n_test": len(labels), "n_ood": len(xo), "ood_set": ood_set}, {}
    for t in ([samples] if isinstance(samples, int) else samples):
        rep, raw = score_report(golden_probs(ir, model, bits, t, seed),
                                golden_probs(ir, model, bits_o, t, seed + 1), labels)
        reports[t], raws[t] = rep, raw
    return reports, raws
