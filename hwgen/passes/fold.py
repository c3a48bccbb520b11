"""lower: the float stage -> the integer stage (hwgen.ir.core).

Per hidden layer, batch norm + sign (+ the inverted-dropout input scale) fold into one
integer (s, t) per column; the classifier's batch norm becomes the host-side logit affine;
latent weights become packed bits (sign(0) = +1).
"""

from __future__ import annotations

import numpy as np

from ..ir.core import IR, BatchNorm, FloatLayer, Layer, pack_rows, replace
from ..ir.interp import bn_value

__all__ = ["lower", "fold_thresholds", "fold_decisions"]


def fold_decisions(on: np.ndarray, bound: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Exact (s, t) with (s*a >= t) == on[:, a + bound] for every integer a in
    [-bound, bound]: the one threshold fold of every frontend (`fold_thresholds` for
    hwgen's model.pt, hwgen.frontend.qonnx for a QONNX graph).

    on: bool [O, 2*bound + 1], channel j's output bit at every acc from -bound to bound,
    each row monotone in acc (non-decreasing or non-increasing). bound: the layer's acc
    bound (IR.acc_bound), the range the thresholds cover.

    - A rising channel gets s = +1 and t = the lowest acc with output 1.
    - A falling channel gets s = -1 and t = -(the highest acc with output 1).
    - A constant channel, one with the same output at every acc in [-bound, bound]
      (gain 0, or a crossing outside the range), gets s = +1 and t = -(bound+1) for
      always 1 or t = bound+1 for always 0: just outside what s*acc can reach, the only
      thresholds outside (-bound, bound] that hwgen.ir.verify accepts.

    Constancy is judged on the whole range, not on the accs a layer's windows can reach
    (hwgen.frontend.qonnx.reachable): a channel that crosses only between accs no window
    produces keeps its crossing, which decides every reachable acc as exactly.
    AssertionError if a row is not monotone (the frontends refuse that before folding).
    """
    on = np.asarray(on, bool)
    a = np.arange(-bound, bound + 1)
    if on.ndim != 2 or on.shape[1] != a.size:
        raise ValueError(f"decisions of shape {on.shape}, expected (O, {a.size})")
    always, never = on.all(axis=1), ~on.any(axis=1)
    first = a[np.argmax(on, axis=1)]                  # lowest a with on
    last = a[a.size - 1 - np.argmax(on[:, ::-1], axis=1)]
    up = on[:, -1]                                    # on at the top: s = +1
    s = np.where(up | never, 1, -1)
    t = np.where(always, -(bound + 1), np.where(never, bound + 1, np.where(up, first, -last)))
    if not np.array_equal(s[:, None] * a[None, :] >= t[:, None], on):
        raise AssertionError("decision is not monotone in acc")
    return tuple(int(v) for v in s), tuple(int(v) for v in t)


def fold_thresholds(bn: BatchNorm, rows: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Exact (s, t) with (s*a >= t) == (bn_value(a) >= 0) for every integer a in [-rows, rows]
    (`rows`: the layer's acc bound, IR.acc_bound: more than its rows for a multi-bit input).

    bn_value is evaluated at every acc in the range and folded by `fold_decisions`, so the
    fold is exact by construction, including gain 0 (constant) and negative gains (s = -1).
    """
    a = np.arange(-rows, rows + 1)
    o = len(bn.gain)
    return fold_decisions(bn_value(bn, np.broadcast_to(a, (o, a.size)), axis=0) >= 0, rows)


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
