"""`hwgen predict OUTDIR --inputs X.npy [--samples T] [--seed S] -o Y.npz`: the golden MC
inference of a compiled design on the user's images (SPEC section 5).

X: float32 [N, C, H, W] in the range the model expects (its input encoding turns them
into the first layer's bits or bit planes). Keep bits are drawn per (image, sample, site,
group) from a numpy generator seeded with S, with the drop probability each site's MTJ
realises (`p_realised`, what the hardware does). Y.npz holds:

  class_integers  int32 [N, T, classes]   the RTL's outputs, sample by sample
  logits          float64 [N, T, classes] the host's affine of the class integers
  probs           float64 [N, classes]    the mean softmax over T
  prediction      int64 [N]               its argmax (ties to the lowest class, as numpy)
  entropy         float64 [N]             predictive entropy of the mean softmax (nats)
  mutual_information float64 [N]          its epistemic part (0 when the T samples agree)
  keep_site{k}    uint8 [N, T, groups]    the keep bits used, per site (1 = keep)
  hwgen_format    str                     "hwgen-predict": marks the file as hwgen's output
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields

import numpy as np

from . import metrics
from .ir import fast, interp
from .ir.core import IR
from .ir.masks import site_masks

__all__ = ["draw_masks", "predict", "Prediction"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """`Design.predict`'s result: the arrays of Y.npz as attributes (`keep`: the keep bits,
    one uint8 [N, T, groups] per site)."""
    class_integers: np.ndarray
    logits: np.ndarray
    probs: np.ndarray
    prediction: np.ndarray
    entropy: np.ndarray
    mutual_information: np.ndarray
    keep: tuple = ()

    @classmethod
    def of(cls, out: dict) -> "Prediction":
        keep = tuple(out[f"keep_site{k}"] for k in range(len(out))
                     if f"keep_site{k}" in out)
        return cls(**{f.name: out[f.name] for f in fields(cls) if f.name != "keep"},
                   keep=keep)


def draw_masks(ir: IR, n: int, samples: int, seed: int = 0) -> list[np.ndarray]:
    """Keep bits, one uint8 [n, T, n_groups] per site, drawn at each site's realised p
    (`hwgen.ir.masks.site_masks`, the one drawer)."""
    return site_masks(ir, n, samples, seed)


def predict(ir: IR, images: np.ndarray, samples: int = 16, seed: int = 0) -> dict:
    """Golden MC inference of `ir` on float images [N, C, H, W]; the arrays of Y.npz."""
    n = len(images)
    masks = draw_masks(ir, n, samples, seed)
    acc = fast.run(ir, interp.input_bits(ir, images), masks, samples=samples)
    logits = interp.logits(ir, acc.astype(np.float64))                    # [N, T, C]
    z = logits - logits.max(-1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    pt = p.transpose(1, 0, 2)                                              # [T, N, C]
    out = {"class_integers": acc, "logits": logits, "probs": p.mean(1),
           "prediction": p.mean(1).argmax(-1), "entropy": metrics.predictive_entropy(pt),
           "mutual_information": metrics.mutual_information(pt)}
    out.update({f"keep_site{k}": m for k, m in enumerate(masks)})
    return out
