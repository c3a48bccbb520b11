"""MTJ device model: the stochastic-write switching curve and a seeded device array.

Switching follows the thermal-activation model (docs/DEVICES.md section 1):

    p(I, t) = 1 - exp(-t / tau(I)),   tau(I) = tau0 * exp(Delta * (1 - I / Ic0))

The write current comes from a `code_bits` DAC spanning [i_min, i_max] * Ic0. The compiler
picks, per dropout site, the code whose realised p is nearest the p asked for, and the
report states both. The default figures: tau0 = 1 ns, the "typically assumed" attempt
time (arXiv:2402.03452 [V]); Delta = 40 and Ic0 = 49 uA for a 40 nm perpendicular
CoFeB/MgO MTJ (Ikeda et al., Nature Mater. 9:721, 2010 [U]). They are parameters, not
constants: a real device must be calibrated (docs/DEVICES.md section 5).

`MtjArray` is the behavioural device for simulation: it reacts to the pins exactly as
SPEC section 6 (docs/SPEC.md) says (reset -> P; a write pulse switches P -> AP with
p(code, width); the state holds until the next reset; sense reads AP as 1). Each device
has its own seed, and its n-th write draws a counter-based uniform from (seed, n), so
outcomes are reproducible, independent of how the array is driven, and vectorised.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["MtjParams", "MtjArray", "device_seeds", "uniform01"]


@dataclass(frozen=True)
class MtjParams:
    tau0_ns: float = 1.0
    delta: float = 40.0
    ic0_ua: float = 49.0
    code_bits: int = 10
    i_min: float = 0.75      # DAC range, as a fraction of Ic0
    i_max: float = 1.0

    def current_ua(self, code) -> np.ndarray:
        frac = self.i_min + (self.i_max - self.i_min) * np.asarray(code, float) / (2**self.code_bits - 1)
        return frac * self.ic0_ua

    def p_switch(self, code, pulse_ns) -> np.ndarray:
        """Probability that a write pulse of `pulse_ns` at `code` switches P -> AP."""
        i = self.current_ua(code) / self.ic0_ua
        tau = self.tau0_ns * np.exp(self.delta * (1.0 - i))
        return -np.expm1(-np.asarray(pulse_ns, float) / tau)

    def choose_code(self, p: float, pulse_ns: float) -> tuple[int, float]:
        """(code, realised p) with the realised p nearest `p` (ties: the lower code)."""
        if not 0.0 < p < 1.0:
            raise ValueError(f"dropout probability must be in (0, 1), not {p!r}")
        codes = np.arange(2**self.code_bits)
        ps = self.p_switch(codes, pulse_ns)
        code = int(np.argmin(np.abs(ps - p)))
        return code, float(ps[code])

    def to_dict(self) -> dict:
        return asdict(self)


_M64 = (1 << 64) - 1


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = (x + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(_M64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def uniform01(seeds: np.ndarray, counter: np.ndarray) -> np.ndarray:
    """Counter-based uniforms in [0, 1): one per (device seed, draw index)."""
    with np.errstate(over="ignore"):
        x = _splitmix64(np.asarray(seeds, np.uint64) ^ _splitmix64(np.asarray(counter, np.uint64)))
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def device_seeds(seed: int, n: int) -> np.ndarray:
    """Per-device seeds derived from one run seed."""
    with np.errstate(over="ignore"):
        return _splitmix64(np.uint64(seed) * np.uint64(0x100000001B3) + np.arange(n, dtype=np.uint64))


class MtjArray:
    """n MTJ devices driven by reset/write pins; records each write's outcome.

    codes: write-current code per device; seeds: per-device seeds (see device_seeds).
    """

    def __init__(self, params: MtjParams, codes, seeds):
        self.params = params
        self.codes = codes
        self.seeds = np.asarray(seeds, np.uint64)
        n = len(self.codes)
        if self.seeds.shape != (n,):
            raise ValueError(f"need one seed per device ({n}), got shape {self.seeds.shape}")
        self.ap = np.zeros(n, bool)          # state: True = antiparallel
        self.armed = np.zeros(n, bool)       # reset since the last write
        self.writes = np.zeros(n, np.int64)  # draws so far, per device
        self.history: list[np.ndarray] = []  # AP outcome of each completed write pulse

    @property
    def codes(self) -> np.ndarray:
        return self._codes

    @codes.setter
    def codes(self, codes) -> None:
        self._codes = np.asarray(codes, np.int64)
        self._p_at: dict[float, np.ndarray] = {}     # switching p per pulse width

    @property
    def n(self) -> int:
        return len(self.codes)

    def reset(self, mask) -> None:
        mask = np.asarray(mask, bool)
        self.ap[mask] = False
        self.armed |= mask

    def write(self, mask, pulse_ns: float) -> None:
        """A write pulse of `pulse_ns` on the devices in `mask`. Only a device in P can
        switch; every pulse consumes one draw, so the sequence does not depend on state."""
        mask = np.asarray(mask, bool)
        u = uniform01(self.seeds, self.writes)
        p = self._p_at.get(pulse_ns)
        if p is None:
            p = self._p_at[pulse_ns] = self.params.p_switch(self.codes, pulse_ns)
        switch = mask & ~self.ap & (u < p)
        self.ap |= switch
        self.writes += mask
        self.armed &= ~mask
        outcome = np.where(mask, self.ap, False)
        self.history.append(outcome.copy())

    def sense(self) -> np.ndarray:
        """1 = AP (drop), 0 = P (keep), per device."""
        return self.ap.astype(np.uint8)
