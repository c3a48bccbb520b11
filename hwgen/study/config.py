"""The study's one configuration dataclass (STYLE practice 3, after FINN's
`build_dataflow_config.py`): every field that can change a result is here, documented
where it is declared, with a `tiny()` preset for CI and a `paper()` preset for the full run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from ..config import DEFAULT
from ..errors import HwgenError
from ..model.net import input_arch

__all__ = ["report_t", "StudyConfig", "KINDS", "VARIANTS", "PRESETS", "tiny", "paper", "load_config"]

#: Model kinds a study can train, and the `hwgen train --dropout` each one means.
KINDS = {"deterministic": "none", "element": "element", "spatial": "spatial"}
#: The sites axis: "every" = a site before every binary layer but the first (the SPEC
#: `arch`), "last" = sites only where `sites_arch` marks them.
VARIANTS = ("every", "last")
SIMULATORS = ("icarus", "verilator")
OOD_SETS = ("auto", "uniform")


@dataclass(frozen=True)
class StudyConfig:
    """Everything that determines a study. Each step of `hwgen.study.flow.STEPS` reads a
    declared subset of these fields; its cached result is keyed by their values."""

    # -- models -------------------------------------------------------------------------

    #: Dataset to train and evaluate on: "digits" (bundled 8x8 images, 450 test images)
    #: or "fashion-mnist" (28x28, from the Debian package dataset-fashion-mnist).
    dataset: str = "fashion-mnist"

    #: Architecture SPEC (SPEC section 13) shared by every model of the study, e.g.
    #: "c16,p2,c32,p2,f10"; None means the dataset's default (hwgen.model.train.DEFAULTS).
    arch: str | None = None

    #: The second design axis: the same network with dropout sites on the last layers
    #: only, as a SPEC in which a `d` token marks each layer that gets a site (placed just
    #: before that layer's token, e.g. "c16,p2,c32,p2,d,f10"; hwgen.model.spec, SPEC
    #: section 5). A string that `parse_spec` refuses skips the variant with a log line,
    #: listed under "skipped" in results.json. None means no variant.
    sites_arch: str | None = None

    #: First-layer input mode (SPEC section 3): "binary" or "bitserial-n" (n-bit pixels, one
    #: crossbar pass per bit plane).
    input_mode: str = "binary"

    #: Input binarisation threshold (pixel >= theta); None = the dataset's default.
    theta: float | None = None

    #: Training epochs of every model (the same budget for every kind); None = the
    #: dataset's default.
    epochs: int | None = None

    #: Training seeds: every kind and variant is trained once per seed; tables give the
    #: mean and the sample standard deviation over them.
    seeds: tuple[int, ...] = (0, 1, 2)

    #: Dropout probability of every site (training and MC inference).
    p: float = 0.2

    #: Model kinds to train: any of "deterministic" (no dropout), "element" (per-neuron
    #: MC-Dropout, one keep bit per crossbar row) and "spatial" (MC-SpatialDropout).
    kinds: tuple[str, ...] = ("deterministic", "element", "spatial")

    # -- evaluation (golden interpreter) -------------------------------------------------

    #: MC samples T at which every MC model is evaluated. The deterministic model is
    #: evaluated once (its T samples are equal).
    samples: tuple[int, ...] = (1, 4, 8, 16, 32)

    #: The T of the single-T tables and figures (headline table, histograms, reliability
    #: diagrams, rejection curves) and of the cost model; must be one of `samples`.
    report_samples: int = 16

    #: Seed of the evaluation masks, as `hwgen eval --seed`: the test set's keep bits come
    #: from this seed, the OOD set's from seed + 1 (and the OOD noise from this seed), so
    #: each figure equals `hwgen eval MODEL --samples T --seed S`.
    eval_seed: int = 0

    #: Evaluate on the first N test and OOD images only; None = all of them.
    test_limit: int | None = None

    #: OOD set: "auto" = hwgen.data.load_ood (for Fashion-MNIST the digits upscaled, for
    #: the digits Fashion-MNIST downscaled, both plus noise; nothing is downloaded), or
    #: "uniform" = seeded uniform noise images, as many as the test images.
    ood: str = "auto"

    # -- hardware ------------------------------------------------------------------------

    #: Crossbar tile RxC every layer is split onto (`hwgen compile --tile`).
    tile: str = DEFAULT.tile_text

    #: Columns per cycle of a tile read (`hwgen compile --lanes`); None: the array (one
    #: beat per read, compile's default).
    lanes: int | None = DEFAULT.lanes

    #: Held-out images of the compiler's float-vs-integer check (`--check-images`).
    check_images: int = 64

    #: RTL verification: the first N test images of each verified design, each with
    #: `rtl_samples` MC samples, through `hwgen.sim.regression.run_regression`. The
    #: verified designs are the MC models of the first seed. 0 = no RTL verification.
    rtl_images: int = 20

    #: MC samples per image in the RTL regression.
    rtl_samples: int = 16

    #: Device seed of the RTL regression's MTJ models (`hwgen sim --seed`).
    rtl_seed: int = 0

    #: Sites variants whose designs are simulated (the others are compiled for the cost
    #: model and the summary, without Verilog).
    rtl_variants: tuple[str, ...] = VARIANTS

    #: Simulator of the RTL regression: "icarus" or "verilator".
    simulator: str = "verilator"

    # -- output --------------------------------------------------------------------------

    #: Output directory: REPORT.md, results.json, figures/, and the cached steps
    #: (cache/), models (models/), golden scores (eval/) and compiled designs (rtl/).
    #: `hwgen study -o DIR` overrides it. Not part of any cache key or fingerprint.
    output_dir: str = "study"

    # -----------------------------------------------------------------------------------

    def validate(self) -> "StudyConfig":
        """Check every field; HwgenError naming the first bad one. Returns self."""
        from ..model.spec import SpecError, parse_spec
        from ..model.train import DEFAULTS
        from ..passes import parse_tile

        def bad(name, why):
            raise HwgenError(f"study config: {name} {why}, not {getattr(self, name)!r}")

        if self.dataset not in DEFAULTS:
            bad("dataset", f"must be one of {', '.join(DEFAULTS)}")
        if self.arch is not None:
            if not isinstance(self.arch, str):
                bad("arch", "must be a SPEC string or null")
            try:
                parse_spec(self.arch)
            except SpecError as e:
                raise HwgenError(f"study config: arch: {e}") from None
        if self.sites_arch is not None and not (isinstance(self.sites_arch, str)
                                                and self.sites_arch.strip()):
            bad("sites_arch", "must be a SPEC string or null")
        try:
            input_arch(self.input_mode)
        except (ValueError, AttributeError, TypeError):
            bad("input_mode", "must be 'binary' or 'bitserial-n' (n in 2..16)")
        if self.theta is not None and not (_num(self.theta) and 0 < self.theta <= 1):
            bad("theta", "must be in (0, 1] or null")
        if self.epochs is not None and not _pos(self.epochs):
            bad("epochs", "must be a positive integer or null")
        if not (_ints(self.seeds, 0) and self.seeds and len(set(self.seeds)) == len(self.seeds)):
            bad("seeds", "must be a non-empty list of distinct non-negative integers")
        if not (_num(self.p) and 0 < self.p < 1):
            bad("p", "must be in (0, 1)")
        if not (isinstance(self.kinds, tuple) and self.kinds and set(self.kinds) <= set(KINDS)
                and len(set(self.kinds)) == len(self.kinds)):
            bad("kinds", f"must be distinct names from {', '.join(KINDS)}")
        if not (_ints(self.samples, 1) and self.samples and len(set(self.samples)) == len(self.samples)):
            bad("samples", "must be a non-empty list of distinct positive integers")
        if self.report_samples not in self.samples:
            bad("report_samples", f"must be one of samples {list(self.samples)}")
        if not _ints((self.eval_seed, self.rtl_seed), 0):
            bad("eval_seed" if not _ints((self.eval_seed,), 0) else "rtl_seed",
                "must be a non-negative integer")
        if self.test_limit is not None and not _pos(self.test_limit):
            bad("test_limit", "must be a positive integer or null")
        if self.ood not in OOD_SETS:
            bad("ood", f"must be one of {', '.join(OOD_SETS)}")
        try:
            parse_tile(self.tile)
        except HwgenError:
            bad("tile", "must be RxC with integers R, C >= 1")
        if self.lanes is not None and not _pos(self.lanes):
            bad("lanes", "must be a positive integer or None (the array)")
        if not _ints((self.check_images, self.rtl_images), 0):
            bad("check_images" if not _ints((self.check_images,), 0) else "rtl_images",
                "must be a non-negative integer")
        if not _pos(self.rtl_samples) or self.rtl_samples >= 1 << 16:
            bad("rtl_samples", "must be an integer in [1, 65535]")
        if not (isinstance(self.rtl_variants, tuple) and set(self.rtl_variants) <= set(VARIANTS)):
            bad("rtl_variants", f"must be names from {', '.join(VARIANTS)}")
        if self.simulator not in SIMULATORS:
            bad("simulator", f"must be one of {', '.join(SIMULATORS)}")
        if not (isinstance(self.output_dir, str) and self.output_dir):
            bad("output_dir", "must be a non-empty path")
        return self

    def as_dict(self) -> dict:
        """The fields as JSON-ready data (tuples as lists)."""
        return json.loads(json.dumps(asdict(self)))

    def fingerprint(self) -> str:
        """12 hex digits of the sha256 of every field but `output_dir`: the name tables and
        figures give the config that made them."""
        d = self.as_dict()
        d.pop("output_dir")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _pos(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _ints(vs, lo: int) -> bool:
    return isinstance(vs, tuple) and all(isinstance(v, int) and not isinstance(v, bool)
                                         and v >= lo for v in vs)


def tiny() -> StudyConfig:
    """CI's study: digits, one seed, two epochs, two RTL images on Icarus (about a minute)."""
    return StudyConfig(dataset="digits", arch="c8,p2,c16,p2,f10",
                       sites_arch="c8,p2,c16,p2,d,f10", epochs=2, seeds=(0,),
                       rtl_images=2, rtl_variants=("every",), simulator="icarus",
                       output_dir="study-tiny")


