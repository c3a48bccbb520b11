"""Float vs integer (SPEC section 10.5): the torch model in MC mode against the golden
interpreter, with the same images and the same explicit keep masks.

Two comparisons:
- per layer, teacher-forced: every layer of the IR gets the float model's own input bits
  and keep bits, and its integer acc and output bits must equal the float model's, except
  at ties;
- end to end: the class integers of every (image, sample) from `interp.run`, against the
  float model's; a sample may differ only if its float trace holds a tie.

A tie is an output bit whose float post-batch-norm value y is zero to within float32
rounding. With k = gain / sqrt(var + eps) the batch norm's slope, R the layer's acc bound
(its rows; rows * max|q| for a multi-bit first layer) and
s its inverted-dropout input scale (1 without scaling):

    |y| <= TIE_REL * (|k| * (R * s + |mean|) + |bias|)   [+ |k| * R**2 * s * 2**-24 if s != 1]

TIE_REL = 2**-20 is 16 float32 ulps of the largest term that makes up y; the bracketed
term bounds float32 summation error in the conv when the scaled inputs +-s are not exact
integers. Ties are counted whether or not the two sides happen to agree on them.
"""

from __future__ import annotations

import numpy as np
import torch

from ..ir import fast, interp
from ..ir.core import IR

__all__ = ["TIE_REL", "TIE_DEFINITION", "float_vs_int"]

TIE_REL = 2.0 ** -20
TIE_DEFINITION = ("|y| <= 2**-20 * (|k|*(R*s + |mean|) + |bias|) [+ |k|*R**2*s*2**-24 if s != 1]; "
                  "y float post-BN value, k = gain/sqrt(var+eps), R rows, s dropout input scale")


def _tie_tol(model, i: int, rows: int, in_scale: float) -> np.ndarray:
    """Per-channel tie tolerance on y of layer i (see the module docstring)."""
    bn = model.blocks[i].bn
    g, b, m, v = (t.detach().double().numpy() for t in
                  (bn.weight, bn.bias, bn.running_mean, bn.running_var))
    k = np.abs(g / np.sqrt(v + bn.eps))
    tol = TIE_REL * (k * (rows * in_scale + np.abs(m)) + np.abs(b))
    if in_scale != 1.0:
        tol = tol + k * rows ** 2 * in_scale * 2.0 ** -24
    return tol


def float_vs_int(model, ir: IR, images, masks, chunk: int = 16, reference=None) -> dict:
    """Compare `model` (a BinaryNet, put in eval mode) with `ir` on float images
    [N, C, H, W] in [0, 1] and keep masks (one [N, T, n_groups] uint8 array per site).
    End to end, the float model's class pre-activations and predictions are compared with
    `reference` class integers [N, T, classes] (default: the golden model's; the RTL
    regression passes the RTL's). Returns a JSON-able report; report["ok"] is False on
    any non-tie disagreement."""
    model.eval()
    images = torch.as_tensor(images, dtype=torch.float32)
    n = images.shape[0]
    masks = [np.asarray(m, np.uint8) for m in masks]
    t = masks[0].shape[1] if masks else 1
    last = len(ir.layers) - 1
    scale, p = ir.meta.dropout.scale, ir.meta.dropout.p
    in_scales = [1.0 / (1.0 - p) if (scale and ir.site_of(i) is not None) else 1.0
                 for i in range(len(ir.layers))]
    tols = [_tie_tol(model, i, ir.acc_bound(i), in_scales[i]) for i in range(len(ir.layers))]
    per = [dict(layer=i, bits=0, disagree=0, ties=0, non_tie_disagree=0, acc_mismatch=0)
           for i in range(len(ir.layers))]
    samples_equal = samples_tie = samples_bad = pred_equal = 0
    golden = (fast.run(ir, interp.input_bits(ir, images), masks, samples=t) if reference is None
              else np.asarray(reference))
    for a in range(0, n, chunk):
        x = images[a:a + chunk]
        nb = x.shape[0]
        keep = [m[a:a + nb].reshape(nb * t, -1) for m in masks]
        with torch.no_grad():
            logits_f, trace = model(x.repeat_interleave(t, 0),
                                    [torch.from_numpy(k).float() for k in keep] or None,
                                    trace=True)
        tie_sample = np.zeros(nb * t, bool)
        h = interp.input_bits(ir, x.repeat_interleave(t, 0))
        for i, layer in enumerate(ir.layers):
            if i > 0:
                h = (trace[i - 1]["out"].numpy() > 0).astype(np.uint8).reshape(
                    (nb * t,) + tuple(layer.in_shape))
            site = ir.site_of(i)
            if i < ir.mc_start:            # deterministic prefix: once per image
                acc = np.repeat(interp.run_layer_acc(ir, i, h[::t]), t, axis=0)
            else:
                acc = interp.run_layer_acc(ir, i, h, None if site is None
                                           else keep[ir.sites.index(site)])
            fa = trace[i]["acc"].numpy().reshape(acc.shape)       # float32
            if in_scales[i] != 1.0:
                fa = np.rint(fa / np.float64(in_scales[i]))
            per[i]["acc_mismatch"] += int((fa != acc).sum())
            if i == last:
                continue
            y = trace[i]["y"].numpy().reshape(acc.shape)          # float32
            ib = interp.layer_bits(layer, acc)
            tie = np.abs(y) <= tols[i].astype(np.float32)[None, :, None, None]
            dis = ib != (y >= 0)
            per[i]["bits"] += ib.size
            per[i]["disagree"] += int(dis.sum())
            per[i]["ties"] += int(tie.sum())
            per[i]["non_tie_disagree"] += int((dis & ~tie).sum())
            tie_sample |= tie.reshape(nb * t, -1).any(axis=1)
        fl = np.rint(trace[last]["acc"].double().numpy() / in_scales[last]).reshape(nb, t, -1)
        eq = (fl == golden[a:a + nb]).all(axis=2).reshape(-1)
        samples_equal += int(eq.sum())
        samples_tie += int(tie_sample.sum())
        samples_bad += int((~eq & ~tie_sample).sum())
        pf = torch.softmax(logits_f.double(), -1).numpy().reshape(nb, t, -1).mean(1).argmax(-1)
        lg = interp.logits(ir, golden[a:a + nb].astype(np.float64))
        e = np.exp(lg - lg.max(-1, keepdims=True))
        pi = (e / e.sum(-1, keepdims=True)).mean(1).argmax(-1)
        pred_equal += int((pf == pi).sum())
    bits = sum(r["bits"] for r in per)
    ties = sum(r["ties"] for r in per)
    dis = sum(r["disagree"] for r in per)
    bad = sum(r["non_tie_disagree"] + r["acc_mismatch"] for r in per) + samples_bad
    return {
        "images": n, "samples": t, "tie_rel": TIE_REL, "tie_definition": TIE_DEFINITION,
        "bits": bits, "bit_agreement": (bits - dis) / bits if bits else 1.0,
        "ties": ties, "tie_rate": ties / bits if bits else 0.0,
        "disagree": dis, "non_tie_disagree": bad,
        "sample_agreement": samples_equal / (n * t),
        "samples_with_tie": samples_tie,
        "prediction_agreement": pred_equal / n,
        "layers": per, "ok": bad == 0,
    }
