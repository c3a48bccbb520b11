"""Statistics level (SPEC section 10.4): are the recorded device draws what they claim?

Input: the per-write AP outcomes [n, n_if] (n draws per interface, in order) and each
interface's realised p. Three checks, each a two-sided test at family-wise level alpha
(default 0.001, i.e. 99.9%), Bonferroni-corrected over the tests of its family:

1. **Rate.** The drop count X_i of interface i is Binomial(n, p_i). It must lie in the
   central binomial interval of probability 1 - alpha/m (m = interfaces with 0 < p < 1).
   The uncorrected 99.9% interval is reported too, as SPEC section 10.4 asks for it per
   interface.
2. **Independence between interfaces.** For independent draws the Pearson correlation
   r_ij of two interfaces' sequences has mean 0 and standard deviation 1/sqrt(n) up to
   O(1/n), and sqrt(n) r_ij is asymptotically N(0, 1) (CLT on the products). So
   |r_ij| < z_{1 - alpha/(2M)} / sqrt(n), M = m(m-1)/2 pairs.
3. **Independence between consecutive samples** of one interface: the lag-1
   autocorrelation r_i(1) of a Bernoulli sequence is likewise ~ N(0, 1/n), so
   |r_i(1)| < z_{1 - alpha/(2m)} / sqrt(n).

The bounds are exact in their level only asymptotically; with n >= a few hundred and p
not near 0 or 1 (n p (1-p) >= 10) the normal approximation is good to the precision that
matters here. Interfaces with p in {0, 1} are constant: they are checked to be constant
and left out of the correlation families.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binom, norm

__all__ = ["binom_interval", "corr_bound", "interface_stats", "site_stats"]


def binom_interval(n: int, p, conf: float) -> tuple[np.ndarray, np.ndarray]:
    """Central interval [lo, hi] of Binomial(n, p) counts holding probability >= conf."""
    lo, hi = binom.interval(conf, n, p)
    return np.asarray(lo, np.int64), np.asarray(hi, np.int64)


def corr_bound(n: int, tests: int, alpha: float) -> float:
    """|r| bound of one of `tests` two-sided correlation tests at family-wise level alpha."""
    return float(norm.isf(alpha / (2 * max(tests, 1))) / np.sqrt(n))


def _lag1(x: np.ndarray) -> np.ndarray:
    a, b = x[:-1] - x[:-1].mean(0), x[1:] - x[1:].mean(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    return np.divide((a * b).sum(0), den, out=np.zeros(x.shape[1]), where=den > 0)


def interface_stats(ap: np.ndarray, p: np.ndarray, alpha: float = 1e-3) -> dict:
    """The three checks over per-write AP outcomes ap [n, n_if] with realised p [n_if]."""
    ap = np.asarray(ap, bool)
    n, n_if = ap.shape
    p = np.asarray(p, float)
    k = ap.sum(0)
    random = (p > 0) & (p < 1)
    m = int(random.sum())
    lo, hi = binom_interval(n, p, 1 - alpha)
    blo, bhi = binom_interval(n, p, 1 - alpha / max(m, 1))
    rate_ok = np.where(random, (k >= blo) & (k <= bhi), k == np.round(p * n))
    x = ap[:, random].astype(float)
    if m >= 2:
        with np.errstate(invalid="ignore", divide="ignore"):   # constant columns: r = nan -> 0
            r = np.corrcoef(x, rowvar=False)
        iu = np.triu_indices(m, 1)
        pair_r = np.abs(r[iu])
        pair_r = np.nan_to_num(pair_r, nan=0.0)
        max_pair = float(pair_r.max())
        worst = int(pair_r.argmax())
        idx = np.flatnonzero(random)
        worst_pair = [int(idx[iu[0][worst]]), int(idx[iu[1][worst]])]
    else:
        max_pair, worst_pair = 0.0, None
    pair_bound = corr_bound(n, m * (m - 1) // 2, alpha)
    lag = np.abs(_lag1(x)) if m else np.zeros(0)
    lag_bound = corr_bound(n - 1, m, alpha)
    return {
        "draws": n, "interfaces": n_if, "alpha": alpha,
        "drops": k.tolist(), "rate": (k / n).tolist(), "p": p.tolist(),
        "interval_999": np.stack([lo, hi], 1).tolist(),
        "interval_bonferroni": np.stack([blo, bhi], 1).tolist(),
        "rate_ok": rate_ok.tolist(),
        "rate_failures": int((~rate_ok).sum()),
        "outside_999": int(((k < lo) | (k > hi))[random].sum()),
        "max_pair_r": max_pair, "worst_pair": worst_pair, "pair_bound": pair_bound,
        "pair_ok": max_pair < pair_bound,
        "max_lag1_r": float(lag.max()) if m else 0.0, "lag1_bound": lag_bound,
        "lag1_ok": bool((lag < lag_bound).all()),
        "ok": bool(rate_ok.all() and max_pair < pair_bound and (lag < lag_bound).all()),
    }


def site_stats(ir, ap: np.ndarray, alpha: float = 1e-3) -> list[dict]:
    """Per dropout site: asked and realised p, the observed drop rate pooled over its
    interfaces, and the 99.9% binomial interval of that pooled rate (n*groups draws)."""
    from .scoreboard import interface_p
    p = interface_p(ir)
    ap = np.asarray(ap, bool)
    out = []
    for s in ir.sites:
        cols = ap[:, s.interfaces]
        ps = p[s.interfaces]
        draws = cols.size
        lo, hi = binom_interval(draws, float(ps[0]), 1 - alpha)
        out.append({"layer": s.layer, "kind": s.kind, "interfaces": s.n_groups,
                    "p_asked": s.p, "p_realised": float(ps[0]), "draws": draws,
                    "drops": int(cols.sum()),
                    "observed_rate": float(cols.mean()),
                    "interval_999": [float(lo) / draws, float(hi) / draws],
                    "inside": bool(lo <= cols.sum() <= hi)})
    return out
