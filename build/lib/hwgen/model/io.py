"""model.pt (DESIGN section 9): a plain dict saved with torch.save, loaded only with
weights_only=True, and checked key by key before anything uses it."""

from __future__ import annotations

import io
import math
from pathlib import Path

import torch

from ..atomic import write_bytes
from ..errors import HwgenError
from .net import BinaryNet, make_arch
from .spec import SpecError

FORMAT = "hwgen-model"
VERSION = 1
MAX_MAP = 1 << 24   # values in one layer's input or output map: far above any model here

__all__ = ["FORMAT", "VERSION", "save_model", "load_checkpoint", "build_model"]


def save_model(path, model: BinaryNet, meta: dict) -> None:
    """Write model.pt atomically."""
    ckpt = {
        "format": FORMAT,
        "version": VERSION,
        "arch": model.arch,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "meta": meta,
    }
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    write_bytes(path, buf.getvalue())


def load_checkpoint(path) -> dict:
    """Load and validate model.pt; raise HwgenError with one line naming the problem."""
    path = Path(path)
    if not path.exists():
        raise HwgenError(f"{path}: no such file")
    if not path.is_file():
        raise HwgenError(f"{path}: not a regular file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors of every kind: truncated, hostile, not torch
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HwgenError(f"{path}: not a loadable model.pt (weights_only load failed: "
                         f"{first[:160]})") from None
    if not isinstance(ckpt, dict):
        raise HwgenError(f"{path}: model.pt must hold a dict, not {type(ckpt).__name__}")
    for key in ("format", "version", "arch", "state_dict", "meta"):
        if key not in ckpt:
            raise HwgenError(f"{path}: model.pt is missing key {key!r}")
    if ckpt["format"] != FORMAT:
        raise HwgenError(f"{path}: format tag is {ckpt['format']!r}, expected {FORMAT!r}")
    if type(ckpt["version"]) is not int or ckpt["version"] != VERSION:  # True == 1
        raise HwgenError(f"{path}: format version {ckpt['version']!r} is not supported "
                         f"(expected {VERSION})")
    arch = ckpt["arch"]
    try:
        d, inp = arch["dropout"], arch["input"]
        mode = {"binary": "binary", "bitserial": f"bitserial-{inp.get('bits')}"}.get(inp.get("mode"))
        if mode is None:
            raise ValueError(f"unsupported input mode {inp.get('mode')!r}")
        ref = make_arch(arch["spec"], arch["in_shape"], d["kind"], d["p"], d["scale"],
                        inp.get("theta", 0.5), mode)
    except (SpecError, ValueError, TypeError, KeyError, AttributeError) as e:
        raise HwgenError(f"{path}: bad architecture: {e}") from None
    if arch["input"] != ref["input"]:
        raise HwgenError(f"{path}: bad input description {arch['input']!r}")
    layers = arch.get("layers")
    if isinstance(layers, list) and all(isinstance(l, dict) and "site" not in l for l in layers):
        # made before SPECs could choose sites: the default ones, as `site` now records
        layers = [dict(l, site=r["site"]) for l, r in zip(layers, ref["layers"])]
        arch["layers"] = layers
    if layers != ref["layers"]:
        raise HwgenError(f"{path}: architecture layers do not match spec {arch['spec']!r}")
    sd = ckpt["state_dict"]
    if not isinstance(sd, dict):
        raise HwgenError(f"{path}: state_dict must be a dict")
    for i, layer in enumerate(ref["layers"]):
        size = max(math.prod(layer["in_shape"]), math.prod(layer["conv_shape"]))
        if size > MAX_MAP:
            raise HwgenError(f"{path}: layer {i} maps {size} values (limit {MAX_MAP}); "
                             f"refusing an architecture this large")
    with torch.device("meta"):  # shapes and dtypes only: a hostile arch allocates nothing
        expected = BinaryNet(ref).state_dict()
    for k, v in expected.items():
        if k not in sd:
            raise HwgenError(f"{path}: state_dict is missing {k!r}")
        t = sd[k]
        if not isinstance(t, torch.Tensor):
            raise HwgenError(f"{path}: state_dict[{k!r}] is not a tensor")
        if tuple(t.shape) != tuple(v.shape):
            raise HwgenError(f"{path}: state_dict[{k!r}] has shape {tuple(t.shape)}, "
                             f"expected {tuple(v.shape)}")
        if t.dtype != v.dtype:
            raise HwgenError(f"{path}: state_dict[{k!r}] has dtype {t.dtype}, expected {v.dtype}")
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise HwgenError(f"{path}: state_dict[{k!r}] has NaN or infinite values")
        if k.endswith("running_var") and (t < 0).any():
            raise HwgenError(f"{path}: state_dict[{k!r}] has negative variances")
    extra = sorted(set(sd) - set(expected))
    if extra:
        raise HwgenError(f"{path}: state_dict has unexpected key {extra[0]!r}")
    if not isinstance(ckpt["meta"], dict):
        raise HwgenError(f"{path}: meta must be a dict")
    ckpt["arch"] = ref | {k: v for k, v in arch.items() if k not in ref}
    return ckpt


def build_model(ckpt: dict) -> BinaryNet:
    """A BinaryNet in eval mode with the checkpoint's weights."""
    model = BinaryNet(ckpt["arch"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model
