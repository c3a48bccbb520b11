"""cocotb bench of the whole generated network (`hwgen_top`): drivers, monitor, MTJ
devices, scoreboard.

Python wakes only on events, never once per cycle: the clock runs in the wrapper, an
image goes in whole to the wrapper's word streamer, the monitors wait on the wrapper's
beat and `done` counts, and the device model on its count of pin events (two per MC
sample), or, in a run without a device fault, not at all: the wrapper plays the devices
from the same draws and the bench checks them against the model after the run
(`NetworkBench._played_check`). The run is described by a JSON file named in $HWGEN_SIM_CONFIG (written
by sim/runner.py); results go back as JSON (plus an .npz of the raw beats and device
history for the statistics level).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np

import cocotb
from cocotb.triggers import (Event, FallingEdge, ReadOnly, RisingEdge, Timer,
                             with_timeout)
from cocotb.utils import get_sim_time

from hwgen.device import MtjArray, MtjParams, uniform01
from hwgen.ir.core import loads

from .protocol import Mismatch, run_reporting
from .ports import int_of, load_ports, unpack_beat
from .runner import misr
from .scoreboard import Scoreboard

log = logging.getLogger("hwgen.bench")


class MtjPins:
    """The MTJ devices on the pins: `mtj_reset` rising -> P; at the end of a write pulse
    (its width measured in clock cycles) a device in P switches with p(code on the
    `mtj_code` pins, width); `mtj_sense` shows the state (1 = AP). Records each
    interface's write outcomes in order.

    The devices see the pins as the bench wrapper samples them at each falling edge
    (hwgen.sim.runner.bench_wrapper): the pins are logic of registers, settled by then.
    The wrapper notes each interface's write rise and counts the events the devices act
    on (a write falling, a reset rising) in `tb_mtj_ev`; Python wakes once per event,
    reads which interfaces fell or were reset and the rise counts (the widths), updates
    the devices, and drives a changed `mtj_sense` at once, half a cycle before the next
    rising edge. Pin vectors are handled as Python ints (cheap for any N_IF) and turned
    into numpy masks only when something happens.

    `fault` (a hwgen.faults fault, from the run's config) makes one device or the sense
    wiring faulty, to measure what the regression catches: an MTJ stuck in P or AP, or
    switching with a scaled p (from the same draws; the recorded history is the faulty
    device's), or a sense line stuck or two swapped (the devices and their history are
    sound; only what the design reads changes)."""

    def __init__(self, dut, tp, params: MtjParams, seeds, first_draw: int,
                 fault: dict | None = None):
        self.dut, self.tp = dut, tp
        self.rows: list[tuple[np.ndarray | None, np.ndarray]] = []   # (write mask, AP)
        self.pulses_ns: set[float] = set()
        self.live = False   # X/Z before reset is released are power-up values, not pulses
        self._full = (1 << tp.n_if) - 1
        self.fault = None
        self.power_up(params, seeds, first_draw, np.zeros(tp.n_if, np.int64))
        self.set_fault(fault, drive=False)

    def power_up(self, params: MtjParams, seeds, first_draw: int, codes) -> None:
        """Every device in P, with no write outcome pending, its draws counted from
        `first_draw`: counter-based draws, so a shard started at its first global sample
        gives the outcomes of one long run."""
        self.array = MtjArray(params, np.asarray(codes, np.int64), seeds)
        self.array.writes[:] = first_draw
        self.rows.clear()
        self.pulses_ns.clear()

    def set_fault(self, fault: dict | None, drive: bool = True) -> None:
        """Make the devices or the sense wiring carry `fault` from now on (None: sound)."""
        self.fault = fault
        self._device_fault(None)
        if drive:
            self._drive()

    def _device_fault(self, written, width_ns: float = 0.0):
        """Impose an MTJ fault on the device state after a reset (written None) or after
        the write pulse of `width_ns` on the devices in mask `written`."""
        f = self.fault
        if f is None or f["kind"] not in ("mtj-stuck", "mtj-p-scale"):
            return
        i, a = f["interface"], self.array
        if f["kind"] == "mtj-stuck":
            a.ap[i] = f["state"] == "AP"
        elif written is not None and written[i]:
            u = uniform01(a.seeds[i], a.writes[i] - 1)          # this write's draw
            p = min(1.0, float(a.params.p_switch(a.codes[i], width_ns)) * f["scale"])
            a.ap[i] = self._ap_before[i] or bool(u < p)

    def sense_bits(self) -> np.ndarray:
        """The sense lines the design reads: the devices' AP, through a sense fault."""
        s = self.array.sense()
        f = self.fault
        if f is not None and f["kind"] == "keep-stuck":
            s[f["interface"]] = 1 - f["value"]                  # keep = NOT sense
        elif f is not None and f["kind"] == "sense-swap":
            i, j = f["interface"], f["other"]
            s[[i, j]] = s[[j, i]]
        return s

    def start(self):
        self._drive()
        cocotb.start_soon(self._watch())

    def _int(self, sig) -> int:
        v = sig.value
        try:
            return int(v)
        except ValueError:
            if self.live:
                raise AssertionError(f"{sig._name} has X/Z bits after reset: {v}") from None
            return 0

    def _mask(self, v: int, n: int | None = None) -> np.ndarray:
        n = self.tp.n_if if n is None else n
        b = np.frombuffer(v.to_bytes((n + 7) // 8, "little"), np.uint8)
        return np.unpackbits(b, count=n, bitorder="little").astype(bool)

    def codes(self):
        """Read the write-current codes. The design drives them as constants: they are
        read once reset is released and checked again at the end of the run (a watcher
        would have the simulator compare all N_IF*CODE_W bits at every eval)."""
        cw = self.tp.code_w
        bits = self._mask(self._int(self.dut.mtj_code), self.tp.n_if * cw).reshape(-1, cw)
        return bits.astype(np.int64) @ (1 << np.arange(cw, dtype=np.int64))

    async def _watch(self):
        dut = self.dut
        while True:
            await dut.tb_mtj_ev.value_change
            if self._event(self._int(dut.tb_fell), self._int(dut.tb_rrose)):
                self._drive()

    def _event(self, fell: int, rrose: int) -> bool:
        """Apply one event's edges (writes ending first, then resets); True if a device
        changed."""
        sense = self.array.ap.copy()
        if fell:
            n = self.tp.n_if
            m = np.ones(n, bool) if fell == self._full else self._mask(fell)
            lo = self._int(self.dut.tb_wlo)
            if lo == self._int(self.dut.tb_whi):
                self._write_width(m, lo * self.tp.clk_ns)
            else:
                rises = np.frombuffer(self._int(self.dut.tb_wrise).to_bytes(4 * n, "little"),
                                      "<u4")
                cycles = (self._int(self.dut.tb_ev_cyc) - rises.astype(np.int64)) & 0xFFFFFFFF
                for w in np.unique(cycles[m]):
                    self._write_width(m & (cycles == w), float(w) * self.tp.clk_ns)
        if rrose:
            self.array.reset(np.ones(self.tp.n_if, bool) if rrose == self._full
                             else self._mask(rrose))
            self._device_fault(None)
        return bool((self.array.ap != sense).any())

    def _write_width(self, group: np.ndarray, w: float):
        """The write pulses of width `w` ns on the devices in `group` end."""
        self.pulses_ns.add(w)
        self._ap_before = self.array.ap.copy()
        self.array.write(group, w)
        self._device_fault(group, w)
        self.rows.append((None if group.all() else group, self.array.ap.copy()))

    def _drive(self):
        self.dut.mtj_sense.value = int_of(self.sense_bits())

    def take(self, k: int) -> np.ndarray:
        """The next k writes of every interface, [k, n_if] AP; fails if one is short."""
        if len(self.rows) >= k and all(m is None for m, _ in self.rows[:k]):
            out = np.stack([a for _, a in self.rows[:k]])      # lock step: one row per write
            del self.rows[:k]
            return out
        masks = np.stack([np.ones(self.tp.n_if, bool) if m is None else m for m, _ in self.rows])
        aps = np.stack([a for _, a in self.rows])
        counts = masks.sum(0)
        if counts.min() < k:
            i = int(counts.argmin())
            raise AssertionError(f"interface {i} made {int(counts[i])} writes, "
                                 f"expected at least {k} (one per MC sample)")
        out = np.stack([aps[masks[:, i], i][:k] for i in range(self.tp.n_if)], 1)
        # Keep each interface's writes beyond the k-th, as masked rows.
        keep = masks & (np.cumsum(masks, 0) > k)
        self.rows = [(keep[r], aps[r]) for r in range(len(self.rows)) if keep[r].any()]
        return out

    def pending(self) -> int:
        return len(self.rows)


def _words(v: int, n: int) -> np.ndarray:
    """The n 32-bit words of `v`, word 0 at the LSB."""
    return np.frombuffer(v.to_bytes(4 * n, "little"), "<u4").astype(np.uint64)


async def counted(count, what: str):
    """Yield once per step of a 16-bit counter of the bench wrapper (`tb_nout`,
    `tb_ndone`); fail if it moved by more than one between wake-ups."""
    seen = 0
    while True:
        await count.value_change
        n = int(count.value)
        if n != (seen + 1) & 0xFFFF:
            raise AssertionError(f"{what} count went {seen} -> {n}: one was missed")
        seen = n
        yield


class OutMonitor:
    """Collects `out` beats; `out__ready` is held high (raised during reset; the bench
    wrapper registers it). The wrapper latches each beat's payload at the rising edge that
    takes it (`tb_out`) and counts the beats (`tb_nout`), so Python wakes once per beat;
    a skipped count (two beats between wake-ups) fails the run."""

    def __init__(self, dut, tp):
        self.dut, self.tp = dut, tp
        self.beats: list[tuple[int, list[int], float]] = []

    def start(self):
        self.dut.out__ready.value = 1
        cocotb.start_soon(self._run())

    async def _run(self):
        payload = self.dut.tb_out
        async for _ in counted(self.dut.tb_nout, "out beat"):
            s, accs = unpack_beat(int(payload.value), self.tp.classes, self.tp.acc_w,
                                  self.tp.sample_w)
            self.beats.append((s, accs, get_sim_time("ns")))


class DoneMonitor:
    """Counts `done` pulses (the wrapper counts them in `tb_ndone`, so a pulse is never
    missed while Python waits elsewhere) and records when each came."""

    def __init__(self, dut):
        self.dut = dut
        self.times: list[float] = []
        self._event = Event()

    def start(self):
        cocotb.start_soon(self._run())

    async def _run(self):
        async for _ in counted(self.dut.tb_ndone, "done"):
            self.times.append(get_sim_time("ns"))
            self._event.set()

    async def wait(self, n: int):
        """Return once `n` images are done."""
        while len(self.times) < n:
            self._event.clear()
            await self._event.wait()


class ImageSender:
    """Sends images on the `img` stream through the bench wrapper's word streamer
    (hwgen.sim.runner.bench_wrapper): the whole image goes on `tb_img` and a toggle of
    `tb_img_go` starts it, so Python does not wake per word. Called at a falling edge.
    `positions`: H*W, to put the image's bits in the port's position-major order."""

    def __init__(self, dut, in_w: int, positions: int):
        self.dut, self.in_w, self.positions, self.go = dut, in_w, positions, 0
        dut.tb_img_go.value = 0

    def send(self, bits):
        # the words side by side, word k at bits [k*IN_W, ...), are the image's bits in
        # position-major order (zero-padded): the streamer cuts them as `image_words`
        # packs them
        planes = np.asarray(bits, np.uint8).reshape(-1, self.positions)
        self.dut.tb_img.value = int_of(planes.T.ravel())
        self.go ^= 1
        self.dut.tb_img_go.value = self.go

    async def loaded(self):
        """Return at a falling edge once every word is taken and the loader is idle. (The
        wait starts at the next falling edge: a toggle written in this time step is not
        yet visible in `tb_img_busy`.)"""
        dut = self.dut
        await FallingEdge(dut.clk)
        if dut.tb_img_busy.value:
            await FallingEdge(dut.tb_img_busy)
        await wait_idle(dut)


async def pulse_start(dut, samples: int):
    """One-cycle `start` (called at a falling edge, `idle` high)."""
    dut.n_samples.value = samples
    dut.start.value = 1
    await ReadOnly()
    if not dut.idle.value:
        raise AssertionError("start while not idle")
    await FallingEdge(dut.clk)
    dut.start.value = 0


async def wait_idle(dut):
    """Return at a falling edge with `idle` high."""
    await FallingEdge(dut.clk)
    while not dut.idle.value:
        await RisingEdge(dut.idle)
        await FallingEdge(dut.clk)


@cocotb.test()
async def network(dut):
    """N images x T MC samples through `hwgen_top`, every class integer against golden.
    With `runs` in the config (a fault campaign's batch), the same images go through once
    per run, the design reset between runs, each run with its own checker IR and device
    fault; the result is then {'runs': [one result per run]}."""
    await run_reporting(_network, dut)


async def _network(dut, cfg):
    bench = NetworkBench(dut, cfg)
    await bench.reset()
    runs = cfg.get("runs")
    if runs is None:
        res = await bench.run(cfg["ir"], cfg.get("device_fault"), cfg.get("record"),
                              cfg.get("progress"))
        Path(cfg["result"]).write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
        if res["mismatches"] or res["device_mismatches"]:
            raise Mismatch(f"{res['mismatches']} class-integer and "
                           f"{res['device_mismatches']} device mismatches; first: "
                           f"{res['first_mismatch'] or res['first_device_mismatch']}")
        return
    out = []
    for k, r in enumerate(runs):
        if k:   # 'power_up': False, planted: the devices keep their state across the reset
            await bench.reset(devices=r.get("power_up", True))
        out.append(await bench.run(r.get("ir") or cfg["ir"], r.get("device_fault"), None,
                                   None))
        if cfg.get("progress"):
            Path(cfg["progress"]).write_text(f"{k + 1}\n")
    Path(cfg["result"]).write_text(json.dumps({"runs": out}, indent=1, sort_keys=True) + "\n")


class NetworkBench:
    """The network bench's drivers, monitors and devices, set up once per simulator
    process; `run` sends the images through and checks them, `reset` brings the design
    and the devices back to their power-up state between runs.

    The bench wrapper's counters (beats, `done` pulses, MTJ events, the cycle count) are
    not reset with the design, so the monitors run on across resets; each run counts
    from where the last one ended."""

    def __init__(self, dut, cfg):
        self.dut, self.cfg = dut, cfg
        self.tp = tp = load_ports(cfg["ports"])
        self.ir = ir = loads(Path(cfg["ir"]).read_text())
        data = np.load(cfg["images"])
        self.bits, self.index = data["bits"], data["index"]
        self.T = int(cfg["samples"])
        self.chunk = int(cfg.get("chunk", 32))
        self.first_draw = int(cfg.get("first_draw", 0))
        if tp.n_if != ir.n_interfaces or tp.classes != ir.n_classes:
            raise AssertionError(f"ports.json (N_IF={tp.n_if}, classes={tp.classes}) does "
                                 f"not match the IR ({ir.n_interfaces}, {ir.n_classes})")
        self.seeds = np.asarray(cfg["device_seeds"], np.uint64)
        self.sb_seeds = np.asarray(cfg.get("scoreboard_seeds", cfg["device_seeds"]), np.uint64)
        self.timeout_ns = float(cfg.get("timeout_cycles", 10_000_000)) * tp.clk_ns
        # 'played': a run without a device fault has the wrapper play the devices (no
        # wake-up per MC sample); 'python': the Python device model on the pins always
        self.devices = cfg.get("devices", "played")
        if self.devices not in ("played", "python"):
            raise AssertionError(f"devices must be 'played' or 'python', not {self.devices!r}")
        for name in ("start", "out__ready"):
            getattr(dut, name).value = 0
        self.sender = ImageSender(dut, tp.in_w, ir.in_shape[1] * ir.in_shape[2])
        dut.n_samples.value = self.T
        self.pins = None
        if tp.n_if:
            self.pins = MtjPins(dut, tp, ir.mtj.device, self.seeds, self.first_draw)
            self.pins.start()
        self.mon = OutMonitor(dut, tp)
        self.mon.start()
        self.dones = DoneMonitor(dut)
        self.dones.start()
        self.codes = None

    async def reset(self, devices: bool = True):
        """Hold `rst` for 4 cycles (from a falling edge; the design idle or before its
        first reset), then give the devices their power-up state: all in P, the draw
        counters at the run's first draw (`devices` False, a planted fault: leave them)."""
        dut = self.dut
        dut.rst.value = 1
        for _ in range(4):
            await RisingEdge(dut.clk)
        dut.rst.value = 0
        for _ in range(2):         # the wrapper's reset flop releases the design a cycle later
            await RisingEdge(dut.clk)
        if self.pins is not None and devices:
            if self.codes is None:
                self.pins.live = True
                self.codes = self.pins.codes()
                self._set_played()
            self.pins.power_up(self.ir.mtj.device, self.seeds, self.first_draw, self.codes)
            self.pins.set_fault(None)

    def _set_played(self):
        """The wrapper's device model (hwgen.sim.runner._played_devices): the devices'
        seeds, the first draw, the write pulse width and each device's threshold, from the
        codes on the pins: draw < ceil(p * 2**53) exactly when uniform01 < p."""
        dut, tp, mtj = self.dut, self.tp, self.ir.mtj
        self.p_played = mtj.device.p_switch(self.codes, mtj.write_cycles * tp.clk_ns)
        plant = self.cfg.get("plant") or {}       # planted faults of the played devices
        p = self.p_played * float(plant.get("p_scale", 1.0))
        thr = [min(math.ceil(float(v) * 2.0 ** 53), 1 << 53) for v in p]
        dut.tb_seed.value = sum(int(v) << (64 * i) for i, v in enumerate(self.seeds))
        dut.tb_thr.value = sum(t << (64 * i) for i, t in enumerate(thr))
        dut.tb_draw0.value = self.first_draw
        dut.tb_wnom.value = mtj.write_cycles + int(plant.get("wnom_offset", 0))

    def _played_ap(self, first: int, n: int) -> np.ndarray:
        """What the Python device model does on draws [first, first + n) when every write
        follows a reset and lasts `write_cycles` (which the wrapper checks): [n, n_if]."""
        k = np.arange(first, first + n, dtype=np.uint64)[:, None]
        return uniform01(self.seeds[None, :], k) < self.p_played[None, :]

    def _played_check(self, history: np.ndarray, writes: int) -> dict | None:
        """Compare the wrapper's devices with the Python model after a played run: each
        device made `writes` writes, none broke the protocol, and each device's outcome
        signature equals the model's. None when they agree, else what differed."""
        n, dut = self.tp.n_if, self.dut
        bad = int(dut.tb_bad.value)
        nwr = _words(int(dut.tb_nwr.value), n)
        sig = _words(int(dut.tb_sig.value), n)
        wrong = (nwr != writes) | (sig != misr(history))
        if not bad and not wrong.any():
            return None
        return {"played_devices": True, "protocol_violations": bad,
                "interfaces": np.flatnonzero(wrong).tolist(), "writes": nwr.tolist(),
                "expected_writes": writes}

    async def run(self, ir_path, fault, record, progress) -> dict:
        """The images through the design, checked by a scoreboard of the IR at `ir_path`,
        the devices carrying `fault` (None: sound); returns the result dict."""
        dut, tp, T, pins = self.dut, self.tp, self.T, self.pins
        bits, index = self.bits, self.index
        n_img = len(bits)
        ir = self.ir if ir_path == self.cfg["ir"] else loads(Path(ir_path).read_text())
        played = pins is not None and fault is None and self.devices == "played"
        if pins is not None:
            pins.set_fault(fault)
            dut.tb_play.value = int(played)   # the design is idle: no device event yet
        wiring = None
        if self.cfg.get("scoreboard_interface_swap"):   # planted: scoreboard-only swap
            wiring = np.arange(tp.n_if)
            i, j = self.cfg["scoreboard_interface_swap"]
            wiring[[i, j]] = wiring[[j, i]]
        sb = Scoreboard(ir, self.sb_seeds, first_draw=self.first_draw, wiring=wiring)
        observed = np.zeros((n_img, T, tp.classes), np.int64)
        history = np.zeros((n_img * T, tp.n_if), bool)
        cycles_image = np.zeros(n_img)
        cycles_sample = []
        beat0, done0 = len(self.mon.beats), len(self.dones.times)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        shown = wall0
        done_chunk = 0
        # With a prefix the top takes the next image, words and start, while this one's
        # samples run (its prefix fills the other bank of the first MC layer's buffer):
        # the bench sends it as soon as this image has started, and starts it as soon as
        # the top is idle again. Without one, each image waits for the previous image's
        # `done`.
        overlap = ir.mc_start > 0
        t_start = np.zeros(n_img)
        sender, dones, mon = self.sender, self.dones, self.mon

        async def start_image(j):
            sender.send(bits[j])
            await with_timeout(sender.loaded(), self.timeout_ns, "ns")
            t_start[j] = get_sim_time("ns")
            await pulse_start(dut, T)

        await wait_idle(dut)
        await start_image(0)
        for i in range(n_img):
            if overlap and i + 1 < n_img:
                await start_image(i + 1)
            await with_timeout(dones.wait(done0 + i + 1), self.timeout_ns, "ns")
            # the cycles this image adds to the run: from its start, or, pipelined, from
            # the previous image's done
            t0 = t_start[i] if not overlap or i == 0 else dones.times[done0 + i - 1]
            cycles_image[i] = (dones.times[done0 + i] - t0) / tp.clk_ns
            if not overlap and i + 1 < n_img:
                await start_image(i + 1)
            beats = mon.beats[beat0 + i * T:beat0 + (i + 1) * T]
            if [b[0] for b in beats] != list(range(T)):
                raise AssertionError(f"image {int(index[i])}: sample indices "
                                     f"{[b[0] for b in beats]}, expected 0..{T - 1}")
            observed[i] = [b[1] for b in beats]
            if T > 1:
                cycles_sample.append((beats[-1][2] - beats[0][2]) / tp.clk_ns / (T - 1))
            if played:
                history[i * T:(i + 1) * T] = self._played_ap(self.first_draw + i * T, T)
            elif pins is not None:
                history[i * T:(i + 1) * T] = pins.take(T)
            if i + 1 - done_chunk >= self.chunk or i + 1 == n_img:
                sl = slice(done_chunk, i + 1)
                ap = history[sl.start * T:sl.stop * T]
                shape = (sl.stop - sl.start, *ir.input_bits_shape)
                sb.check(bits[sl].reshape(shape), observed[sl], ap, index[sl])
                done_chunk = i + 1
            if progress and (i + 1 == n_img or time.perf_counter() - shown > 0.25):
                Path(progress).write_text(f"{i + 1}\n")      # the runner polls it at 2 Hz
                shown = time.perf_counter()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        await Timer(4 * tp.clk_ns, "ns")
        if len(mon.beats) - beat0 != n_img * T:
            raise AssertionError(f"{len(mon.beats) - beat0} out beats for {n_img} images x "
                                 f"{T} samples")
        if pins is not None and not played and pins.pending():
            raise AssertionError(f"{pins.pending()} write pulses after the last sample's draw")
        if pins is not None and not np.array_equal(pins.codes(), pins.array.codes):
            raise AssertionError("the mtj_code pins changed during the run")
        await FallingEdge(dut.clk)

        res = sb.summary()
        differs = self._played_check(history, n_img * T) if played else None
        if differs is not None:
            res["device_mismatches"] += max(1, differs["protocol_violations"] +
                                            len(differs["interfaces"]))
            res["first_device_mismatch"] = res["first_device_mismatch"] or differs
        pulses = ([self.ir.mtj.write_ns] if not differs else []) if played else \
            sorted(pins.pulses_ns) if pins else []
        res.update({
            "devices": ("played" if played else "python") if pins else None,
            "cycles_per_image": float(cycles_image.mean()),
            "cycles_per_sample": float(np.mean(cycles_sample)) if cycles_sample else None,
            "sim_wall_s": wall, "sim_samples_per_s": n_img * T / wall,
            "sim_cpu_s": cpu, "sim_samples_per_cpu_s": n_img * T / cpu,
            "write_pulse_ns": pulses,
        })
        if record:
            np.savez_compressed(record, observed=observed, ap=history, index=index)
        return res
