"""Scoreboard: the masks the devices produced -> the golden interpreter -> compare.

The device model is the source of truth for the masks (SPEC section 6): the k-th
completed write pulse of interface i is its draw for the k-th (image, sample) of the
run, and keep = NOT AP. The scoreboard turns that per-write history into the
interpreter's per-site masks [N, T, n_groups], runs the golden model and compares every
class integer with `==`.

Independently it replays each device from its seed: the counter-based draw of write k,
switched with the p the IR asks for (site code, IR write pulse). A device whose recorded
outcome differs from the replay saw the wrong pins (no reset before a write, a write
pulse of the wrong width, the wrong current code, a skipped or extra write). Those count
as device mismatches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hwgen.device import uniform01
from hwgen.ir.core import masks_from_ap

__all__ = ["interface_codes", "interface_p", "replay_ap", "Scoreboard"]


def interface_codes(ir) -> np.ndarray:
    """Write-current code of every interface, in global interface order."""
    codes = np.zeros(ir.n_interfaces, np.int64)
    for s in ir.sites:
        codes[s.interfaces] = s.mtj_code
    return codes


def interface_p(ir) -> np.ndarray:
    """Switching probability each interface realises under the IR's code and write pulse."""
    return ir.mtj.device.p_switch(interface_codes(ir), ir.mtj.write_ns)


def replay_ap(ir, seeds: np.ndarray, first_draw: int, n_draws: int) -> np.ndarray:
    """What each device must have done on draws [first_draw, first_draw + n_draws) when
    every write follows a reset at the IR's code and pulse width: [n_draws, n_if] bool."""
    k = np.arange(first_draw, first_draw + n_draws, dtype=np.uint64)[:, None]
    u = uniform01(np.asarray(seeds, np.uint64)[None, :], k)
    return u < interface_p(ir)[None, :]


@dataclass
class Scoreboard:
    """Checks RTL beats against the golden interpreter, image chunk by image chunk.

    ir: the IR the golden model reads; seeds: per-interface device seeds as the scoreboard
    believes them; golden: run(ir, bits, masks) -> int [N, T, classes] (default
    hwgen.ir.fast.run, equal to the definition hwgen.ir.interp.run); first_draw: the device draw index of the run's first sample;
    wiring: the device feeding each interface slot, as the scoreboard believes it
    (default: interface i is device i).
    """
    ir: object
    seeds: np.ndarray
    golden: object = None
    first_draw: int = 0
    wiring: np.ndarray | None = None
    images: int = 0
    samples: int = 0
    mismatches: int = 0            # differing class integers
    mismatched_samples: int = 0    # (image, sample) pairs with any differing integer
    device_mismatches: int = 0     # (write, interface) outcomes that differ from the replay
    first_mismatch: dict | None = None
    first_device_mismatch: dict | None = None
    _draw: int = field(default=0, init=False)

    def __post_init__(self):
        if self.golden is None:
            from hwgen.ir.fast import run
            self.golden = run
        self.seeds = np.asarray(self.seeds, np.uint64)
        self._draw = self.first_draw

    def check(self, bits: np.ndarray, observed: np.ndarray, ap: np.ndarray,
              image_index: np.ndarray) -> int:
        """One chunk: bits [n, C, H, W], observed [n, T, classes], ap [n*T, n_if] (the
        chunk's writes, in order), image_index [n] (dataset indices, for the report).
        Returns the chunk's class-integer mismatches."""
        n, t = observed.shape[:2]
        ap = np.asarray(ap, bool).reshape(n * t, self.ir.n_interfaces)
        masks = masks_from_ap(self.ir, ap if self.wiring is None else ap[:, self.wiring], n, t)
        expected = np.asarray(self.golden(self.ir, bits, masks, samples=t))
        if expected.shape != observed.shape:
            raise ValueError(f"golden gave {expected.shape}, RTL gave {observed.shape}")
        bad = expected != observed
        self.mismatches += int(bad.sum())
        self.mismatched_samples += int(bad.any(axis=2).sum())
        if bad.any() and self.first_mismatch is None:
            i, s, c = (int(v) for v in np.argwhere(bad)[0])
            self.first_mismatch = {
                "image": int(image_index[i]), "sample": s, "class": c,
                "expected": expected[i, s].tolist(), "observed": observed[i, s].tolist(),
                "keep_masks": [m[i, s].tolist() for m in masks],
                "device_draw": self._draw + i * t + s,
            }
        if self.ir.n_interfaces:
            want = replay_ap(self.ir, self.seeds, self._draw, n * t)
            dev_bad = want != ap
            self.device_mismatches += int(dev_bad.sum())
            if dev_bad.any() and self.first_device_mismatch is None:
                k, f = (int(v) for v in np.argwhere(dev_bad)[0])
                self.first_device_mismatch = {
                    "image": int(image_index[k // t]), "sample": k % t, "interface": f,
                    "device_draw": self._draw + k, "expected_ap": bool(want[k, f]),
                    "recorded_ap": bool(ap[k, f])}
        self._draw += n * t
        self.images += n
        self.samples += n * t
        return int(bad.sum())

    def summary(self) -> dict:
        return {"images": self.images, "samples": self.samples,
                "mismatches": self.mismatches, "mismatched_samples": self.mismatched_samples,
                "device_mismatches": self.device_mismatches,
                "first_mismatch": self.first_mismatch,
                "first_device_mismatch": self.first_device_mismatch}
