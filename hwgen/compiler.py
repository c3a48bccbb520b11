"""`hwgen compile model.pt|model.onnx -o OUTDIR [--tile RxC]`: a model -> verified IR (+ Verilog).

A binary QONNX graph (a `.onnx` name or ONNX's leading protobuf byte) goes through
hwgen.frontend.qonnx instead; `--dropout {spatial,element} --p P [--sites 1,2,..]` adds MC
dropout sites to it (hwgen.passes.add_sites), and check.json is the comparison of the
integer golden model with the graph's own runtime (hwgen.frontend.qonnx.check) on seeded images.

OUTDIR is written atomically and deterministically (no timestamps, no absolute paths):
  model.pt|.onnx the compiled model itself (its sha256 is the manifest's input hash): the
                 RTL regression checks the hardware against it directly
  ir.json        the IR (hwgen.ir.core.dumps)
  ir.txt         its text dump (hwgen.ir.dump)
  check.json     the float-vs-integer check (hwgen.model.agreement), when --check-images > 0
  ...            the Verilog and ports.json (hwgen.export)
  manifest.json  input hash, options, tool versions and the sha256 of every other file
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import __version__
from .atomic import atomic_dir, check_output_dir
from .config import DEFAULT, CompileConfig
from .design import write_manifest
from .errors import HwgenError
from .frontend import build_ir, load_model
from .model.agreement import float_vs_int
from .ir.core import IR, dumps
from .ir.dump import dump
from .model.io import build_model
from .ir.masks import site_masks
from .passes import PassConfig, run_pipeline

__all__ = ["compile_model", "config_from_args", "check_images", "check_masks",
           "CHECK_SAMPLES", "FRONTENDS", "Frontend", "frontend_of"]

log = logging.getLogger(__name__)

CHECK_SAMPLES = DEFAULT.check_samples     # MC samples per check image
CHECK_SEED = 0        # keep masks and (if needed) stand-in images


def check_images(ir: IR, n: int) -> tuple[torch.Tensor, str]:
    """The first n test images of the model's dataset, or seeded uniform images when the
    dataset is unknown or its images do not fit the model's input (e.g. a test model)."""
    from .data import IN_SHAPE, first_test_images
    ds = ir.meta.dataset
    if tuple(IN_SHAPE.get(ds, ())) == tuple(ir.in_shape):
        x, _ = first_test_images(ds, n, ir.in_shape)
        return torch.from_numpy(x), f"{ds} test[:{len(x)}]"
    log.warning("dataset %r does not fit input %s: checking on seeded uniform images", ds,
                tuple(ir.in_shape))
    g = torch.Generator().manual_seed(CHECK_SEED)
    return torch.rand((n,) + tuple(ir.in_shape), generator=g), f"uniform seed {CHECK_SEED}"


def check_masks(ir: IR, n: int, t: int, seed: int = CHECK_SEED) -> list[np.ndarray]:
    """Seeded keep masks, one [n, t, n_groups] uint8 array per site (1 = keep), at each
    site's realised p (hwgen.ir.masks, the one drawer)."""
    return site_masks(ir, n, t, seed)


def _tool_versions() -> dict:
    out = {"hwgen": __version__, "numpy": np.__version__, "torch": str(torch.__version__)}
    try:
        out["amaranth"] = version("amaranth")
    except PackageNotFoundError:
        out["amaranth"] = None
    return out


