"""The golden interpreter: the numpy definition of what an IR means (SPEC sections 1-5,
docs/SPEC.md).

This module is the living definition; `hwgen.ir.fast` computes the same integers faster
and the tests hold the two equal at every stage and tiling.

For binary layer l and output column j, over the unrolled rows i = (c, ky, kx) of a window:

    acc_j = 2 * popcount(g AND XNOR(x, w_j)) - popcount(g)

with the row gate g = (row is not padding) AND (keep bit of the row's dropout group). Row
tiles give partial popcounts that are summed; column tiles are independent. An
integer-stage layer outputs bit (s_j * acc_j >= t_j); a float-stage layer outputs bit
(bn(acc_j) >= 0), its batch norm in float64, the formula `hwgen.passes.lower` folds
exactly. Windows step by the conv stride; then each pool x pool block, blocks stepping by
the pool stride, is ORed (floor mode). The classifier outputs acc.

Layers before `ir.mc_start` run once per image; the rest once per (image, sample).
Keep masks are one uint8 array per site, [N, T, n_groups], 1 = keep.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .core import IR, BatchNorm, FloatLayer, InputEncoding, Site

__all__ = ["binarize", "quantize", "input_bits", "plane_acc", "bn_value", "layer_acc", "layer_bits", "pool_bits", "keep_rows",
           "check_masks", "run_layer_acc", "run_layer", "run", "trace", "logits"]

CHUNK_BYTES = 1 << 24   # bound on the temporaries of one vectorised step


def binarize(images, theta: float = 0.5) -> np.ndarray:
    """Float images [N, C, H, W] in [0, 1] -> uint8 bits (pixel >= theta)."""
    x = images.numpy() if hasattr(images, "numpy") else np.asarray(images)
    return (x >= theta).astype(np.uint8)


def quantize(enc: InputEncoding, images) -> np.ndarray:
    """Integer input q [N, C, H, W] int32 of float images (see InputEncoding: float32
    steps, round half to even, clip to the mode's range)."""
    x = images.numpy() if hasattr(images, "numpy") else np.asarray(images)
    x = x.astype(np.float32)
    y = (x * np.float32(enc.mul) + np.float32(enc.add)) / np.float32(enc.scale)
    lo, hi = enc.q_range
    return np.clip(np.rint(y), lo, hi).astype(np.int32)


def input_bits(ir: IR, images) -> np.ndarray:
    """The first layer's input of float images in the range the model expects (SPEC
    section 3): binary, bits [N, C, H, W] (pixel >= theta); integer modes, the bit planes
    [N, P, C, H, W] of q (two's complement for signed), plane k = bit k."""
    enc = ir.input
    if enc.mode == "binary":
        return binarize(images, enc.theta)
    q = quantize(enc, images).astype(np.int64) & ((1 << enc.bits) - 1)
    k = np.arange(enc.bits).reshape(1, -1, 1, 1, 1)
    return ((q[:, None] >> k) & 1).astype(np.uint8)


def bn_value(bn: BatchNorm, acc: np.ndarray, axis: int = 1) -> np.ndarray:
    """Post-norm float64 value of a batch norm over integer acc; channels on `axis`.

    y = (acc * in_scale - mean) * (gain / sqrt(var + eps)) + bias. Every step is a
    monotone rounding, so y is monotone in acc; the fold relies on that.
    """
    shape = [1] * acc.ndim
    shape[axis] = -1

    def col(v):
        return np.asarray(v, np.float64).reshape(shape)
    k = col(bn.gain) / np.sqrt(col(bn.var) + np.float64(bn.eps))
    return (acc.astype(np.float64) * np.float64(bn.in_scale) - col(bn.mean)) * k + col(bn.bias)


def _im2col(bits: np.ndarray, layer) -> tuple[np.ndarray, np.ndarray]:
    """[B, C, H, W] -> (cols [B, L, rows], driven [L, rows]); rows (c, ky, kx), L windows."""
    b = bits.shape[0]
    c, h, w = layer.in_shape
    (kh, kw), (ph, pw), (sh, sw) = layer.kernel, layer.pad, layer.stride
    pad = ((0, 0), (0, 0), (ph, ph), (pw, pw))
    # every stride-1 window, then every sh-th row and sw-th column of them (a view)
    v = sliding_window_view(np.pad(bits, pad), (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    cols = v.transpose(0, 2, 3, 1, 4, 5).reshape(b, layer.windows, layer.rows)
    d = sliding_window_view(np.pad(np.ones((h, w), np.uint8), pad[2:]), (kh, kw))[::sh, ::sw]
    driven = np.tile(d.reshape(layer.windows, kh * kw), (1, c))
    return cols, driven


def _pack64(bits: np.ndarray) -> np.ndarray:
    """[..., n] 0/1 -> [..., ceil(n/64)] uint64 words (zero padded)."""
    p = np.packbits(bits, axis=-1, bitorder="little")
    extra = -p.shape[-1] % 8
    if extra:
        p = np.concatenate([p, np.zeros(p.shape[:-1] + (extra,), np.uint8)], axis=-1)
    return np.ascontiguousarray(p).view("<u8")


def _popcount_acc(cols, gate, wbits, layer) -> np.ndarray:
    """acc [B, L, O] int32 by XNOR-popcount, summed over the layer's row tiles."""
    b, nl, _ = cols.shape
    o = wbits.shape[0]
    acc = np.zeros((b, nl, o), np.int32)
    for r0, r1 in layer.row_tiles:
        x, g = _pack64(cols[..., r0:r1]), _pack64(gate[..., r0:r1])
        ng = np.bitwise_count(g).sum(-1, dtype=np.int32)              # driven rows
        for c0, c1 in layer.col_tiles:
            w = _pack64(wbits[c0:c1, r0:r1])
            step = max(1, CHUNK_BYTES // max(1, nl * (c1 - c0) * w.shape[-1] * 8))
            for a in range(0, b, step):
                gs = g[a:a + step] if g.shape[0] > 1 else g
                t = ~(x[a:a + step, :, None, :] ^ w[None, None])
                t &= gs[:, :, None, :]
                pc = np.bitwise_count(t).sum(-1, dtype=np.int32)
                ngs = ng[a:a + step] if ng.shape[0] > 1 else ng
                acc[a:a + step, :, c0:c1] += 2 * pc - ngs[:, :, None]
    return acc


def keep_rows(site: Site, keep: np.ndarray) -> np.ndarray:
    """Group keep bits [..., n_groups] -> row gates [..., rows]."""
    return np.repeat(np.asarray(keep, np.uint8), site.group_rows, axis=-1)


def layer_acc(layer, in_bits: np.ndarray, row_keep: np.ndarray | None = None) -> np.ndarray:
    """Column sums acc [B, O, H', W'] int32 of one layer (either stage).

    in_bits: [B, C, H, W] uint8; row_keep: None or [B, rows] uint8 row keep bits.
    """
    cols, driven = _im2col(np.asarray(in_bits, np.uint8), layer)
    gate = driven[None] if row_keep is None else driven[None] & np.asarray(row_keep, np.uint8)[:, None, :]
    acc = _popcount_acc(cols, gate, layer.weight_bits(), layer)
    return np.ascontiguousarray(acc.transpose(0, 2, 1)).reshape((acc.shape[0],) + layer.conv_shape)


def plane_acc(layer, planes: np.ndarray, weights) -> np.ndarray:
    """acc [B, O, H', W'] int32 of a first layer fed bit planes [B, P, C, H, W]: each plane
    is one crossbar pass with the rows driven where its bit is 1 and every driven input
    +1, so its partial is 2*popcount(g AND w) - popcount(g); the partials are added with
    the plane weights (the shift-add of the periphery)."""
    planes = np.asarray(planes, np.uint8)
    ones = np.ones(planes.shape[:1] + planes.shape[2:], np.uint8)
    acc = 0
    for k, wk in enumerate(weights):
        cols, driven = _im2col(planes[:, k], layer)
        part = _popcount_acc(_im2col(ones, layer)[0], driven[None] & cols, layer.weight_bits(), layer)
        acc = acc + np.int32(wk) * part
    return np.ascontiguousarray(acc.transpose(0, 2, 1)).reshape((planes.shape[0],) + layer.conv_shape)


def layer_bits(layer, acc: np.ndarray) -> np.ndarray:
    """Output bits [B, O, H', W'] (before pooling) of a hidden layer."""
    if isinstance(layer, FloatLayer):
        return (bn_value(layer.bn, acc) >= 0).astype(np.uint8)
    # exact in acc's own dtype: int32, or float32 holding integers below 2**24
    s = np.asarray(layer.sign, acc.dtype)[None, :, None, None]
    t = np.asarray(layer.thresh, acc.dtype)[None, :, None, None]
    return (acc * s >= t).view(np.uint8)


def pool_bits(bits: np.ndarray, pool: int, stride: int | None = None) -> np.ndarray:
    """OR over pool x pool blocks at `stride` (default: the pool size; smaller blocks
    overlap, larger leave gaps), floor mode."""
    if pool == 1:
        return bits
    t = pool if stride is None else stride
    v = sliding_window_view(bits, (pool, pool), axis=(2, 3))[:, :, ::t, ::t]
    return np.bitwise_or.reduce(v.reshape(v.shape[:4] + (-1,)), axis=-1)


def run_layer_acc(ir: IR, i: int, in_bits: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """acc [B, O, H', W'] of layer i of `ir`: bit planes for a multi-bit first layer,
    else XNOR-popcount with the site's keep bits [B, n_groups] (None = all kept)."""
    layer, site = ir.layers[i], ir.site_of(i)
    if i == 0 and ir.input.mode != "binary":        # bit planes; never a site (verify)
        return plane_acc(layer, in_bits, ir.input.plane_weights)
    rk = None if (keep is None or site is None) else keep_rows(site, keep)
    return layer_acc(layer, in_bits, rk)


def run_layer(ir: IR, i: int, in_bits: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """One layer of `ir`: output bits [B, O, H'', W''] after pooling, or the classifier's
    acc [B, classes]. keep: [B, n_groups] keep bits of the layer's site (None = all kept)."""
    layer = ir.layers[i]
    acc = run_layer_acc(ir, i, in_bits, keep)
    if i == len(ir.layers) - 1:
        return acc.reshape(acc.shape[0], -1)
    return pool_bits(layer_bits(layer, acc), layer.pool, layer.pool_step)


def check_masks(ir: IR, n: int, masks, samples) -> tuple[list[np.ndarray], int]:
    """Validate one [n, T, n_groups] keep array per site; return (masks, T). Without
    sites T is `samples` (default 1)."""
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


def check_bits(ir: IR, bits) -> np.ndarray:
    """`bits` as `input_bits` makes them: [N, C, H, W], or [N, P, C, H, W] planes."""
    bits = np.asarray(bits, np.uint8)
    want = ir.input_bits_shape
    if bits.shape[1:] != want:
        raise ValueError(f"input bits have shape {bits.shape[1:]}, expected {want}")
    return bits


def run(ir: IR, bits: np.ndarray, masks=None, samples: int | None = None) -> np.ndarray:
    """MC inference by the definition: class integers acc [N, T, classes] int32.

    bits: [N, C, H, W] uint8 image bits (see `binarize`); masks: one [N, T, n_groups]
    uint8 keep array per site (T from the masks; `samples` when there are no sites).
    The deterministic prefix runs once per image; with no sites, T equal samples.
    """
    bits = check_bits(ir, bits)
    n = bits.shape[0]
    masks, t = check_masks(ir, n, masks, samples)
    m0 = ir.mc_start
    out = np.empty((n, t, ir.n_classes), np.int32)
    step = max(1, CHUNK_BYTES // max(1, t * max(l.windows * l.rows for l in ir.layers)))
    for a in range(0, n, step):
        h = bits[a:a + step]
        nb = h.shape[0]
        for i in range(m0):                                       # once per image
            h = run_layer(ir, i, h)
        h = np.repeat(h, t, axis=0)
        for i in range(m0, len(ir.layers)):                       # per (image, sample)
            k = ir.site_index(i)
            h = run_layer(ir, i, h, None if k is None else masks[k][a:a + nb].reshape(nb * t, -1))
        out[a:a + nb] = h.reshape(nb, t, -1)
    return out


def trace(ir: IR, bits: np.ndarray, masks=None, samples: int | None = None) -> list[np.ndarray]:
    """Every layer's output for every (image, sample), for debugging a layer-level or
    network testbench: bits [N, T, O, H'', W''] per hidden layer, then the class integers
    [N, T, classes]. Use small N: nothing is chunked."""
    bits = check_bits(ir, bits)
    n = bits.shape[0]
    masks, t = check_masks(ir, n, masks, samples)
    h, out = np.repeat(bits, t, axis=0), []
    for i in range(len(ir.layers)):
        k = ir.site_index(i)
        h = run_layer(ir, i, h, None if k is None else masks[k].reshape(n * t, -1))
        out.append(h.reshape((n, t) + h.shape[1:]))
    return out


def logits(ir: IR, acc: np.ndarray) -> np.ndarray:
    """Host-side logits (float64) from class integers [..., classes]: the classifier's
    affine a_j * acc_j + b_j (its batch norm in the float stage; acc itself if none)."""
    last = ir.layers[-1]
    acc = np.asarray(acc)
    if isinstance(last, FloatLayer):
        return bn_value(last.bn, acc, axis=-1)
    if last.logit_scale is not None:
        return acc * np.asarray(last.logit_scale) + np.asarray(last.logit_bias)
    return acc.astype(np.float64)
