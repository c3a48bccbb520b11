"""The hwgen IR (DESIGN section 8): small frozen dataclasses, JSON with sorted keys.

Every binary layer is a stride-1 convolution over a (C, H, W) map (see
hwgen.model.spec): its crossbar rows are (c, ky, kx) channel-major, rows = C*kh*kw, and
its output columns are its out_channels. A linear layer is a conv whose kernel covers
its whole input map. Weight bits of output column j are `weights[j]`: the row bits
(1 = +1) packed with numpy.packbits(bitorder="little"), as a hex string.

Meaning is defined by the numpy interpreter in hwgen.ir.interp; invariants by
hwgen.ir.verify.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace

import numpy as np

FORMAT = "hwgen-ir"
VERSION = 1

__all__ = ["FORMAT", "VERSION", "Layer", "Site", "Rng", "IR", "pack_rows", "unpack_rows",
           "dumps", "loads", "replace"]


def pack_rows(bits: np.ndarray) -> tuple[str, ...]:
    """[O, rows] 0/1 -> one hex string per row of `bits` (packbits, little bit order)."""
    bits = np.asarray(bits, np.uint8)
    return tuple(np.packbits(b, bitorder="little").tobytes().hex() for b in bits)


def unpack_rows(hexes, n: int) -> np.ndarray:
    """Inverse of pack_rows: [len(hexes), n] uint8 0/1."""
    return np.stack([np.unpackbits(np.frombuffer(bytes.fromhex(h), np.uint8), count=n,
                                   bitorder="little") for h in hexes])


@dataclass(frozen=True)
class Layer:
    op: str                               # 'conv' | 'linear' (for reports; both are convs)
    in_shape: tuple[int, int, int]        # (C, H, W)
    out_channels: int                     # O: crossbar columns
    kernel: tuple[int, int]               # (kh, kw)
    pad: tuple[int, int]                  # (ph, pw); padded positions are undriven rows
    pool: int                             # max-pool size (1 = none), floor mode
    weights: tuple[str, ...]              # O hex strings of `rows` bits (see module doc)
    sign: tuple[int, ...] | None = None   # s_j in {+1,-1}; None on the classifier
    thresh: tuple[int, ...] | None = None # t_j; out_j = (s_j * acc_j >= t_j)
    logit_scale: tuple[float, ...] | None = None  # classifier: logit_j = a_j*acc_j + b_j
    logit_bias: tuple[float, ...] | None = None
    tile: tuple[int, int] = (128, 128)    # crossbar (R, C) this layer is split onto
    # Pre-lowering form, present only between the frontend and the passes that remove them
    # (hwgen.passes): latent float weights [O*rows] row-major (before pack_weights), and the
    # batch norm as float lists gain/bias/mean/var/eps/in_scale (before fold_batchnorm).
    latent: tuple[float, ...] | None = None
    bn: dict | None = None

    @property
    def rows(self) -> int:
        c, _, _ = self.in_shape
        return c * self.kernel[0] * self.kernel[1]

    @property
    def conv_shape(self) -> tuple[int, int, int]:
        _, h, w = self.in_shape
        return (self.out_channels, h + 2 * self.pad[0] - self.kernel[0] + 1,
                w + 2 * self.pad[1] - self.kernel[1] + 1)

    @property
    def out_shape(self) -> tuple[int, int, int]:
        o, h, w = self.conv_shape
        return (o, h // self.pool, w // self.pool)

    @property
    def windows(self) -> int:
        """Output positions before pooling: one crossbar read each."""
        _, h, w = self.conv_shape
        return h * w

    @property
    def is_classifier(self) -> bool:
        return self.sign is None

    @property
    def row_tiles(self) -> tuple[tuple[int, int], ...]:
        r = self.tile[0]
        return tuple((a, min(a + r, self.rows)) for a in range(0, self.rows, r))

    @property
    def col_tiles(self) -> tuple[tuple[int, int], ...]:
        c = self.tile[1]
        return tuple((a, min(a + c, self.out_channels)) for a in range(0, self.out_channels, c))

    def weight_bits(self) -> np.ndarray:
        """[O, rows] uint8, 1 = +1 (sign(0) = +1 for latent weights)."""
        if not self.weights and self.latent is not None:
            w = np.asarray(self.latent, np.float64).reshape(self.out_channels, self.rows)
            return (w >= 0).astype(np.uint8)
        return unpack_rows(self.weights, self.rows)


@dataclass(frozen=True)
class Site:
    layer: int             # binary layer whose input this site gates
    kind: str              # 'spatial' | 'element'
    p: float               # drop probability asked for
    n_groups: int          # one keep bit (one MTJ-RNG interface) per group
    group_rows: int        # group g gates rows [g*group_rows, (g+1)*group_rows)
    first_interface: int   # global index of group 0's interface
    mtj_code: int = 0      # write-current code chosen from the device curve
    p_realised: float = 0.0


@dataclass(frozen=True)
class Rng:
    """MTJ-RNG protocol timing (DESIGN section 6), in clock cycles, and the device model."""
    clk_ns: float = 10.0
    reset_cycles: int = 2
    write_cycles: int = 2
    device: dict = field(default_factory=dict)   # hwgen.device.MtjParams as a dict

    @property
    def write_ns(self) -> float:
        return self.write_cycles * self.clk_ns


@dataclass(frozen=True)
class IR:
    in_shape: tuple[int, int, int]
    input_mode: str                 # 'binary'
    theta: float                    # pixel p -> bit (p >= theta)
    layers: tuple[Layer, ...]
    sites: tuple[Site, ...]
    rng: Rng = Rng()
    meta: dict = field(default_factory=dict)   # model hash, dataset, spec: no timestamps
    version: int = VERSION

    @property
    def n_interfaces(self) -> int:
        return sum(s.n_groups for s in self.sites)

    @property
    def mc_start(self) -> int:
        """First layer run per MC sample. Layers before it run once per image. With no
        dropout sites it is the classifier (which then gives T equal samples)."""
        return self.sites[0].layer if self.sites else len(self.layers) - 1

    @property
    def n_classes(self) -> int:
        return self.layers[-1].out_channels

    def site_of(self, layer: int) -> Site | None:
        for s in self.sites:
            if s.layer == layer:
                return s
        return None


def _tuplify(x):
    if isinstance(x, list):
        return tuple(_tuplify(v) for v in x)
    if isinstance(x, dict):
        return {k: _tuplify(v) for k, v in x.items()}
    return x


def to_dict(ir: IR) -> dict:
    d = asdict(ir)
    d["format"] = FORMAT
    return d


def dumps(ir: IR) -> str:
    """Deterministic JSON: sorted keys, fixed separators, floats by repr."""
    return json.dumps(to_dict(ir), sort_keys=True, indent=1, allow_nan=False) + "\n"


def loads(text: str) -> IR:
    d = json.loads(text)
    if d.pop("format", None) != FORMAT:
        raise ValueError("not an hwgen IR file (format tag missing or wrong)")
    if d.get("version") != VERSION:
        raise ValueError(f"IR version {d.get('version')!r} is not supported (expected {VERSION})")
    layers = tuple(Layer(**{k: _tuplify(v) for k, v in l.items()}) for l in d.pop("layers"))
    sites = tuple(Site(**s) for s in d.pop("sites"))
    rng = Rng(**d.pop("rng"))
    return IR(layers=layers, sites=sites, rng=rng, in_shape=tuple(d.pop("in_shape")), **d)
