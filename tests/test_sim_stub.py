"""The cocotb plumbing (drivers, monitor, MTJ pin model, scoreboard, runner) on a tiny
hand-written `hwgen_top` (tests/fixtures/stub_top), on both simulators. The real network
regression is in test_sim_network.py; this one isolates the bench from the generator."""


import numpy as np
import pytest

from hwgen.device import device_seeds
from hwgen.ir.core import dumps, replace
from hwgen.sim import runner
from support import stub_ir, stub_outdir



@pytest.fixture(scope="session")
def stub(tmp_path_factory):
    out = stub_outdir(tmp_path_factory.mktemp("stub") / "out")
    return out, tmp_path_factory.mktemp("stub_build")


def _run(stub, sim, tmp_path, n=12, t=5, first_draw=0, **kw):
    out, broot = stub
    bdir = runner.build(out, sim, broot)
    bits = np.random.default_rng(0).integers(0, 2, (n, 4)).astype(np.uint8)
    return runner.run_network(out, sim, bits, np.arange(n), t, device_seeds(1, 3), first_draw,
                              bdir, tmp_path / "run", chunk=5, **kw)


# Only the plumbing is under test here, and a Verilator build costs a minute of CPU: the
# fast suite runs the stub on Icarus (the real network runs on both, test_sim_network.py).
@pytest.mark.parametrize("simulator", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)],
                         indirect=True)
def test_stub_network_bit_exact(stub, simulator, tmp_path):
    res = _run(stub, simulator, tmp_path)
    assert (res["images"], res["samples"]) == (12, 60)
    assert res["mismatches"] == 0 and res["device_mismatches"] == 0, res
    assert res["write_pulse_ns"] == [20.0]
    assert res["cycles_per_sample"] == 6.0          # the stub's sequential RNG + compute
    rec = np.load(res["record"])
    assert rec["ap"].shape == (60, 3) and 0 < rec["ap"].mean() < 1


@pytest.mark.parametrize("simulator", ["icarus"], indirect=True)
def test_stub_checker_catches_planted_faults(stub, simulator, tmp_path):
    out, _ = stub
    # scoreboard maps interfaces 0 and 2 to each other's groups: class mismatches
    res = _run(stub, simulator, tmp_path, scoreboard_interface_swap=[0, 2])
    assert res["mismatches"] > 0 and res["device_mismatches"] == 0
    # scoreboard believes two devices' seeds are swapped: the replay disagrees
    sw = device_seeds(1, 3)
    sw[[0, 1]] = sw[[1, 0]]
    res = _run(stub, simulator, tmp_path, scoreboard_seeds=sw)
    assert res["device_mismatches"] > 0
    assert res["first_device_mismatch"]["interface"] in (0, 1)
    # one weight bit flipped in the IR the scoreboard reads (not in the RTL)
    ir = stub_ir()
    l1 = ir.layers[1]
    w = bytearray(bytes.fromhex(l1.weights[0]))
    w[0] ^= 1
    bad = replace(ir, layers=(ir.layers[0], replace(l1, weights=(w.hex(),) + l1.weights[1:])))
    (tmp_path / "bad.json").write_text(dumps(bad))
    res = _run(stub, simulator, tmp_path, ir_path=tmp_path / "bad.json")
    assert res["mismatches"] > 0 and res["first_mismatch"] is not None


@pytest.mark.parametrize("simulator", ["icarus"], indirect=True)
def test_stub_shards_reproduce_one_run(stub, simulator, tmp_path):
    whole = np.load(_run(stub, simulator, tmp_path / "a", n=6)["record"])
    # images 3..5 alone, their draws starting at 3*T, give the tail of the whole run
    out, broot = stub
    bits = np.random.default_rng(0).integers(0, 2, (6, 4)).astype(np.uint8)
    res = runner.run_network(out, simulator, bits[3:], np.arange(3, 6), 5, device_seeds(1, 3), 15,
                             runner.build(out, simulator, broot), tmp_path / "c")
    tail = np.load(res["record"])
    assert res["mismatches"] == 0 and (tail["ap"] == whole["ap"][15:]).all()
    assert (tail["observed"] == whole["observed"][3:]).all()


@pytest.mark.parametrize("simulator", ["icarus"], indirect=True)
def test_played_devices_equal_the_python_device_model(stub, simulator, tmp_path):
    """The bench wrapper playing the MTJs (no wake-up per sample) gives the run of the
    Python device model on the pins: the same class integers and device outcomes."""
    played = _run(stub, simulator, tmp_path / "a")
    python = _run(stub, simulator, tmp_path / "b", devices="python")
    assert (played["devices"], python["devices"]) == ("played", "python")
    for res in (played, python):
        assert res["mismatches"] == 0 == res["device_mismatches"], res
    a, b = np.load(played["record"]), np.load(python["record"])
    assert (a["observed"] == b["observed"]).all() and (a["ap"] == b["ap"]).all()
    assert played["write_pulse_ns"] == python["write_pulse_ns"] == [20.0]


@pytest.mark.parametrize("simulator", ["icarus"], indirect=True)
def test_played_devices_check_catches_planted_faults(stub, simulator, tmp_path):
    """Planted in the wrapper's devices only: switching at half the model's p (the
    outcome signatures differ), and expecting write pulses a cycle longer than the
    design makes (every write breaks the protocol)."""
    res = _run(stub, simulator, tmp_path / "p", plant={"p_scale": 0.5})
    assert res["device_mismatches"] > 0 and res["first_device_mismatch"]["interfaces"]
    res = _run(stub, simulator, tmp_path / "w", plant={"wnom_offset": 1})
    assert res["first_device_mismatch"]["protocol_violations"] == 12 * 5 * 3
