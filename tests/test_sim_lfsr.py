"""LFSR level: the FPGA stand-in MTJs, as Verilog on both simulators, produce exactly the
draws of their Python model (hwgen.hw.lfsr.LfsrMtjModel), including the writes that
follow no reset (which must not switch)."""


import numpy as np
import pytest
from amaranth.back import verilog

from hwgen.device import MtjParams
from hwgen.hw import lfsr
from hwgen.sim import runner
from hwgen.sim.stats import binom_interval

N, DRAWS, CODE_W = 6, 300, 10


@pytest.fixture(scope="session")
def bank(tmp_path_factory):
    prm = MtjParams()
    codes = [prm.choose_code(p, 20.0)[0] for p in (0.1, 0.2, 0.3, 0.5, 0.7, 0.9)]
    thr = [lfsr.threshold(prm, c, 20.0) for c in codes]
    seeds = [0x1234567 * (i + 1) & 0xFFFFFFFF for i in range(N)]
    d = tmp_path_factory.mktemp("lfsr")
    top = lfsr.LfsrMtjBank(seeds, codes, thr, CODE_W)
    (d / "lfsr_bank.v").write_text(verilog.convert(top, name="lfsr_bank", emit_src=False))
    return d, seeds, codes, thr


# A Verilator build costs a minute of CPU on a 2-core machine; the fast suite checks the
# stand-in on Icarus, the slow suite on both.
@pytest.mark.parametrize("simulator", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)],
                         indirect=True)
def test_lfsr_stand_in_rtl_equals_model(bank, simulator, tmp_path):
    d, seeds, codes, thr = bank
    resets = np.random.default_rng(1).random((DRAWS, N)) >= 0.1      # 10% writes unarmed
    bdir = runner.build(d, simulator, d / "build", toplevel="lfsr_bank")
    res = runner.run_bench("hwgen.sim.bench_lfsr", "lfsr_bank", simulator, bdir, tmp_path / "run",
                           {"n": N, "draws": DRAWS, "code_w": CODE_W, "codes": codes,
                            "resets": resets.ravel().tolist(), "reset_cycles": 2,
                            "write_cycles": 2})
    rtl = np.array([[int(c) for c in s] for s in res["sense"]], bool)
    model = lfsr.LfsrMtjModel(seeds, thr)
    want = []
    for k in range(DRAWS):
        model.reset(resets[k])
        model.write(np.ones(N, bool))
        want.append(model.sense().astype(bool))
    want = np.array(want)
    assert rtl.shape == want.shape == (DRAWS, N)
    assert (rtl == want).all(), np.argwhere(rtl != want)[:5]
    # not degenerate: after a reset each device switches at its threshold's rate, and an
    # unarmed write leaves the state as it was
    for i in range(N):
        k = int(want[resets[:, i], i].sum())
        lo, hi = binom_interval(int(resets[:, i].sum()), thr[i] / 2 ** 16, 1 - 1e-3 / N)
        assert lo <= k <= hi, (i, k, lo, hi)
    held = ~resets[1:]
    assert (want[1:][held] == want[:-1][held]).all()
