"""Metric values on small cases computed by hand."""

import math

import numpy as np
import pytest

from hwgen import metrics


def test_entropy_and_mutual_information():
    assert metrics.entropy(np.full(4, 0.25)) == pytest.approx(math.log(4))
    assert metrics.entropy(np.array([1.0, 0.0])) == 0.0
    # two confident samples that disagree: all entropy is epistemic
    probs = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])  # [T=2, N=1, C=2]
    assert metrics.predictive_entropy(probs)[0] == pytest.approx(math.log(2))
    assert metrics.mutual_information(probs)[0] == pytest.approx(math.log(2))
    # identical samples: no mutual information
    same = np.array([[[0.7, 0.3]], [[0.7, 0.3]]])
    assert metrics.mutual_information(same)[0] == pytest.approx(0.0, abs=1e-12)
    assert metrics.predictive_entropy(same)[0] == pytest.approx(
        -(0.7 * math.log(0.7) + 0.3 * math.log(0.3)))


def test_ece_brier_nll():
    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    y = np.array([0, 1, 0, 1])
    # bin of 0.9: acc 1/2, conf 0.9 -> 0.4 * 2/4; bin of 0.6: acc 1, conf 0.6 -> 0.4 * 2/4
    assert metrics.ece(p, y) == pytest.approx(0.4)
    assert metrics.brier(p[:1], y[:1]) == pytest.approx(0.02)
    assert metrics.brier(p, y) == pytest.approx((0.02 + 1.62 + 0.32 + 0.32) / 4)
    assert metrics.nll(p, y) == pytest.approx(
        -(math.log(0.9) + math.log(0.1) + math.log(0.6) + math.log(0.6)) / 4)


def test_ece_uses_15_equal_bins():
    # 0.5 and 0.52 share the bin (7/15, 8/15] (10 equal bins would split them)
    p = np.array([[0.5, 0.5], [0.52, 0.48]])
    r = metrics.reliability(p, np.array([0, 1]))
    assert len(r["count"]) == 15 and r["count"][7] == 2 and r["count"].sum() == 2
    assert metrics.ece(p, np.array([0, 1])) == pytest.approx(abs(0.5 - 0.51))


def test_prediction_is_argmax_of_mean_softmax():
    # the majority of samples votes class 0, the mean softmax picks class 1
    probs = np.array([[[0.55, 0.45]], [[0.55, 0.45]], [[0.0, 1.0]]])
    m = metrics.classification_metrics(probs, np.array([1]))
    assert m["accuracy"] == 1.0
    assert m["nll"] == pytest.approx(-math.log((0.45 + 0.45 + 1.0) / 3))


def test_ood_metrics():
    s_id = np.array([0.1, 0.2, 0.3])
    s_ood = np.array([0.25, 0.4, 0.5])
    m = metrics.ood_metrics(s_id, s_ood)
    assert m["auroc"] == pytest.approx(8 / 9)
    assert m["aupr"] == pytest.approx((1 + 1 + 3 / 4) / 3)
    assert m["fpr95"] == pytest.approx(1 / 3)  # catching all OOD flags the ID image 0.3
    perfect = metrics.ood_metrics(s_id, s_ood + 1)
    assert perfect == {"auroc": 1.0, "aupr": 1.0, "fpr95": 0.0}


def test_identical_samples_tie_exactly():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(10), size=50)
    mi = metrics.mutual_information(np.repeat(p[None], 16, axis=0))
    assert (mi == 0.0).all()
    assert metrics.ood_metrics(mi[:25], mi[25:])["auroc"] == 0.5


def test_rejection_curve_by_hand():
    # images 0..3: correct = [0, 1, 1, 0]; uncertainty 0.9, 0.1, 0.5, 0.5
    p = np.array([[0.2, 0.8], [0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
    y = np.array([0, 0, 1, 1])
    score = np.array([0.9, 0.1, 0.5, 0.5])
    r = metrics.rejection_curve(p, y, score, fractions=(0.0, 0.25, 0.5, 0.75))
    # 0: all 4 kept, 2 right; 0.25: image 0 out -> 2/3; 0.5: the cut splits the tie {2, 3}
    # (one right, one wrong): image 1 + half of it -> 1.5/2; 0.75: only image 1 -> 1
    assert r["accuracy"] == pytest.approx([0.5, 2 / 3, 0.75, 1.0])
    assert r["retained"] == [4, 3, 2, 1]
    assert r["area"] == pytest.approx((0.5 + 2 / 3 + 0.75 + 1.0) / 4)
    # image order does not matter, ties included
    perm = np.array([3, 1, 0, 2])
    r2 = metrics.rejection_curve(p[perm], y[perm], score[perm], fractions=(0.0, 0.25, 0.5, 0.75))
    assert r2["accuracy"] == pytest.approx(r["accuracy"])
    # a constant score (MI of a deterministic model) keeps the accuracy flat
    flat = metrics.rejection_curve(p, y, np.zeros(4), fractions=(0.0, 0.5, 0.75))
    assert flat["accuracy"] == pytest.approx([0.5, 0.5, 0.5])
    with pytest.raises(ValueError):
        metrics.rejection_curve(p, y, score[:3])
    with pytest.raises(ValueError):
        metrics.rejection_curve(p, y, score, fractions=(1.0,))


def test_softmax_and_reliability_table():
    z = np.array([[1000.0, 1000.0], [0.0, math.log(3.0)]])
    assert metrics.softmax(z) == pytest.approx(np.array([[0.5, 0.5], [0.25, 0.75]]))
    t = metrics.reliability_table(np.array([[0.9, 0.1], [0.91, 0.09], [0.5, 0.5]]),
                                  np.array([0, 1, 0]))
    assert sum(t["count"]) == 3 and t["count"][13] == 2 and t["count"][7] == 1
    assert t["accuracy"][13] == 0.5 and t["upper"][13] == pytest.approx(14 / 15)
