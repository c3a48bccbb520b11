"""Fault kinds and the seeded fault plan.

A fault is one small JSON object: `{"kind": ..., <its parameters>}`.

- ``cell-stuck``: crossbar cell (layer, col, row) stuck at `value` (1 = +1): a weight bit
  of the IR;
- ``threshold-flip``: bit `bit` of column `col`'s integer threshold in layer `layer`
  flipped, in two's complement of the threshold's width (`threshold_width`);
- ``keep-stuck``: the keep bit the design reads from interface `interface` stuck at
  `value` (the sense line stuck; the device itself is sound);
- ``mtj-stuck``: the MTJ of interface `interface` stuck in `state` "P" (always kept) or
  "AP" (always dropped), whatever the pulses;
- ``mtj-p-scale``: the MTJ of interface `interface` switches with `scale` times the
  probability the IR asks for (capped at 1), from the same draws;
- ``sense-swap``: the sense lines of interfaces `interface` and `other` swapped.

`sample_plan` draws N faults from a seed: kinds in turn (fault i has kind i mod k of the
kinds asked for), every parameter uniform over its range (cells weighted by layer size,
so every cell of the design is equally likely).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import HwgenError

__all__ = ["KINDS", "DEVICE_KINDS", "SENSE_KINDS", "threshold_width", "sample_plan",
           "check_fault", "load_plan", "fault_label"]

KINDS = ("cell-stuck", "threshold-flip", "keep-stuck", "mtj-stuck", "mtj-p-scale",
         "sense-swap")
DEVICE_KINDS = ("mtj-stuck", "mtj-p-scale")        # the device misbehaves
SENSE_KINDS = ("keep-stuck", "sense-swap")         # the devices are sound, the wiring is not
P_SCALE_RANGE = (0.25, 4.0)                        # log-uniform, far enough from 1 to matter


def threshold_width(layer) -> int:
    """Bits of a layer's thresholds in two's complement: enough for +-rows and for every
    threshold the layer holds."""
    t = max(abs(int(v)) for v in layer.thresh)
    return max(layer.rows, t).bit_length() + 1


def _hidden(ir) -> list[int]:
    return [i for i, l in enumerate(ir.layers) if not l.is_classifier]


def sample_plan(ir, n: int, kinds=KINDS, seed: int = 0) -> list[dict]:
    """n faults of `kinds` (in turn) on the integer-stage `ir`, reproducible from `seed`."""
    kinds = tuple(kinds)
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise HwgenError(f"unknown fault kind {bad[0] if bad else '(none)'}: choose from "
                         f"{', '.join(KINDS)}")
    needs_if = [k for k in kinds if k not in ("cell-stuck", "threshold-flip")]
    if needs_if and ir.n_interfaces < (2 if "sense-swap" in kinds else 1):
        raise HwgenError(f"fault kind {needs_if[0]} needs MTJ interfaces (two for sense-swap); "
                         f"the design has {ir.n_interfaces}: leave the kind out of --kinds")
    rng = np.random.default_rng(seed)
    sizes = np.array([l.rows * l.out_channels for l in ir.layers], float)
    hidden = _hidden(ir)
    plan = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        if kind == "cell-stuck":
            li = int(rng.choice(len(ir.layers), p=sizes / sizes.sum()))
            lay = ir.layers[li]
            f = {"layer": li, "col": int(rng.integers(lay.out_channels)),
                 "row": int(rng.integers(lay.rows)), "value": int(rng.integers(2))}
        elif kind == "threshold-flip":
            li = int(rng.choice(hidden))
            lay = ir.layers[li]
            f = {"layer": li, "col": int(rng.integers(lay.out_channels)),
                 "bit": int(rng.integers(threshold_width(lay)))}
        elif kind == "keep-stuck":
            f = {"interface": int(rng.integers(ir.n_interfaces)), "value": int(rng.integers(2))}
        elif kind == "mtj-stuck":
            f = {"interface": int(rng.integers(ir.n_interfaces)),
                 "state": ("P", "AP")[int(rng.integers(2))]}
        elif kind == "mtj-p-scale":
            lo, hi = np.log(P_SCALE_RANGE)
            f = {"interface": int(rng.integers(ir.n_interfaces)),
                 "scale": round(float(np.exp(rng.uniform(lo, hi))), 4)}
        else:
            a, b = rng.choice(ir.n_interfaces, 2, replace=False)
            f = {"interface": int(min(a, b)), "other": int(max(a, b))}
        plan.append(check_fault(ir, {"kind": kind, **f}))
    return plan


def _int_in(f: dict, key: str, hi: int) -> int:
    v = f.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < hi:
        raise HwgenError(f"fault {f}: {key!r} must be an integer in [0, {hi})")
    return v


def check_fault(ir, f: dict) -> dict:
    """`f` checked against `ir` (HwgenError naming the bad field); returns it."""
    if not isinstance(f, dict) or f.get("kind") not in KINDS:
        raise HwgenError(f"fault {f!r}: 'kind' must be one of {', '.join(KINDS)}")
    k = f["kind"]
    if k in ("cell-stuck", "threshold-flip"):
        li = _int_in(f, "layer", len(ir.layers))
        lay = ir.layers[li]
        _int_in(f, "col", lay.out_channels)
        if k == "cell-stuck":
            _int_in(f, "row", lay.rows)
            _int_in(f, "value", 2)
        else:
            if lay.is_classifier:
                raise HwgenError(f"fault {f}: layer {li} is the classifier, it has no thresholds")
            _int_in(f, "bit", threshold_width(lay))
        return f
    _int_in(f, "interface", ir.n_interfaces)
    if k == "keep-stuck":
        _int_in(f, "value", 2)
    elif k == "mtj-stuck":
        if f.get("state") not in ("P", "AP"):
            raise HwgenError(f"fault {f}: 'state' must be 'P' or 'AP'")
    elif k == "mtj-p-scale":
        s = f.get("scale")
        if not isinstance(s, (int, float)) or not s >= 0:
            raise HwgenError(f"fault {f}: 'scale' must be a number >= 0")
    else:
        if _int_in(f, "other", ir.n_interfaces) == f["interface"]:
            raise HwgenError(f"fault {f}: 'other' must differ from 'interface'")
    return f


def load_plan(ir, path) -> list[dict]:
    """A JSON file of faults: a list of fault objects, or {"faults": [...]}."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise HwgenError(f"{path}: cannot read a JSON fault list ({e})") from None
    faults = d.get("faults") if isinstance(d, dict) else d
    if not isinstance(faults, list) or not faults:
        raise HwgenError(f"{path}: expected a non-empty list of faults, or {{\"faults\": [...]}}")
    return [check_fault(ir, f) for f in faults]


def fault_label(f: dict) -> str:
    """A short readable name, e.g. 'cell-stuck L1[3,17]=1'."""
    k = f["kind"]
    if k == "cell-stuck":
        return f"{k} L{f['layer']}[{f['col']},{f['row']}]={f['value']}"
    if k == "threshold-flip":
        return f"{k} L{f['layer']}[{f['col']}] bit {f['bit']}"
    if k == "keep-stuck":
        return f"{k} if{f['interface']}={f['value']}"
    if k == "mtj-stuck":
        return f"{k} if{f['interface']} {f['state']}"
    if k == "mtj-p-scale":
        return f"{k} if{f['interface']} x{f['scale']}"
    return f"{k} if{f['interface']}<->if{f['other']}"
