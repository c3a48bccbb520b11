"""`hwgen compile model.pt|model.onnx -o OUTDIR [--tile RxC]`: a model -> verified IR (+ Verilog).

A binary QONNX graph (a `.onnx` name or ONNX's leading protobuf byte) goes through
hwgen.frontend.qonnx instead; `--dropout {spatial,element} --p P [--sites 1,2,..]` adds MC
dropout sites to it (hwgen.passes.add_sites), and check.json is the comparison of the
integer golden model with the graph's own runtime (hwgen.frontend.qonnx_check) on seeded images.

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
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .atomic import atomic_dir, check_output_dir
from .design import write_manifest
from .errors import HwgenError
from .frontend import build_ir, load_model
from .model.agreement import float_vs_int
from .ir.core import IR, dumps
from .ir.dump import dump
from .model.io import build_model
from .passes import PassConfig, parse_tile, run_pipeline

__all__ = ["cmd_compile", "compile_model", "check_images", "check_masks", "CHECK_SAMPLES"]

log = logging.getLogger(__name__)

CHECK_SAMPLES = 4     # MC samples per check image
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
    """Seeded keep masks, one [n, t, n_groups] uint8 array per site (1 = keep)."""
    rng = np.random.default_rng(seed)
    return [(rng.random((n, t, s.n_groups)) >= s.p).astype(np.uint8) for s in ir.sites]


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


def _parse_sites(sites):
    if sites is None or isinstance(sites, (list, tuple)):
        return sites
    try:
        return [int(v) for v in str(sites).split(",")]
    except ValueError:
        raise HwgenError(f"--sites must be a comma list of layer indices, not {sites!r}") from None


def compile_model(model_path, outdir, tile="128x128", lanes: int = 8, n_check: int = 64,
                  verilog: bool = True, dropout: str | None = None, p: float = 0.2,
                  sites=None, timings: dict | None = None) -> dict:
    """Compile model.pt or a binary QONNX model into `outdir` (atomically); return the
    manifest. dropout/p/sites add MC dropout sites to an ONNX model (hwgen.passes.add_sites).

    timings: if given, filled with the seconds of each stage (`hwgen bench sim`): ir_s
    (load, frontend and passes), float_check_s (or the qonnx check), export_s (Verilog and
    ports) and total_s.
    """
    timings = {} if timings is None else timings
    t0 = time.perf_counter()
    rc = parse_tile(tile)
    outdir = Path(outdir)
    check_output_dir(outdir, inputs=(model_path,))     # before any work: refused, nothing made
    if sites is not None and dropout is None:
        raise HwgenError("--sites needs --dropout {spatial,element}")
    if is_onnx(model_path):
        return _compile_onnx(model_path, outdir, rc, lanes, n_check, verilog, dropout, p,
                             _parse_sites(sites), t0, timings)
    if dropout is not None:
        raise HwgenError("--dropout applies to an ONNX model; model.pt carries its own "
                         "dropout sites")
    ckpt, sha = load_model(model_path)
    ir = run_pipeline(build_ir(ckpt, sha), PassConfig(tile=rc))
    timings["ir_s"] = time.perf_counter() - t0
    log.info("IR: %d layers, %d dropout sites, %d MTJ interfaces, tile %dx%d (%.2f s)",
             len(ir.layers), len(ir.sites), ir.n_interfaces, rc[0], rc[1],
             time.perf_counter() - t0)
    check = None
    t1 = time.perf_counter()
    if n_check > 0:
        images, source = check_images(ir, n_check)
        masks = check_masks(ir, len(images), CHECK_SAMPLES)
        check = float_vs_int(build_model(ckpt), ir, images, masks)
        check["image_source"] = source
        log.info("float vs integer on %d images x %d samples (%s): bit agreement %.6f, "
                 "tie rate %.2e (%d ties), sample agreement %.6f, prediction agreement %.4f",
                 check["images"], check["samples"], source, check["bit_agreement"],
                 check["tie_rate"], check["ties"], check["sample_agreement"],
                 check["prediction_agreement"])
        if not check["ok"]:
            raise HwgenError(f"float-vs-integer check failed: {check['non_tie_disagree']} "
                             f"disagreements that are not ties")
    timings["float_check_s"] = time.perf_counter() - t1
    options = {"tile": list(rc), "lanes": int(lanes), "check_images": int(n_check),
               "check_samples": CHECK_SAMPLES, "verilog": bool(verilog)}
    try:
        manifest = _write(ir, check, outdir, options, verilog, lanes, Path(model_path).name, sha,
                          timings, model_file=model_path)
    except OSError as e:
        raise HwgenError(f"writing {outdir} failed: {e}") from None
    timings["total_s"] = time.perf_counter() - t0
    log.info("wrote %s (%d files) in %.2f s", outdir, len(manifest["files"]) + 1,
             timings["total_s"])
    return manifest


def _compile_onnx(model_path, outdir, rc, lanes, n_check, verilog, dropout, p, sites, t0,
                  timings) -> dict:
    from .frontend.qonnx import import_qonnx
    from .passes import add_sites
    from .frontend.qonnx_check import check_inputs, qonnx_vs_int

    ir = import_qonnx(model_path)
    sha = ir.meta.model_sha256
    if dropout is not None:
        ir = add_sites(ir, dropout, p, sites)
    ir = run_pipeline(ir, PassConfig(tile=rc))
    timings["ir_s"] = time.perf_counter() - t0
    imp = dict(ir.meta.report)
    log.info("IR: %d layers (imported: %d channels folded, %d constant, %d near-ties), "
             "%d dropout sites, %d MTJ interfaces, tile %dx%d (%.2f s)", len(ir.layers),
             imp["channels_checked"], imp["constant_channels"], imp["near_ties"],
             len(ir.sites), ir.n_interfaces, rc[0], rc[1], time.perf_counter() - t0)
    check = None
    t1 = time.perf_counter()
    if n_check > 0:
        images = check_inputs(ir, n_check, CHECK_SEED)
        check = qonnx_vs_int(ir, model_path, images)     # the graph as it is, looped
        check["image_source"] = f"uniform and theta-edge pixels, seed {CHECK_SEED}"
        log.info("integer vs qonnx execute_onnx on %d images: %d class-integer and %d "
                 "prediction mismatches, %d argmax ties", check["images"],
                 check["class_integer_mismatches"], check["prediction_mismatches"],
                 check["argmax_ties_class_integers"])
        if not check["ok"]:
            raise HwgenError(f"integer-vs-qonnx check failed: {check['class_integer_mismatches']} "
                             f"of {check['images']} images differ in their class integers, "
                             f"{check['prediction_mismatches']} in their predictions")
    timings["float_check_s"] = time.perf_counter() - t1
    options = {"tile": list(rc), "lanes": int(lanes), "check_images": int(n_check),
               "verilog": bool(verilog),
               "dropout": None if dropout is None else
               {"kind": dropout, "p": float(p), "sites": [s.layer for s in ir.sites]}}
    tools = {k: _version(k) for k in ("onnx", "onnxruntime", "qonnx")}
    try:
        manifest = _write(ir, check, outdir, options, verilog, lanes, Path(model_path).name, sha,
                          timings, tools, model_file=model_path)
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


def _write(ir, check, outdir, options, verilog, lanes, model_name, sha, timings,
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
            export(ir, tmp, lanes=lanes)
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


def cmd_compile(args) -> int:
    outdir = Path(args.output) if args.output else default_outdir(args.model)
    p = getattr(args, "p", None)
    compile_model(args.model, outdir, tile=args.tile, lanes=args.lanes,
                  n_check=args.check_images, verilog=not args.no_verilog,
                  dropout=getattr(args, "dropout", None), p=0.2 if p is None else p,
                  sites=getattr(args, "sites", None))
    return 0
