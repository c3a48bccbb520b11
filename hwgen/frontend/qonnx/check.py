"""Imported models (SPEC section 10.6): the integer golden model against the graph as
its own runtime executes it (qonnx's execute_onnx), on every class integer and every
prediction.

Dropout sites added at compile time (hwgen.passes.add_sites) are not in the graph: the
check runs the IR with every group kept, which is the network the graph describes.
"""

from __future__ import annotations

import numpy as np

from ...ir import fast, interp
from ...ir.core import IR
from .reference import qonnx_reference

__all__ = ["check_inputs", "qonnx_vs_int"]


def check_inputs(ir: IR, n: int, seed: int = 0) -> np.ndarray:
    """Seeded float32 images [n, C, H, W] in [0, 1]: uniform, with a quarter of the pixels
    on the input decision's edge (binary: theta and its float32 neighbours; multi-bit:
    8-bit pixels k/255)."""
    rng = np.random.default_rng(seed)
    x = rng.random((n,) + tuple(ir.in_shape), dtype=np.float32)
    if ir.input.mode == "binary":
        th = np.float32(ir.input.theta)
        edge = np.array([np.nextafter(th, np.float32(0)), th, np.nextafter(th, np.float32(2))],
                        np.float32)
    else:
        edge = np.arange(256, dtype=np.float32) / np.float32(255)
    pick = rng.random(x.shape) < 0.25
    x[pick] = np.clip(edge[rng.integers(0, edge.size, int(pick.sum()))], 0, 1)
    return x


def _top_ties(v: np.ndarray) -> int:
    """Rows whose largest value is shared by two or more classes."""
    return int(np.sum((v == v.max(axis=1, keepdims=True)).sum(axis=1) > 1))


def qonnx_vs_int(ir: IR, model_path, images, ref: dict | None = None,
                 batch: int | None = None, reference=None) -> dict:
    """Compare the golden model (hwgen.ir.fast.run, equal to the definition) on the IR's
    input encoding of `images` with qonnx_reference; or, given `reference` class integers
    [N, T, classes] (the RTL's, for a design without sites), every one of their samples.

    Class integers must be equal on every image; predictions (argmax of the logits, ties
    to the lowest index on both sides) too, except where hwgen's logits tie exactly between
    its pick and the graph's: with a weight scale that is not a power of two (Brevitas'
    0.1) the graph's float32 sums round tied logits apart in its own summation order, which
    breaks the tie by chance. Those are counted (`prediction_tie_breaks`), not failures.
    Ties of the top class are counted."""
    x = np.asarray(images, np.float32)
    n = x.shape[0]
    x = x.reshape((n,) + tuple(ir.in_shape))
    if ref is None:
        ref = qonnx_reference(model_path, x, batch=batch)
    if reference is None:
        masks = [np.ones((n, 1, s.n_groups), np.uint8) for s in ir.sites]
        samples = fast.run(ir, interp.input_bits(ir, x), masks or None, samples=1)
    else:
        samples = np.asarray(reference)
    acc = samples[:, 0]
    lg = interp.logits(ir, acc)
    pred = np.argmax(lg, axis=1)
    ci = ref["class_integers"]
    same = np.all(samples == np.asarray(ci)[:, None, :], axis=2)          # [N, T]
    bad = np.flatnonzero(~same.all(axis=1))
    gp = np.asarray(ref["predictions"])
    differ = np.flatnonzero(pred != gp)
    tied = lg[differ, gp[differ]] == lg[differ, pred[differ]]     # both picks maximal
    pbad = differ[~tied]
    out = {
        "images": int(n), "samples": int(same.size),
        "sample_mismatches": int((~same).sum()),
        "class_integer_mismatches": int(bad.size),
        "prediction_mismatches": int(pbad.size),
        "prediction_tie_breaks": int(tied.sum()),
        "class_integer_agreement": float(1 - bad.size / max(n, 1)),
        "prediction_agreement": float(1 - pbad.size / max(n, 1)),
        "argmax_ties_class_integers": _top_ties(ci),
        "argmax_ties_logits": _top_ties(np.asarray(ref["logits"])),
        "ok": bool(bad.size == 0 and pbad.size == 0),
    }
    if bad.size:
        i = int(bad[0])
        out["first_mismatch"] = {"image": i, "ir": acc[i].tolist(), "graph": ci[i].tolist()}
    elif pbad.size:
        i = int(pbad[0])
        out["first_mismatch"] = {"image": i, "ir_prediction": int(pred[i]),
                                 "graph_prediction": int(ref["predictions"][i])}
    return out
