"""Layer level: each layer of a small random IR, exported alone
(hwgen.export.export_layer), on Icarus and Verilator, against the golden layer
(hwgen.ir.interp.run_layer) over seeded random inputs and keep masks; planted faults in
the checker's IR must be caught.

The IR covers a first conv (image-loader write mode, no site), a padded conv with a 2x2
pool and a spatial dropout site, a flatten-fed linear layer and the classifier; tiles of
16 rows x 4 columns and 2 lanes give row splits, column splits and several beats per
read. Builds are cached by content hash (hwgen.sim.regression.build_root)."""

import subprocess

import numpy as np
import pytest

from hwgen.passes import reschedule
from hwgen.sim import regression
from hwgen.errors import HwgenError
from hwgen.export import export_layer, layer_files
from hwgen.ir.core import dumps, replace
from hwgen.ir.interp import run_layer
from hwgen.sim import runner
from support import multibit_ir, random_ir, require_simulator, require_tool

SPEC, IN_SHAPE, LANES, CASES = "c3,c4,p2,f6,f5", (1, 6, 6), 2, 6


@pytest.fixture(scope="session")
def layers(tmp_path_factory):
    d = tmp_path_factory.mktemp("layers")
    ir = random_ir(SPEC, IN_SHAPE, tile=(16, 4), seed=11)
    (d / "ir.json").write_text(dumps(ir))
    for i in range(len(ir.layers)):
        export_layer(reschedule(ir, LANES), i, d)
    return ir, d


def cases(ir, i, seed):
    """Random input bits and keep masks; case 0 keeps every group, case 1 drops all."""
    rng = np.random.default_rng([seed, i])
    x = rng.integers(0, 2, (CASES, *ir.layers[i].in_shape), dtype=np.uint8)
    site = ir.site_of(i)
    if site is None:
        return x, None
    keep = (rng.random((CASES, site.n_groups)) >= 0.5).astype(np.uint8)
    keep[0], keep[1] = 1, 0
    return x, keep


def test_layer_structure(layers):
    ir, _ = layers
    kinds = [(l.op, l.pad != (0, 0), l.pool, ir.site_of(i) is not None)
             for i, l in enumerate(ir.layers)]
    assert kinds == [("conv", True, 1, False), ("conv", True, 2, True),
                     ("linear", False, 1, True), ("linear", False, 1, True)]
    assert ir.layers[2].kernel == (3, 3)       # flatten-fed: the whole 3x3 map is its kernel
    assert len(ir.layers[2].row_tiles) > 1 and len(ir.layers[2].col_tiles) > 1


@pytest.mark.parametrize("simulator", ["icarus", "verilator"], indirect=True)
@pytest.mark.parametrize("i", [0, 1, 2, 3])
def test_layer_bit_exact(layers, simulator, i, tmp_path):
    ir, d = layers
    x, keep = cases(ir, i, seed=7)
    res = runner.run_layer(d, i, simulator, x, keep, regression.build_root(), tmp_path, d / "ir.json")
    golden = run_layer(ir, i, x, keep)
    assert res["mismatches"] == 0 and res["ok"] and not res["write_count_errors"], res
    assert res["compared"] == golden.size and res["cases"] == CASES
    assert (np.array(res["observed"]) == golden).all()
    # not vacuous: the outputs vary, and the keep bits matter
    assert len(np.unique(golden)) > 1
    if keep is not None:
        assert (run_layer(ir, i, x, None) != golden).any()


def _planted(ir, i, d, kind, golden):
    """The checker's IR with one threshold (of golden's busiest channel, now all 0) or one
    weight bit (class 0, row 0) changed."""
    layer = ir.layers[i]
    if kind == "thresh":
        j = int(golden.sum(axis=(0, 2, 3)).argmax())
        # out = sign*acc >= thresh; above every reachable acc the channel is all 0
        thresh = list(layer.thresh)
        thresh[j] = layer.rows + 1
        bad = replace(layer, thresh=tuple(thresh))
    else:
        w = bytearray(bytes.fromhex(layer.weights[0]))
        w[0] ^= 1
        bad = replace(layer, weights=(w.hex(),) + layer.weights[1:])
    bad_ir = replace(ir, layers=ir.layers[:i] + (bad,) + ir.layers[i + 1:])
    path = d / f"bad_{kind}_{i}.json"
    path.write_text(dumps(bad_ir))
    return bad_ir, path


