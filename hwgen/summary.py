"""`hwgen summary OUTDIR|ir.json|model.pt [--json F] [--tile RxC]`: a per-layer model
summary in the manner of Larq's `summary()`, read from the integer-stage IR (what the
hardware is built from).

Per layer and in total:
- parameters by bit width: the binary weights (1 bit each); the folded batch norm of a
  hidden layer, one threshold per column stored as the tile controller's threshold ROM
  holds it (a value of `acc_width(B + 1)` bits, clamped to [-B-1, B+1] with B =
  `IR.acc_bound` (the rows; rows * max|q| for a multi-bit first layer), plus a 1-bit
  direction flag for the sign s_j); the classifier's host-side logit affine (two
  float64 per class, as the IR holds them);
- memory in bits (the sum of count x width);
- binary MACs per pass: windows x rows x columns XNOR-popcount terms (one pass = one image
  for the deterministic prefix, one MC sample for the layers from `mc_start`);
- crossbar tiles (row splits x column splits), the rows and columns the layer uses, the
  rows and columns its tiles offer, and the utilisation used / offered cells;
- the dropout site on the layer's input, if any: kind and MTJ-RNG interfaces (groups).

An OUTDIR or an ir.json is read as is (a float-stage IR is lowered by the passes first); a
model.pt goes through the frontend and the passes, with `--tile`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .errors import HwgenError
from .ir.core import IR

__all__ = ["FORMAT", "VERSION", "summarize", "render", "load_ir"]

log = logging.getLogger(__name__)

FORMAT = "hwgen-summary"
VERSION = 1
FLOAT_BITS = 64      # the IR's logit affine is float64, applied on the host


def acc_width(rows: int) -> int:
    """The signed width the hardware gives a column sum of `rows` rows ([-rows, rows]; the
    same rule as hwgen.hw.tile.acc_width, kept here so that a summary needs no amaranth)."""
    return rows.bit_length() + 1


def _layer(ir: IR, i: int) -> dict:
    l = ir.layers[i]
    o, rows = l.out_channels, l.rows
    r, c = l.tile
    n_tiles = len(l.row_tiles) * len(l.col_tiles)
    weights = o * rows
    if l.is_classifier:
        params = {"weights_1bit": weights, "thresholds": 0, "threshold_bits": None,
                  "float": 2 * o, "float_bits": FLOAT_BITS}
        memory = weights + 2 * o * FLOAT_BITS
    else:
        # clamped threshold value + direction flag; the clamp is IR.acc_bound (rows, or
        # rows * max|q| for a multi-bit first layer, as hwgen.hw.sinks.ThresholdPool)
        tw = acc_width(ir.acc_bound(i) + 1) + 1
        params = {"weights_1bit": weights, "thresholds": o, "threshold_bits": tw,
                  "float": 0, "float_bits": FLOAT_BITS}
        memory = weights + o * tw
    site = ir.site_of(i)
    return {
        "index": i, "op": l.op, "in_shape": list(l.in_shape), "out_shape": list(l.out_shape),
        "kernel": list(l.kernel), "pool": l.pool, "rows": rows, "columns": o,
        "windows": l.windows, "per_sample": i >= ir.mc_start,
        **params, "params": weights + params["thresholds"] + params["float"],
        "memory_bits": memory, "binary_macs": l.windows * rows * o,
        "tile": [r, c], "tiles": n_tiles, "row_tiles": len(l.row_tiles),
        "col_tiles": len(l.col_tiles), "tile_rows": len(l.row_tiles) * r,
        "tile_columns": len(l.col_tiles) * c,
        "utilisation": rows * o / (n_tiles * r * c),
        "site": None if site is None else {"kind": site.kind, "interfaces": site.n_groups,
                                           "group_rows": site.group_rows, "p": site.p},
    }


def summarize(ir: IR) -> dict:
    """The summary of an integer-stage IR as a JSON-ready dict (see the module docstring)."""
    if ir.stage != "integer":
        raise HwgenError(f"the summary reads an integer-stage IR, not a {ir.stage}-stage one")
    layers = [_layer(ir, i) for i in range(len(ir.layers))]
    tot = {k: sum(l[k] for l in layers) for k in
           ("weights_1bit", "thresholds", "float", "params", "memory_bits", "binary_macs",
            "tiles")}
    cells = sum(l["rows"] * l["columns"] for l in layers)
    offered = sum(l["tiles"] * l["tile"][0] * l["tile"][1] for l in layers)
    tot.update(
        utilisation=cells / offered, cells_used=cells, cells_offered=offered,
        binary_macs_prefix=sum(l["binary_macs"] for l in layers if not l["per_sample"]),
        binary_macs_per_sample=sum(l["binary_macs"] for l in layers if l["per_sample"]),
        interfaces=ir.n_interfaces)
    return {"format": FORMAT, "version": VERSION, "spec": ir.meta.spec,
            "in_shape": list(ir.in_shape), "input_mode": ir.input.name,
            "dropout": ir.meta.dropout.kind, "mc_start": ir.mc_start, "layers": layers,
            "totals": tot}


def _n(v) -> str:
    return "-" if v is None else f"{v:,}"


def render(s: dict) -> str:
    """The summary as a text table (one line per layer, then the totals)."""
    head = ["layer", "op", "in", "out", "k", "1-bit", "thr (bits)", "float",
            "memory bits", "bMACs/pass", "tiles", "rows x cols", "in tiles", "util", "site"]
    rows = []
    for l in s["layers"]:
        thr = "-" if not l["thresholds"] else f"{l['thresholds']:,} ({l['threshold_bits']})"
        flt = "-" if not l["float"] else f"{l['float']:,} ({l['float_bits']})"
        site = "-" if l["site"] is None else f"{l['site']['kind']} {l['site']['interfaces']:,}"
        rows.append([f"{l['index']}{'*' if l['per_sample'] else ''}", l["op"],
                     "x".join(map(str, l["in_shape"])), "x".join(map(str, l["out_shape"])),
                     "x".join(map(str, l["kernel"])), _n(l["weights_1bit"]), thr, flt,
                     _n(l["memory_bits"]), _n(l["binary_macs"]),
                     f"{l['row_tiles']}x{l['col_tiles']}", f"{l['rows']:,} x {l['columns']:,}",
                     f"{l['tile_rows']:,} x {l['tile_columns']:,}", f"{l['utilisation']:.1%}", site])
    t = s["totals"]
    rows.append(["total", "", "", "", "", _n(t["weights_1bit"]), _n(t["thresholds"]),
                 _n(t["float"]), _n(t["memory_bits"]), _n(t["binary_macs"]), _n(t["tiles"]),
                 f"{t['cells_used']:,} cells", f"{t['cells_offered']:,} cells",
                 f"{t['utilisation']:.1%}", f"{t['interfaces']:,} if"])
    width = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(head)]
    line = lambda r: "  ".join(c.rjust(w) if j >= 5 else c.ljust(w)  # noqa: E731
                               for j, (c, w) in enumerate(zip(r, width))).rstrip()
    out = [f"hwgen summary: {s['spec'] or '(no spec)'}, input {'x'.join(map(str, s['in_shape']))} "
           f"{s['input_mode']}, dropout {s['dropout']}", line(head), "-" * len(line(head))]
    out += [line(r) for r in rows]
    out += [f"(* = run per MC sample, from layer {s['mc_start']}; bMACs: binary multiply-"
            f"accumulates (XNOR-popcount terms) per pass: {t['binary_macs_prefix']:,} once per "
            f"image + {t['binary_macs_per_sample']:,} per MC sample)",
            f"parameters {t['params']:,}: {t['weights_1bit']:,} binary weights, "
            f"{t['thresholds']:,} integer thresholds (batch norm + sign folded), {t['float']:,} "
            f"float (classifier logit affine); memory {t['memory_bits']:,} bits "
            f"({t['memory_bits'] / 8 / 1024:.2f} KiB)"]
    return "\n".join(out) + "\n"


def load_ir(path, tile: str = "128x128") -> IR:
    """The integer-stage IR of an OUTDIR, an ir.json or a model.pt (HwgenError otherwise)."""
    from .design import read_ir
    from .passes import PassConfig, parse_tile, run_pipeline

    path = Path(path)
    if path.is_dir() or path.suffix == ".json":
        ir, _ = read_ir(path)       # an OUTDIR (or its ir.json) is checked against its manifest
        if ir.stage == "integer":
            return ir
        return run_pipeline(ir, PassConfig(tile=parse_tile(tile)))
    if not path.exists():
        raise HwgenError(f"{path}: no such file or directory")
    from .frontend import build_ir, load_model
    ckpt, sha = load_model(path)
    return run_pipeline(build_ir(ckpt, sha), PassConfig(tile=parse_tile(tile)))
