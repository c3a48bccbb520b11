"""The compile configuration: every option that changes what `hwgen compile` writes.

One frozen dataclass, in the style of `hwgen.study.config.StudyConfig`: each field is
documented where it is declared, validated once (`CompileConfig.__post_init__`, one
HwgenError line naming the option), and is the single source of the defaults that the
command line, the Python API (`hwgen.compile`), the benches, the study and the flows use.
The manifest's `options` are `CompileConfig.manifest_options()`.

Pure Python: no numpy, torch or amaranth.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace

from .errors import HwgenError

__all__ = ["CompileConfig", "DEFAULT", "DROPOUT_KINDS", "parse_tile", "parse_sites"]

#: Dropout kinds that can be added to a QONNX model that was trained without sites.
DROPOUT_KINDS = ("spatial", "element")

_TILE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_tile(text) -> tuple[int, int]:
    """'RxC' (or a pair of ints) -> (R, C); HwgenError naming the value unless both are
    integers >= 1."""
    if isinstance(text, (tuple, list)) and len(text) == 2 and all(type(v) is int for v in text):
        r, c = text
    else:
        m = _TILE.match(str(text))
        if m is None:
            raise HwgenError(f"--tile must be RxC with integers R, C >= 1, not {text!r}")
        r, c = int(m[1]), int(m[2])
    if r < 1 or c < 1:
        raise HwgenError(f"--tile must be RxC with integers R, C >= 1, not {text!r}")
    return r, c


def parse_sites(sites) -> tuple[int, ...] | None:
    """None, a sequence of layer indices or a comma list '1,2' -> a tuple of ints."""
    if sites is None:
        return None
    if isinstance(sites, str):
        try:
            return tuple(int(v) for v in sites.split(","))
        except ValueError:
            raise HwgenError(f"--sites must be a comma list of layer indices, not "
                             f"{sites!r}") from None
    if not all(type(v) is int for v in sites):
        raise HwgenError(f"--sites must be layer indices (integers), not {sites!r}")
    return tuple(sites)


@dataclass(frozen=True)
class CompileConfig:
    """Everything that determines a compiled folder besides the model itself."""

    #: Crossbar tile size R x C (word lines x bit lines). A layer's weight matrix is cut
    #: into ceil(rows / R) row splits and ceil(columns / C) column splits.
    tile: tuple[int, int] = (128, 128)

    #: Columns per cycle in a tile read: the emulation knob. None (the default, "array" in
    #: the manifest) models the array: one read per window delivers every column of a
    #: tile in one beat, as the MRAM macro does. An integer reads a tile's C columns in
    #: ceil(C / lanes) beats (lanes >= C: one beat). Recorded in the IR's read plans
    #: (hwgen.passes.schedule).
    lanes: int | None = None

    #: Row splits of a layer read at once: the second emulation knob. None (the default)
    #: reads every row split of a layer at once, as the arrays do; K reads K at a time,
    #: so each beat of a layer of n splits takes ceil(n / K) cycles through K tiles'
    #: popcounts (a small FPGA's build). Recorded in the read plans (`ReadPlan.passes`).
    row_splits: int | None = None

    #: Held-out images of the compile check (the float model, or for a QONNX model the
    #: graph's own runtime, against the integer golden model); 0 skips the check.
    check_images: int = 64

    #: MC samples per check image.
    check_samples: int = 4

    #: Write the Verilog and ports.json (False: IR and manifest only).
    verilog: bool = True

    #: QONNX models only: add MC dropout sites of this kind ("spatial" or "element") to a
    #: graph trained without them; None adds none. A model.pt carries its own sites.
    dropout: str | None = None

    #: Drop probability of the added sites, in (0, 1). The MTJ's write-current code
    #: realises the nearest probability its switching curve allows (`Site.p_realised`);
    #: masks everywhere are drawn at that realised p (hwgen.ir.masks).
    p: float = 0.2

    #: Layer indices that get an added site; None = every binary layer but the first.
    sites: tuple[int, ...] | None = None

    def __post_init__(self):
        object.__setattr__(self, "tile", parse_tile(self.tile))
        object.__setattr__(self, "sites", parse_sites(self.sites))
        if self.lanes == "array":
            object.__setattr__(self, "lanes", None)
        if not (self.lanes is None or (type(self.lanes) is int and self.lanes >= 1)):
            raise HwgenError(f"--lanes must be an integer >= 1 (or None: the array), not "
                             f"{self.lanes!r}")
        if not (self.row_splits is None
                or (type(self.row_splits) is int and self.row_splits >= 1)):
            raise HwgenError(f"--row-splits must be an integer >= 1 (or None: every split "
                             f"at once), not {self.row_splits!r}")
        for name in ("check_images", "check_samples"):
            v = getattr(self, name)
            if not (type(v) is int and v >= 0):
                raise HwgenError(f"--{name.replace('_', '-')} must be an integer >= 0, "
                                 f"not {v!r}")
        if self.check_samples < 1:
            raise HwgenError(f"check_samples must be at least 1, not {self.check_samples!r}")
        if not isinstance(self.verilog, bool):
            raise HwgenError(f"verilog must be True or False, not {self.verilog!r}")
        if self.dropout is not None and self.dropout not in DROPOUT_KINDS:
            raise HwgenError(f"--dropout must be one of {', '.join(DROPOUT_KINDS)}, not "
                             f"{self.dropout!r}")
        if (isinstance(self.p, bool) or not isinstance(self.p, (int, float))
                or not 0.0 < float(self.p) < 1.0):
            raise HwgenError(f"--p must be a probability in (0, 1), not {self.p!r}")
        object.__setattr__(self, "p", float(self.p))
        if self.sites is not None and self.dropout is None:
            raise HwgenError("--sites needs --dropout {spatial,element} (it places the sites "
                             "that --dropout adds)")

    @property
    def lanes_text(self) -> str:
        return "array" if self.lanes is None else str(self.lanes)

    @property
    def tile_text(self) -> str:
        return f"{self.tile[0]}x{self.tile[1]}"

    def replace(self, **changes) -> "CompileConfig":
        """A copy with `changes` (validated again)."""
        return replace(self, **changes)

    def manifest_options(self, sites_added=None) -> dict:
        """The `options` of manifest.json. `sites_added`: the layers that got an added
        site (QONNX with `dropout`), recorded instead of the request."""
        out = {"tile": list(self.tile), "lanes": "array" if self.lanes is None else self.lanes,
               "check_images": self.check_images,
               "check_samples": self.check_samples, "verilog": self.verilog}
        if self.row_splits is not None:
            out["row_splits"] = self.row_splits
        if self.dropout is not None:
            out["dropout"] = {"kind": self.dropout, "p": self.p,
                              "sites": list(sites_added if sites_added is not None
                                            else self.sites or ())}
        return out

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


#: The defaults, for the command line's help and the benches.
DEFAULT = CompileConfig()
