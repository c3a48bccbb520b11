"""cocotb bench of the LFSR stand-in MTJs (hwgen.hw.lfsr.LfsrMtj) as RTL: a bank of n
devices with vector pins `reset`, `write`, `code`, `sense`. The bench drives the
reset/write protocol for a number of draws, skipping the reset on a seeded random subset
of (draw, device) so the "only a reset device can switch" rule is exercised, and records
`sense` after every write. The test compares the record with `LfsrMtjModel`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly

from .protocol import bench_config


@cocotb.test()
async def lfsr_bank(dut):
    cfg = bench_config()
    n, draws, cw = int(cfg["n"]), int(cfg["draws"]), int(cfg["code_w"])
    resets = np.asarray(cfg["resets"], bool).reshape(draws, n)
    code = sum(int(c) << (i * cw) for i, c in enumerate(cfg["codes"]))
    Clock(dut.clk, 10, unit="ns", impl="gpi").start(start_high=False)
    dut.rst.value, dut.reset.value, dut.write.value, dut.code.value = 1, 0, 0, code
    for _ in range(3):
        await FallingEdge(dut.clk)
    dut.rst.value = 0
    full = (1 << n) - 1
    sense = []
    for k in range(draws):
        dut.reset.value = int.from_bytes(np.packbits(resets[k], bitorder="little").tobytes(),
                                         "little")
        for _ in range(int(cfg["reset_cycles"])):
            await FallingEdge(dut.clk)
        dut.reset.value = 0
        dut.write.value = full
        for _ in range(int(cfg["write_cycles"])):
            await FallingEdge(dut.clk)
        dut.write.value = 0
        for _ in range(2):                     # the fall is seen, then the state updates
            await FallingEdge(dut.clk)
        await ReadOnly()
        sense.append(str(dut.sense.value)[::-1])
        await FallingEdge(dut.clk)
    Path(cfg["result"]).write_text(json.dumps({"sense": sense}) + "\n")
