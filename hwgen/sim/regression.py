"""`hwgen sim OUTDIR --simulator {icarus,verilator} --images N --samples T --seed S`:
the network regression of the exported RTL against the golden interpreter.

The first N images of `--inputs X.npy`, or by default the first N test images of the
model's dataset (ir.meta.dataset), go through the RTL
with T MC samples each, the MTJ devices modelled in the bench; every class integer of
every sample must equal the golden model's, fed the masks the devices produced. The
device draws are counter-based per (device seed, global sample index), so a shard
(`--shard i/n`, images split into n contiguous ranges, i from 0) reproduces exactly its
part of the unsharded run, and shard reports merge into the report of the whole run
(`--merge`). `--jobs J` splits the images into J shards that run as tasks of hwgen.engine
(a local Dask cluster of J workers, or `--scheduler ADDRESS`'s workers) and merges them:
the report is the same wherever the shards ran, apart from its timing fields.

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
from pathlib import Path

import numpy as np

from ..atomic import sha256_file
from ..errors import HwgenError
from . import ports, runner, scoreboard, stats

__all__ = ["run_regression", "merge_reports", "parse_shard", "shard_range",
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
                   reference_model=None, engine=None) -> dict:
    """Run the network regression (one shard, or `jobs` shards merged); return the
    report. The `jobs` shards are tasks of `engine` (a hwgen.engine.Engine; None: one after
    the other in this process). Images: the first `images` of the .npy file `inputs`, else of the IR's
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
    remote = engine is not None and engine.address is not None
    if not remote:      # built once here, before the shards: each then finds it cached
        try:
            _build(outdir, simulator)
        except runner.RunFailed as e:
            raise HwgenError(str(e)) from None

    i0, n0 = shard
    a, b = shard_range(images, i0, n0)
    parts = [(a + (b - a) * j // jobs, a + (b - a) * (j + 1) // jobs) for j in range(jobs)]
    parts = [p for p in parts if p[1] > p[0]] or [(a, a)]
    tasks = [dict(outdir=outdir, simulator=simulator, part=(pa, pb), bits=bits[pa:pb],
                  index=index[pa:pb], x=x[pa:pb], ir=ir, samples=samples, seeds=seeds,
                  seed=seed, ds=ds, ref_model=ref_model, with_stats=with_stats,
                  keep_runs=keep_runs, ir_path=ir_path, scoreboard_seeds=scoreboard_seeds,
                  scoreboard_interface_swap=scoreboard_interface_swap)
             for pa, pb in parts] if b > a else []
    try:
        if engine is None or engine.client is None:
            bar = tqdm(total=b - a, unit="img", desc=f"sim {simulator}", disable=not progress,
                       dynamic_ncols=True)
            try:
                results = [_run_part(t, on_progress=bar.update) for t in tasks]
            finally:
                bar.close()
        else:
            results = engine.map(_run_part, tasks, desc=f"sim {simulator}", unit="shard")
    except runner.RunFailed as e:
        raise HwgenError(str(e).splitlines()[0]) from None
    reports = [r for r, _ in results]
    report = merge_reports(reports) if len(reports) != 1 else reports[0]
    report["shard"] = [i0, n0]
    if keep_runs:        # each holds record.npz (class integers, device history), image order
        report["runs"] = [rdir for _, rdir in results]
    if not report["ok"] and waves_on_mismatch:
        report["waveform"] = _waves(outdir, simulator, ir, report, bits, index, samples, seeds,
                                    root, ir_path, scoreboard_seeds, scoreboard_interface_swap)
    return report


def _build(outdir: Path, simulator: str) -> Path:
    """The simulator build of outdir on this machine (runner.build: cached by content hash
    under build_root(), behind a file lock, so it is built once per machine)."""
    if simulator == "verilator":
        runner.ensure_verilator_on_path()
    return runner.build(outdir, simulator, build_root())


def _run_part(task: dict, on_progress=None) -> tuple[dict, str | None]:
    """One shard of a regression, an independent task (run_regression's `tasks`): the
    images of task["part"] through the RTL and the checks; returns (its report, its run
    directory if task["keep_runs"], else None: the directory is removed)."""
    t = task
    (pa, pb), simulator, outdir = t["part"], t["simulator"], t["outdir"]
    bdir = _build(outdir, simulator)
    runs = build_root() / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    rdir = Path(tempfile.mkdtemp(prefix=f"{simulator}-{pa}-{pb}-", dir=runs))
    res = runner.run_network(
        outdir, simulator, t["bits"], t["index"], t["samples"], t["seeds"], pa * t["samples"],
        bdir, rdir, ir_path=t["ir_path"], scoreboard_seeds=t["scoreboard_seeds"],
        scoreboard_interface_swap=t["scoreboard_interface_swap"], on_progress=on_progress)
    ref = reference_check(t["ir"], t["ref_model"], t["x"], res["record"], t["samples"])
    rep = _report(t["ir"], outdir, simulator, t["seed"], t["samples"], (pa, pb), res, t["ds"],
                  t["with_stats"], ref)
    if t["keep_runs"]:
        return rep, str(rdir)
    shutil.rmtree(rdir, ignore_errors=True)
    return rep, None


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
    """The RTL's class integers, sample by sample, against the model itself (SPEC sections
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
        from ..frontend.qonnx import qonnx_vs_int
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
