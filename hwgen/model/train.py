"""`hwgen train`: seeded, deterministic CPU training of a binary CNN (SPEC section 13).

Recipe (measured on Fashion-MNIST, see docs/MODELS.md):
- Adam with a one-cycle schedule (short warm-up, cosine decay to ~0);
- latent weights clipped to [-1, 1] after each step, so a sign can flip back within a
  few steps instead of drifting away where the clipped STE passes no gradient;
- for Fashion-MNIST, random one-pixel shifts and horizontal flips on the float image
  before it is binarised (none for the 8x8 digits, where a shift is 12% of the image);
- a per-dataset input threshold theta (Fashion-MNIST: 0.15; many garments are dark grey,
  and a logistic-regression probe on the binarised pixels gained 4.6 points over 0.5);
- dropout active in training exactly as in MC inference (same sites, same groups), so the
  batch-norm statistics are those of the MC model.
"""

from __future__ import annotations

import logging
import os
import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..data import IN_SHAPE, load_dataset
from ..errors import HwgenError
from .net import BinaryNet, make_arch
from .spec import SpecError

log = logging.getLogger(__name__)

__all__ = ["DEFAULTS", "TrainConfig", "train", "setup_torch"]


@dataclass(frozen=True)
class Defaults:
    arch: str
    epochs: int
    lr: float
    batch_size: int
    shift: int          # random shift of up to +-shift pixels
    flip: bool          # random horizontal flip
    theta: float = 0.5  # input binarisation threshold (SPEC section 3)


