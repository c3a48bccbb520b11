"""Device and periphery energy figures for the cost model (SPEC section 11, docs/SPEC.md).

Every figure is copied from docs/DEVICES.md (its table "What hwgen uses") with its source
and its tag:
  [V] read in the source's own text (or the simulator's config file),
  [U] from a secondary copy, or the citation is not fully confirmed,
  (d) derived from [V] inputs (the derivation is in `note`).
The report prints this table, so a reader sees which numbers carry the result.

Choices, and why:
- RNG draw = reset + stochastic write + sense of one MTJ. Reset and write use NVSim's
  sample STT cell (0.194 pJ each), a self-consistent simulator figure for the same cell
  whose read we also use; DEVICES.md section 1 derives 2 x 0.194 = 0.39 pJ for reset +
  write. Liu et al.'s 1 pJ per stochastic STT sample [V] is kept as a sensitivity figure.
- Crossbar cell read = V^2/R at 0.25 V (NVSim cell) over the 2.8 ns read access of a
  28 nm STT-MRAM (Dong et al.); weights are half P, half AP on average.
- Column readout = NeuroSim's SAR ADC model at 22 nm, with as many bits as the column
  sum needs; NeuroSim's sense amplifier has no published pJ figure, so it is not added.
- Digital add / threshold compare = Horowitz's 32-bit add (45 nm) [U]: our accumulators
  are 8..16 bits, so this is an upper bound.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["Figure", "TABLE", "figure", "adc_pj", "rng_draw_pj", "as_rows"]


@dataclass(frozen=True)
class Figure:
    """One sourced energy figure, in picojoules."""
    key: str
    value_pj: float
    what: str
    source: str
    tag: str          # '[V]' | '[U]' | '(d)'
    note: str = ""


_NVSIM = "SEAL-UCSB/NVSim sample_STTRAM.cell (docs/DEVICES.md section 2)"
_DONG = ("Dong et al., JSSC 54(1), 2019: 28 nm 1-Mb STT-MRAM, read access 2.8 ns "
         "(docs/DEVICES.md section 2)")
_READ_FJ_PER_NS_P = 0.25**2 / 6e3 * 1e6      # V^2/R: 10.4 uW = 10.4 fJ/ns, NVSim R_P 6 kOhm
_READ_FJ_PER_NS_AP = 0.25**2 / 12e3 * 1e6    # 5.2 fJ/ns, NVSim R_AP 12 kOhm
_T_READ_NS = 2.8

# NeuroSim V1.4 SarADC.cpp, 22 nm HP: P = (a*log2 L + b) uW, E = P * (log2 L + 1) ns.
ADC_A_UW, ADC_B_UW = 0.7213, 3.3041

TABLE: tuple[Figure, ...] = (
    Figure("mtj_reset", 0.194, "MTJ reset (drive to P), per draw",
           _NVSIM + ": set/reset 40.82 uA, 5 ns, 0.194 pJ", "[V]"),
    Figure("mtj_write", 0.194, "MTJ stochastic write pulse, per draw",
           _NVSIM + ": set/reset 40.82 uA, 5 ns, 0.194 pJ", "[V]",
           "deterministic set energy used for the sub-Ic0 stochastic pulse"),
    Figure("mtj_sense", _READ_FJ_PER_NS_P * _T_READ_NS / 1e3, "MTJ sense (read one cell), per draw",
           "V^2/R at 0.25 V, R_P 6 kOhm (" + _NVSIM + ") x 2.8 ns (" + _DONG + ")", "(d)",
           "10.4 fJ/ns x 2.8 ns; P state, the worse case; sense amplifier not included"),
    Figure("stochastic_sample_alt", 1.0, "whole stochastic STT write sample (sensitivity only)",
           "Liu, ..., Incorvia, IEEE JxCDC 2022, arXiv:2211.16588 (docs/DEVICES.md section 1)",
           "[V]",
           "not summed; the report gives the RNG energy with this figure instead"),
    Figure("xbar_cell_read", (_READ_FJ_PER_NS_P + _READ_FJ_PER_NS_AP) / 2 * _T_READ_NS / 1e3,
           "crossbar cell read, per driven row x column",
           "V^2/R at 0.25 V, R_P/R_AP 6/12 kOhm (" + _NVSIM + ") x 2.8 ns (" + _DONG + ")", "(d)",
           "mean of P (10.4 fJ/ns) and AP (5.2 fJ/ns) x 2.8 ns"),
    Figure("digital_add", 0.1, "digital add or threshold compare, per column",
           "Horowitz, 'Computing's energy problem', ISSCC 2014, Fig. 1.1.9: 32 b add 0.1 pJ, 45 nm "
           "(docs/DEVICES.md section 3)", "[U]", "upper bound: accumulators here are 8-16 bits"),
)

_ADC_SOURCE = ("NeuroSim V1.4 SarADC.cpp, 22 nm HP: P = (0.7213*log2 L + 3.3041) uW, "
               "E = P*(log2 L + 1) ns (docs/DEVICES.md section 2)")


def figure(key: str) -> Figure:
    for f in TABLE:
        if f.key == key:
            return f
    raise KeyError(key)


def adc_bits(rows: int) -> int:
    """Bits a column readout needs for a sum over `rows` driven rows (0..rows levels)."""
    return max(1, math.ceil(math.log2(rows + 1)))


def adc_pj(bits: int) -> float:
    """SAR ADC energy per conversion of `bits` bits, pJ: NeuroSim's model (d)."""
    return (ADC_A_UW * bits + ADC_B_UW) * (bits + 1) / 1e3


def adc_figure(bits: int) -> Figure:
    return Figure(f"adc_{bits}b", adc_pj(bits), f"{bits}-bit SAR ADC conversion, per column read",
                  _ADC_SOURCE, "(d)", f"({ADC_A_UW}*{bits} + {ADC_B_UW}) uW x {bits + 1} ns")


def rng_draw_pj() -> float:
    """Energy of one MTJ-RNG draw: reset + write + sense."""
    return sum(figure(k).value_pj for k in ("mtj_reset", "mtj_write", "mtj_sense"))


def as_rows(extra=()) -> list[dict]:
    """The table (plus any derived figures in `extra`) as JSON-ready dicts."""
    return [asdict(f) for f in (*TABLE, *extra)]
