"""`hwgen sim OUTDIR --simulator {icarus,verilator} --images N --samples T --seed S`:
the network regression of the exported RTL against the golden interpreter.

The first N images of `--inputs X.npy`, or by default the first N test images of the
model's dataset (ir.meta.dataset), go through the RTL
with T MC samples each, the MTJ devices modelled in the bench; every class integer of
every sample must equal the golden model's, fed the masks the devices produced. The
device draws are counter-based per (device seed, global sample index), so a shard
(`--shard i/n`, images split into n contiguous ranges, i from 0) reproduces exactly its
part of the unsharded run, and shard reports merge into the report of the whole run
(`--merge`). `--jobs J` runs the shards of one machine in parallel and merges them.

Exit status: 0 when there are no mismatches, 1 on any mismatch (class integer or device
outcome), 2 on bad input. On a mismatch the first mismatching image is re-run alone with
waves on, and the waveform's path is printed and kept.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..atomic import check_output_file, sha256_file, write_text
from ..errors import HwgenError
from . import ports, runner, scoreboard, stats

__all__ = ["cmd_sim", "run_regression", "merge_reports", "parse_shard", "shard_range",
           "summary_line", "build_root", "load_outdir", "image_bits"]

log = logging.getLogger("hwgen.sim")

REPORT_FORMAT = "hwgen-sim-report"


def parse_shard(text: str | None) -> tuple[int, int]:
    """'i/n' -> (i, n), 0 <= i < n; None -> (0, 1)."""
    if text is None:
        return 0, 1
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise HwgenError(f"--shard must be i/n with integers, not {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise HwgenError(f"--shard i/n needs n >= 1 and 0 <= i < n, not {text!r}")
    return i, n


def shard_range(n_images: int, i: int, n: int) -> tuple[int, int]:
    """Contiguous image range [a, b) of shard i of n (sizes differ by at most one)."""
    a = (n_images * i) // n
    return a, (n_images * (i + 1)) // n


def build_root() -> Path:
    """Where simulator builds are cached (by content hash): $HWGEN_SIM_BUILD or
    ~/.cache/hwgen/sim."""
    env = os.environ.get("HWGEN_SIM_BUILD")
    return Path(env) if env else Path.home() / ".cache" / "hwgen" / "sim"


def _sha(path: Path) -> str:
    return sha256_file(path)


def load_outdir(outdir, ir_path=None):
    """(IR, TopPorts) of a compiled OUTDIR, checked (hwgen.design.load_design: every file's
    hash against the manifest, the IR verified); HwgenError naming the first problem.
    `ir_path` replaces the checker's IR (to plant a fault in the checker only)."""
    from ..design import load_design
    from ..ir.core import loads
    design = load_design(outdir)
    ir = design.ir
    for name in ("ports.json", "hwgen_top.v"):
        design.path(name)                   # listed, hence present and unedited
    if ir_path is not None:
        irp = Path(ir_path)
        try:
            ir = loads(irp.read_text())
        except (ValueError, TypeError, KeyError) as e:
            raise HwgenError(f"{irp}: bad IR ({e})") from None
    try:
        tp = ports.load_ports(design.path("ports.json"))
    except (ValueError, KeyError, TypeError) as e:
        raise HwgenError(f"{design.path('ports.json')}: {e}") from None
    if tp.n_if != ir.n_interfaces or tp.classes != ir.n_classes:
        raise HwgenError(f"{outdir}: ports.json (N_IF {tp.n_if}, classes {tp.classes}) does "
                         f"not match ir.json ({ir.n_interfaces}, {ir.n_classes})")
    return ir, tp


def image_bits(ir, n: int, inputs=None) -> tuple[np.ndarray, np.ndarray, str]:
    """The regression's images as flat input bits [n, P*C*H*W] (the `img` port's order:
    plane-major, then (c, y, x); P = 1 for binary input), their indices, and where they
    come from: the first n of `inputs` (a .npy file) if given, else the
    first n test images of the IR's dataset."""
    return _images(ir, n, inputs)[1:]