@pytest.mark.parametrize("i,kind", [(1, "thresh"), (2, "thresh"), (3, "weight")])
def test_planted_fault_is_caught(layers, i, kind, tmp_path):
    ir, d = layers
    x, keep = cases(ir, i, seed=11)
    golden = run_layer(ir, i, x, keep)
    bad_ir, path = _planted(ir, i, tmp_path, kind, golden)
    want = int((run_layer(bad_ir, i, x, keep) != golden).sum())
    assert want > 0
    res = runner.run_layer(d, i, require_simulator("icarus"), x, keep, regression.build_root(), tmp_path / "run", path)
    assert res["mismatches"] == want and not res["ok"], res
    assert res["first_mismatch"] is not None


def test_export_layer_is_deterministic_and_checks_its_input(layers, tmp_path):
    ir, d = layers
    export_layer(reschedule(ir, LANES), 1, tmp_path)
    for name in layer_files(1):
        assert (tmp_path / name).read_bytes() == (d / name).read_bytes()
    with pytest.raises(HwgenError, match="out of range"):
        export_layer(ir, len(ir.layers), tmp_path)
    with pytest.raises(HwgenError, match="thresholds"):
        export_layer(replace(ir, layers=(replace(ir.layers[0], sign=None, thresh=None),)
                             + ir.layers[1:]), 0, tmp_path)


@pytest.mark.parametrize("i", [0, 1, 2, 3])
def test_layer_verilog_lints_clean(layers, i):
    require_tool("verilator")
    _, d = layers
    v, _, vlt = layer_files(i)
    r = subprocess.run(["verilator", "--lint-only", "-Wall", vlt, v], cwd=d,
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0 and "%Warning" not in r.stderr, r.stderr[:2000]


@pytest.mark.parametrize("simulator", ["icarus", "verilator"], indirect=True)
def test_multibit_first_layer_bit_exact(simulator, tmp_path):
    # signed-8 bit planes into a padded conv split over row tiles: 8 passes per window,
    # shift-added with the sign plane at -128
    ir = multibit_ir(SPEC, IN_SHAPE, "signed", 8, seed=5, tile=(4, 4))
    assert len(ir.layers[0].row_tiles) > 1
    d = tmp_path / "out"
    d.mkdir()
    (d / "ir.json").write_text(dumps(ir))
    export_layer(reschedule(ir, LANES), 0, d)
    rng = np.random.default_rng(3)
    x = rng.integers(0, 2, (CASES, 8, *IN_SHAPE), dtype=np.uint8)
    x[0] = 1                                   # q = -1 everywhere
    x[1, :7], x[1, 7] = 0, 1                   # q = -128 everywhere: the bound
    res = runner.run_layer(d, 0, simulator, x, None, regression.build_root(), tmp_path / "run",
                           d / "ir.json")
    golden = run_layer(ir, 0, x)
    assert res["mismatches"] == 0 and res["ok"] and not res["write_count_errors"], res
    assert 0 < golden.mean() < 1


# strides: a stride-2 padded first conv with a pool 3, then a conv with a gapped pool
# (2, stride 3), whose windows outside every block are not read (overlapping pools are
# refused by the hardware backend)
STRIDED_SPEC, STRIDED_SHAPE = "c3s2,p3,c4,p2s3,f6,f5", (1, 30, 30)


@pytest.fixture(scope="session")
def strided_layers(tmp_path_factory):
    d = tmp_path_factory.mktemp("strided_layers")
    ir = random_ir(STRIDED_SPEC, STRIDED_SHAPE, tile=(16, 4), seed=19)
    (d / "ir.json").write_text(dumps(ir))
    for i in range(2):
        export_layer(reschedule(ir, LANES), i, d)
    return ir, d


@pytest.mark.parametrize("simulator", ["icarus", "verilator"], indirect=True)
@pytest.mark.parametrize("i", [0, 1])
def test_strided_layer_bit_exact(strided_layers, simulator, i, tmp_path):
    ir, d = strided_layers
    l0, l1 = ir.layers[:2]
    assert (l0.stride, l0.pool, l0.pool_step, l0.out_shape) == ((2, 2), 3, 3, (3, 5, 5))
    assert (l1.stride, l1.pool, l1.pool_stride, l1.out_shape) == ((1, 1), 2, 3, (4, 2, 2))
    x, keep = cases(ir, i, seed=8)
    res = runner.run_layer(d, i, simulator, x, keep, regression.build_root(), tmp_path, d / "ir.json")
    golden = run_layer(ir, i, x, keep)
    assert res["mismatches"] == 0 and res["ok"] and not res["write_count_errors"], res
    assert res["compared"] == golden.size and res["cases"] == CASES
    assert (np.array(res["observed"]) == golden).all()
    # not vacuous: an OR over 9 windows saturates easily, but some channel varies
    assert any(0 < golden[:, j].mean() < 1 for j in range(golden.shape[1]))
