"""Non-idealities through the golden model: accuracy, ECE and OOD AUROC of a compiled
design against three device non-idealities, each swept alone, on the whole test set.

- **p spread** (device-to-device): interface i switches with
  p_i = min(1, p * exp(sigma * z_i - sigma**2 / 2)), z_i ~ N(0, 1) per device
  (log-normal, mean p for every sigma);
- **stuck MTJs**: a fraction f of the interfaces, chosen at random, stuck, half in P
  (always kept) and half in AP (always dropped);
- **stuck cells**: every crossbar cell of every layer independently stuck with
  probability r, at 0 or 1 with equal odds.

Each point averages `repeats` independent device populations (seeds). The keep bits come
from the same counter-based draws as the device model (hwgen.device.uniform01), so a
point is reproducible from its seed. OOD score: the predictive entropy.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ..device import device_seeds, uniform01
from ..ir import fast
from ..ir.core import masks_from_ap, pack_rows, replace
from ..ir.interp import input_bits, logits
from ..metrics import classification_metrics, ood_metrics, predictive_entropy, softmax
from ..sim.scoreboard import interface_p

__all__ = ["SWEEPS", "perturbed", "evaluate", "sweep", "robustness_png"]

log = logging.getLogger("hwgen.faults")

SWEEPS = {
    "p_spread_sigma": (0.0, 0.25, 0.5, 1.0, 1.5),
    "stuck_mtj_fraction": (0.0, 0.05, 0.1, 0.2, 0.3),
    "stuck_cell_rate": (0.0, 0.002, 0.005, 0.01, 0.02, 0.05),
}


def perturbed(ir, what: str, level: float, seed: int):
    """(IR, per-interface p, stuck map {interface: ap}) of one device population."""
    rng = np.random.default_rng([seed, int(level * 1e6)])
    p = interface_p(ir).copy()
    stuck: dict[int, bool] = {}
    if what == "p_spread_sigma" and level > 0:
        z = rng.standard_normal(len(p))
        p = np.minimum(1.0, p * np.exp(level * z - level ** 2 / 2))
    elif what == "stuck_mtj_fraction" and level > 0:
        k = int(round(level * ir.n_interfaces))
        chosen = rng.choice(ir.n_interfaces, k, replace=False)
        stuck = {int(i): bool(j % 2) for j, i in enumerate(chosen)}      # P, AP in turn
    elif what == "stuck_cell_rate" and level > 0:
        layers = []
        for lay in ir.layers:
            w = lay.weight_bits().copy()
            hit = rng.random(w.shape) < level
            w[hit] = rng.integers(0, 2, int(hit.sum()))
            layers.append(replace(lay, weights=pack_rows(w)))
        ir = replace(ir, layers=tuple(layers))
    return ir, p, stuck


def _mc(ir, bits, T, p, stuck, seeds, first_draw):
    n = len(bits)
    k = np.arange(first_draw, first_draw + n * T, dtype=np.uint64)[:, None]
    ap = uniform01(seeds[None, :], k) < p[None, :]
    for i, v in stuck.items():
        ap[:, i] = v
    masks = masks_from_ap(ir, ap, n, T) if ir.n_interfaces else None
    probs = softmax(logits(ir, fast.run(ir, bits, masks, samples=T)))
    return probs.transpose(1, 0, 2)                                   # [T, N, C]


def evaluate(ir, bits, labels, ood_bits, T, p, stuck, seed) -> dict:
    seeds = device_seeds(seed, ir.n_interfaces)
    pid = _mc(ir, bits, T, p, stuck, seeds, 0)
    pood = _mc(ir, ood_bits, T, p, stuck, seeds, len(bits) * T)
    m = classification_metrics(pid, labels)
    m["ood_auroc"] = ood_metrics(predictive_entropy(pid), predictive_entropy(pood))["auroc"]
    return {k: m[k] for k in ("accuracy", "ece", "ood_auroc", "mean_entropy")}


def sweep(ir, images, labels, ood_images, T: int = 8, repeats: int = 2, seed: int = 0,
          sweeps=SWEEPS, progress: bool = True) -> dict:
    """Every level of every sweep, metrics averaged over `repeats` populations."""
    from tqdm import tqdm
    bits, ood_bits = input_bits(ir, images), input_bits(ir, ood_images)
    labels = np.asarray(labels)
    jobs = [(w, lv) for w, levels in sweeps.items() for lv in levels]
    out: dict = {w: [] for w in sweeps}
    for w, lv in tqdm(jobs, desc=f"non-idealities {ir.meta.dropout.kind}", unit="point",
                      disable=not progress, dynamic_ncols=True):
        runs = [evaluate(*(lambda q: (q[0], bits, labels, ood_bits, T, q[1], q[2],
                                      seed + r))(perturbed(ir, w, lv, seed + r)))
                for r in range(repeats)]
        pt = {"level": lv}
        for k in runs[0]:
            v = np.array([x[k] for x in runs])
            pt[k], pt[k + "_sd"] = float(v.mean()), float(v.std())
        out[w].append(pt)
    return out


def robustness_png(results: dict) -> bytes:
    """3 x 3 grid: rows accuracy / ECE / OOD AUROC, columns the sweeps; one line per
    dropout kind."""
    from ..figures import png_bytes, pyplot
    plt = pyplot()
    metrics = (("accuracy", "accuracy"), ("ece", "ECE"), ("ood_auroc", "OOD AUROC"))
    titles = {"p_spread_sigma": "device-to-device spread of p (sigma)",
              "stuck_mtj_fraction": "fraction of stuck MTJs",
              "stuck_cell_rate": "stuck-cell rate"}
    fig, axes = plt.subplots(3, 3, figsize=(13, 10))
    for c, w in enumerate(titles):
        for r, (k, name) in enumerate(metrics):
            ax = axes[r, c]
            for kind, res in sorted(results.items()):
                pts = res[w]
                x = [q["level"] for q in pts]
                ax.errorbar(x, [q[k] for q in pts], yerr=[q[k + "_sd"] for q in pts],
                            marker="o", capsize=3, label=kind)
            ax.set_xlabel(titles[w])
            ax.set_ylabel(name)
            ax.grid(alpha=0.3)
            if r == 0 and c == 0:
                ax.legend()
    return png_bytes(fig)


def main(argv=None) -> int:
    """python -m hwgen.faults.nonideal KIND=OUTDIR ... -o DIR [--samples T] [--repeats R]
    [--images N]"""
    import argparse

    from ..atomic import write_bytes, write_text
    from ..data import load_dataset, load_ood
    from ..design import load_design
    ap = argparse.ArgumentParser(prog="python -m hwgen.faults.nonideal",
                                 description="robustness sweeps through the golden model")
    ap.add_argument("designs", nargs="+", metavar="KIND=OUTDIR",
                    help="a label and a compiled OUTDIR, e.g. spatial=out_s")
    ap.add_argument("-o", "--output", required=True, help="folder for robustness.json/.png")
    ap.add_argument("--samples", type=int, default=8, help="MC samples T (default: 8)")
    ap.add_argument("--repeats", type=int, default=2,
                    help="device populations per point (default: 2)")
    ap.add_argument("--seed", type=int, default=0, help="first population seed (default: 0)")
    ap.add_argument("--images", type=int, default=None,
                    help="first N test images and N OOD images (default: all)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    results, meta = {}, {}
    for d in args.designs:
        kind, _, path = d.partition("=")
        ir = load_design(path).ir
        x, y = load_dataset(ir.meta.dataset, "test")
        xo = load_ood(ir.meta.dataset)
        x, y, xo = x[:args.images], y[:args.images], xo[:args.images]
        results[kind] = sweep(ir, x.numpy(), y.numpy(), xo.numpy(), args.samples,
                              args.repeats, args.seed)
        meta[kind] = {"outdir": str(Path(path).resolve()), "spec": ir.meta.spec,
                      "dropout": ir.meta.dropout.kind, "interfaces": ir.n_interfaces,
                      "test_images": len(y), "ood_images": len(xo)}
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "robustness.json", json.dumps(
        {"format": "hwgen-robustness", "version": 1, "samples": args.samples,
         "repeats": args.repeats, "seed": args.seed, "designs": meta, "results": results},
        indent=1, sort_keys=True) + "\n")
    write_bytes(out / "robustness.png", robustness_png(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
