"""The golden interpreter's fast path: the same class integers as `hwgen.ir.interp.run`
(the definition), by exact float32 matmuls. The tests hold the two equal at every pass
stage, tiling and dropout kind.

XNOR-popcount over packed bits is the definition, but at these layer sizes numpy's
float32 BLAS is faster: every layer is an exact float32 matmul on +-1/0 values (exact
while |acc| <= rows <= 2**24), with the sign s_j folded into the weights and max-pooling
done on s*acc before the threshold. The first per-sample layer sees the same input in
every sample, only its keep bits change: with spatial dropout each group's partial sums
are computed once per image and combined per sample by the keep bits (see
`_shared_input_acc`).

These matmuls are small and skinny: OpenBLAS's threads only spin on them (the figure is
in docs/BENCHMARKS.md), so run() keeps BLAS single-threaded (threadpoolctl) and runs image
chunks on its own threads instead.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import threadpool_limits

from . import interp
from .core import IR, Layer, Site
from .interp import CHUNK_BYTES, keep_rows, layer_bits, pool_bits

__all__ = ["run"]


def run(ir: IR, bits: np.ndarray, masks=None, samples: int | None = None,
        threads: int = 2) -> np.ndarray:
    """MC inference: class integers acc [N, T, classes] int32, equal to
    `hwgen.ir.interp.run` (same arguments); `threads` image chunks run in parallel (the
    result does not depend on it). Layers whose |acc| can pass 2**24, where float32 stops
    being exact, send the whole run to the definition."""
    if max(ir.acc_bound(i) for i in range(len(ir.layers))) > 2 ** 24:
        return interp.run(ir, bits, masks, samples)
    bits = interp.check_bits(ir, bits)
    n = bits.shape[0]
    masks, t = interp.check_masks(ir, n, masks, samples)
    first = ir.layers[ir.mc_start]
    per_image = 4 * first.windows * first.out_channels * (first.in_shape[0] + 3 * t) \
        + 4 * t * first.out_channels * first.rows + 1
    step = max(1, min(n, (4 * CHUNK_BYTES) // per_image))
    out = np.empty((n, t, ir.n_classes), np.int32)

    def chunk(a: int) -> None:
        out[a:a + step] = _fast_chunk(ir, bits[a:a + step], [m[a:a + step] for m in masks], t)

    starts = range(0, n, step)
    with threadpool_limits(limits=1, user_api="blas"):
        if threads > 1 and len(starts) > 1:
            # numpy releases the GIL in its loops and matmuls: chunks run in parallel
            with ThreadPoolExecutor(max_workers=threads) as pool:
                list(pool.map(chunk, starts))
        else:
            for a in starts:
                chunk(a)
    return out


def _values(ir: IR, i: int, h: np.ndarray) -> np.ndarray:
    """Layer i's input as float32 values [B, C, H, W]: +-1 for bits, q (the plane-weighted
    sum of the bit planes [B, P, C, H, W]) for a multi-bit first layer."""
    if i == 0 and ir.input.mode != "binary":
        w = np.asarray(ir.input.plane_weights, np.float32).reshape(1, -1, 1, 1, 1)
        return (h.astype(np.float32) * w).sum(axis=1)
    return h.astype(np.float32) * 2 - 1


def _pm_windows(layer, vals: np.ndarray) -> np.ndarray:
    """Input values [B, C, H, W] -> sliding windows (0 = padding) [B, C, H', W', kh, kw]."""
    (kh, kw), (ph, pw), (sh, sw) = layer.kernel, layer.pad, layer.stride
    pm = np.pad(vals, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    return sliding_window_view(pm, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]



def _fast_weights(layer) -> np.ndarray:
    """+-1 float32 weights [O, rows], each column pre-multiplied by its sign s_j when the
    layer has thresholds, so the matmul yields s_j * acc_j directly."""
    w = layer.weight_bits().astype(np.float32) * 2 - 1
    if isinstance(layer, Layer) and layer.thresh is not None:
        w *= np.asarray(layer.sign, np.float32)[:, None]
    return w



def _fast_out(layer: Layer, sacc: np.ndarray) -> np.ndarray:
    """s*acc [B, O, H', W'] float32 -> output bits after pooling: OR of (s*acc >= t) over a
    block is (max of s*acc over the block) >= t, so pool first (blocks at the pool
    stride), then threshold the pooled values only."""
    p, t = layer.pool, layer.pool_step
    if p > 1:
        _, hh, ww = layer.out_shape
        m = sacc[:, :, :(hh - 1) * t + 1:t, :(ww - 1) * t + 1:t].copy()
        for dy in range(p):
            for dx in range(p):
                if dy or dx:
                    np.maximum(m, sacc[:, :, dy:dy + (hh - 1) * t + 1:t,
                                       dx:dx + (ww - 1) * t + 1:t], out=m)
        sacc = m
    return (sacc >= np.asarray(layer.thresh, np.float32)[None, :, None, None]).view(np.uint8)



def _fast_acc(layer, vals: np.ndarray, row_keep: np.ndarray | None) -> np.ndarray:
    """s*acc (acc for the classifier) [B, O, H', W'] float32 by one exact matmul per layer."""
    b = vals.shape[0]
    v = _pm_windows(layer, vals)
    w = _fast_weights(layer)
    if layer.windows == 1:                                     # linear: one plain gemm
        x = v.reshape(b, layer.rows)
        if row_keep is not None:
            x = x * row_keep
        return (x @ w.T).reshape((b,) + layer.conv_shape)
    x = v.transpose(0, 1, 4, 5, 2, 3).reshape(b, layer.rows, layer.windows)
    if row_keep is not None:
        x = x * row_keep[:, :, None]
    return np.matmul(w, x).reshape((b,) + layer.conv_shape)



def _shared_input_acc(layer, site: Site, vals: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """s*acc (acc for the classifier) [n*T, O, H', W'] float32 (exact integers) of a layer
    whose input values vals [n, C, H, W] are shared by T samples that differ only in their keep bits
    [n, T, G].

    Two exact float32 matmul forms, in a rows x windows layout that yields map order:
    grouped: each group's partial sums once per image, then keep @ partials
             (O*rows*L + T*G*O*L multiply-adds per image);
    masked:  per sample, weights with the dropped rows zeroed, @ the windows
             (T*O*rows*L); cheaper when groups are single rows (element dropout).
    """
    n, t = keep.shape[:2]
    nl, o, g, gr = layer.windows, layer.out_channels, site.n_groups, site.group_rows
    v = _pm_windows(layer, vals)                                   # [n, C, H', W', kh, kw]
    w = _fast_weights(layer)                                       # [O, rows]
    kf = keep.astype(np.float32)
    x = v.transpose(0, 1, 4, 5, 2, 3).reshape(n, layer.rows, nl)   # rows (c, ky, kx) x windows
    if 1 / t + 1 / gr < 1:
        wg = np.ascontiguousarray(w.reshape(o, g, gr).transpose(1, 0, 2))
        part = np.matmul(wg, x.reshape(n, g, gr, nl))              # [n, G, O, L]
        acc = kf @ part.reshape(n, g, o * nl)                      # [n, T, O*L]
    else:
        wk = np.repeat(kf, gr, axis=-1)[:, :, None, :] * w[None, None]   # [n, T, O, rows]
        acc = wk.reshape(n, t * o, layer.rows) @ x                 # [n, T*O, L]
    return acc.reshape((n * t,) + layer.conv_shape)



def _fast_chunk(ir: IR, h: np.ndarray, masks: list[np.ndarray], t: int) -> np.ndarray:
    """run() on one chunk of images by exact float32 matmuls; float-stage layers go
    through layer_bits on the unsigned acc."""
    nb, last, m0 = h.shape[0], len(ir.layers) - 1, ir.mc_start

    def finish(layer, acc):
        if isinstance(layer, Layer) and layer.thresh is not None:
            return _fast_out(layer, acc)
        return pool_bits(layer_bits(layer, acc), layer.pool, layer.pool_step)

    for i in range(m0):                                           # deterministic prefix
        h = finish(ir.layers[i], _fast_acc(ir.layers[i], _values(ir, i, h), None))
    first, k0 = ir.layers[m0], ir.site_index(m0)
    if k0 is None:                                                # no dropout: T equal samples
        acc = np.repeat(_fast_acc(first, _values(ir, m0, h), None), t, axis=0)
    else:
        acc = _shared_input_acc(first, ir.sites[k0], _values(ir, m0, h), masks[k0])
    for i in range(m0, len(ir.layers)):
        layer = ir.layers[i]
        if i > m0:                                                # per (image, sample)
            k = ir.site_index(i)
            rk = None if k is None else keep_rows(ir.sites[k], masks[k].reshape(nb * t, -1))
            acc = _fast_acc(layer, _values(ir, i, h), None if rk is None else rk.astype(np.float32))
        if i == last:
            return acc.reshape(nb, t, -1).astype(np.int32)
        h = finish(layer, acc)


