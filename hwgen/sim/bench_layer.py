"""cocotb bench of one exported layer (`layer{i}`, hwgen.hw.layer_top.LayerTop) against
the golden layer (hwgen.ir.interp.run_layer).

Per case: the input bits go into the controller's store (one C-bit word per position,
shifted in in raster order), the keep bits are set, `start` is pulsed, and after `done` the output bits
(`result`, flattened (c, y, x)) or the classifier's class sums (`out`) are compared with
the golden layer, every bit / integer with ==. The run is described by the JSON file named
in $HWGEN_SIM_CONFIG (see sim/runner.run_layer); the result goes back as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, with_timeout
from cocotb.utils import get_sim_time

from hwgen.ir.core import loads
from hwgen.ir.interp import run_layer

from .protocol import Mismatch, run_reporting
from .ports import int_of

CLK_NS = 10


def _signed(v: int, w: int) -> int:
    return v - (1 << w) if v >> (w - 1) & 1 else v


def unpack_result(v: int, out_shape) -> np.ndarray:
    """`result` int -> [O, H'', W''] bits (bit c*H''*W'' + y*W'' + x)."""
    n = int(np.prod(out_shape))
    b = np.frombuffer(v.to_bytes((n + 7) // 8, "little"), np.uint8)
    return np.unpackbits(b, count=n, bitorder="little").reshape(out_shape)


def unpack_classes(v: int, classes: int, acc_w: int) -> list[int]:
    """`out__payload` int -> class sums (bits [16 + j*ACC_W, ...), signed)."""
    mask = (1 << acc_w) - 1
    return [_signed((v >> (16 + j * acc_w)) & mask, acc_w) for j in range(classes)]


async def _wait_high(dut, sig):
    """Return in the ReadOnly phase of the first step where `sig` has settled high."""
    while True:
        await ReadOnly()
        if sig.value == 1:
            return
        await RisingEdge(dut.clk)


@cocotb.test()
async def layer(dut):
    """Random inputs and keep masks through one layer; every output against golden."""
    await run_reporting(_layer, dut)


async def _layer(dut, cfg):
    ir = loads(Path(cfg["ir"]).read_text())     # the checker's IR (may hold a planted fault)
    i = int(cfg["layer"])
    prm = json.loads(Path(cfg["ports"]).read_text())["params"]
    if prm["layer"] != i or list(prm["in_shape"]) != list(ir.layers[i].in_shape):
        raise AssertionError(f"ports JSON is of layer {prm['layer']} {prm['in_shape']}, "
                             f"not layer {i} {list(ir.layers[i].in_shape)}")
    data = np.load(cfg["cases"])
    inputs, keep = data["inputs"], data["keep"]
    n = len(inputs)
    c, h, w = prm["in_shape"]
    # a multi-bit first layer's store word holds its P input planes as P*C channels
    # (plane-major), and its inputs are planes [N, P, C, H, W]
    cw = c * int(prm.get("planes", 1))
    out_shape = tuple(prm["out_shape"])
    golden = run_layer(ir, i, inputs, keep if prm["n_groups"] else None)
    timeout_ns = float(cfg.get("timeout_cycles", 100_000)) * CLK_NS

    Clock(dut.clk, CLK_NS, unit="ns", impl="gpi").start(start_high=False)
    dut.rst.value, dut.start.value = 1, 0
    dut.wr__data.value, dut.wr__en.value = 0, 0
    if prm["n_groups"]:
        dut.keep.value = 0
    if prm["classifier"]:
        dut.out__ready.value = 1
    for _ in range(3):
        await FallingEdge(dut.clk)
    dut.rst.value = 0
    await FallingEdge(dut.clk)

    observed = np.zeros_like(golden)
    write_errors, cycles = [], []
    for k in range(n):
        # inputs change at falling edges only; each write is taken at the next rising edge
        words = np.packbits(inputs[k].reshape(cw, h * w).T, axis=1, bitorder="little")
        for p in range(h * w):
            dut.wr__data.value = int.from_bytes(words[p].tobytes(), "little")
            dut.wr__en.value = 1
            await FallingEdge(dut.clk)
        dut.wr__en.value = 0
        if prm["n_groups"]:
            dut.keep.value = int_of(keep[k])
        dut.start.value = 1
        t0 = get_sim_time("ns")
        await FallingEdge(dut.clk)
        dut.start.value = 0
        await with_timeout(_wait_high(dut, dut.done), timeout_ns, "ns")
        # cycles from the edge that takes `start` to the one after `done`, both included
        cycles.append(int(round((get_sim_time("ns") - t0 - CLK_NS / 2) / CLK_NS)) + 1)
        # `done` is high in the cycle before the edge that takes the last write / class beat
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        if prm["classifier"]:
            if dut.out__valid.value != 1:
                raise AssertionError(f"case {k}: no out beat in the cycle after done")
            observed[k] = unpack_classes(int(dut.out__payload.value), out_shape[0], prm["ACC_W"])
        else:
            observed[k] = unpack_result(int(dut.result.value), out_shape)
            if int(dut.writes.value) != prm["out_positions"]:
                write_errors.append([k, int(dut.writes.value)])

    bad = np.argwhere(observed != golden)
    first = None
    if len(bad):
        idx = tuple(int(v) for v in bad[0])
        first = {"case": idx[0], "index": list(idx[1:]), "expected": int(golden[idx]),
                 "observed": int(observed[idx])}
    res = {"layer": i, "cases": n, "compared": int(golden.size), "mismatches": int(len(bad)),
           "first_mismatch": first, "write_count_errors": write_errors,
           "cycles_per_case": float(np.mean(cycles)), "observed": observed.tolist(),
           "ok": not len(bad) and not write_errors}
    Path(cfg["result"]).write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
    if not res["ok"]:
        raise Mismatch(f"{len(bad)} mismatches, {len(write_errors)} write-count errors; "
                        f"first: {first}")