def _images(ir, n: int, inputs=None):
    """(float images, flat input bits, indices, source) of the regression."""
    from ..data import first_test_images, load_inputs
    from ..ir.interp import input_bits
    if inputs is not None:
        x, source = load_inputs(inputs, ir.in_shape, n), Path(inputs).name
    else:
        x, source = first_test_images(ir.meta.dataset, n, ir.in_shape)[0], ir.meta.dataset
    return x, input_bits(ir, x).reshape(n, -1), np.arange(n), source


def run_regression(outdir, simulator: str = "verilator", images: int = 10, samples: int = 4,
                   seed: int = 0, shard: tuple[int, int] = (0, 1), jobs: int = 1,
                   progress: bool = True, waves_on_mismatch: bool = True,
                   ir_path=None, scoreboard_seeds=None, scoreboard_interface_swap=None,
                   keep_runs: bool = False, with_stats: bool = True, inputs=None,
                   reference_model=None) -> dict:
    """Run the network regression (one shard, or `jobs` local shards merged); return the
    report. Images: the first `images` of the .npy file `inputs`, else of the IR's
    dataset. Besides the golden model, the RTL's class integers are checked against the
    model OUTDIR was compiled from (see `reference_check`); `reference_model` overrides
    that file (to show the check catching a planted fault). The scoreboard_* and ir_path
    arguments plant faults in the checker only."""
    from tqdm import tqdm

    from ..device import device_seeds
    outdir = Path(outdir).resolve()
    ir, tp = load_outdir(outdir, ir_path)
    if samples >= 1 << 16:
        raise HwgenError(f"--samples must be < 65536 (a 16-bit port), not {samples}")
    x, bits, index, ds = _images(ir, images, inputs)
    ref_model = _reference_model(outdir, reference_model)
    seeds = device_seeds(seed, ir.n_interfaces)
    root = build_root()
    if simulator == "verilator":
        runner.ensure_verilator_on_path()
    try:
        bdir = runner.build(outdir, simulator, root)
    except runner.RunFailed as e:
        raise HwgenError(str(e)) from None

    i0, n0 = shard
    a, b = shard_range(images, i0, n0)
    parts = [(a + (b - a) * j // jobs, a + (b - a) * (j + 1) // jobs) for j in range(jobs)]
    parts = [p for p in parts if p[1] > p[0]] or [(a, a)]
    bar = tqdm(total=b - a, unit="img", desc=f"sim {simulator}", disable=not progress,
               dynamic_ncols=True)
    lock = threading.Lock()

    def tick(k):
        with lock:
            bar.update(k)

    runs = root / "runs"
    runs.mkdir(parents=True, exist_ok=True)

    def one(part):
        pa, pb = part
        rdir = Path(tempfile.mkdtemp(prefix=f"{simulator}-{pa}-{pb}-", dir=runs))
        res = runner.run_network(
            outdir, simulator, bits[pa:pb], index[pa:pb], samples, seeds, pa * samples, bdir,
            rdir, ir_path=ir_path, scoreboard_seeds=scoreboard_seeds,
            scoreboard_interface_swap=scoreboard_interface_swap, on_progress=tick)
        ref = reference_check(ir, ref_model, x[pa:pb], res["record"], samples)
        return _report(ir, outdir, simulator, seed, samples, (pa, pb), res, ds, with_stats,
                       ref), rdir

    try:
        if len(parts) == 1:
            results = [one(parts[0])] if b > a else []
        else:
            with ThreadPoolExecutor(len(parts)) as pool:
                results = list(pool.map(one, parts))
    except runner.RunFailed as e:
        raise HwgenError(str(e).splitlines()[0]) from None
    finally:
        bar.close()
    reports = [r for r, _ in results]
    report = merge_reports(reports) if len(reports) != 1 else reports[0]
    report["shard"] = [i0, n0]
    if keep_runs:        # each holds record.npz (class integers, device history), image order
        report["runs"] = [str(rdir) for _, rdir in results]
    else:
        for _, rdir in results:
            shutil.rmtree(rdir, ignore_errors=True)
    if not report["ok"] and waves_on_mismatch:
        report["waveform"] = _waves(outdir, simulator, ir, report, bits, index, samples, seeds,
                                    root, ir_path, scoreboard_seeds, scoreboard_interface_swap)
    return report


def _report(ir, outdir: Path, simulator, seed, samples, rng, res, ds, with_stats,
            reference=None) -> dict:
    rep = {
        "format": REPORT_FORMAT, "version": 1, "simulator": simulator, "outdir": str(outdir),
        "verilog_sha256": _sha(outdir / "hwgen_top.v"), "ir_sha256": _sha(outdir / "ir.json"),
        "dataset": ds, "seed": seed, "samples": samples, "image_range": list(rng),
        "images": res["images"], "mc_samples": res["samples"],
        "mismatches": res["mismatches"], "mismatched_samples": res["mismatched_samples"],
        "device_mismatches": res["device_mismatches"],
        "first_mismatch": res["first_mismatch"],
        "first_device_mismatch": res["first_device_mismatch"],
        "cycles_per_image": res["cycles_per_image"], "cycles_per_sample": res["cycles_per_sample"],
        "sim_wall_s": res["sim_wall_s"], "sim_cpu_s": res.get("sim_cpu_s"),
        "process_wall_s": res["wall_s"],
        "write_pulse_ns": res["write_pulse_ns"], "waveform": None, "reference": reference,
    }
    if with_stats and ir.n_interfaces and res.get("record"):
        ap = np.load(res["record"])["ap"]
        rep["sites"] = stats.site_stats(ir, ap)
        st = stats.interface_stats(ap, scoreboard.interface_p(ir))
        rep["independence"] = {k: st[k] for k in (
            "draws", "interfaces", "rate_failures", "outside_999", "max_pair_r", "pair_bound",
            "max_lag1_r", "lag1_bound", "ok")}
    return _finish(rep)


def _finish(rep: dict) -> dict:
    rep["sim_samples_per_s"] = rep["mc_samples"] / rep["sim_wall_s"] if rep["sim_wall_s"] else None
    # CPU seconds of the simulator process over the same span: the rate that other load on
    # a shared machine disturbs least
    cpu = rep.get("sim_cpu_s")
    rep["sim_samples_per_cpu_s"] = rep["mc_samples"] / cpu if cpu else None
    ref = rep.get("reference") or {}
    rep["ok"] = (rep["mismatches"] == 0 and rep["device_mismatches"] == 0
                 and ref.get("ok", True) is not False)
    return rep


MODEL_FILES = ("model.pt", "model.onnx")     # the compiled model, copied into OUTDIR


def _reference_model(outdir: Path, override=None) -> Path | None:
    """The model OUTDIR was compiled from (its copy, checked against the manifest's hash),
    or `override`; None when OUTDIR holds no model (e.g. an IR made in a test)."""
    if override is not None:
        return Path(override)
    for name in MODEL_FILES:
        path = outdir / name
        if path.is_file():
            man = outdir / "manifest.json"
            want = json.loads(man.read_text())["input"]["sha256"] if man.is_file() else None
            if want is not None and _sha(path) != want:
                raise HwgenError(f"{path}: its sha256 differs from the manifest's input")
            return path
    return None


def reference_check(ir, model_path, images, record, samples: int) -> dict:
    """The RTL's class integers, sample by sample, against the model itself (DESIGN
    10.5/10.6): a hwgen model.pt runs in torch in MC mode with the keep masks the devices
    produced (hwgen.model.agreement, ties counted and allowed); a QONNX model, when it has no
    sites added after training, runs in qonnx's execute_onnx (class integers exact).
    Returns the JSON section; its "ok" is False on any disagreement that is not a tie."""
    if model_path is None:
        return {"kind": None, "reason": "OUTDIR holds no model file", "ok": None}
    from ..ir.core import masks_from_ap
    rec = np.load(record)
    observed = rec["observed"]
    n = len(observed)
    if n == 0:
        return {"kind": None, "reason": "no images", "ok": None}
    if Path(model_path).suffix == ".onnx" or ir.meta.source == "qonnx":
        if ir.sites:
            return {"kind": "qonnx", "ok": None,
                    "reason": "dropout sites were added after training: the graph has none"}
        from ..frontend.qonnx_check import qonnx_vs_int
        r = qonnx_vs_int(ir, model_path, images, batch=min(n, 64), reference=observed)
        return {"kind": "qonnx", "samples": r["samples"],
                "sample_mismatches": r["sample_mismatches"], "samples_with_tie": 0,
                "prediction_mismatches": r["prediction_mismatches"], "ok": r["ok"]}
    import torch

    from ..model.agreement import float_vs_int
    from ..model.io import build_model, load_checkpoint
    model = build_model(load_checkpoint(model_path))
    masks = masks_from_ap(ir, rec["ap"], n, samples) if ir.n_interfaces else []
    with torch.no_grad():
        r = float_vs_int(model, ir, images, masks, reference=observed)
    total = n * samples
    return {"kind": "torch", "samples": total,
            "sample_mismatches": total - round(r["sample_agreement"] * total),
            "samples_with_tie": r["samples_with_tie"], "non_tie_disagree": r["non_tie_disagree"],
            "prediction_mismatches": n - round(r["prediction_agreement"] * n),
            "ok": r["ok"]}


def merge_reports(reports: list[dict]) -> dict:
    """Merge shard reports of one regression (same RTL, IR, seed and T, disjoint image
    ranges) into one: counts add up, the first mismatch is the earliest image's, cycles
    are image-weighted means, per-site drop counts are pooled and their 99.9% intervals
    recomputed. Correlation checks need the raw draws, so they stay per shard."""
    if not reports:
        raise HwgenError("no reports to merge")
    keys = ("verilog_sha256", "ir_sha256", "seed", "samples", "simulator")
    for r in reports:
        if r.get("format") != REPORT_FORMAT:
            raise HwgenError("not an hwgen sim report (format tag missing or wrong)")
        for k in keys:
            if r[k] != reports[0][k]:
                raise HwgenError(f"reports differ in {k}: {r[k]!r} vs {reports[0][k]!r}")
    reports = sorted(reports, key=lambda r: r["image_range"][0])
    for p, q in zip(reports, reports[1:]):
        if q["image_range"][0] < p["image_range"][1]:
            raise HwgenError(f"shard image ranges overlap: {p['image_range']} and {q['image_range']}")
    out = {k: reports[0][k] for k in keys + ("format", "version", "outdir", "dataset",
                                             "write_pulse_ns")}
    for k in ("images", "mc_samples", "mismatches", "mismatched_samples", "device_mismatches",
              "sim_wall_s", "process_wall_s"):
        out[k] = sum(r[k] for r in reports)
    out["image_ranges"] = [r["image_range"] for r in reports]
    cpus = [r.get("sim_cpu_s") for r in reports]
    out["sim_cpu_s"] = sum(cpus) if all(cpus) else None
    out["write_pulse_ns"] = sorted({w for r in reports for w in r["write_pulse_ns"]})
    for k in ("first_mismatch", "first_device_mismatch"):
        out[k] = next((r[k] for r in reports if r[k] is not None), None)
    n = out["images"]
    out["cycles_per_image"] = sum(r["cycles_per_image"] * r["images"] for r in reports) / n
    cps = [(r["cycles_per_sample"], r["images"]) for r in reports if r["cycles_per_sample"]]
    out["cycles_per_sample"] = (sum(c * w for c, w in cps) / sum(w for _, w in cps)) if cps else None
    out["waveform"] = next((r["waveform"] for r in reports if r.get("waveform")), None)
    if all(r.get("sites") for r in reports):
        from scipy.stats import binom
        sites = []
        for j, s0 in enumerate(reports[0]["sites"]):
            draws = sum(r["sites"][j]["draws"] for r in reports)
            drops = sum(r["sites"][j]["drops"] for r in reports)
            lo, hi = binom.interval(0.999, draws, s0["p_realised"])
            sites.append(dict(s0, draws=draws, drops=drops, observed_rate=drops / draws,
                              interval_999=[lo / draws, hi / draws], inside=bool(lo <= drops <= hi)))
        out["sites"] = sites
        out["independence_per_shard"] = [r.get("independence") for r in reports]
    refs = [r.get("reference") or {} for r in reports]
    if refs and all(x.get("ok") is not None for x in refs):
        out["reference"] = {"kind": refs[0]["kind"], "ok": all(x["ok"] for x in refs)}
        for k in ("samples", "sample_mismatches", "samples_with_tie", "non_tie_disagree",
                  "prediction_mismatches"):
            if all(k in x for x in refs):
                out["reference"][k] = sum(x[k] for x in refs)
    else:
        out["reference"] = next((x for x in refs if x), None)
    out["shards"] = [{k: r[k] for k in ("image_range", "mismatches", "device_mismatches",
                                        "sim_wall_s", "cycles_per_sample", "sim_samples_per_s")}
                     for r in reports]
    out = _finish(out)
    # Shards run side by side (--jobs, or several machines): their rates add up.
    out["per_process_samples_per_s"] = out["sim_samples_per_s"]
    out["sim_samples_per_s"] = sum(r["sim_samples_per_s"] or 0 for r in reports)
    return out


def _waves(outdir, simulator, ir, report, bits, index, samples, seeds, root, ir_path,
           sb_seeds, sb_swap) -> str | None:
    """Re-run the first mismatching image alone with waves on; return the waveform path."""
    first = report["first_mismatch"] or report["first_device_mismatch"]
    img = int(first["image"])
    try:
        bdir = runner.build(outdir, simulator, root, waves=True)
        rdir = root / "waves" / f"{simulator}-{report['verilog_sha256'][:12]}-img{img}-seed{report['seed']}"
        shutil.rmtree(rdir, ignore_errors=True)
        res = runner.run_network(
            outdir, simulator, bits[img:img + 1], index[img:img + 1], samples, seeds,
            img * samples, bdir, rdir, waves=True, ir_path=ir_path, scoreboard_seeds=sb_seeds,
            scoreboard_interface_swap=sb_swap)
    except runner.RunFailed as e:
        log.warning("could not record the waveform: %s", str(e).splitlines()[0])
        return None
    if res["mismatches"] + res["device_mismatches"] == 0:
        log.warning("image %d did not mismatch when re-run alone", img)
    return res["waveform"]


def summary_line(r: dict) -> str:
    cps = f"{r['cycles_per_sample']:.1f}" if r["cycles_per_sample"] else "n/a"
    rate = f"{r['sim_samples_per_s']:.0f}" if r["sim_samples_per_s"] else "n/a"
    ref = r.get("reference") or {}
    if ref.get("ok") is None:
        vs = f"vs model: n/a ({ref.get('reason', 'not run')})"
    else:
        vs = (f"vs {ref['kind']}: {ref['samples'] - ref['sample_mismatches']}/{ref['samples']} "
              f"samples equal ({ref['samples_with_tie']} with a float tie), "
              f"{ref['prediction_mismatches']} prediction mismatches")
    return (f"hwgen sim [{r['simulator']}]: {r['images']} images x {r['samples']} samples = "
            f"{r['mc_samples']} MC samples, vs golden: mismatches {r['mismatches']} "
            f"(device {r['device_mismatches']}); {vs}; {cps} cycles/sample, "
            f"{rate} simulated samples/s: {'PASS' if r['ok'] else 'FAIL'}")


def cmd_sim(args) -> int:
    merge = getattr(args, "merge", None)
    if merge:
        reps = []
        for f in merge:
            try:
                reps.append(json.loads(Path(f).read_text()))
            except (OSError, ValueError) as e:
                raise HwgenError(f"{f}: unreadable report ({e})") from None
        report = merge_reports(reps)
        v = Path(args.outdir) / "hwgen_top.v"
        if v.is_file() and _sha(v) != report["verilog_sha256"]:
            raise HwgenError(f"the reports are of another design than {args.outdir}")
    else:
        if args.json:
            check_output_file(args.json)    # before the simulation
        report = run_regression(args.outdir, args.simulator, args.images, args.samples,
                                args.seed, parse_shard(args.shard),
                                jobs=getattr(args, "jobs", 1) or 1,
                                inputs=getattr(args, "inputs", None))
    if args.json:
        write_text(args.json, json.dumps(report, indent=1, sort_keys=True) + "\n")
    print(summary_line(report))
    if report["first_mismatch"]:
        print("first mismatch: " + json.dumps(report["first_mismatch"], sort_keys=True))
    if report["first_device_mismatch"]:
        print("first device mismatch: " + json.dumps(report["first_device_mismatch"], sort_keys=True))
    if report.get("waveform"):
        print(f"waveform: {report['waveform']}")
    return 0 if report["ok"] else 1
