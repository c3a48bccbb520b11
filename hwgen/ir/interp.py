"""The golden interpreter: the numpy definition of what an IR means (DESIGN sections 1-5).

For binary layer l and output column j, over the unrolled rows i = (c, ky, kx) of a window:

    acc_j = 2 * popcount(g AND XNOR(x, w_j)) - popcount(g)

with the row gate g = (row is not padding) AND (keep bit of the row's dropout group). A
thresholded layer outputs bit (s_j * acc_j >= t_j), then ORs each pool x pool block (floor
mode). Before `fold_batchnorm` a layer carries its batch norm instead, and its bit is
(bn_value(acc) >= 0) in float64, the formula the fold makes exact. Row tiles give
partial popcounts that are summed; column tiles are independent.

Layers before `ir.mc_start` run once per image; the rest once per (image, sample).
Keep masks are one uint8 array per site, [N, T, n_groups], 1 = keep.

Speed (run with fast=True, the default): XNOR-popcount over packed bits is the
definition, but at these layer sizes numpy's float32 BLAS is faster, so the fast path
computes every layer as exact float32 matmuls on +-1/0 values (exact: |acc| <= rows
<= 2**24), with the sign s_j folded into the weights and max-pooling done on s*acc
before the threshold. The first per-sample layer sees the same input in every sample,
only its keep bits change: with spatial dropout each group's partial sums are computed
once per image and combined per sample by the keep bits (see `_shared_input_acc`).
fast=False takes the popcount path; the tests hold both equal at every pass and tiling.
These matmuls are small and skinny: OpenBLAS's threads only spin on them (measured 20x
slower on a loaded 2-core machine), so run() keeps BLAS single-threaded and runs image
chunks on its own threads instead.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import threadpool_limits

from .core import IR, Layer, Site

__all__ = ["binarize", "bn_value", "layer_acc", "layer_bits", "pool_bits", "keep_rows",
           "run_layer", "run", "trace", "logits"]

_CHUNK_BYTES = 1 << 24   # bound on the temporaries of one vectorised step


def binarize(images, theta: float = 0.5) -> np.ndarray:
    """Float images [N, C, H, W] in [0, 1] -> uint8 bits (pixel >= theta)."""
    x = images.numpy() if hasattr(images, "numpy") else np.asarray(images)
    return (x >= theta).astype(np.uint8)


def bn_value(bn: dict, acc: np.ndarray, axis: int = 1) -> np.ndarray:
    """Post-norm float64 value of a batch norm over integer acc; channels on `axis`.

    y = (acc * in_scale - mean) * (gain / sqrt(var + eps)) + bias. Every step is a
    monotone rounding, so y is monotone in acc; fold_batchnorm relies on that.
    """
    shape = [1] * acc.ndim
    shape[axis] = -1
    def col(key):
        return np.asarray(bn[key], np.float64).reshape(shape)
    k = col("gain") / np.sqrt(col("var") + np.float64(bn["eps"]))
    return (acc.astype(np.float64) * np.float64(bn["in_scale"]) - col("mean")) * k + col("bias")


def _im2col(bits: np.ndarray, layer: Layer) -> tuple[np.ndarray, np.ndarray]:
    """[B, C, H, W] -> (cols [B, L, rows], driven [L, rows]); rows (c, ky, kx), L windows."""
    b = bits.shape[0]
    c, h, w = layer.in_shape
    (kh, kw), (ph, pw) = layer.kernel, layer.pad
    pad = ((0, 0), (0, 0), (ph, ph), (pw, pw))
    v = sliding_window_view(np.pad(bits, pad), (kh, kw), axis=(2, 3))
    cols = v.transpose(0, 2, 3, 1, 4, 5).reshape(b, layer.windows, layer.rows)
    d = sliding_window_view(np.pad(np.ones((h, w), np.uint8), pad[2:]), (kh, kw))
    driven = np.tile(d.reshape(layer.windows, kh * kw), (1, c))
    return cols, driven


def _pack64(bits: np.ndarray) -> np.ndarray:
    """[..., n] 0/1 -> [..., ceil(n/64)] uint64 words (zero padded)."""
    p = np.packbits(bits, axis=-1, bitorder="little")
    extra = -p.shape[-1] % 8
    if extra:
        p = np.concatenate([p, np.zeros(p.shape[:-1] + (extra,), np.uint8)], axis=-1)
    return np.ascontiguousarray(p).view("<u8")


def _popcount_acc(cols, gate, wbits, layer: Layer) -> np.ndarray:
    """acc [B, L, O] int32 by XNOR-popcount, summed over the layer's row tiles."""
    b, nl, _ = cols.shape
    o = wbits.shape[0]
    acc = np.zeros((b, nl, o), np.int32)
    for r0, r1 in layer.row_tiles:
        x, g = _pack64(cols[..., r0:r1]), _pack64(gate[..., r0:r1])
        ng = np.bitwise_count(g).sum(-1, dtype=np.int32)              # driven rows
        for c0, c1 in layer.col_tiles:
            w = _pack64(wbits[c0:c1, r0:r1])
            step = max(1, _CHUNK_BYTES // max(1, nl * (c1 - c0) * w.shape[-1] * 8))
            for a in range(0, b, step):
                gs = g[a:a + step] if g.shape[0] > 1 else g
                t = ~(x[a:a + step, :, None, :] ^ w[None, None])
                t &= gs[:, :, None, :]
                pc = np.bitwise_count(t).sum(-1, dtype=np.int32)
                ngs = ng[a:a + step] if ng.shape[0] > 1 else ng
                acc[a:a + step, :, c0:c1] += 2 * pc - ngs[:, :, None]
    return acc


def _to_map(acc: np.ndarray, layer: Layer) -> np.ndarray:
    """[B, L, O] -> [B, O, H', W']."""
    return np.ascontiguousarray(acc.transpose(0, 2, 1)).reshape((acc.shape[0],) + layer.conv_shape)


def keep_rows(site: Site, keep: np.ndarray) -> np.ndarray:
    """Group keep bits [..., n_groups] -> row gates [..., rows]."""
    return np.repeat(np.asarray(keep, np.uint8), site.group_rows, axis=-1)


def layer_acc(layer: Layer, in_bits: np.ndarray, row_keep: np.ndarray | None = None) -> np.ndarray:
    """Column sums acc [B, O, H', W'] int32 of one layer.

    in_bits: [B, C, H, W] uint8; row_keep: None or [B, rows] uint8 row keep bits.
    """
    cols, driven = _im2col(np.asarray(in_bits, np.uint8), layer)
    gate = driven[None] if row_keep is None else driven[None] & np.asarray(row_keep, np.uint8)[:, None, :]
    return _to_map(_popcount_acc(cols, gate, layer.weight_bits(), layer), layer)


def layer_bits(layer: Layer, acc: np.ndarray) -> np.ndarray:
    """Thresholded output bits [B, O, H', W'] (before pooling)."""
    if layer.thresh is not None:
        # exact in acc's own dtype: int32, or float32 holding integers below 2**24
        s = np.asarray(layer.sign, acc.dtype)[None, :, None, None]
        t = np.asarray(layer.thresh, acc.dtype)[None, :, None, None]
        return (acc * s >= t).view(np.uint8)
    if layer.bn is not None:
        return (bn_value(layer.bn, acc) >= 0).astype(np.uint8)
    raise ValueError("layer has neither thresholds nor a batch norm (the classifier?)")


def pool_bits(bits: np.ndarray, pool: int) -> np.ndarray:
    """OR over pool x pool blocks, floor mode."""
    if pool == 1:
        return bits
    hh, ww = bits.shape[2] // pool, bits.shape[3] // pool
    out = bits[:, :, :hh * pool:pool, :ww * pool:pool].copy()
    for dy in range(pool):
        for dx in range(pool):
            out |= bits[:, :, dy:hh * pool:pool, dx:ww * pool:pool]
    return out


def _site_index(ir: IR, i: int) -> int | None:
    for k, s in enumerate(ir.sites):
        if s.layer == i:
            return k
    return None


def run_layer(ir: IR, i: int, in_bits: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """One layer of `ir`: output bits [B, O, H'', W''] after pooling, or the classifier's
    acc [B, classes]. keep: [B, n_groups] keep bits of the layer's site (None = all kept)."""
    layer = ir.layers[i]
    site = ir.site_of(i)
    rk = None if (keep is None or site is None) else keep_rows(site, keep)
    acc = layer_acc(layer, in_bits, rk)
    if i == len(ir.layers) - 1:
        return acc.reshape(acc.shape[0], -1)
    return pool_bits(layer_bits(layer, acc), layer.pool)


def _pm_windows(layer: Layer, h: np.ndarray) -> np.ndarray:
    """Bits [B, C, H, W] -> sliding windows of +-1 float32 (0 = padding) [B, C, H', W', kh, kw]."""
    (kh, kw), (ph, pw) = layer.kernel, layer.pad
    pm = np.pad(h.astype(np.float32) * 2 - 1, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    return sliding_window_view(pm, (kh, kw), axis=(2, 3))


def _fast_weights(layer: Layer) -> np.ndarray:
    """+-1 float32 weights [O, rows], each column pre-multiplied by its sign s_j when the
    layer has thresholds, so the matmul yields s_j * acc_j directly."""
    w = layer.weight_bits().astype(np.float32) * 2 - 1
    if layer.thresh is not None:
        w *= np.asarray(layer.sign, np.float32)[:, None]
    return w


def _fast_out(layer: Layer, sacc: np.ndarray) -> np.ndarray:
    """s*acc [B, O, H', W'] float32 -> output bits after pooling: OR of (s*acc >= t) over a
    block is (max of s*acc over the block) >= t, so pool first, on 1/pool**2 the values."""
    p = layer.pool
    if p > 1:
        hh, ww = sacc.shape[2] // p, sacc.shape[3] // p
        m = sacc[:, :, :hh * p:p, :ww * p:p].copy()
        for dy in range(p):
            for dx in range(p):
                if dy or dx:
                    np.maximum(m, sacc[:, :, dy:hh * p:p, dx:ww * p:p], out=m)
        sacc = m
    return (sacc >= np.asarray(layer.thresh, np.float32)[None, :, None, None]).view(np.uint8)


def _fast_acc(layer: Layer, h: np.ndarray, row_keep: np.ndarray | None) -> np.ndarray:
    """s*acc (acc for the classifier) [B, O, H', W'] float32 by one exact matmul per layer."""
    b = h.shape[0]
    v = _pm_windows(layer, h)
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


def _shared_input_acc(layer: Layer, site: Site, h: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """s*acc (acc for the classifier) [n*T, O, H', W'] float32 (exact integers) of a layer
    whose input h [n, C, H, W] is shared by T samples that differ only in their keep bits
    [n, T, G].

    Two exact float32 matmul forms, in a rows x windows layout that yields map order:
    grouped: each group's partial sums once per image, then keep @ partials
             (O*rows*L + T*G*O*L multiply-adds per image);
    masked:  per sample, weights with the dropped rows zeroed, @ the windows
             (T*O*rows*L); cheaper when groups are single rows (element dropout).
    """
    n, t = keep.shape[:2]
    nl, o, g, gr = layer.windows, layer.out_channels, site.n_groups, site.group_rows
    v = _pm_windows(layer, h)                                      # [n, C, H', W', kh, kw]
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


def _check_masks(ir: IR, n: int, masks, samples) -> tuple[list[np.ndarray], int]:
    masks = [] if masks is None else [np.asarray(m, np.uint8) for m in masks]
    if len(masks) != len(ir.sites):
        raise ValueError(f"expected {len(ir.sites)} site masks, got {len(masks)}")
    if not masks:
        return masks, int(samples or 1)
    t = masks[0].shape[1] if masks[0].ndim == 3 else -1
    for s, m in zip(ir.sites, masks):
        if m.shape != (n, t, s.n_groups):
            raise ValueError(f"mask of site at layer {s.layer} has shape {m.shape}, "
                             f"expected {(n, t, s.n_groups)}")
    if samples is not None and samples != t:
        raise ValueError(f"samples={samples} but the masks hold {t}")
    return masks, t


def run(ir: IR, bits: np.ndarray, masks=None, samples: int | None = None,
        fast: bool = True, threads: int = 2) -> np.ndarray:
    """MC inference: class integers acc [N, T, classes] int32.

    fast=True computes every layer with exact float32 matmuls on +-1/0 values (plus the
    per-group trick of `_shared_input_acc`); fast=False takes the XNOR-popcount path over
    the row and column tiles, the definition. The tests hold both equal.

    bits: [N, C, H, W] uint8 image bits (see `binarize`); masks: one [N, T, n_groups]
    uint8 keep array per site (T from the masks; `samples` when there are no sites);
    threads: image chunks computed in parallel (the result does not depend on it).
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _run(ir, np.asarray(bits, np.uint8), masks, samples, fast, threads)


def _run(ir: IR, bits: np.ndarray, masks, samples, fast: bool, threads: int) -> np.ndarray:
    n = bits.shape[0]
    if bits.shape[1:] != tuple(ir.in_shape):
        raise ValueError(f"image bits have shape {bits.shape[1:]}, expected {tuple(ir.in_shape)}")
    masks, t = _check_masks(ir, n, masks, samples)
    fast = fast and max(l.rows for l in ir.layers) <= 2 ** 24   # float32 exactness
    last = len(ir.layers) - 1
    m0 = ir.mc_start
    first = ir.layers[m0]
    per_image = 4 * first.windows * first.out_channels * (first.in_shape[0] + 3 * t) \
        + 4 * t * first.out_channels * first.rows + 1
    step = max(1, min(n, (4 * _CHUNK_BYTES) // per_image))
    out = np.empty((n, t, ir.n_classes), np.int32)

    def chunk(a: int) -> None:
        if fast:
            out[a:a + step] = _fast_chunk(ir, bits[a:a + step], [m[a:a + step] for m in masks], t)
            return
        h = bits[a:a + step]
        nb = h.shape[0]
        for i in range(m0):                                       # deterministic prefix
            h = run_layer(ir, i, h)
        k0 = _site_index(ir, m0)
        if k0 is None:                                            # no dropout: T equal samples
            acc = np.repeat(layer_acc(first, h), t, axis=0)
        else:
            keep = masks[k0][a:a + nb].reshape(nb * t, -1)
            acc = layer_acc(first, np.repeat(h, t, axis=0), keep_rows(ir.sites[k0], keep))
        if m0 == last:
            out[a:a + nb] = acc.reshape(nb, t, -1)
            return
        h = pool_bits(layer_bits(first, acc), first.pool)
        for i in range(m0 + 1, len(ir.layers)):                  # per (image, sample)
            k = _site_index(ir, i)
            keep = None if k is None else masks[k][a:a + nb].reshape(nb * t, -1)
            h = run_layer(ir, i, h, keep)
        out[a:a + nb] = h.reshape(nb, t, -1)

    starts = range(0, n, step)
    if threads > 1 and len(starts) > 1:
        # numpy releases the GIL in its loops and matmuls: chunks run in parallel
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(chunk, starts))
    else:
        for a in starts:
            chunk(a)
    return out


def _fast_chunk(ir: IR, h: np.ndarray, masks: list[np.ndarray], t: int) -> np.ndarray:
    """run() on one chunk of images by exact float32 matmuls; layers still in batch-norm
    form (before fold_batchnorm) go through layer_bits on the unsigned acc."""
    nb, last, m0 = h.shape[0], len(ir.layers) - 1, ir.mc_start

    def finish(layer, acc):
        if layer.thresh is not None:
            return _fast_out(layer, acc)
        return pool_bits(layer_bits(layer, acc), layer.pool)

    for i in range(m0):                                           # deterministic prefix
        h = finish(ir.layers[i], _fast_acc(ir.layers[i], h, None))
    first, k0 = ir.layers[m0], _site_index(ir, m0)
    if k0 is None:                                                # no dropout: T equal samples
        acc = np.repeat(_fast_acc(first, h, None), t, axis=0)
    else:
        acc = _shared_input_acc(first, ir.sites[k0], h, masks[k0])
    for i in range(m0, len(ir.layers)):
        layer = ir.layers[i]
        if i > m0:                                                # per (image, sample)
            k = _site_index(ir, i)
            rk = None if k is None else keep_rows(ir.sites[k], masks[k].reshape(nb * t, -1))
            acc = _fast_acc(layer, h, None if rk is None else rk.astype(np.float32))
        if i == last:
            return acc.reshape(nb, t, -1).astype(np.int32)
        h = finish(layer, acc)


def trace(ir: IR, bits: np.ndarray, masks=None, samples: int | None = None) -> list[np.ndarray]:
    """Every layer's output for every (image, sample), by the plain per-sample path (for
    debugging a layer-level or network testbench): bits [N, T, O, H'', W''] per thresholded
    layer, then the class integers [N, T, classes]. Use small N: nothing is chunked."""
    bits = np.asarray(bits, np.uint8)
    n = bits.shape[0]
    masks, t = _check_masks(ir, n, masks, samples)
    h, out = np.repeat(bits, t, axis=0), []
    for i in range(len(ir.layers)):
        k = _site_index(ir, i)
        h = run_layer(ir, i, h, None if k is None else masks[k].reshape(n * t, -1))
        out.append(h.reshape((n, t) + h.shape[1:]))
    return out


def logits(ir: IR, acc: np.ndarray) -> np.ndarray:
    """Host-side logits a_j * acc_j + b_j (float64) from class integers [..., classes]."""
    last = ir.layers[-1]
    if last.logit_scale is not None:
        return acc * np.asarray(last.logit_scale) + np.asarray(last.logit_bias)
    return bn_value(last.bn, np.asarray(acc), axis=-1)
