"""`hwgen faults OUTDIR`: a fault campaign on a compiled design.

1. A plan: `--faults N` faults of `--kinds` from `--seed` (hwgen.faults.plan), or
   `--plan F`, a JSON list of faults.
2. The golden campaign: every fault through the golden model carrying it
   (hwgen.faults.golden) on the held-out set, the first `--held` test images of the
   design's dataset with T = `--samples` MC samples each (image i on draws
   [i*T, (i+1)*T)); each fault classified detected / masked / escape on the test inputs,
   the first `--test-images` of them (hwgen.faults.classify). Coverage per kind.
3. The RTL campaign: the first `--rtl` faults of the plan (the kinds in turn) through the
   regression on the RTL (hwgen.faults.rtl, one cached build, the design unchanged), in
   batches of `--batch` faults per simulator process, each batch an independent task; its
   verdict must equal the golden model's prediction of it, fault for fault (the exit
   status is 1 otherwise).
4. Test vectors: coverage against the number of vectors, by repeatability ranking and by
   greedy set cover (hwgen.faults.vectors).
5. The online monitor's detection and false-alarm rates (hwgen.faults.monitor).

The report is JSON (`--json F`), the coverage curves a PNG (`--png F`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from ..errors import HwgenError
from . import classify, golden, monitor, plan as fplan, vectors

__all__ = ["run_campaign", "REPORT_FORMAT", "summary_table"]

log = logging.getLogger("hwgen.faults")

REPORT_FORMAT = "hwgen-faults-report"
MONITOR_WINDOW_IMAGES = 32          # images per monitor window
CLEAN_WINDOWS = 1000                # clean keep-bit windows for the false-alarm rate


def _sizes(n: int) -> list[int]:
    s = [k for k in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192) if k < n]
    return s + [n]


def run_campaign(outdir, faults: int = 60, kinds=fplan.KINDS, seed: int = 0,
                 samples: int = 8, held: int = 1000, test_images: int = 16, rtl: int = 0,
                 simulator: str = "verilator", plan_file=None, progress: bool = True,
                 inputs=None, engine=None, batch: int = 50) -> dict:
    """Run the campaign (see the module docstring); return the report. The RTL faults run
    in batches of `batch` (one simulator process each), the batches tasks of `engine` (a
    hwgen.engine.Engine; None: in this process)."""
    from tqdm import tqdm

    from ..design import load_design
    from ..device import device_seeds
    from ..ir.interp import logits
    from ..sim.regression import image_bits
    from ..sim.scoreboard import interface_p
    design = load_design(outdir)
    ir = design.ir
    if not (type(batch) is int and batch >= 1):
        raise HwgenError(f"--batch must be an integer >= 1, not {batch!r}")
    if not 1 <= test_images <= held:
        raise HwgenError(f"--test-images must be in [1, --held = {held}], not {test_images}")
    faults_list = (fplan.load_plan(ir, plan_file) if plan_file is not None
                   else fplan.sample_plan(ir, faults, kinds, seed))
    flat, _, source = image_bits(ir, held, inputs)
    bits = flat.reshape(held, *ir.input_bits_shape)
    seeds = device_seeds(seed, ir.n_interfaces)
    T = samples

    t0 = time.perf_counter()
    clean = golden.run_clean(ir, bits, T, seeds)
    ent_clean = monitor.mean_entropy(logits(ir, clean))
    results, detect, changed, ent = [], [], [], []
    for f in tqdm(faults_list, desc="faults golden", unit="fault", disable=not progress,
                  dynamic_ncols=True):
        j = classify.judge(ir, f, bits, T, seeds, clean)
        detect.append(j["detect"])
        changed.append(bool(j["changed"].any()))
        ent.append(monitor.mean_entropy(logits(ir, j["out"])))
        results.append({"kind": f["kind"], "label": fplan.fault_label(f), "fault": f,
                        "class": classify.classify(bool(j["detect"][:test_images].any()),
                                                   changed[-1]),
                        "images_changed": int(j["changed"].sum()),
                        "images_detecting": int(j["detect"].sum())})
    golden_s = time.perf_counter() - t0
    detect, changed = np.asarray(detect, bool).reshape(len(results), held), np.asarray(changed)

    rep = {"format": REPORT_FORMAT, "version": 1, "outdir": str(Path(outdir).resolve()),
           "spec": ir.meta.spec, "dataset": source, "dropout": ir.meta.dropout.kind,
           "interfaces": ir.n_interfaces, "seed": seed, "samples": T, "held_images": held,
           "test_images": test_images, "faults": len(results),
           "plan": "file" if plan_file is not None else {"kinds": list(kinds), "seed": seed},
           "table": classify.tally(results),
           "golden": {"wall_s": round(golden_s, 3),
                      "faults_per_min": round(60 * len(results) / golden_s, 1)}}

    rep["rtl"] = _rtl(outdir, faults_list[:rtl], results, bits[:test_images], seed, T,
                      simulator, progress, engine, batch) if rtl else None
    rep["vectors"] = _vectors(clean, detect, changed, held)
    rep["monitor"] = _monitor(ir, faults_list, seeds, held, T, ent_clean, ent, bits, seed,
                              interface_p(ir))
    rep["results"] = results
    rep["ok"] = rep["rtl"] is None or rep["rtl"]["agree"] == rep["rtl"]["faults"]
    return rep


def _rtl(outdir, faults_list, results, bits, seed, T, simulator, progress, engine,
         batch) -> dict:
    from functools import partial

    from ..engine import Engine
    from . import rtl
    outdir = Path(outdir).resolve()
    t0 = time.perf_counter()
    rtl.build(outdir, simulator)                  # once, here, before any task
    t1 = time.perf_counter()
    eng = engine or Engine("none", progress=progress)
    batches = [faults_list[k:k + batch] for k in range(0, len(faults_list), batch)]
    done = eng.map(partial(rtl.run_faults, outdir, inputs=bits, seed=seed, samples=T,
                           simulator=simulator), batches,
                   desc=f"faults {simulator} ({batch} per batch)", unit="batch")
    runs = [r for b in done for r in b]
    rows = []
    for f, r, res in zip(faults_list, results, runs):
        want = r["class"] == "detected"
        r["rtl_detected"] = res["detected"]
        # the RTL's verdict, classified with the same golden judge of the held-out set
        r["rtl_class"] = classify.classify(res["detected"], r["images_changed"] > 0)
        rows.append({"label": r["label"], "kind": f["kind"], "rtl_detected": res["detected"],
                     "golden_detected": want, "mismatches": res["mismatches"],
                     "device_mismatches": res["device_mismatches"], "sim_s": res["sim_s"]})
    wall = time.perf_counter() - t1
    agree = sum(x["rtl_detected"] == x["golden_detected"] for x in rows)
    return {"simulator": simulator, "faults": len(rows), "agree": agree,
            "batch": batch, "batches": len(batches), "build_s": round(t1 - t0, 3),
            "wall_s": round(wall, 3),
            "faults_per_min": round(60 * len(rows) / wall, 2) if wall else None,
            "detected": sum(x["rtl_detected"] for x in rows), "runs": rows}


def _vectors(clean, detect, changed, held) -> dict:
    sizes = _sizes(held)
    rank = vectors.rank_repeatable(clean)
    even, odd = np.arange(0, len(detect), 2), np.arange(1, len(detect), 2)
    cover = vectors.greedy_cover(detect)
    cover_even = vectors.greedy_cover(detect[even])
    full = vectors.coverage_curve(np.arange(held), detect, changed, [held])[0]

    def pad(order):          # a cover stops when it is complete: fill up in index order
        rest = np.setdiff1d(np.arange(held), order, assume_unique=True)
        return np.concatenate([order, rest])
    return {
        "full_set": full,
        "repeatability": vectors.coverage_curve(rank, detect, changed, sizes),
        "dataset_order": vectors.coverage_curve(np.arange(held), detect, changed, sizes),
        "greedy_cover": {"size": int(len(cover)),
                         "curve": vectors.coverage_curve(pad(cover), detect, changed, sizes)},
        "greedy_cover_split": {
            "fitted_on": "even-numbered faults", "scored_on": "odd-numbered faults",
            "size": int(len(cover_even)),
            "curve": vectors.coverage_curve(pad(cover_even), detect[odd], changed[odd], sizes)},
    }


def _monitor(ir, faults_list, seeds, held, T, ent_clean, ent, bits, seed, p) -> dict:
    if not ir.n_interfaces:
        return None
    from ..ir.interp import logits
    w_img = max(1, min(MONITOR_WINDOW_IMAGES, held // 8))     # at least 8 clean windows
    w = w_img * T
    # false alarms: clean keep bits over CLEAN_WINDOWS windows beyond the campaign's draws
    ap_clean = golden.device_ap(ir, None, seeds, held * T, CLEAN_WINDOWS * w)
    false_keep = monitor.keep_rate_alarms(ap_clean, p, w)
    bounds = monitor.entropy_bounds(ent_clean, w_img)
    # entropy false alarms: the same images on independent device draws (another seed)
    from ..device import device_seeds
    other = golden.run_clean(ir, bits, T, device_seeds(seed + 1, ir.n_interfaces))
    false_ent = monitor.entropy_alarms(monitor.mean_entropy(logits(ir, other)), w_img, bounds)
    per_kind: dict = {}
    for f, h in zip(faults_list, ent):
        k = f["kind"]
        d = per_kind.setdefault(k, {"faults": 0, "keep_rate_windows": 0.0,
                                    "entropy_windows": 0.0})
        d["faults"] += 1
        if k in fplan.DEVICE_KINDS + fplan.SENSE_KINDS:
            dev = golden.device_ap(ir, f, seeds, 0, held * T)
            d["keep_rate_windows"] += float(monitor.keep_rate_alarms(
                golden.design_ap(f, dev), p, w).mean())
        d["entropy_windows"] += float(monitor.entropy_alarms(h, w_img, bounds).mean())
    for d in per_kind.values():
        for key in ("keep_rate_windows", "entropy_windows"):
            d[key] = round(d[key] / d["faults"], 4)
    return {"window_images": w_img, "window_samples": w, "alpha": 1e-3,
            "entropy_bounds": [round(b, 6) for b in bounds],
            "false_alarm": {"keep_rate": float(false_keep.mean()),
                            "keep_rate_windows": int(len(false_keep)),
                            "entropy": float(false_ent.mean()),
                            "entropy_windows": int(len(false_ent))},
            "detection_rate_per_window": per_kind}


def summary_table(rep: dict) -> str:
    """The per-kind table as text."""
    lines = [f"{'kind':16s} {'faults':>6s} {'detected':>8s} {'masked':>6s} {'escape':>6s} "
             f"{'coverage':>8s}"]
    for k, r in rep["table"].items():
        cov = "-" if r["coverage"] is None else f"{100 * r['coverage']:.1f}%"
        lines.append(f"{k:16s} {r['faults']:6d} {r['detected']:8d} {r['masked']:6d} "
                     f"{r['escape']:6d} {cov:>8s}")
    return "\n".join(lines)


def coverage_png(rep: dict) -> bytes:
    """Coverage against the number of test vectors, one line per method."""
    from ..figures import png_bytes, pyplot
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    v = rep["vectors"]
    for name, curve in (("repeatability ranking", v["repeatability"]),
                        ("greedy set cover", v["greedy_cover"]["curve"]),
                        ("greedy cover, held-out faults", v["greedy_cover_split"]["curve"]),
                        ("dataset order", v["dataset_order"])):
        pts = [(c["vectors"], 100 * c["coverage"]) for c in curve if c["coverage"] is not None]
        ax.plot(*zip(*pts), marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel(f"test vectors (of {rep['held_images']} held-out images)")
    ax.set_ylabel("coverage, %")
    ax.set_title(f"{rep['spec']} ({rep['dropout']}), {rep['faults']} faults, T={rep['samples']}")
    ax.grid(alpha=0.3)
    ax.legend()
    return png_bytes(fig)
