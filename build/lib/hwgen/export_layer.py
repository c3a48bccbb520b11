"""Export one layer of an IR alone (hwgen.hw.layer_top.LayerTop), for the layer-level
bench (sim/bench_layer.py).

`export_layer(ir, i, outdir, lanes=8)` writes into OUTDIR, atomically and deterministically:
  layer{i}.v           module `layer{i}` (same Verilog flow as hwgen_top.v)
  layer{i}.ports.json  its ports (name, direction, width) and parameters
  layer{i}.vlt         the Verilator waivers of hwgen_top.vlt, scoped to this file
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .atomic import write_text
from .errors import HwgenError
from .export import WAIVER_TEXT, _direction, to_verilog
from .hw.layer_top import LayerTop
from .ir.core import IR

__all__ = ["export_layer", "layer_ports_json", "layer_files"]


def layer_files(i: int) -> tuple[str, str, str]:
    """(Verilog, ports JSON, waiver) file names of layer i."""
    return f"layer{i}.v", f"layer{i}.ports.json", f"layer{i}.vlt"


def layer_ports_json(top: LayerTop) -> dict:
    """Ports from the component signature, plus the parameters the bench needs."""
    from amaranth.hdl import Shape
    ports = [{"name": "clk", "dir": "in", "width": 1}, {"name": "rst", "dir": "in", "width": 1}]
    for path, member in top.signature.members.flatten():
        if member.is_port:
            ports.append({"name": "__".join(str(p) for p in path),
                          "dir": _direction(member.flow),
                          "width": Shape.cast(member.shape).width})
    return {"format": "hwgen-layer-ports", "version": 1, "module": f"layer{top.i}",
            "clock": "clk", "reset": "rst", "reset_kind": "sync", "ports": ports,
            "params": top.params}


def export_layer(ir: IR, i: int, outdir, lanes: int = 8) -> dict:
    """Write layer i's Verilog, ports JSON and waivers into `outdir`; returns
    {file name: sha256}."""
    if not isinstance(ir, IR):
        raise HwgenError(f"export needs an hwgen IR, not {type(ir).__name__}")
    if not (isinstance(i, int) and 0 <= i < len(ir.layers)):
        raise HwgenError(f"layer {i!r} out of range: the IR has {len(ir.layers)} layers")
    layer = ir.layers[i]
    if not layer.weights:
        raise HwgenError("export needs a lowered IR (packed weights); run the compiler passes")
    if (layer.sign is None) != (i == len(ir.layers) - 1):
        raise HwgenError(f"layer {i}: export needs thresholds on every layer but the classifier")
    try:
        top = LayerTop(ir, i, lanes)
        text = to_verilog(top, name=f"layer{i}")
    except ValueError as e:
        raise HwgenError(f"cannot generate layer {i}: {e}") from None
    v, pj, vlt = layer_files(i)
    files = {v: text, pj: json.dumps(layer_ports_json(top), sort_keys=True, indent=1) + "\n",
             vlt: WAIVER_TEXT.replace("hwgen_top", f"layer{i}")}
    for name, body in files.items():
        write_text(Path(outdir) / name, body)
    return {name: hashlib.sha256(body.encode()).hexdigest() for name, body in files.items()}