def paper() -> StudyConfig:
    """The full study: Fashion-MNIST, the default architecture and budget (10 epochs) with
    the bit-serial 8-bit first layer, three seeds, the T sweep, 200 RTL images x 16 samples
    per verified design on Verilator (about 2.5 CPU-hours, most of it training)."""
    return StudyConfig(dataset="fashion-mnist", arch="c16,p2,c32,p2,f10",
                       sites_arch="c16,p2,c32,p2,d,f10", input_mode="bitserial-8",
                       seeds=(0, 1, 2), rtl_images=200)


PRESETS = {"tiny": tiny, "paper": paper}
_TUPLES = {f.name for f in fields(StudyConfig) if str(f.type).startswith("tuple")}


def load_config(spec: str | None) -> StudyConfig:
    """A preset name ("paper", "tiny"; None = paper) or a JSON file of fields (missing
    fields take the StudyConfig defaults); validated, HwgenError on any problem."""
    if spec is None or spec in PRESETS:
        return PRESETS[spec or "paper"]().validate()
    path = Path(spec)
    if not path.is_file():
        raise HwgenError(f"--config {spec!r}: no such file, and not a preset "
                         f"({', '.join(PRESETS)})")
    try:
        d = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HwgenError(f"{path}: not a readable JSON file ({e})") from None
    if not isinstance(d, dict):
        raise HwgenError(f"{path}: must hold a JSON object of StudyConfig fields")
    known = {f.name for f in fields(StudyConfig)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise HwgenError(f"{path}: unknown study config field {unknown[0]!r}")
    kw = {k: (tuple(v) if k in _TUPLES and isinstance(v, list) else v) for k, v in d.items()}
    return replace(StudyConfig(), **kw).validate()


def report_t(cfg: StudyConfig, kind: str) -> int:
    """The T of a kind's single-T figures: 1 for the deterministic model (its samples are
    equal), else `cfg.report_samples`. Here, so that the steps and the report that both
    use it depend on the configuration, not on each other."""
    return 1 if kind == "deterministic" else cfg.report_samples

