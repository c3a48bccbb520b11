"""The `hwgen_top` port contract (docs/ARCHITECTURE.md section 5), read from ports.json.

Widths and parameters are never hard-coded in the bench: everything comes from the
ports JSON that the export writes next to the Verilog. This module also holds the pure
bit-packing helpers the bench uses, so they can be unit-tested without a simulator.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwgen.hw.loader import image_words

__all__ = ["TopPorts", "load_ports", "image_words", "unpack_beat", "bits_of", "int_of"]

# ports.json parameter names, as hwgen.export writes them (and nothing else is accepted).
_PARAMS = ("IN_W", "ACC_W", "CODE_W", "N_IF", "classes", "words_per_image",
           "reset_cycles", "write_cycles", "clk_ns")


@dataclass(frozen=True)
class TopPorts:
    """Widths and protocol parameters of one exported `hwgen_top`."""
    ports: dict            # name -> (direction 'in' | 'out', width)
    in_w: int
    acc_w: int
    code_w: int
    n_if: int
    classes: int
    words_per_image: int
    reset_cycles: int
    write_cycles: int
    clk_ns: float
    sample_w: int = 16     # out payload bits [0, 16) hold the sample index

    def width(self, name: str) -> int:
        return self.ports[name][1]


def load_ports(path) -> TopPorts:
    """Parse ports.json; raise ValueError naming the first missing or inconsistent item."""
    path = Path(path)
    d = json.loads(path.read_text())
    items = d.get("ports") if isinstance(d, dict) else None
    if not isinstance(items, list):
        raise ValueError(f"{path}: no 'ports' list")
    ports = {}
    for p in items:
        if not (isinstance(p, dict) and p.get("dir") in ("in", "out")):
            raise ValueError(f"{path}: port {p!r} has no direction 'in' or 'out'")
        ports[p["name"]] = (p["dir"], int(p["width"]))
    params = d.get("params")
    if not isinstance(params, dict):
        raise ValueError(f"{path}: no 'params' table")
    missing = [k for k in _PARAMS if k not in params]
    if missing:
        raise ValueError(f"{path}: parameter {missing[0]} missing")
    vals = {k: params[k] for k in _PARAMS}
    tp = TopPorts(ports=ports, in_w=int(vals["IN_W"]), acc_w=int(vals["ACC_W"]),
                  code_w=int(vals["CODE_W"]), n_if=int(vals["N_IF"]),
                  classes=int(vals["classes"]), words_per_image=int(vals["words_per_image"]),
                  reset_cycles=int(vals["reset_cycles"]), write_cycles=int(vals["write_cycles"]),
                  clk_ns=float(vals["clk_ns"]))
    _check(tp, path)
    return tp


def _check(tp: TopPorts, path) -> None:
    need = {"clk": ("in", 1), "rst": ("in", 1), "img__valid": ("in", 1),
            "img__ready": ("out", 1), "img__payload": ("in", tp.in_w), "n_samples": ("in", 16),
            "start": ("in", 1), "idle": ("out", 1), "done": ("out", 1),
            "out__valid": ("out", 1), "out__ready": ("in", 1),
            "out__payload": ("out", tp.sample_w + tp.classes * tp.acc_w)}
    if tp.n_if:
        need.update({"mtj_reset": ("out", tp.n_if), "mtj_write": ("out", tp.n_if),
                     "mtj_sense": ("in", tp.n_if), "mtj_code": ("out", tp.n_if * tp.code_w)})
    for name, want in need.items():
        got = tp.ports.get(name)
        if got is None:
            raise ValueError(f"{path}: port {name!r} missing")
        if got != want:
            raise ValueError(f"{path}: port {name!r} is {got}, expected {want}")


def unpack_beat(value: int, classes: int, acc_w: int, sample_w: int = 16) -> tuple[int, list[int]]:
    """An `out` payload -> (sample index, signed class integers)."""
    sample = value & ((1 << sample_w) - 1)
    mask, half = (1 << acc_w) - 1, 1 << (acc_w - 1)
    accs = []
    for j in range(classes):
        a = (value >> (sample_w + j * acc_w)) & mask
        accs.append(a - (1 << acc_w) if a & half else a)
    return sample, accs


def bits_of(binstr: str) -> np.ndarray:
    """A simulator binary string (MSB first) -> uint8 bits, index 0 = LSB."""
    return (np.frombuffer(binstr.encode(), np.uint8)[::-1] - ord("0")).astype(np.uint8)


def int_of(bits: np.ndarray) -> int:
    """uint8 bits (index 0 = LSB) -> a Python int."""
    return int.from_bytes(np.packbits(np.asarray(bits, np.uint8), bitorder="little").tobytes(), "little")
