# amaranth: UnusedElaboratable=no
"""LFSR stand-in device: maximal period, hardware == generate() over 2^16 draws, and the
pin-level device == its software model."""

import itertools

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwgen.device import MtjParams
from hwgen.hw import lfsr
from hwgen.hw.rng import MtjRngBank
from support import keep_rounds


def _polymulmod(a: int, b: int, poly: int, deg: int) -> int:
    r = 0
    while b:
        if b & 1:
            r ^= a
        b >>= 1
        a <<= 1
        if a >> deg & 1:
            a ^= poly
    return r


def _xpow(e: int, poly: int, deg: int) -> int:
    r, base = 1, 2
    while e:
        if e & 1:
            r = _polymulmod(r, base, poly, deg)
        base = _polymulmod(base, base, poly, deg)
        e >>= 1
    return r


def test_polynomial_is_primitive():
    # Galois right-shift mask 0x80200003 <-> feedback polynomial x^32 + reversed taps
    taps = [i for i in range(32) if lfsr.MASK >> i & 1]
    poly = (1 << 32) | sum(1 << (31 - i) for i in taps)
    n = 2 ** 32 - 1
    assert _xpow(n, poly, 32) == 1
    for q in (3, 5, 17, 257, 65537):                  # the prime factors of 2^32 - 1
        assert _xpow(n // q, poly, 32) != 1


def enabled_states(dut, port, n: int) -> list[int]:
    """`port` of an `Lfsr` kept enabled, sampled at each of n clock edges."""
    got = []

    async def bench(ctx):
        ctx.set(dut.en, 1)
        async for _, _, state in ctx.tick().sample(getattr(dut, port)):
            got.append(state)
            if len(got) == n:
                break

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got


def test_lfsr_matches_generate_2_16_draws():
    seed, n = 0x1234ABCD, 2 ** 16
    want = list(itertools.islice(lfsr.generate(seed), n))
    assert enabled_states(lfsr.Lfsr(seed), "next", n) == want
    assert len(set(want)) == n                      # no short cycle within the window


def test_lfsr_core_leaps_step_by_step():
    # the devices' core: STEP steps a cycle, LEAP // STEP cycles a draw
    seed, n = 0x1234ABCD, 4096
    got = enabled_states(lfsr.Lfsr(lfsr.leap(seed), lfsr.STEP), "state", n)
    # from the first draw on (the seed leapt once: 16 = 4 x (3 + 1) steps)
    assert got == list(itertools.islice(lfsr.generate(seed, lfsr.STEP), 3, 3 + n))
    # every LEAP // STEP cycles, the draws of the model
    assert got[::lfsr.LEAP // lfsr.STEP] == list(itertools.islice(lfsr.generate(seed), n // 4))


def devices_equal_model(reset_cycles, write_cycles, rounds=60):
    """The RNG bank driving LFSR stand-ins through `rounds` RNG cycles, back to back, as
    NetworkTop and the FPGA board wire them: do the keep bits equal the model's?"""
    params = MtjParams()
    codes = [params.choose_code(p, 20.0)[0] for p in (0.2, 0.5)]
    thr = {c: lfsr.threshold(params, c, 20.0) for c in codes}
    n = 4
    seeds = [0x1, 0xDEADBEEF, 0x12345, 0x7FFFFFFF]
    dev_codes = [codes[i % 2] for i in range(n)]

    from amaranth import Module
    from amaranth.lib import stream, wiring
    from amaranth.lib.wiring import In, Out

    class Bank(wiring.Component):
        """The RNG bank driving LFSR stand-ins, as NetworkTop and the FPGA board wire them."""
        go: In(1)
        keep: Out(stream.Signature(n))

        def elaborate(self, platform):
            m = Module()
            m.submodules.rng = rng = MtjRngBank(dev_codes, params.code_bits, reset_cycles,
                                                write_cycles)
            m.submodules.devs = devs = lfsr.LfsrMtjBank(
                seeds, dev_codes, [thr[c] for c in dev_codes], params.code_bits)
            wiring.connect(m, rng.mtj, devs)
            wiring.connect(m, wiring.flipped(self.keep), rng.keep)
            m.d.comb += rng.go.eq(self.go)
            return m

    dut = Bank()
    keeps = []

    bench = keep_rounds(dut, n, rounds, keeps)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    model = lfsr.LfsrMtjBank(seeds, dev_codes, [thr[c] for c in dev_codes],
                             params.code_bits).model()
    for _ in range(rounds):
        model.reset(np.ones(n, bool))
        model.write(np.ones(n, bool))
    assert 0 < np.mean(keeps) < 1
    # a write without a reset leaves the state as it was
    tail = lfsr.LfsrMtjBank(seeds, dev_codes, [thr[c] for c in dev_codes],
                            params.code_bits).model()
    tail.reset(np.ones(n, bool))
    tail.write(np.ones(n, bool))
    for _ in range(5):
        tail.write(np.ones(n, bool))
        assert np.array_equal(tail.history[-1], tail.history[-2])
    return np.array_equal(np.array(keeps), 1 - np.array(model.history, np.uint8))


@pytest.mark.parametrize("reset_cycles, write_cycles", [(2, 2), (1, 1), (3, 1)])
def test_device_matches_model(reset_cycles, write_cycles):
    # (1, 1) is the shortest RNG cycle (hwgen.hw.plan.rng_period 5): the devices' leap
    # to their next draw (4 cycles) is done before the next write falls
    assert devices_equal_model(reset_cycles, write_cycles)


@pytest.mark.parametrize("fault", ["a leap slower than the shortest RNG cycle",
                                   "the first draw at the seed itself"])
def test_planted_stand_in_faults_are_caught(monkeypatch, fault):
    if fault.startswith("a leap"):
        monkeypatch.setattr(lfsr, "STEP", 2)      # 16 steps still, in 8 cycles
    else:
        monkeypatch.setattr(lfsr, "leap", lambda s, steps=lfsr.LEAP: s)
    assert not devices_equal_model(1, 1, rounds=20), fault


def test_realised_p_over_many_draws():
    params = MtjParams()
    code, p = params.choose_code(0.3, 20.0)
    thr = lfsr.threshold(params, code, 20.0)
    tops = np.array(list(itertools.islice(lfsr.generate(99), 50_000))) >> 16
    rate = float((tops < thr).mean())
    # 99.9% binomial interval around the realised p
    sd = np.sqrt(p * (1 - p) / len(tops))
    assert abs(rate - lfsr.realised_p(thr)) < 3.3 * sd
    assert abs(lfsr.realised_p(thr) - p) <= 2 ** -16


def test_below_a_constant_is_the_unsigned_compare():
    # every 6-bit value against every threshold, 0 (never) to 64 (always) and past it
    from amaranth import Module, Signal
    width = 6
    a = Signal(width)
    ts = list(range(0, 2 ** width + 2))
    outs = [Signal(name=f"lt{t}") for t in ts]
    m = Module()
    m.d.comb += [o.eq(lfsr.below(a, t)) for o, t in zip(outs, ts)]
    got = {}

    async def bench(ctx):
        for v in range(2 ** width):
            ctx.set(a, v)
            got[v] = [ctx.get(o) for o in outs]

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert all(got[v] == [int(v < t) for t in ts] for v in got)
