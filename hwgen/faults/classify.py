"""Classify faults with the golden model as the judge.

For one fault and a held-out set of images (each with its own MC draws: image i takes
draws [i*T, (i+1)*T) of every device), `judge` gives per image:

- `changed`: the faulty hardware's class integers differ from the clean golden model's
  somewhere in the image's T samples;
- `detect`: the regression on that image would fail: its class integers differ from
  what the scoreboard expects (the clean IR fed the recorded device history), or the
  recorded history differs from the devices' replay (the device check).

A fault is then, for a set S of test images: **detected** when `detect` holds on some
image of S; else **masked** when `changed` holds nowhere on the held-out set (harmless
for this data); else an **escape**. Coverage = detected / (detected + escapes).
"""

from __future__ import annotations

import numpy as np

from . import golden
from .plan import DEVICE_KINDS

__all__ = ["CLASSES", "judge", "classify", "coverage", "tally"]

CLASSES = ("detected", "masked", "escape")


def judge(ir, f: dict, bits, samples: int, seeds, clean: np.ndarray) -> dict:
    """Per-image `changed` and `detect` (bool [N]) of fault `f` over bits [N, ...], given
    the clean class integers `clean` [N, T, classes] on the same draws, and `out`, the
    faulty hardware's class integers."""
    n = len(bits)
    out, dev = golden.run_faulty(ir, f, bits, samples, seeds)
    changed = (out != clean).reshape(n, -1).any(1)
    if f["kind"] in DEVICE_KINDS:
        # The scoreboard feeds the golden model the recorded history, which is the
        # faulty device's: the class integers then agree by construction, and only the
        # device check (recorded history against the replay) can see the fault.
        clean_ap = golden.device_ap(ir, None, seeds, 0, n * samples)
        detect = (dev != clean_ap).reshape(n, -1).any(1)
    else:
        # Weight, threshold and sense faults leave the devices sound: the scoreboard
        # expects the clean model's integers, so an image detects iff it changed.
        detect = changed
    return {"changed": changed, "detect": detect, "out": out}


def classify(detect_on_test: bool, changed_anywhere: bool) -> str:
    """'detected', 'masked' or 'escape' (see the module docstring)."""
    if detect_on_test:
        return "detected"
    return "escape" if changed_anywhere else "masked"


def coverage(counts: dict) -> float | None:
    """detected / (detected + escapes); None when there is neither."""
    d, e = counts.get("detected", 0), counts.get("escape", 0)
    return d / (d + e) if d + e else None


def tally(results: list[dict]) -> dict:
    """Counts per kind and overall of results carrying 'kind' and 'class', with coverage."""
    kinds = sorted({r["kind"] for r in results})
    table = {}
    for k in kinds + ["all"]:
        rs = [r for r in results if k == "all" or r["kind"] == k]
        c = {cl: sum(r["class"] == cl for r in rs) for cl in CLASSES}
        table[k] = dict(c, faults=len(rs), coverage=coverage(c))
    return table
