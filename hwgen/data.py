"""Dataset loaders: scikit-learn's bundled 8x8 digits and Fashion-MNIST from the Debian
package `dataset-fashion-mnist`. Nothing is ever downloaded.

Images are float32 tensors [N, 1, H, W] in [0, 1]; labels are int64 tensors [N].
Out-of-distribution (OOD) sets are made on the machine from these two sources
(see `load_ood`).
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import HwgenError

if TYPE_CHECKING:
    import torch

# torch is imported by the dataset loaders that return tensors, so that reading a user's
# --inputs (`hwgen predict`) does not pay for it.

__all__ = ["as_inputs", "DATASETS", "FASHION_DIR", "IN_SHAPE", "CLASSES", "load_dataset", "load_ood",
           "ood_description", "read_idx", "load_inputs"]

DATASETS = ("digits", "fashion-mnist")
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
IN_SHAPE = {"digits": (1, 8, 8), "fashion-mnist": (1, 28, 28)}
CLASSES = {"digits": 10, "fashion-mnist": 10}
# The digits have no official split: a fixed, seeded, stratified 75/25 split.
DIGITS_TEST_FRACTION = 0.25
DIGITS_SPLIT_SEED = 0


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) as a numpy array of its stored dtype."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise HwgenError(f"{path}: unreadable IDX file ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise HwgenError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = np.frombuffer(raw, ">u4", count=ndim, offset=4).astype(int)
    body = 4 + 4 * ndim
    if len(raw) - body != int(np.prod(dims)):
        raise HwgenError(f"{path}: IDX size does not match its header {tuple(dims)}")
    return np.frombuffer(raw, np.uint8, offset=body).reshape(dims)


def _fashion_file(stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (FASHION_DIR / name).is_file():
            return FASHION_DIR / name
    raise HwgenError(f"Fashion-MNIST not found in {FASHION_DIR} (missing {stem}[.gz]); "
                     f"install the Debian package dataset-fashion-mnist")


@lru_cache(maxsize=4)
def _fashion(split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(_fashion_file(f"{prefix}-images-idx3-ubyte"))
    y = read_idx(_fashion_file(f"{prefix}-labels-idx1-ubyte"))
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise HwgenError(f"Fashion-MNIST {split}: images {x.shape} and labels {y.shape} disagree")
    return x, y


@lru_cache(maxsize=1)
def _digits() -> dict:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    idx = np.arange(len(d.target))
    tr, te = train_test_split(idx, test_size=DIGITS_TEST_FRACTION,
                              random_state=DIGITS_SPLIT_SEED, stratify=d.target)
    x = (d.images / 16.0).astype(np.float32)
    return {"train": (x[tr], d.target[tr]), "test": (x[te], d.target[te])}


def load_dataset(name: str, split: str) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Images [N, 1, H, W] float32 in [0, 1] and int64 labels [N] of `name`'s `split`.

    Parameters
    ----------
    name : "digits" or "fashion-mnist"
    split : "train" or "test" (the digits: a fixed seeded stratified 75/25 split)
    """
    import torch
    if name not in DATASETS:
        raise HwgenError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    if split not in ("train", "test"):
        raise HwgenError(f"unknown split {split!r}; expected 'train' or 'test'")
    if name == "digits":
        x, y = _digits()[split]
        x = torch.from_numpy(x.copy())
    else:
        xi, y = _fashion(split)
        x = torch.from_numpy(xi.astype(np.float32) / 255.0)
    return x[:, None], torch.from_numpy(np.asarray(y, dtype=np.int64))


def ood_description(name: str) -> str:
    """One line saying what `load_ood(name)` is made of."""
    if name == "fashion-mnist":
        return ("bundled 8x8 digits (all 1797) upscaled bilinearly to 28x28, plus uniform "
                "noise in [0, 0.1), clipped to [0, 1]")
    return ("Fashion-MNIST test images (first 2000) area-downscaled to 8x8, plus uniform "
            "noise in [0, 0.1), clipped to [0, 1]")


def load_ood(name: str, seed: int = 0) -> "torch.Tensor":
    """An out-of-distribution image set for a model trained on `name`, made locally.

    fashion-mnist: the bundled digits upscaled to 28x28 plus uniform noise.
    digits: Fashion-MNIST test images downscaled to 8x8 plus uniform noise (needs the
    Debian package, like Fashion-MNIST itself). The noise is seeded, so the set is fixed.
    """
    import torch
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(seed)
    if name == "fashion-mnist":
        from sklearn.datasets import load_digits
        x = torch.from_numpy((load_digits().images / 16.0).astype(np.float32))[:, None]
        x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    elif name == "digits":
        x, _ = load_dataset("fashion-mnist", "test")
        x = F.adaptive_avg_pool2d(x[:2000], (8, 8))
    else:
        raise HwgenError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    return (x + 0.1 * torch.rand(x.shape, generator=g)).clamp_(0.0, 1.0)


