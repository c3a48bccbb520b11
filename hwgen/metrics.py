"""Uncertainty and OOD-detection metrics over MC softmax samples.

Conventions: probabilities `probs` are [T, N, C] (T MC samples); the prediction is the
argmax of the mean softmax; logarithms are natural (nats). For OOD detection the OOD
images are the positive class and the score is the uncertainty (higher = more OOD).
"""

from __future__ import annotations

import numpy as np

# scikit-learn (about 1 s to import) is imported by the functions that use it, so that
# `hwgen predict` and `hwgen summary` do not pay for it.

__all__ = ["entropy", "predictive_entropy", "mutual_information", "ece", "reliability",
           "reliability_table", "brier", "nll", "classification_metrics", "ood_metrics", "softmax", "rejection_curve",
           "ECE_BINS", "REJECT_FRACTIONS"]

ECE_BINS = 15
# Fractions rejected on a rejection curve: 0, 5%, ..., 90% (at 95% and beyond a few dozen
# images carry the whole figure on the test sets used here).
REJECT_FRACTIONS = tuple(round(0.05 * k, 2) for k in range(19))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis in float64 (max-subtracted, so large logits are safe)."""
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def entropy(p: np.ndarray) -> np.ndarray:
    """Entropy over the last axis, with 0 log 0 = 0."""
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0.0).sum(-1)


def predictive_entropy(probs: np.ndarray) -> np.ndarray:
    """H[mean_t p_t] per image, from [T, N, C]."""
    return entropy(np.asarray(probs).mean(0))


def mutual_information(probs: np.ndarray) -> np.ndarray:
    """H[mean_t p_t] - mean_t H[p_t] per image (epistemic part; 0 for identical samples).
    Differences below 1e-12 nats are rounding noise of the mean and are set to 0, so that
    identical samples tie exactly (else they would rank images by noise in OOD scores)."""
    probs = np.asarray(probs, dtype=np.float64)
    mi = predictive_entropy(probs) - entropy(probs).mean(0)
    return np.where(mi < 1e-12, 0.0, mi)


def reliability(p: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict:
    """Per-bin count, accuracy and mean confidence over `bins` equal-width confidence
    bins; bin b holds confidences in (b/bins, (b+1)/bins] (the first also holds 0)."""
    p = np.asarray(p, dtype=np.float64)
    conf = p.max(-1)
    correct = (p.argmax(-1) == np.asarray(labels)).astype(np.float64)
    idx = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    count = np.bincount(idx, minlength=bins).astype(np.float64)
    safe = np.maximum(count, 1)
    return {"edges": np.linspace(0.0, 1.0, bins + 1), "count": count,
            "accuracy": np.bincount(idx, correct, bins) / safe,
            "confidence": np.bincount(idx, conf, bins) / safe}


def reliability_table(p: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict:
    """`reliability` as JSON-ready lists: the bins' lower and upper edges, image count,
    accuracy and mean confidence (0 for an empty bin; its count says so)."""
    r = reliability(p, labels, bins)
    return {"lower": r["edges"][:-1].tolist(), "upper": r["edges"][1:].tolist(),
            "count": [int(c) for c in r["count"]], "accuracy": r["accuracy"].tolist(),
            "confidence": r["confidence"].tolist()}


def ece(p: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error (L1): sum_b |B_b|/N * |acc_b - conf_b|, from [N, C]."""
    r = reliability(p, labels, bins)
    return float((r["count"] * np.abs(r["accuracy"] - r["confidence"])).sum() / r["count"].sum())


def brier(p: np.ndarray, labels: np.ndarray) -> float:
    """Multi-class Brier score: mean over images of sum_c (p_c - [c == y])^2, from [N, C]."""
    p = np.asarray(p, dtype=np.float64)
    onehot = np.eye(p.shape[-1])[np.asarray(labels)]
    return float(((p - onehot) ** 2).sum(-1).mean())


def nll(p: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class, from [N, C]."""
    p = np.asarray(p, dtype=np.float64)
    from sklearn.metrics import log_loss
    return float(log_loss(labels, p, labels=np.arange(p.shape[-1])))


def classification_metrics(probs: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy, NLL, ECE, Brier, mean predictive entropy and mean MI, from [T, N, C]."""
    probs = np.asarray(probs, dtype=np.float64)
    p = probs.mean(0)
    return {
        "accuracy": float((p.argmax(-1) == labels).mean()),
        "nll": nll(p, labels),
        "ece": ece(p, labels),
        "brier": brier(p, labels),
        "mean_entropy": float(predictive_entropy(probs).mean()),
        "mean_mi": float(mutual_information(probs).mean()),
    }


def ood_metrics(score_id: np.ndarray, score_ood: np.ndarray) -> dict:
    """AUROC, AUPR (OOD positive) and FPR at 95% TPR: the fraction of in-distribution
    images flagged when the threshold catches 95% of the OOD images."""
    s = np.concatenate([score_id, score_ood]).astype(np.float64)
    y = np.concatenate([np.zeros(len(score_id)), np.ones(len(score_ood))])
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
    fpr, tpr, _ = roc_curve(y, s)
    return {
        "auroc": float(roc_auc_score(y, s)),
        "aupr": float(average_precision_score(y, s)),
        "fpr95": float(fpr[np.searchsorted(tpr, 0.95, side="left")]),
    }


def rejection_curve(p: np.ndarray, labels: np.ndarray, score: np.ndarray,
                    fractions=REJECT_FRACTIONS) -> dict:
    """Accuracy on the retained images when the fraction f with the highest uncertainty
    `score` is rejected, for each f in `fractions` (from [N, C] mean probabilities).

    floor(f * N) images are rejected. Where the cut falls inside a group of equal scores
    (e.g. MI = 0 for a deterministic model), the group is split at random: the figure is
    the expected accuracy, so it does not depend on image order.
    Returns {"fraction": [...], "accuracy": [...], "retained": [...], "area": mean accuracy
    over the fractions}.
    """
    p, score = np.asarray(p, np.float64), np.asarray(score, np.float64)
    correct = (p.argmax(-1) == np.asarray(labels)).astype(np.float64)
    n = len(correct)
    if n == 0 or score.shape != (n,):
        raise ValueError(f"need one score per image: {score.shape} scores for {n} images")
    order = np.argsort(-score, kind="stable")         # most uncertain first
    s_sorted, c_sorted = score[order], correct[order]
    # For each position in the sorted list, the [start, end) of its group of equal scores.
    new = np.r_[True, s_sorted[1:] != s_sorted[:-1]]
    start = np.maximum.accumulate(np.where(new, np.arange(n), 0))
    end = np.r_[start[1:][new[1:]], n]
    end = np.repeat(end, np.diff(np.r_[np.flatnonzero(new), n]))
    csum = np.r_[0.0, np.cumsum(c_sorted)]
    acc, kept = [], []
    for f in fractions:
        if not 0.0 <= f < 1.0:
            raise ValueError(f"rejected fraction must be in [0, 1), not {f!r}")
        k = int(np.floor(f * n + 1e-9))               # images rejected
        if k == 0:
            good = csum[n]
        else:
            a, b = start[k - 1], end[k - 1]           # the group the cut falls in
            mean_group = (csum[b] - csum[a]) / (b - a)
            good = (csum[n] - csum[b]) + (b - k) * mean_group
        acc.append(float(good / (n - k)))
        kept.append(n - k)
    return {"fraction": [float(f) for f in fractions], "accuracy": acc, "retained": kept,
            "area": float(np.mean(acc))}
