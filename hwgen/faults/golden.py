"""The golden model carrying a fault: the judge of every fault.

Weight and threshold faults change the IR (`faulty_ir`). Device and wiring faults change
the keep bits: `device_ap` is what the devices do on a run's draws (the history the bench
records), `design_ap` what the design reads on its sense lines. Both start from the
clean replay (`hwgen.sim.scoreboard.replay_ap`: the counter-based draw of every write at
the IR's code and pulse), so a fault changes exactly what it names and nothing else.

`run_faulty` gives the class integers the faulty hardware computes; `expected` those the
regression's scoreboard expects (clean IR, the recorded device history). A fault shows in
the regression on an image when the two differ (class-integer mismatch) or when the
device history differs from the replay (device check).
"""

from __future__ import annotations

import numpy as np

from ..ir import fast
from ..ir.core import masks_from_ap, pack_rows, replace
from ..sim.scoreboard import interface_p, replay_ap
from .plan import threshold_width

__all__ = ["faulty_ir", "device_ap", "design_ap", "run_faulty", "expected", "run_clean"]


def faulty_ir(ir, f: dict):
    """`ir` with a cell-stuck or threshold-flip fault applied (other kinds: `ir` itself)."""
    k = f["kind"]
    if k not in ("cell-stuck", "threshold-flip"):
        return ir
    layers = list(ir.layers)
    lay = layers[f["layer"]]
    if k == "cell-stuck":
        w = lay.weight_bits().copy()
        w[f["col"], f["row"]] = f["value"]
        lay = replace(lay, weights=pack_rows(w))
    else:
        width = threshold_width(lay)
        t = list(lay.thresh)
        u = (int(t[f["col"]]) & ((1 << width) - 1)) ^ (1 << f["bit"])
        t[f["col"]] = u - (1 << width) if u >> (width - 1) else u       # sign-extend
        lay = replace(lay, thresh=tuple(t))
    layers[f["layer"]] = lay
    return replace(ir, layers=tuple(layers))


def device_ap(ir, f: dict | None, seeds, first_draw: int, n_draws: int) -> np.ndarray:
    """AP outcomes [n_draws, n_if] the devices give (with an MTJ fault, the faulty one's)."""
    ap = replay_ap(ir, seeds, first_draw, n_draws)
    if f is None or f["kind"] not in ("mtj-stuck", "mtj-p-scale"):
        return ap
    i = f["interface"]
    if f["kind"] == "mtj-stuck":
        ap[:, i] = f["state"] == "AP"
    else:
        # the same counter-based draws as the sound device, compared to the scaled p
        from ..device import uniform01
        k = np.arange(first_draw, first_draw + n_draws, dtype=np.uint64)
        u = uniform01(np.asarray(seeds, np.uint64)[i], k)
        ap[:, i] = u < min(1.0, float(interface_p(ir)[i]) * f["scale"])
    return ap


def design_ap(f: dict | None, dev_ap: np.ndarray) -> np.ndarray:
    """What the design reads on its sense lines (1 = AP = drop) given the devices' AP."""
    if f is None or f["kind"] not in ("keep-stuck", "sense-swap"):
        return dev_ap
    ap = dev_ap.copy()
    if f["kind"] == "keep-stuck":
        ap[:, f["interface"]] = not f["value"]            # keep = NOT sense
    else:
        i, j = f["interface"], f["other"]
        ap[:, [i, j]] = ap[:, [j, i]]
    return ap


def _run(ir, bits, ap, samples) -> np.ndarray:
    n = len(bits)
    masks = masks_from_ap(ir, ap, n, samples) if ir.n_interfaces else None
    return fast.run(ir, bits, masks, samples=samples)


def run_clean(ir, bits, samples: int, seeds, first_draw: int = 0) -> np.ndarray:
    """Clean class integers [N, T, classes] of bits [N, ...] on draws from `first_draw`."""
    return _run(ir, bits, replay_ap(ir, seeds, first_draw, len(bits) * samples), samples)


def run_faulty(ir, f: dict, bits, samples: int, seeds, first_draw: int = 0):
    """(class integers [N, T, classes] of the hardware carrying `f`, device AP history)."""
    dev = device_ap(ir, f, seeds, first_draw, len(bits) * samples)
    return _run(faulty_ir(ir, f), bits, design_ap(f, dev), samples), dev


def expected(ir, bits, samples: int, dev_ap) -> np.ndarray:
    """What the regression's scoreboard expects: the clean IR fed the recorded devices."""
    return _run(ir, bits, dev_ap, samples)
