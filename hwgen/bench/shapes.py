"""`hwgen bench shapes [--shapes a,b,..]`: `hwgen bench sim` on a named set of network
shapes with seeded random weights (no training): compile time, Verilog size, a cold
simulator build and the RTL regression's MC samples/s, one row per shape.

The shapes (SPEC section 7 budgets, issue "verification at speed and scale"):
  digits        c32,p2,f10 on 1x8x8 (the digits default)
  fashion       c16,p2,c32,p2,f10 on 1x28x28 (the Fashion-MNIST default)
  fashion-wide  c32,p2,c64,p2,f10 on 1x28x28
  cnv           FINN's CNV layer shapes on 3x32x32: valid 3x3 convs 64-64-pool-128-128-pool-
                256-256, then 512-512-10, with spatial sites on the last three layers (the
                convs are the deterministic prefix, run once per image)
Shapes without a dataset of their size get seeded uniform images.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ..errors import HwgenError
from .common import finish, new_record, table

__all__ = ["SHAPES", "random_model", "bench_shapes", "run"]

# name -> (SPEC, input shape, dataset or None, dropout kind)
SHAPES = {
    "digits": ("c32,p2,f10", (1, 8, 8), "digits", "spatial"),
    "fashion": ("c16,p2,c32,p2,f10", (1, 28, 28), "fashion-mnist", "spatial"),
    "fashion-wide": ("c32,p2,c64,p2,f10", (1, 28, 28), "fashion-mnist", "spatial"),
    "cnv": ("c64v,c64v,p2,c128v,c128v,p2,c256v,c256v,d,f512,d,f512,d,f10", (3, 32, 32), None,
            "spatial"),
}


def random_model(path, spec, in_shape, dataset=None, dropout="spatial", p=0.2, seed=0,
                 input_mode="binary"):
    """A model.pt of `spec` with seeded random latent weights and batch-norm statistics
    (for benches and tests of the flow, where accuracy does not matter)."""
    import torch

    from ..model.io import save_model
    from ..model.net import BinaryNet, make_arch
    torch.manual_seed(seed)
    net = BinaryNet(make_arch(spec, in_shape, dropout, p, input_mode=input_mode))
    with torch.no_grad():
        for blk in net.blocks:
            o = blk.bn.weight.shape[0]
            blk.layer.weight.uniform_(-1, 1)
            blk.bn.weight.copy_(torch.randn(o))
            blk.bn.bias.copy_(torch.randn(o))
            blk.bn.running_mean.copy_(torch.randn(o) * 3)
            blk.bn.running_var.copy_(torch.rand(o) + 0.5)
    save_model(path, net, {"dataset": dataset, "dropout": dropout, "p": p, "seed": seed})
    return Path(path)


def bench_shapes(names, simulator="verilator", images=4, samples=16, seed=0,
                 progress=True, lanes: int | None = None) -> list[dict]:
    from .sim import bench_sim
    out = []
    with tempfile.TemporaryDirectory(prefix="hwgen-bench-shapes-") as tmp:
        for name in names:
            spec, shape, dataset, kind = SHAPES[name]
            model = random_model(Path(tmp) / f"{name}.pt", spec, shape, dataset, kind, seed=seed)
            inputs = None
            if dataset is None:
                inputs = Path(tmp) / f"{name}.npy"
                np.save(inputs, np.random.default_rng(seed).random((images,) + shape,
                                                                   dtype=np.float32))
            r = bench_sim(model, simulator, images, samples, seed, lanes=lanes,
                          check_images=16, progress=progress, inputs=inputs)
            r.update(shape=name, spec=spec, lanes=r["design"]["lanes"])
            out.append(r)
    return out


def _text(rows: list[dict], simulator: str) -> str:
    body = []
    for r in rows:
        c, s = r["compile"], r["sim"]
        body.append([r["shape"], r["lanes"], c["total_s"], c["export_s"], r["verilog_bytes"] / 1e6,
                     r["build"]["seconds"], s["cycles_per_sample"], s["sim_samples_per_s"],
                     s.get("sim_samples_per_cpu_s"), s["mismatches"],
                     (s.get("reference") or {}).get("ok")])
    return table(["shape", "lanes", "compile s", "export s", "Verilog MB", f"{simulator} build s",
                  "cycles/sample", "MC samples/s", "per CPU s", "mismatches", "vs torch"], body,
                 "bench shapes: random weights, cold builds")


def run(args) -> tuple[int, str]:
    names = args.shapes.split(",") if args.shapes else list(SHAPES)
    bad = [n for n in names if n not in SHAPES]
    if bad:
        raise HwgenError(f"unknown shape(s) {', '.join(bad)}; known: {', '.join(SHAPES)}")
    rec = new_record("shapes", args.label)
    rec["shapes"] = bench_shapes(names, args.simulator, args.images, args.samples, args.seed,
                                 lanes=args.lanes)
    return 0 if all(r["sim"]["ok"] for r in rec["shapes"]) else 1, finish(rec, _text(rec["shapes"], args.simulator), args.json)
