"""lower: the float stage -> the integer stage (hwgen.ir.core).

Per hidden layer, batch norm + sign (+ the inverted-dropout input scale) fold into one
integer (s, t) per column; the classifier's batch norm becomes the host-side logit affine;
latent weights become packed bits (sign(0) = +1).
"""

from __future__ import annotations

import numpy as np

from ..ir.core import IR, BatchNorm, FloatLayer, Layer, pack_rows, replace
from ..ir.interp import bn_value

__all__ = ["lower", "fold_thresholds"]


def fold_thresholds(bn: BatchNorm, rows: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Exact (s, t) with (s*a >= t) == (bn_value(a) >= 0) for every integer a in [-rows, rows]
    (`rows`: the layer's acc bound, IR.acc_bound: more than its rows for a multi-bit input).

    bn_value is evaluated at every reachable acc, so the fold is exact by construction,
    including gain 0 (constant) and negative gains (s = -1). A constant channel gets s = +1
    and t = -(rows+1) (always 1) or rows+1 (always 0): outside what s*acc can reach.
    """
    a = np.arange(-rows, rows + 1)
    o = len(bn.gain)
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


def _geometry(l: FloatLayer) -> dict:
    return dict(op=l.op, in_shape=l.in_shape, out_channels=l.out_channels, kernel=l.kernel,
                pad=l.pad, pool=l.pool, tile=l.tile, stride=l.stride, pool_stride=l.pool_stride)


def lower(ir: IR, cfg=None) -> IR:
    """Every FloatLayer -> a Layer; an integer-stage IR is returned unchanged."""
    if ir.stage == "integer":
        return ir
    last = len(ir.layers) - 1
    layers = []
    for i, l in enumerate(ir.layers):
        weights = pack_rows(l.weight_bits())
        bn = l.bn
        if i < last:
            s, t = fold_thresholds(bn, ir.acc_bound(i))
            layers.append(Layer(**_geometry(l), weights=weights, sign=s, thresh=t))
        else:
            k = np.asarray(bn.gain) / np.sqrt(np.asarray(bn.var) + bn.eps)
            a = k * bn.in_scale
            b = np.asarray(bn.bias) - np.asarray(bn.mean) * k
            layers.append(Layer(**_geometry(l), weights=weights,
                                logit_scale=tuple(float(v) for v in a),
                                logit_bias=tuple(float(v) for v in b)))
    return replace(ir, layers=tuple(layers))
