"""`hwgen predict OUTDIR --inputs X.npy [--samples T] [--seed S] -o Y.npz`: the golden MC
inference of a compiled design on the user's images (DESIGN section 5).

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

import io
import logging

import numpy as np

from . import metrics
from .atomic import NPZ_MARK, check_output_file, write_bytes
from .data import load_inputs
from .design import load_design
from .ir import fast, interp
from .ir.core import IR

__all__ = ["draw_masks", "predict", "cmd_predict"]

log = logging.getLogger(__name__)


def draw_masks(ir: IR, n: int, samples: int, seed: int = 0) -> list[np.ndarray]:
    """Keep bits, one uint8 [n, T, n_groups] per site, drawn with each site's realised p."""
    rng = np.random.default_rng(seed)
    return [(rng.random((n, samples, s.n_groups)) >= (s.p_realised or s.p)).astype(np.uint8)
            for s in ir.sites]


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


def cmd_predict(args) -> int:
    check_output_file(args.output)          # before any work
    ir = load_design(args.outdir).ir
    x = load_inputs(args.inputs, ir.in_shape)
    out = predict(ir, x, args.samples, args.seed)
    buf = io.BytesIO()
    np.savez(buf, **out, **{NPZ_MARK: np.array("hwgen-predict")})
    write_bytes(args.output, buf.getvalue())
    counts = np.bincount(out["prediction"], minlength=ir.n_classes)
    log.info("wrote %s: %d images x %d samples; predictions per class %s; mean entropy "
             "%.4f, mean MI %.4f", args.output, len(x), args.samples, counts.tolist(),
             float(out["entropy"].mean()), float(out["mutual_information"].mean()))
    return 0
