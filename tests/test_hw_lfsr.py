# amaranth: UnusedElaboratable=no
"""LFSR stand-in device: maximal period, hardware == generate() over 2^16 draws, and the
pin-level device == its software model."""

import itertools

import numpy as np
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


def test_lfsr_matches_generate_2_16_draws():
    seed, n = 0x1234ABCD, 2 ** 16
    dut = lfsr.Lfsr(seed)
    want = list(itertools.islice(lfsr.generate(seed), n))
    got = []

    async def bench(ctx):
        ctx.set(dut.en, 1)
        async for _, _, state in ctx.tick().sample(dut.next):
            got.append(state)
            if len(got) == n:
                break

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == want
    assert len(set(want)) == n                      # no short cycle within the window


def test_device_matches_model():
    params = MtjParams()
    codes = [params.choose_code(p, 20.0)[0] for p in (0.2, 0.5)]
    thr = {c: lfsr.threshold(params, c, 20.0) for c in codes}
    n, rounds = 4, 60
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
            m.submodules.rng = rng = MtjRngBank(dev_codes, params.code_bits, 2, 2)
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
    assert np.array_equal(np.array(keeps), 1 - np.array(model.history, np.uint8))
    assert 0 < np.mean(keeps) < 1
    # a write without a reset leaves the state as it was
    for _ in range(5):
        model.write(np.ones(n, bool))
        assert np.array_equal(model.history[-1], model.history[-2])


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
