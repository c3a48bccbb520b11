"""Network regression of a bitserial-8 model in cocotb (Icarus and Verilator): the image
goes in as its 8 bit planes, layer 0 shift-adds 8 plane passes; every class integer must
equal the golden model's and the torch reference's (SPEC sections 3 and 10)."""

import numpy as np
import pytest

from hwgen.bench.shapes import random_model
from hwgen.compiler import compile_model
from hwgen.ir.core import loads
from hwgen.ir.interp import input_bits, run
from hwgen.sim import regression


@pytest.fixture(scope="session")
def bitserial_outdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("bitserial8")
    model = random_model(d / "model.pt", "c4,p2,c8,p2,f10", (1, 8, 8), "digits", "spatial",
                         0.2, 0, input_mode="bitserial-8")
    compile_model(model, d / "out", tile="16x8", lanes=4, check_images=16)
    # 8-bit pixels k/255, so q = k exercises every plane
    x = (np.random.default_rng(0).integers(0, 256, (4, 1, 8, 8)) / 255).astype(np.float32)
    np.save(d / "X.npy", x)
    return d / "out", d / "X.npy"


def test_bitserial8_network_bit_exact(bitserial_outdir, simulator):
    out, xs = bitserial_outdir
    ir = loads((out / "ir.json").read_text())
    assert ir.input.name == "bitserial-8" and ir.mc_start == 1   # layer 0 is the prefix
    rep = regression.run_regression(out, simulator, images=4, samples=3, seed=3,
                                    progress=False, inputs=xs)
    assert (rep["images"], rep["mc_samples"]) == (4, 12)
    assert rep["mismatches"] == 0 and rep["device_mismatches"] == 0 and rep["ok"], rep
    ref = rep["reference"]
    assert ref["kind"] == "torch" and ref["ok"] and ref["sample_mismatches"] == 0, ref
    # not vacuous: the higher planes matter (zeroing them changes class integers)
    planes = input_bits(ir, np.load(xs))
    lsb = planes.copy()
    lsb[:, 1:] = 0
    keep = [np.ones((4, 1, s.n_groups), np.uint8) for s in ir.sites]
    assert not np.array_equal(run(ir, planes, keep), run(ir, lsb, keep))
