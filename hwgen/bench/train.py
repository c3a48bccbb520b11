"""`hwgen bench train [--dataset D] [--model M] [--images N] [--samples T]`: seconds per
training epoch for each dropout kind (spatial, element; one epoch each, the dataset's
default architecture) and MC inference images/s at T samples on N test images."""

from __future__ import annotations

import logging
import time

from ..model.train import DEFAULTS, TrainConfig, train  # first: it sets OMP_WAIT_POLICY

import torch  # noqa: E402

from ..data import load_dataset  # noqa: E402
from ..model.evaluate import mc_logits  # noqa: E402
from ..model.io import build_model, load_checkpoint  # noqa: E402
from .common import finish, new_record, table  # noqa: E402

__all__ = ["bench_train", "run"]

log = logging.getLogger(__name__)

KINDS = ("spatial", "element")


def bench_train(dataset: str = "fashion-mnist", model_path=None, images: int = 1000,
                samples: int = 16, kinds=KINDS) -> dict:
    """Train one epoch per dropout kind and time MC inference (after a warm-up).

    With `model_path`, MC inference is timed on that model; else on the first model
    trained here (one epoch: speed does not depend on accuracy).
    """
    arch = DEFAULTS[dataset].arch
    result = {"dataset": dataset, "arch": arch, "torch": str(torch.__version__), "train": {}}
    model = None
    n_train = len(load_dataset(dataset, "train")[1])
    for kind in kinds:
        m, meta = train(TrainConfig(dataset=dataset, dropout=kind, epochs=1), progress=False)
        result["train"][kind] = {"seconds_per_epoch": meta["seconds_per_epoch"],
                                 "batch_size": meta["batch_size"], "images": n_train,
                                 "images_per_s": n_train / meta["seconds_per_epoch"]}
        model = model or m
    result["mc_model"] = None
    if model_path:
        model = build_model(load_checkpoint(model_path))
        result["mc_model"] = str(model_path)
    result["threads"] = torch.get_num_threads()
    x, _ = load_dataset(dataset, "test")
    x = x[:images]
    mc_logits(model, x[:64], samples)  # warm-up (allocator, oneDNN kernels)
    t0 = time.perf_counter()
    mc_logits(model, x, samples)
    sec = time.perf_counter() - t0
    result["mc"] = {"samples": samples, "images": len(x), "dropout": model.kind,
                    "seconds": sec, "images_per_s": len(x) / sec,
                    "forward_passes_per_s": len(x) * samples / sec}
    return result


def run(args) -> tuple[int, str]:
    rec = new_record("train", args.label)
    r = bench_train(args.dataset, args.model, args.images, args.samples)
    rec.update(r)
    rows = [[f"train 1 epoch (batch {t['batch_size']})", kind, t["images"],
             t["seconds_per_epoch"], t["images_per_s"]] for kind, t in r["train"].items()]
    mc = r["mc"]
    rows.append([f"MC inference T={mc['samples']}", mc["dropout"], mc["images"], mc["seconds"],
                 mc["images_per_s"]])
    text = table(["stage", "dropout", "images", "seconds", "images/s"], rows,
                 f"bench train: {r['dataset']} {r['arch']}, {r['threads']} torch threads"
                 + (f", MC on {r['mc_model']}" if r["mc_model"] else ""))
    return 0, finish(rec, text, args.json)
