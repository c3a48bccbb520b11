"""An online monitor for faults that show only in distribution (a stuck or drifting MTJ,
a stuck keep line): it watches the keep bits the design reads, over a window of W MC
samples, and needs neither labels nor a golden model.

**Keep-rate test.** On a sound device interface i drops with its realised p_i, so its
drop count over W samples is Binomial(W, p_i). The monitor flags the window when some
interface's count leaves the central binomial interval of probability 1 - alpha/n_if
(Bonferroni over the interfaces: the false-alarm rate of a clean window is at most
alpha). A swap of two interfaces with the same p keeps every rate: this monitor cannot
see it (the regression's class integers can).

**Entropy test** (the mu +- 3 sigma bound of the paper's online detector): the mean
predictive entropy of the W/T images of a window, flagged outside mu +- 3 sigma of the
same statistic over clean calibration windows.
"""

from __future__ import annotations

import numpy as np

from ..sim.stats import binom_interval

__all__ = ["keep_rate_alarms", "entropy_bounds", "entropy_alarms", "mean_entropy"]


def keep_rate_alarms(ap: np.ndarray, p: np.ndarray, window: int,
                     alpha: float = 1e-3) -> np.ndarray:
    """Alarm per complete window (bool [n // window]) of sense bits ap [n, n_if]
    (1 = drop), given each interface's realised p [n_if]."""
    ap = np.asarray(ap, bool)
    nw = len(ap) // window
    counts = ap[:nw * window].reshape(nw, window, -1).sum(1)          # [nw, n_if]
    lo, hi = binom_interval(window, np.asarray(p, float), 1 - alpha / ap.shape[1])
    return ((counts < lo) | (counts > hi)).any(1)


def mean_entropy(logits: np.ndarray) -> np.ndarray:
    """Predictive entropy (nats) per image of MC logits [N, T, classes]."""
    from ..metrics import predictive_entropy, softmax
    return predictive_entropy(softmax(np.asarray(logits, np.float64)).transpose(1, 0, 2))


def _window_means(h: np.ndarray, window: int) -> np.ndarray:
    nw = len(h) // window
    return np.asarray(h[:nw * window], float).reshape(nw, window).mean(1)


def entropy_bounds(clean_entropy: np.ndarray, window: int) -> tuple[float, float]:
    """mu -+ 3 sigma of the window means of clean per-image entropies."""
    m = _window_means(clean_entropy, window)
    if len(m) < 2:
        raise ValueError(f"need at least 2 clean windows of {window} images, got {len(m)}")
    return float(m.mean() - 3 * m.std(ddof=1)), float(m.mean() + 3 * m.std(ddof=1))


def entropy_alarms(entropy: np.ndarray, window: int, bounds: tuple[float, float]) -> np.ndarray:
    """Alarm per complete window of `window` images."""
    m = _window_means(entropy, window)
    return (m < bounds[0]) | (m > bounds[1])