def first_test_images(dataset: str | None, n: int, in_shape) -> tuple[np.ndarray, np.ndarray]:
    """The first n test images of `dataset` (float32 [n, C, H, W] in [0, 1]) and their
    labels: the one definition of "the model's test images" for compile checks, the RTL
    regression and the FPGA flow. HwgenError when the dataset is unknown, its images do
    not fit `in_shape`, or it has fewer than n test images."""
    if dataset not in IN_SHAPE:
        raise HwgenError(f"the model names no known dataset ({dataset!r}): give images "
                         f"with --inputs X.npy")
    if tuple(IN_SHAPE[dataset]) != tuple(in_shape):
        raise HwgenError(f"{dataset} images are {IN_SHAPE[dataset]}, the model's input is "
                         f"{tuple(in_shape)}")
    x, y = load_dataset(dataset, "test")
    if not 0 <= n <= len(x):
        raise HwgenError(f"{n} images asked, {dataset} has {len(x)} test images")
    return x[:n].numpy(), y[:n].numpy()


def load_inputs(path, in_shape, n: int | None = None) -> np.ndarray:
    """User images from a .npy file as float32 [N, C, H, W] (the first n if n is given);
    HwgenError with one line naming the problem otherwise.

    Accepted: a floating array (cast to float32) of finite pixels in [0, 1], the range every
    model here is defined and checked on (a compiled model is exact on float32 pixels in
    [0, 1]), of shape [N, C, H, W] = [N, *in_shape]; [N, F] when in_shape is (F, 1, 1) (a
    model whose graph takes F features); [N, H, W] when C = 1 (a 3-D array cannot then be
    one image of C channels, so it is N images). Refused, each in one line: a .npz archive,
    no images, an integer or boolean array (it would be read as pixel values 0..255; divide
    by 255 first), NaN or infinite values, values outside [0, 1], and any other shape.
    Loaded without pickles.
    """
    path = Path(path)
    if not path.exists():
        raise HwgenError(f"{path}: no such file")
    if not path.is_file():
        raise HwgenError(f"{path}: not a regular file")
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        why = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        if "allow_pickle" in why:          # numpy's advice is an option hwgen does not offer
            why = "an object array, whose pickled objects are never loaded; save float pixels"
        raise HwgenError(f"{path}: not a readable .npy array ({why})") from None
    if isinstance(x, np.lib.npyio.NpzFile):
        names = ", ".join(x.files[:4]) + (", ..." if len(x.files) > 4 else "")
        x.close()
        raise HwgenError(f"{path}: a .npz archive (arrays: {names or 'none'}); pass one array "
                         f"saved with numpy.save as a .npy file")
    return as_inputs(x, in_shape, n, str(path))


def as_inputs(x, in_shape, n: int | None = None, name: str = "inputs") -> np.ndarray:
    """Images given as an array (a numpy array or a torch tensor) as float32 [N, C, H, W]:
    the rules of `load_inputs`, each refusal one line naming `name`."""
    if hasattr(x, "detach"):                       # a torch tensor
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    path = name
    c, h, w = (int(v) for v in in_shape)
    want = f"[N, {c}, {h}, {w}]" + (f" or [N, {c}]" if (h, w) == (1, 1) else "") + \
        (f" or [N, {h}, {w}]" if c == 1 else "")
    shape = tuple(x.shape)
    if x.ndim == 4 and shape[1:] == (c, h, w):
        pass
    elif x.ndim == 2 and (h, w) == (1, 1) and shape[1] == c:
        x = x.reshape(shape + (1, 1))
    elif x.ndim == 3 and c == 1 and shape[1:] == (h, w):
        x = x[:, None]
    else:
        raise HwgenError(f"{path}: images have shape {list(shape)}, expected {want}")
    if len(x) == 0:
        raise HwgenError(f"{path}: holds no images (shape {list(shape)}); give at least one")
    if not np.issubdtype(x.dtype, np.floating):
        raise HwgenError(f"{path}: dtype {x.dtype}, expected float pixels in [0, 1] "
                         f"(for 8-bit pixels k, save k / 255 as float32)")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise HwgenError(f"{path}: image {bad[0]} holds NaN or infinite values; pixels must "
                         f"be finite, in [0, 1]")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise HwgenError(f"{path}: pixels range over [{lo:.6g}, {hi:.6g}], expected [0, 1] "
                         f"(scale them to [0, 1] first)")
    if n is not None:
        if n > len(x):
            raise HwgenError(f"{n} images asked, {path} holds {len(x)}")
        x = x[:n]
    return x
