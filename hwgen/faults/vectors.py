"""Small test-vector sets that reach the coverage of the whole held-out set.

Both methods pick from the held-out images (each with its own MC draws) and are scored
on the fault-detection matrix `detect` [faults, images] of the golden campaign:

- **repeatability ranking** (after arXiv 2401.04744): an image's repeatability is the
  fraction of its T clean MC samples whose predicted class (argmax of the class integers,
  lowest class on a tie) equals its most frequent predicted class. Images are taken most
  repeatable first; ties by the larger mean margin between the two largest class
  integers, then by index. It needs no fault model: only clean MC runs.
- **greedy set cover**: repeatedly take the image that detects the most faults not yet
  detected (ties: the lower index), until every fault that some image detects is
  detected. It needs the fault model; scored on the faults it was fitted on it is
  optimistic, so `cover_split` also fits it on the even-numbered faults and scores it on
  the odd ones.
"""

from __future__ import annotations

import numpy as np

from .classify import coverage

__all__ = ["repeatability", "rank_repeatable", "greedy_cover", "coverage_curve"]


def repeatability(clean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(repeatability [N] in (0, 1], mean top-2 margin [N]) of clean class integers
    [N, T, classes]."""
    pred = clean.argmax(-1)                                        # [N, T]
    k = clean.shape[-1]
    counts = (pred[..., None] == np.arange(k)).sum(1)              # [N, classes]
    rep = counts.max(1) / clean.shape[1]
    top2 = np.sort(clean, axis=-1)[..., -2:]
    margin = (top2[..., 1] - top2[..., 0]).mean(1)
    return rep, margin


def rank_repeatable(clean: np.ndarray) -> np.ndarray:
    """Image indices, most repeatable first (see the module docstring)."""
    rep, margin = repeatability(clean)
    return np.lexsort((np.arange(len(rep)), -margin, -rep))


def greedy_cover(detect: np.ndarray, limit: int | None = None) -> np.ndarray:
    """Image indices chosen greedily over detect [faults, images] (bool)."""
    detect = np.asarray(detect, bool)
    left = detect.any(1).copy()
    chosen = []
    while left.any() and (limit is None or len(chosen) < limit):
        gain = detect[left].sum(0)
        j = int(gain.argmax())
        if gain[j] == 0:
            break
        chosen.append(j)
        left &= ~detect[:, j]
    return np.asarray(chosen, np.int64)


def coverage_curve(order: np.ndarray, detect: np.ndarray, changed: np.ndarray,
                   sizes) -> list[dict]:
    """Coverage when the first k images of `order` are the test vectors, for k in sizes.
    detect [faults, images], changed [faults] (the fault changes outputs somewhere)."""
    detect, changed = np.asarray(detect, bool), np.asarray(changed, bool)
    out = []
    for k in sizes:
        sel = np.asarray(order[:k], np.int64)
        det = detect[:, sel].any(1) if len(sel) else np.zeros(len(detect), bool)
        c = {"detected": int(det.sum()), "escape": int((~det & changed).sum())}
        out.append({"vectors": int(len(sel)), **c, "coverage": coverage(c)})
    return out
