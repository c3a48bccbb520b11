"""The hwgen IR (SPEC section 8, docs/SPEC.md): small frozen dataclasses, JSON, sorted keys.

Every binary layer is a convolution over a (C, H, W) map (see hwgen.model.spec), of
stride (sh, sw) (default 1), optionally followed by a max-pool of size S and stride T
(default T = S), floor mode: its crossbar rows are (c, ky, kx) channel-major, rows =
C*kh*kw, and its output columns are its out_channels. A linear layer is a conv whose
kernel covers its whole input map. The strides are left out of the JSON when they are
the defaults, so an IR written before they existed reads as stride 1 and a stride-1
IR's bytes do not change.

The IR has two named stages, one layer type each; an IR holds layers of one stage:
- **float** (`FloatLayer`): the model as trained, what a frontend reads: latent float
  weights (bit = latent >= 0) and a float `BatchNorm` whose sign is the output bit;
- **integer** (`Layer`): what the hardware is built from: packed weight bits and an
  integer threshold per column (`sign`, `thresh`), the classifier with its host-side
  logit affine. Weight bits of column j are `weights[j]`: the row bits (1 = +1) packed
  with numpy.packbits(bitorder="little"), as a hex string.
`hwgen.passes.lower` takes the first to the second; a frontend that can fold exactly
itself (hwgen.frontend.qonnx) emits the integer stage directly.

Meaning is defined by the numpy interpreter in hwgen.ir.interp; invariants by
hwgen.ir.verify. This package imports numpy, the standard library and the leaf modules
hwgen.errors and hwgen.device only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..device import MtjParams

FORMAT = "hwgen-ir"
VERSION = 3       # 3: the integer stage's read plan (Layer.plan); version 2 files are refused

__all__ = ["FORMAT", "VERSION", "InputEncoding", "BatchNorm", "FloatLayer", "Layer", "ReadPlan",
           "read_plan", "layer_read_plan", "row_passes", "Site", "MtjConfig",
           "Dropout", "Meta", "IR", "site_groups", "pack_rows", "unpack_rows", "masks_from_ap",
           "report_items", "dumps", "loads", "replace"]


def pack_rows(bits: np.ndarray) -> tuple[str, ...]:
    """[O, rows] 0/1 -> one hex string per row of `bits` (packbits, little bit order)."""
    bits = np.asarray(bits, np.uint8)
    return tuple(np.packbits(b, bitorder="little").tobytes().hex() for b in bits)


def unpack_rows(hexes, n: int) -> np.ndarray:
    """Inverse of pack_rows: [len(hexes), n] uint8 0/1."""
    return np.stack([np.unpackbits(np.frombuffer(bytes.fromhex(h), np.uint8), count=n,
                                   bitorder="little") for h in hexes])


def site_groups(kind: str, in_shape, kernel) -> tuple[int, int]:
    """(n_groups, group_rows) of a dropout site of `kind` on a layer with input map
    `in_shape` (C, H, W) and `kernel` (kh, kw) (SPEC section 5).

    spatial: one group per input channel, gating its kh*kw rows (a conv's channel, a
    feature map before a flatten-fed linear, a neuron before a linear-fed linear);
    element: one group per crossbar row."""
    c, (kh, kw) = in_shape[0], kernel
    if kind == "spatial":
        return c, kh * kw
    if kind == "element":
        return c * kh * kw, 1
    raise ValueError(f"dropout kind must be 'spatial' or 'element', not {kind!r}")


@dataclass(frozen=True, kw_only=True)
class _Geometry:
    op: str                               # 'conv' | 'linear' (for reports; both are convs)
    in_shape: tuple[int, int, int]        # (C, H, W)
    out_channels: int                     # O: crossbar columns
    kernel: tuple[int, int]               # (kh, kw)
    pad: tuple[int, int]                  # (ph, pw); padded positions are undriven rows
    pool: int                             # max-pool size (1 = none), floor mode
    tile: tuple[int, int] = (128, 128)    # crossbar (R, C) this layer is split onto
    stride: tuple[int, int] = (1, 1)      # conv stride (sh, sw)
    pool_stride: int | None = None        # max-pool stride; None = the pool size

    @property
    def pool_step(self) -> int:
        """The max-pool's stride: `pool_stride`, or the pool size when that is None."""
        return self.pool if self.pool_stride is None else self.pool_stride

    @property
    def rows(self) -> int:
        c, _, _ = self.in_shape
        return c * self.kernel[0] * self.kernel[1]

    @property
    def conv_shape(self) -> tuple[int, int, int]:
        _, h, w = self.in_shape
        (kh, kw), (ph, pw), (sh, sw) = self.kernel, self.pad, self.stride
        return (self.out_channels, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)

    @property
    def out_shape(self) -> tuple[int, int, int]:
        o, h, w = self.conv_shape
        if self.pool == 1:
            return (o, h, w)
        # floor mode; with the stride equal to the size this is (h // pool, w // pool)
        k, t = self.pool, self.pool_step
        return (o, max(0, (h - k) // t + 1), max(0, (w - k) // t + 1))

    @property
    def windows(self) -> int:
        """Output positions before pooling (conv_shape's H' * W')."""
        _, h, w = self.conv_shape
        return h * w

    @property
    def reads(self) -> int:
        """Crossbar reads of one pass over the layer: the windows the hardware walks.

        Without a pool, every window. Under a pool the walker reads each pool block's
        pool x pool windows: a window in no block (the floor-mode remainder, or a gap
        when the pool stride exceeds its size) is not read, and under an overlapping pool
        (the golden model only; the hardware refuses it) a shared window counts once
        per block."""
        if self.pool == 1:
            return self.windows
        _, hp, wp = self.out_shape
        return hp * wp * self.pool * self.pool

    @property
    def row_tiles(self) -> tuple[tuple[int, int], ...]:
        r = self.tile[0]
        return tuple((a, min(a + r, self.rows)) for a in range(0, self.rows, r))

    @property
    def col_tiles(self) -> tuple[tuple[int, int], ...]:
        c = self.tile[1]
        return tuple((a, min(a + c, self.out_channels)) for a in range(0, self.out_channels, c))


@dataclass(frozen=True, kw_only=True)
class InputEncoding:
    """How a float pixel becomes the first layer's input (SPEC section 3).

    binary:   bit = (pixel >= theta); the rows see +1/-1 (XNOR arithmetic).
    unsigned: q = clip(rint(float32(float32(pixel * mul) + add) / scale), 0, 2**bits - 1),
    signed:   the same with clip to [-2**(bits-1), 2**(bits-1) - 1] (two's complement);
              every step in float32, rint rounds half to even (QONNX `Quant`). Each bit
              plane k is one crossbar pass whose rows are driven where bit k of q is 1
              (inputs 0/1, weights +1/-1); acc = sum_k plane_weights[k] * acc_k, the sign
              plane of a signed input weighted -2**(bits-1).
    hwgen's own `bitserial-n` models use unsigned with mul = 2**n - 1 (a k/255 pixel
    gives q = k for n = 8); an imported model carries its graph's own steps.
    """
    mode: str = "binary"            # 'binary' | 'unsigned' | 'signed'
    bits: int = 1
    theta: float = 0.5              # binary only
    mul: float = 1.0                # integer modes only
    add: float = 0.0
    scale: float = 1.0

    @property
    def planes(self) -> int:
        return 1 if self.mode == "binary" else self.bits

    @property
    def plane_weights(self) -> tuple[int, ...]:
        if self.mode == "binary":
            return (1,)
        w = tuple(1 << k for k in range(self.bits))
        return w[:-1] + (-w[-1],) if self.mode == "signed" else w

    @property
    def q_range(self) -> tuple[int, int]:
        """Smallest and largest q (binary: the +-1 values)."""
        if self.mode == "binary":
            return -1, 1
        if self.mode == "signed":
            return -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        return 0, (1 << self.bits) - 1

    @property
    def name(self) -> str:
        """The command-line name: binary, bitserial-n, signed-n."""
        return {"binary": "binary", "unsigned": f"bitserial-{self.bits}",
                "signed": f"signed-{self.bits}"}.get(self.mode, self.mode)


@dataclass(frozen=True, kw_only=True)
class BatchNorm:
    """Inference batch norm over a layer's integer acc, per output channel:
    y = (acc * in_scale - mean) * gain / sqrt(var + eps) + bias. `in_scale` is the
    inverted-dropout input scale 1/(1-p) of a gated layer trained with it, else 1."""
    gain: tuple[float, ...]
    bias: tuple[float, ...]
    mean: tuple[float, ...]
    var: tuple[float, ...]
    eps: float
    in_scale: float = 1.0


@dataclass(frozen=True, kw_only=True)
class FloatLayer(_Geometry):
    """A layer of the float stage: bit of column j = (y_j >= 0), y the batch norm of acc."""
    latent: tuple[float, ...]             # [O * rows] row-major; weight bit = latent >= 0
    bn: BatchNorm

    def weight_bits(self) -> np.ndarray:
        """[O, rows] uint8, 1 = +1; sign(0) = +1 (SPEC section 1)."""
        w = np.asarray(self.latent, np.float64).reshape(self.out_channels, self.rows)
        return (w >= 0).astype(np.uint8)


@dataclass(frozen=True, kw_only=True)
class ReadPlan:
    """A layer's schedule (SPEC section 7), recorded by hwgen.passes.schedule next to its
    tiling: every tile of the layer is read in `beats` beats (r), column split ci
    delivering `lanes[ci]` columns per beat, the fewest that finish in r beats; `store`
    is the input buffer's organisation ('ring': a ring of H*W words rotated under the
    window taps; 'flat': the layer reads one window (`reads` 1, e.g. a flatten-fed
    linear), the map read as it stands, never rotated); `banks` 2 and `reread` on the
    first MC layer after a prefix (`IR.mc_start`: its store is read again every sample,
    the next image filling the other bank).

    `passes` > 1 is row-serial: the layer's row splits are read `row_splits` at a time
    (ceil(splits / passes)), in `passes` cycles per beat, by one set of tiles whose
    memories hold every split's weights; each beat's column sums are accumulated over
    the passes. 1 (the default, as the array reads) reads every row split at once."""
    beats: int
    lanes: tuple[int, ...]
    store: str                      # 'ring' | 'flat'
    banks: int = 1
    reread: bool = False
    passes: int = 1

    @property
    def cycles(self) -> int:
        """Cycles the tiles take per read: beats x passes."""
        return self.beats * self.passes


def row_passes(n_splits: int, row_splits: int | None) -> int:
    """Passes over `n_splits` row splits read `row_splits` at a time (None: all at once)."""
    if row_splits is not None and not (type(row_splits) is int and row_splits >= 1):
        raise ValueError(f"row_splits must be a positive integer or None, not {row_splits!r}")
    return 1 if row_splits is None else -(-n_splits // min(row_splits, n_splits))


def layer_read_plan(layer: _Geometry, lanes: int | None, banks: int = 1,
                    reread: bool = False, row_splits: int | None = None) -> ReadPlan:
    """The read plan of `layer` at `lanes` columns per cycle; None models the array: one
    read delivers every column of a tile (lanes = the widest column split, beats = 1).
    r = ceil(widest / min(lanes, widest)); each split then takes ceil(its columns / r)
    lanes. `banks`, `reread`: the store's (`read_plan` sets them from `IR.mc_start`).
    `row_splits`: the most row splits read at once (None: all, the array), giving
    `row_passes` passes."""
    if lanes is not None and not (type(lanes) is int and lanes >= 1):
        raise ValueError(f"lanes must be a positive integer or None, not {lanes!r}")
    widest = max(b - a for a, b in layer.col_tiles)
    r = 1 if lanes is None else -(-widest // min(lanes, widest))
    flat = layer.reads == 1               # the walker issues one window: it never rotates
    return ReadPlan(beats=r, lanes=tuple(-(-(b - a) // r) for a, b in layer.col_tiles),
                    store="flat" if flat else "ring", banks=banks, reread=reread,
                    passes=row_passes(len(layer.row_tiles), row_splits))


def read_plan(ir: "IR", i: int, lanes: int | None, row_splits: int | None = None) -> ReadPlan:
    """Layer i's read plan in `ir` at `lanes` and `row_splits` (`layer_read_plan`): the
    first MC layer's store (`IR.mc_start`) is re-read every sample, in two banks after a
    prefix."""
    return layer_read_plan(ir.layers[i], lanes, banks=2 if 0 < i == ir.mc_start else 1,
                           reread=i == ir.mc_start, row_splits=row_splits)


@dataclass(frozen=True, kw_only=True)
class Layer(_Geometry):
    """A layer of the integer stage: out_j = 1 iff sign_j * acc_j >= thresh_j; the
    classifier (sign = thresh = None) outputs acc and carries the host's logit affine
    logit_j = logit_scale_j * acc_j + logit_bias_j."""
    weights: tuple[str, ...]              # O hex strings of `rows` bits (see module doc)
    sign: tuple[int, ...] | None = None
    thresh: tuple[int, ...] | None = None
    logit_scale: tuple[float, ...] | None = None
    logit_bias: tuple[float, ...] | None = None
    plan: ReadPlan | None = None          # hwgen.passes.schedule's (None: not scheduled)

    @property
    def is_classifier(self) -> bool:
        return self.sign is None

    def weight_bits(self) -> np.ndarray:
        """[O, rows] uint8, 1 = +1."""
        return unpack_rows(self.weights, self.rows)


@dataclass(frozen=True, kw_only=True)
class Site:
    layer: int             # binary layer whose input this site gates
    kind: str              # 'spatial' | 'element'
    p: float               # drop probability asked for
    n_groups: int          # one keep bit (one MTJ-RNG interface) per group
    group_rows: int        # group g gates rows [g*group_rows, (g+1)*group_rows)
    first_interface: int   # global index of group 0's interface (-1: not numbered yet)
    mtj_code: int = 0      # write-current code chosen from the device curve
    p_realised: float = 0.0

    @property
    def interfaces(self) -> slice:
        """This site's slice of the global interface numbering (SPEC section 6)."""
        return slice(self.first_interface, self.first_interface + self.n_groups)


@dataclass(frozen=True, kw_only=True)
class MtjConfig:
    """The MTJ-RNG protocol (SPEC section 6): pulse timing in clock cycles, and the
    device whose switching curve maps a write-current code to p."""
    clk_ns: float = 10.0
    reset_cycles: int = 2
    write_cycles: int = 2
    device: MtjParams = MtjParams()

    @property
    def write_ns(self) -> float:
        return self.write_cycles * self.clk_ns


@dataclass(frozen=True, kw_only=True)
class Dropout:
    """How the model's dropout was set up: `kind` and `p` as trained (or as added at
    compile time when `trained` is False), and whether inverted-dropout scaling was on."""
    kind: str                       # 'none' | 'spatial' | 'element'
    p: float = 0.0
    scale: bool = False
    trained: bool = True


@dataclass(frozen=True, kw_only=True)
class Meta:
    """Where the IR came from. No timestamps: the same model gives the same bytes."""
    source: str = "model.pt"        # 'model.pt' | 'qonnx' | 'random' (tests)
    model_sha256: str = ""
    dataset: str | None = None      # hwgen.data name whose images fit in_shape, if any
    spec: str | None = None         # the SPEC string, for hwgen's own models
    dropout: Dropout = Dropout(kind="none")
    report: tuple[tuple[str, object], ...] = ()   # frontend facts (sorted key/value pairs)


@dataclass(frozen=True, kw_only=True)
class IR:
    in_shape: tuple[int, int, int]
    input: InputEncoding            # pixel -> the first layer's input (bits or bit planes)
    layers: tuple[FloatLayer, ...] | tuple[Layer, ...]
    sites: tuple[Site, ...]
    mtj: MtjConfig = MtjConfig()
    meta: Meta = Meta()
    version: int = VERSION

    @property
    def stage(self) -> str:
        """'float' or 'integer' (see the module docstring); 'mixed' fails verify."""
        kinds = {type(l) for l in self.layers}
        return {frozenset({FloatLayer}): "float", frozenset({Layer}): "integer"}.get(
            frozenset(kinds), "mixed")

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

    @property
    def input_bits_shape(self) -> tuple[int, ...]:
        """Shape of one image's first-layer input bits (`interp.input_bits`): (C, H, W), or
        (P, C, H, W) bit planes for a multi-bit input (the image port carries them
        position-major: docs/ARCHITECTURE.md s.5)."""
        planes = () if self.input.mode == "binary" else (self.input.planes,)
        return planes + tuple(self.in_shape)

    def acc_bound(self, i: int) -> int:
        """Largest |acc| layer i can reach: rows, times the largest |q| for the first
        layer of a multi-bit input (the range the fold and the thresholds cover)."""
        rows = self.layers[i].rows
        if i > 0 or self.input.mode == "binary":
            return rows
        lo, hi = self.input.q_range
        return rows * max(-lo, hi)

    @property
    def lanes(self) -> int | None:
        """The scheduled lanes, for reports: None when every layer reads a tile in one
        beat (the array), else the most columns any split delivers per beat.
        ValueError on an IR that is not scheduled (hwgen.passes.schedule)."""
        plans = [getattr(l, "plan", None) for l in self.layers]
        if None in plans:
            raise ValueError("the IR has no read plan (run hwgen.passes.schedule)")
        if all(p.beats == 1 for p in plans):
            return None
        return max(max(p.lanes) for p in plans)

    def site_index(self, layer: int) -> int | None:
        for k, s in enumerate(self.sites):
            if s.layer == layer:
                return k
        return None


def report_items(d: dict) -> tuple[tuple[str, object], ...]:
    """A frontend's facts as `Meta.report`: sorted (key, value) pairs whose values are
    what JSON gives back (lists, not tuples), so that an IR equals its round trip."""
    return tuple(sorted(json.loads(json.dumps(d, allow_nan=False)).items()))


def masks_from_ap(ir: IR, ap: np.ndarray, n_images: int, samples: int) -> list[np.ndarray]:
    """Device history -> keep masks (SPEC section 6): per-write AP outcomes
    [n_images*samples, n_if] (write k of every interface is its draw for the k-th
    (image, sample)) -> one [N, T, n_groups] uint8 keep array per site, keep = NOT AP."""
    ap = np.asarray(ap, bool)
    if ap.shape != (n_images * samples, ir.n_interfaces):
        raise ValueError(f"need {n_images * samples} writes of {ir.n_interfaces} interfaces, "
                         f"got an array of shape {ap.shape}")
    keep = (~ap).astype(np.uint8).reshape(n_images, samples, ir.n_interfaces)
    return [keep[:, :, s.interfaces] for s in ir.sites]


# -- JSON ---------------------------------------------------------------------------------

def _tuplify(x):
    if isinstance(x, list):
        return tuple(_tuplify(v) for v in x)
    return x


_DEFAULT_STRIDES = {"stride": (1, 1), "pool_stride": None}


def to_dict(ir: IR) -> dict:
    d = asdict(ir)
    d["format"] = FORMAT
    d["stage"] = ir.stage
    d["meta"]["report"] = dict(ir.meta.report)
    for ld in d["layers"]:
        if "plan" in ld and ld["plan"] is None:
            del ld["plan"]                  # an unscheduled layer (before the pass)
        elif ld.get("plan", {}).get("passes") == 1:
            del ld["plan"]["passes"]        # every split at once: the bytes of before
        # default strides are left out: a stride-1 IR keeps the bytes it had before them
        for k, v in _DEFAULT_STRIDES.items():
            if k in ld and _tuplify(ld[k]) == v:
                del ld[k]
    return d


def dumps(ir: IR) -> str:
    """Deterministic JSON: sorted keys, fixed separators, floats by repr."""
    return json.dumps(to_dict(ir), sort_keys=True, indent=1, allow_nan=False) + "\n"


def _build(cls, d: dict, **nested):
    if not isinstance(d, dict):
        raise ValueError(f"{cls.__name__}: expected an object, not {type(d).__name__}")
    kw = {k: _tuplify(v) for k, v in d.items()}
    kw.update(nested)
    return cls(**kw)


def loads(text: str) -> IR:
    """Parse `dumps` output; ValueError/TypeError/KeyError on a malformed file (run
    hwgen.ir.verify.verify on the result for the invariants)."""
    d = json.loads(text)
    if not isinstance(d, dict) or d.pop("format", None) != FORMAT:
        raise ValueError("not an hwgen IR file (format tag missing or wrong)")
    if d.get("version") != VERSION:
        raise ValueError(f"IR version {d.get('version')!r} is not supported (expected {VERSION}: "
                         f"compile the model again)")
    stage = d.pop("stage")
    if stage == "float":
        layers = tuple(_build(FloatLayer, l, bn=_build(BatchNorm, l["bn"])) for l in d.pop("layers"))
    elif stage == "integer":
        layers = tuple(_build(Layer, l, **({"plan": _build(ReadPlan, l["plan"])}
                                           if l.get("plan") is not None else {}))
                       for l in d.pop("layers"))
    else:
        raise ValueError(f"IR stage {stage!r} is not 'float' or 'integer'")
    sites = tuple(_build(Site, s) for s in d.pop("sites"))
    m = d.pop("mtj")
    mtj = _build(MtjConfig, m, device=_build(MtjParams, m["device"]))
    md = d.pop("meta")
    meta = _build(Meta, md, dropout=_build(Dropout, md["dropout"]),
                  report=tuple(sorted(md.get("report", {}).items())))
    return IR(layers=layers, sites=sites, mtj=mtj, meta=meta, input=_build(InputEncoding, d.pop("input")),
              in_shape=tuple(d.pop("in_shape")), **d)