def is_onnx(path) -> bool:
    """An ONNX model: a .onnx name, or a file starting with ONNX's first protobuf field
    (ir_version, tag byte 0x08); model.pt files are zip or pickle."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return True
    try:
        with open(path, "rb") as f:
            return f.read(1) == b"\x08"
    except OSError:
        return False


@dataclass(frozen=True)
class Frontend:
    """One way into the IR. `load(path, config)` -> (pre-pipeline IR with its dropout sites,
    the model's sha256, the loaded model the check runs: a checkpoint, or the graph's
    path); `check(ir, model, config)` -> the compile check's report (with `ok`); `fail(report)` -> the one-line reason a failed check gives;
    `tools()` -> the tool versions it adds to the manifest."""
    name: str
    load: Callable
    check: Callable
    fail: Callable
    tools: Callable


def _pt_load(path, cfg: CompileConfig):
    if cfg.dropout is not None:
        raise HwgenError("--dropout applies to an ONNX model; model.pt carries its own "
                         "dropout sites")
    ckpt, sha = load_model(path)
    return build_ir(ckpt, sha), sha, ckpt


def _pt_check(ir: IR, ckpt, cfg: CompileConfig):
    images, source = check_images(ir, cfg.check_images)
    masks = check_masks(ir, len(images), cfg.check_samples)
    check = float_vs_int(build_model(ckpt), ir, images, masks)
    check["image_source"] = source
    log.info("float vs integer on %d images x %d samples (%s): bit agreement %.6f, "
             "tie rate %.2e (%d ties), sample agreement %.6f, prediction agreement %.4f",
             check["images"], check["samples"], source, check["bit_agreement"],
             check["tie_rate"], check["ties"], check["sample_agreement"],
             check["prediction_agreement"])
    return check


def _pt_fail(check) -> str:
    return (f"float-vs-integer check failed: {check['non_tie_disagree']} disagreements "
            f"that are not ties")


def _onnx_load(path, cfg: CompileConfig):
    from .frontend.qonnx import import_qonnx
    from .passes import add_sites
    ir = import_qonnx(path)
    if cfg.dropout is not None:
        ir = add_sites(ir, cfg.dropout, cfg.p, None if cfg.sites is None else list(cfg.sites))
    return ir, ir.meta.model_sha256, path


def _onnx_check(ir: IR, path, cfg: CompileConfig):
    from .frontend.qonnx import check_inputs, qonnx_vs_int
    imp = dict(ir.meta.report)
    log.info("imported: %d channels folded, %d constant, %d near-ties",
             imp["channels_checked"], imp["constant_channels"], imp["near_ties"])
    images = check_inputs(ir, cfg.check_images, CHECK_SEED)
    check = qonnx_vs_int(ir, path, images)     # the graph as it is, looped
    check["image_source"] = f"uniform and theta-edge pixels, seed {CHECK_SEED}"
    log.info("integer vs qonnx execute_onnx on %d images: %d class-integer and %d "
             "prediction mismatches, %d argmax ties", check["images"],
             check["class_integer_mismatches"], check["prediction_mismatches"],
             check["argmax_ties_class_integers"])
    return check


def _onnx_fail(check) -> str:
    return (f"integer-vs-qonnx check failed: {check['class_integer_mismatches']} of "
            f"{check['images']} images differ in their class integers, "
            f"{check['prediction_mismatches']} in their predictions")


#: The frontends, by the kind `frontend_of` gives a model file.
FRONTENDS = {
    "pt": Frontend("pt", _pt_load, _pt_check, _pt_fail, lambda: {}),
    "onnx": Frontend("onnx", _onnx_load, _onnx_check, _onnx_fail,
                     lambda: {k: _version(k) for k in ("onnx", "onnxruntime", "qonnx")}),
}


def frontend_of(path) -> Frontend:
    return FRONTENDS["onnx" if is_onnx(path) else "pt"]


def compile_model(model_path, outdir, config: CompileConfig | None = None, *,
                  timings: dict | None = None, **options) -> dict:
    """Compile model.pt or a binary QONNX model into `outdir` (atomically); return the
    manifest.

    Parameters
    ----------
    model_path : path of a model.pt of hwgen train or of a binary QONNX .onnx
    outdir : the folder to write (refused unless new, empty or an earlier hwgen output)
    config : CompileConfig, default `hwgen.config.DEFAULT`; `options` override its fields
        (e.g. ``lanes=4, check_images=0``)
    timings : if given, filled with the seconds of each stage (`hwgen bench sim`): ir_s
        (load, frontend and passes), float_check_s (the compile check), export_s (Verilog
        and ports) and total_s.
    """
    cfg = (config or DEFAULT).replace(**options)
    timings = {} if timings is None else timings
    t0 = time.perf_counter()
    outdir = Path(outdir)
    check_output_dir(outdir, inputs=(model_path,))     # before any work: refused, nothing made
    fe = frontend_of(model_path)
    ir, sha, model = fe.load(model_path, cfg)
    ir = run_pipeline(ir, PassConfig(tile=cfg.tile, lanes=cfg.lanes, row_splits=cfg.row_splits))
    timings["ir_s"] = time.perf_counter() - t0
    log.info("IR: %d layers, %d dropout sites, %d MTJ interfaces, tile %s (%.2f s)",
             len(ir.layers), len(ir.sites), ir.n_interfaces, cfg.tile_text,
             time.perf_counter() - t0)
    check = None
    t1 = time.perf_counter()
    if cfg.check_images > 0:
        check = fe.check(ir, model, cfg)
        if not check["ok"]:
            raise HwgenError(fe.fail(check))
    timings["float_check_s"] = time.perf_counter() - t1
    options = cfg.manifest_options([s.layer for s in ir.sites] if cfg.dropout else None)
    try:
        manifest = _write(ir, check, outdir, options, cfg.verilog,
                          Path(model_path).name, sha, timings, fe.tools(),
                          model_file=model_path)
    except OSError as e:
        raise HwgenError(f"writing {outdir} failed: {e}") from None
    timings["total_s"] = time.perf_counter() - t0
    log.info("wrote %s (%d files) in %.2f s", outdir, len(manifest["files"]) + 1,
             timings["total_s"])
    return manifest


def _version(name: str):
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _write(ir, check, outdir, options, verilog, model_name, sha, timings,
           tools=None, model_file=None) -> dict:
    with atomic_dir(outdir, inputs=(model_file,) if model_file is not None else ()) as tmp:
        if model_file is not None:
            # the model itself, so that `hwgen sim` can check the RTL against it directly
            data = Path(model_file).read_bytes()
            if hashlib.sha256(data).hexdigest() != sha:
                raise HwgenError(f"{model_file} changed while it was being compiled")
            (tmp / ("model.onnx" if is_onnx(model_file) else "model.pt")).write_bytes(data)
        (tmp / "ir.json").write_text(dumps(ir))
        (tmp / "ir.txt").write_text(dump(ir))
        if check is not None:
            (tmp / "check.json").write_text(json.dumps(check, sort_keys=True, indent=1) + "\n")
        if verilog:
            from .export import export      # amaranth, imported only when Verilog is asked for
            t0 = time.perf_counter()
            export(ir, tmp)
            timings["export_s"] = time.perf_counter() - t0
        manifest = write_manifest(tmp, model_name, sha, options,
                                  {**_tool_versions(), **(tools or {})})
    return manifest


def default_outdir(model) -> Path:
    """rtl_out/<folder>-<stem>: the model's folder is in the name, so that two model.onnx
    files of different folders do not compile into the same OUTDIR."""
    path = Path(model).resolve()
    folder = path.parent.name
    return Path("rtl_out") / (f"{folder}-{path.stem}" if folder else path.stem)


def config_from_args(args) -> CompileConfig:
    """The CompileConfig of `hwgen compile`'s (or a bench's) options; unset ones keep the
    defaults."""
    given = {"tile": getattr(args, "tile", None), "lanes": getattr(args, "lanes", None),
             "row_splits": getattr(args, "row_splits", None),
             "check_images": getattr(args, "check_images", None),
             "dropout": getattr(args, "dropout", None), "p": getattr(args, "p", None),
             "sites": getattr(args, "sites", None)}
    if getattr(args, "no_verilog", False):
        given["verilog"] = False
    return DEFAULT.replace(**{k: v for k, v in given.items() if v is not None})
