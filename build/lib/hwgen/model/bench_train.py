"""`hwgen bench train`: seconds per training epoch and MC inference images/s at T=16,
on Fashion-MNIST with the default architecture. Prints the figures and writes JSON."""

from __future__ import annotations

import json
import logging
import os
import platform
import time

import torch

from ..atomic import write_text
from ..data import load_dataset
from .evaluate import mc_logits
from .io import build_model, load_checkpoint
from .train import DEFAULTS, TrainConfig, train

log = logging.getLogger(__name__)

DEFAULT_JSON = "runs/bench_train.json"
MC_SAMPLES = 16
MC_IMAGES = 1000


def run(args) -> int:
    """Train one epoch per dropout kind (spatial, element) and time MC inference.

    With `args.model`, MC inference is timed on that model; else on the spatial model
    trained here (one epoch: speed does not depend on accuracy).
    """
    dataset = "fashion-mnist"
    arch = DEFAULTS[dataset].arch
    result = {"dataset": dataset, "arch": arch, "torch": str(torch.__version__),
              "cpu_count": os.cpu_count(), "machine": platform.machine(), "train": {}}
    model = None
    for kind in ("spatial", "element"):
        m, meta = train(TrainConfig(dataset=dataset, dropout=kind, epochs=1), progress=False)
        result["train"][kind] = {"seconds_per_epoch": meta["seconds_per_epoch"],
                                 "batch_size": meta["batch_size"],
                                 "images": len(load_dataset(dataset, "train")[1])}
        model = model or m
    if getattr(args, "model", None):
        model = build_model(load_checkpoint(args.model))
        result["mc_model"] = str(args.model)
    result["threads"] = torch.get_num_threads()
    result["load_average_1min"] = os.getloadavg()[0]  # other jobs on the machine skew timings
    x, _ = load_dataset(dataset, "test")
    x = x[:MC_IMAGES]
    mc_logits(model, x[:64], MC_SAMPLES)  # warm-up (allocator, oneDNN kernels)
    t0 = time.perf_counter()
    mc_logits(model, x, MC_SAMPLES)
    sec = time.perf_counter() - t0
    result["mc"] = {"samples": MC_SAMPLES, "images": len(x), "dropout": model.kind,
                    "seconds": sec, "images_per_s": len(x) / sec,
                    "forward_passes_per_s": len(x) * MC_SAMPLES / sec}
    for kind, r in result["train"].items():
        print(f"train {arch} dropout={kind}: {r['seconds_per_epoch']:.1f} s/epoch "
              f"(batch {r['batch_size']}, {result['threads']} threads)")
    print(f"MC inference T={MC_SAMPLES} dropout={model.kind}: "
          f"{result['mc']['images_per_s']:.1f} images/s "
          f"({result['mc']['forward_passes_per_s']:.0f} forward passes/s)")
    path = getattr(args, "json", None) or DEFAULT_JSON
    write_text(path, json.dumps(result, indent=2, sort_keys=True) + "\n")
    log.info("wrote %s", path)
    return 0
