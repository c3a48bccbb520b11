"""fold_batchnorm: batch norm + sign (+ inverted-dropout scale) -> integer (s, t)."""

from __future__ import annotations

import numpy as np

from ..ir.core import IR, replace
from ..ir.interp import bn_value

__all__ = ["fold_batchnorm", "fold_thresholds"]


def fold_thresholds(bn: dict, rows: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Exact (s, t) with (s*a >= t) == (bn_value(a) >= 0) for every integer a in [-rows, rows].

    bn_value is evaluated at every reachable acc, so the fold is exact by construction,
    including gain 0 (constant) and negative gains (s = -1). A constant channel gets s = +1
    and t = -(rows+1) (always 1) or rows+1 (always 0): outside what s*acc can reach.
    """
    a = np.arange(-rows, rows + 1)
    o = len(bn["gain"])
    on = bn_value(bn, np.broadcast_to(a, (o, a.size)), axis=0) >= 0
    first = a[np.argmax(on, axis=1)]                  # lowest a with on
    last = a[a.size - 1 - np.argmax(on[:, ::-1], axis=1)]
    up = on[:, -1]                                    # on at the top: s = +1
    s = np.where(up, 1, -1)
    t = np.where(up, first, -last)
    t = np.where(on.all(axis=1), -(rows + 1), np.where(~on.any(axis=1), rows + 1, t))
    s = np.where(on.all(axis=1) | ~on.any(axis=1), 1, s)
    if not np.array_equal(s[:, None] * a[None, :] >= t[:, None], on):
        raise AssertionError("batch norm is not monotone in acc")  # bn_value guarantees it
    return tuple(int(v) for v in s), tuple(int(v) for v in t)


def fold_batchnorm(ir: IR, cfg=None) -> IR:
    """Replace every layer's batch norm by (s, t), and the classifier's by the per-class
    logit affine logit_j = a_j * acc_j + b_j (host side, float)."""
    last = len(ir.layers) - 1
    layers = []
    for i, layer in enumerate(ir.layers):
        bn = layer.bn
        if bn is None:
            layers.append(layer)
        elif i < last:
            s, t = fold_thresholds(bn, layer.rows)
            layers.append(replace(layer, bn=None, sign=s, thresh=t))
        else:
            k = np.asarray(bn["gain"]) / np.sqrt(np.asarray(bn["var"]) + bn["eps"])
            a = k * bn["in_scale"]
            b = np.asarray(bn["bias"]) - np.asarray(bn["mean"]) * k
            layers.append(replace(layer, bn=None, logit_scale=tuple(float(v) for v in a),
                                  logit_bias=tuple(float(v) for v in b)))
    return replace(ir, layers=tuple(layers))
