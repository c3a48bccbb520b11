"""`hwgen bench golden --model M [--images N] [--samples T]`: the golden interpreter against
the torch float model in MC mode, same images, same T, same keep masks, in one run."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from ..compiler import check_images, check_masks
from ..frontend import build_ir, load_model
from ..ir import fast, interp
from ..model.io import build_model
from ..passes import run_pipeline
from .common import finish, new_record, table

__all__ = ["run", "bench_golden"]

log = logging.getLogger(__name__)


def bench_golden(model_path, images: int = 256, samples: int = 16, batch: int = 64,
                 repeats: int = 3) -> dict:
    """Time torch (batches of `batch` images x `samples`, trace on to get the class
    integers) and the golden interpreter on the same `images` test images and keep masks;
    return MC samples/s of each (best of `repeats`) and the ratio."""
    ckpt, _ = load_model(model_path)
    ir = run_pipeline(build_ir(ckpt))
    model = build_model(ckpt)
    x, source = check_images(ir, images)
    n = len(x)
    masks = check_masks(ir, n, samples, seed=1)
    tm = [torch.from_numpy(m.reshape(n * samples, -1)).float() for m in masks]

    def torch_run():
        out = []
        with torch.no_grad():
            for a in range(0, n, batch):
                sl = slice(a * samples, (a + batch) * samples)
                _, tr = model(x[a:a + batch].repeat_interleave(samples, 0),
                              [m[sl] for m in tm] or None, trace=True)
                out.append(tr[-1]["acc"])
        return torch.cat(out).numpy().reshape(n, samples, -1)

    def golden_run():
        return fast.run(ir, interp.input_bits(ir, x), masks, samples=samples)

    torch_run(), golden_run()                      # warm up allocators and caches
    # best of `repeats`, interleaved, so both see the same machine load (CPUs are shared)
    t_torch = t_golden = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        acc_f = torch_run()
        t_torch = min(t_torch, time.perf_counter() - t0)
        t0 = time.perf_counter()
        acc_g = golden_run()
        t_golden = min(t_golden, time.perf_counter() - t0)
    if ir.meta.dropout.scale:
        acc_f = acc_f * (1.0 - ir.meta.dropout.p)
    same = (np.rint(acc_f) == acc_g).all(axis=2).mean()
    ns = n * samples
    return {
        "model": Path(model_path).name, "spec": ir.meta.spec,
        "dropout": ir.meta.dropout.kind, "images": n, "image_source": source,
        "samples": samples, "repeats": repeats, "torch_threads": torch.get_num_threads(),
        "torch_s": t_torch, "golden_s": t_golden,
        "torch_samples_per_s": ns / t_torch, "golden_samples_per_s": ns / t_golden,
        "ratio": t_torch / t_golden, "sample_agreement": float(same),
    }


def run(args) -> tuple[int, str]:
    rec = new_record("golden", args.label)
    r = bench_golden(args.model, images=args.images, samples=args.samples, repeats=args.repeats)
    rec.update(r)
    ns = r["images"] * r["samples"]
    text = table(["model", "MC samples", "best s", "MC samples/s"],
                 [["torch float", ns, r["torch_s"], r["torch_samples_per_s"]],
                  ["golden interp", ns, r["golden_s"], r["golden_samples_per_s"]]],
                 f"bench golden: {r['model']} ({r['spec']}, {r['dropout']}), {r['images']} "
                 f"images x {r['samples']} samples, best of {r['repeats']}")
    text += (f"golden / torch speed: {r['ratio']:.2f}x; class integers equal on "
             f"{r['sample_agreement']:.4f} of samples\n")
    return 0, finish(rec, text, args.json)
