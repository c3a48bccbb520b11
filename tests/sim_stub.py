"""The hand-written stub `hwgen_top` (tests/fixtures/stub_top) and its IR, for testing the
cocotb plumbing independently of the generated hardware. The network: 4 input bits ->
linear 3 (thresholded) -> spatial dropout site (3 MTJ interfaces) -> linear 2 classes."""

import shutil
from pathlib import Path

import numpy as np

from hwgen.device import MtjParams
from hwgen.ir.core import IR, Layer, Meta, Site, dumps, pack_rows

STUB_DIR = Path(__file__).parent / "fixtures" / "stub_top"
W0 = np.array([[1, 0, 1, 1], [0, 1, 1, 0], [1, 1, 1, 1]], np.uint8)   # = the Verilog's W00..W02
W1 = np.array([[1, 0, 1], [0, 1, 1]], np.uint8)                       # = W10, W11


def stub_ir(dataset: str | None = None) -> IR:
    code, p = MtjParams().choose_code(0.3, 20.0)
    assert code == 611     # the code the stub drives on mtj_code
    return IR(in_shape=(4, 1, 1), input_mode="binary", theta=0.5,
              layers=(Layer(op="linear", in_shape=(4, 1, 1), out_channels=3, kernel=(1, 1),
                            pad=(0, 0), pool=1, weights=pack_rows(W0), sign=(1, -1, 1),
                            thresh=(0, 2, -2)),
                      Layer(op="linear", in_shape=(3, 1, 1), out_channels=2, kernel=(1, 1),
                            pad=(0, 0), pool=1, weights=pack_rows(W1),
                            logit_scale=(1.0, 1.0), logit_bias=(0.0, 0.0))),
              sites=(Site(layer=1, kind="spatial", p=0.3, n_groups=3, group_rows=1,
                          first_interface=0, mtj_code=code, p_realised=p),),
              meta=Meta(source="random", dataset=dataset))


def stub_outdir(path: Path) -> Path:
    """An OUTDIR with the stub's Verilog, ports.json and IR."""
    path.mkdir(parents=True, exist_ok=True)
    for f in ("hwgen_top.v", "ports.json"):
        shutil.copy(STUB_DIR / f, path / f)
    (path / "ir.json").write_text(dumps(stub_ir()))
    return path
