"""hwgen's Python API, in the shape hls4ml users know (README "Python API").

    import hwgen
    design = hwgen.compile("model.onnx", dropout="spatial", p=0.2)
    y = design.predict(x, samples=16, seed=0)      # .prediction .probs .entropy ...
    design.write("out/")                           # the folder `hwgen compile` writes
    design = hwgen.load("out/")                    # read and verified
    rep = design.simulate(simulator="verilator", inputs=x, samples=4)
    design.cost(samples=16); design.summary()

`compile` takes a path (model.pt of hwgen train, or a binary QONNX .onnx) or a torch module:
hwgen's `BinaryNet`, or a Brevitas model together with an `example_input` (it is exported
with Brevitas' `export_qonnx`, as a user would). Without `outdir` the design lives in a
private temporary folder that is removed when the Design is garbage-collected; `write`
copies it. Every method is a thin shell over what the command of the same name runs.

Only `hwgen.config` and `hwgen.design` are imported here: torch and amaranth load when a
call needs them.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path

from dataclasses import dataclass, fields

from . import design as _design
from .atomic import MANIFEST
from .config import CompileConfig
from .errors import HwgenError

__all__ = ["compile", "load", "Design", "CompileConfig"]


@dataclass(frozen=True)
class Design(_design.Design):
    """A compiled, verified folder (`hwgen.design.Design`: `.outdir .ir .options .lanes
    .files .manifest`) with the API's methods, each a thin shell over its command's
    library code."""

    def predict(self, x, samples: int = 16, seed: int = 0):
        """Golden MC inference on float images `x` ([N, C, H, W], or [N, F] / [N, H, W] as
        `hwgen predict --inputs` takes them): a `hwgen.predict.Prediction`."""
        from .data import as_inputs
        from .predict import Prediction, predict
        return Prediction.of(predict(self.ir, as_inputs(x, self.ir.in_shape), samples, seed))

    def simulate(self, simulator: str = "verilator", inputs=None, images: int | None = None,
                 samples: int = 4, seed: int = 0, jobs: int = 1, progress: bool = False) -> dict:
        """The cocotb regression of the RTL against the golden model (`hwgen sim`'s
        report): on `inputs` (float images, or a .npy path) or the model's test images."""
        import tempfile

        import numpy as np

        from .sim.regression import run_regression
        if inputs is None or isinstance(inputs, (str, Path)):
            n = images if images is not None else 10
            return run_regression(self.outdir, simulator, n, samples, seed, jobs=jobs,
                                  progress=progress, inputs=inputs)
        from .data import as_inputs
        x = as_inputs(inputs, self.ir.in_shape)
        with tempfile.TemporaryDirectory(prefix="hwgen-inputs-") as tmp:
            np.save(Path(tmp) / "x.npy", x)
            return run_regression(self.outdir, simulator, len(x) if images is None else images,
                                  samples, seed, jobs=jobs, progress=progress,
                                  inputs=Path(tmp) / "x.npy")

    def cost(self, samples: int = 16) -> dict:
        """The cost model's report (`hwgen report`): modules, draws, reads, cycles, energy."""
        from .cost.model import cost
        return cost(self.ir, samples)

    def summary(self) -> dict:
        """The per-layer summary (`hwgen summary`)."""
        from .summary import summarize
        return summarize(self.ir)

    def write(self, outdir) -> "Design":
        """Copy the compiled folder to `outdir` (the same rules as `hwgen compile -o`: a new
        or empty folder, or an earlier hwgen output; written atomically) and return the
        design there."""
        import shutil

        from .atomic import atomic_dir
        outdir = Path(outdir)
        if outdir.resolve() == self.outdir.resolve():
            return self
        with atomic_dir(outdir, inputs=()) as tmp:
            for name in sorted(self.files) + [MANIFEST]:
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.outdir / name, tmp / name)
        return load(outdir)


def load(outdir) -> Design:
    """The compiled design in `outdir`, every file checked against its manifest and the IR
    verified (`hwgen.design.load_design`)."""
    d = _design.load_design(outdir)
    return Design(**{f.name: getattr(d, f.name) for f in fields(d)})


def _model_file(model, folder: Path, example_input) -> Path:
    """A path for `model`: the path itself, or the module saved into `folder`."""
    if isinstance(model, (str, Path)):
        return Path(model)
    import torch

    from .model.net import BinaryNet
    if isinstance(model, BinaryNet):
        from .model.io import save_model
        path = folder / "model.pt"
        save_model(path, model, {"dataset": None, "dropout": model.kind, "p": model.p,
                                 "seed": None})
        return path
    if isinstance(model, torch.nn.Module):
        if example_input is None:
            raise HwgenError("a torch module other than hwgen's BinaryNet (e.g. a Brevitas "
                             "model) needs example_input= to be exported to QONNX")
        try:
            from brevitas.export import export_qonnx
        except ImportError:
            raise HwgenError("exporting a torch module needs brevitas (pip install "
                             "brevitas)") from None
        path = folder / "model.onnx"
        was_training = model.training
        model.eval()
        try:
            export_qonnx(model, input_t=torch.as_tensor(example_input), export_path=str(path))
        finally:
            model.train(was_training)
        return path
    raise HwgenError(f"compile takes a model path or a torch module, not "
                     f"{type(model).__name__}")


def compile(model, outdir=None, *, config: CompileConfig | None = None, example_input=None,
            **options) -> Design:
    """Compile `model` into a verified `Design`.

    Parameters
    ----------
    model : path of a model.pt or .onnx, hwgen's BinaryNet, or a Brevitas module
    outdir : folder to write (the same rules as `hwgen compile -o`); None: a private
        temporary folder, removed with the Design (use `Design.write` to keep it)
    config : CompileConfig, default `hwgen.config.DEFAULT`
    example_input : a Brevitas module's example input, for its QONNX export
    options : CompileConfig fields overriding `config` (tile, lanes, dropout, p, sites,
        check_images, check_samples, verilog)
    """
    from .compiler import compile_model
    tmp = Path(tempfile.mkdtemp(prefix="hwgen-"))
    try:
        src = _model_file(model, tmp, example_input)
        target = Path(outdir) if outdir is not None else tmp / "design"
        compile_model(src, target, config, **options)
        design = load(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if outdir is None:
        weakref.finalize(design, shutil.rmtree, tmp, True)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return design
