"""model.pt (SPEC section 9): a plain dict saved with torch.save, loaded only with
weights_only=True, and checked key by key before anything uses it."""

from __future__ import annotations

import io
import math
import pickle
import warnings
import zipfile
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


def _short(value, limit: int = 60) -> str:
    """repr of a value read from a user's file, for a one-line message: repr escapes
    newlines and terminal escapes, and a long value is cut."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _read_torch(path: Path):
    """The object in a torch.save zip archive, unpickled with weights_only=True; HwgenError
    with one line of hwgen's own otherwise. torch's own messages and warnings are never
    passed on: they are many lines and advise options (weights_only=False) hwgen does not
    offer, since a model.pt is a plain dict of tensors and needs none."""
    if not path.exists():
        raise HwgenError(f"{path}: no such file")
    if not path.is_file():
        raise HwgenError(f"{path}: not a regular file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise HwgenError(f"{path}: cannot be read ({e.strerror or type(e).__name__})") from None
    if not data:
        raise HwgenError(f"{path}: empty file, not a model.pt")
    # torch.save has written zip archives since torch 1.6; checking the archive first (every
    # member's CRC) turns a truncated or foreign file into one clear line before torch sees it
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = z.namelist()
            bad = z.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError):
        raise HwgenError(f"{path}: not a model.pt (not a torch.save zip archive, or truncated)") \
            from None
    if bad is not None:
        raise HwgenError(f"{path}: not a model.pt (archive member {bad!r} is corrupt)")
    if not any(n.count("/") == 1 and n.endswith("/data.pkl") for n in names):
        raise HwgenError(f"{path}: not a model.pt (a zip archive, but not one torch.save wrote)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # the weights_only unpickler refuses any global it does not know (code, classes) and
        # any pickle instruction it does not read (a protocol above 2 has some)
        raise HwgenError(f"{path}: not a model.pt (its pickle holds objects or instructions "
                         f"other than tensors and plain containers; refused, nothing run)") \
            from None
    except Exception as e:  # noqa: BLE001 - torch raises many kinds on a malformed archive
        raise HwgenError(f"{path}: not a model.pt (torch.load failed: "
                         f"{type(e).__name__})") from None


def load_checkpoint(path) -> dict:
    """Load and validate model.pt; raise HwgenError with one line naming the problem."""
    path = Path(path)
    ckpt = _read_torch(path)
    if not isinstance(ckpt, dict):
        raise HwgenError(f"{path}: model.pt must hold a dict, not {type(ckpt).__name__}")
    for key in ("format", "version", "arch", "state_dict", "meta"):
        if key not in ckpt:
            raise HwgenError(f"{path}: model.pt is missing key {key!r}")
    if ckpt["format"] != FORMAT:
        raise HwgenError(f"{path}: format tag is {_short(ckpt['format'])}, expected {FORMAT!r}")
    if type(ckpt["version"]) is not int or ckpt["version"] != VERSION:  # True == 1
        raise HwgenError(f"{path}: format version {_short(ckpt['version'])} is not supported "
                         f"(expected {VERSION})")
    arch = ckpt["arch"]
    try:
        d, inp = arch["dropout"], arch["input"]
        mode = {"binary": "binary", "bitserial": f"bitserial-{inp.get('bits')}"}.get(inp.get("mode"))
        if mode is None:
            raise ValueError(f"unsupported input mode {inp.get('mode')!r}")
        ref = make_arch(arch["spec"], arch["in_shape"], d["kind"], d["p"], d["scale"],
                        inp.get("theta", 0.5), mode)
    except KeyError as e:
        raise HwgenError(f"{path}: bad architecture: no key {_short(e.args[0])}") from None
    except (SpecError, ValueError, TypeError, AttributeError) as e:
        raise HwgenError(f"{path}: bad architecture: {_short(str(e), 160)}") from None
    if arch["input"] != ref["input"]:
        raise HwgenError(f"{path}: bad input description {_short(arch['input'])}")
    layers = arch.get("layers")
    if isinstance(layers, list) and all(isinstance(l, dict) and "site" not in l for l in layers):
        # made before SPECs could choose sites: the default ones, as `site` now records
        layers = [dict(l, site=r["site"]) for l, r in zip(layers, ref["layers"])]
        arch["layers"] = layers
    if layers != ref["layers"]:
        raise HwgenError(f"{path}: architecture layers do not match spec {_short(arch['spec'])}")
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
        raise HwgenError(f"{path}: state_dict has unexpected key {_short(extra[0])}")
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