DEFAULTS = {
    # 8x8 digits: a one-pixel shift is 12% of the image and cost ~15 points; no augmentation.
    "digits": Defaults(arch="c32,p2,f10", epochs=30, lr=1e-2, batch_size=64,
                       shift=0, flip=False),
    "fashion-mnist": Defaults(arch="c16,p2,c32,p2,f10", epochs=10, lr=2e-3, batch_size=128,
                              shift=1, flip=True, theta=0.15),
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (and so its model.pt, bit for bit)."""
    dataset: str = "digits"
    arch: str | None = None
    dropout: str = "spatial"
    p: float = 0.2
    epochs: int | None = None
    seed: int = 0
    batch_size: int | None = None
    lr: float | None = None
    dropout_scale: bool = False
    eval_samples: int = 8
    theta: float | None = None
    input: str = "binary"         # 'binary' or 'bitserial-n' (SPEC section 3)

    def resolved(self) -> "TrainConfig":
        d = DEFAULTS[self.dataset]
        return TrainConfig(self.dataset, self.arch or d.arch, self.dropout, self.p,
                           self.epochs or d.epochs, self.seed, self.batch_size or d.batch_size,
                           self.lr or d.lr, self.dropout_scale, self.eval_samples,
                           self.theta or d.theta, self.input)


def setup_torch(seed: int, threads: int | None = None) -> None:
    """Seed torch and make CPU kernels deterministic (results byte-identical across runs
    on the same machine and thread count). Threads: `threads`, else $HWGEN_THREADS, else 1:
    on this shared 2-core machine one thread measured 3x faster than two under load
    (19.5 vs 64 s/epoch)."""
    threads = threads or int(os.environ.get("HWGEN_THREADS", "1"))
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def augment(x: torch.Tensor, shift: int, flip: bool, g: torch.Generator) -> torch.Tensor:
    """Random integer shifts of up to +-shift pixels (zero fill) and optional flips."""
    n, c, h, w = x.shape
    if flip:
        f = torch.rand(n, generator=g) < 0.5
        x = torch.where(f[:, None, None, None], x.flip(-1), x)
    if shift:
        xp = F.pad(x, (shift, shift, shift, shift))
        dy = torch.randint(0, 2 * shift + 1, (n,), generator=g)
        dx = torch.randint(0, 2 * shift + 1, (n,), generator=g)
        rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
        x = xp[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None],
               rows, cols]
    return x


def clip_latent(model: BinaryNet) -> None:
    with torch.no_grad():
        for blk in model.blocks:
            blk.layer.weight.clamp_(-1.0, 1.0)


def accuracy(model: BinaryNet, x: torch.Tensor, y: torch.Tensor, samples: int, seed: int,
             limit: int | None = None) -> float:
    """Test accuracy: deterministic for dropout none, else MC (argmax of mean softmax)."""
    from .evaluate import mc_logits
    if limit is not None:
        x, y = x[:limit], y[:limit]
    t = 1 if model.kind == "none" else samples
    logits = mc_logits(model, x, t, seed=seed)
    pred = logits.softmax(-1).mean(0).argmax(-1)
    return float((pred == y).float().mean())


def train(cfg: TrainConfig, progress: bool = True) -> tuple[BinaryNet, dict]:
    """Train per `cfg` (resolved against the dataset defaults); return (model, meta)."""
    cfg = cfg.resolved()
    d = DEFAULTS[cfg.dataset]
    try:
        arch = make_arch(cfg.arch, IN_SHAPE[cfg.dataset], cfg.dropout, cfg.p, cfg.dropout_scale,
                         cfg.theta, cfg.input)
    except (SpecError, ValueError) as e:
        raise HwgenError(f"bad --arch/--dropout/--p/--theta/--input: {e}") from None
    if arch["layers"][-1]["out_channels"] != 10:
        raise HwgenError(f"classifier of {cfg.arch!r} has {arch['layers'][-1]['out_channels']} "
                         f"outputs; {cfg.dataset} has 10 classes")
    if not (isinstance(cfg.lr, float) and math.isfinite(cfg.lr) and cfg.lr > 0):
        raise HwgenError(f"learning rate must be a positive number, not {cfg.lr!r}")
    xtr, ytr = load_dataset(cfg.dataset, "train")
    xte, yte = load_dataset(cfg.dataset, "test")

    setup_torch(cfg.seed)
    model = BinaryNet(arch)
    clip_latent(model)
    g = torch.Generator().manual_seed(cfg.seed)
    n = len(xtr)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, epochs=cfg.epochs,
                                                steps_per_epoch=steps_per_epoch, pct_start=0.1)
    history = []
    bar = tqdm(total=cfg.epochs * steps_per_epoch, disable=not progress, unit="batch",
               desc=f"train {cfg.dataset} {cfg.dropout}", mininterval=2.0)
    for epoch in range(cfg.epochs):
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=g)
        loss_sum = correct = 0.0
        for k in range(steps_per_epoch):
            idx = perm[k * cfg.batch_size:(k + 1) * cfg.batch_size]
            xb = augment(xtr[idx], d.shift, d.flip, g)
            logits = model(xb)
            loss = F.cross_entropy(logits, ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            clip_latent(model)
            loss_sum += loss.item() * len(idx)
            correct += float((logits.argmax(-1) == ytr[idx]).sum())
            bar.update()
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}", refresh=False)
        sec = time.perf_counter() - t0
        model.eval()
        te = accuracy(model, xte, yte, samples=1, seed=cfg.seed, limit=2000)
        history.append({"epoch": epoch + 1, "loss": loss_sum / n, "train_acc": correct / n,
                        "test_acc_1sample_2k": te, "seconds": sec})
        log.info("epoch %d/%d: loss %.4f train %.4f test(1 sample, 2k) %.4f, %.1f s",
                 epoch + 1, cfg.epochs, loss_sum / n, correct / n, te, sec)
    bar.close()
    model.eval()
    test_acc = accuracy(model, xte, yte, samples=cfg.eval_samples, seed=cfg.seed)
    train_acc = accuracy(model, xtr, ytr, samples=1, seed=cfg.seed, limit=10000)
    meta = {
        "dataset": cfg.dataset, "dropout": cfg.dropout, "p": arch["dropout"]["p"],
        "seed": cfg.seed, "epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr": cfg.lr,
        "optimizer": "adam+onecycle", "augment": {"shift": d.shift, "flip": d.flip},
        "train_acc": train_acc, "test_acc": test_acc, "test_samples": cfg.eval_samples,
        "seconds_per_epoch": sum(h["seconds"] for h in history) / len(history),
        "history": history, "torch": str(torch.__version__),
        "threads": torch.get_num_threads(), "theta": cfg.theta, "input": cfg.input,
    }
    log.info("test accuracy %.4f (T=%d), train %.4f, %.1f s/epoch", test_acc,
             1 if cfg.dropout == "none" else cfg.eval_samples, train_acc,
             meta["seconds_per_epoch"])
    return model, meta
