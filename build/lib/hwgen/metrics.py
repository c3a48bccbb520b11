"""Uncertainty and OOD-detection metrics over MC softmax samples.

Conventions: probabilities `probs` are [T, N, C] (T MC samples); the prediction is the
argmax of the mean softmax; logarithms are natural (nats). For OOD detection the OOD
images are the positive class and the score is the uncertainty (higher = more OOD).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score, roc_curve

__all__ = ["entropy", "predictive_entropy", "mutual_information", "ece", "reliability",
           "brier", "nll", "classification_metrics", "ood_metrics", "ECE_BINS"]

ECE_BINS = 15


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
    fpr, tpr, _ = roc_curve(y, s)
    return {
        "auroc": float(roc_auc_score(y, s)),
        "aupr": float(average_precision_score(y, s)),
        "fpr95": float(fpr[np.searchsorted(tpr, 0.95, side="left")]),
    }
