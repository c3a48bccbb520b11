"""The study's steps, in order (STEPS, at the bottom): train -> evaluate -> compile ->
verify_rtl -> cost -> summary -> report. Each takes the flow's Context and returns
(JSON-ready result, artifact paths relative to the output directory)."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..atomic import NPZ_MARK, write_bytes
from .config import KINDS, StudyConfig, report_t
from .flow import Context, Step, sha256_file

__all__ = ["STEPS", "model_plan", "weights_sha256"]

log = logging.getLogger("hwgen.study")


def model_plan(cfg: StudyConfig) -> tuple[str, list[dict], list[dict]]:
    """(the SPEC of the "every" variant, the models to train, the skipped variants).

    Models: every kind x seed on `arch`; with `sites_arch`, also every MC kind x seed on
    it (variant "last"), unless hwgen.model.spec.parse_spec rejects that SPEC: then the
    variant is skipped with a log line naming the reason."""
    from ..model.spec import SpecError, parse_spec
    from ..model.train import DEFAULTS

    arch = cfg.arch or DEFAULTS[cfg.dataset].arch
    variants, skipped = [("every", arch)], []
    if cfg.sites_arch is not None:
        try:
            parse_spec(cfg.sites_arch)
            variants.append(("last", cfg.sites_arch))
        except SpecError as e:
            log.warning("sites variant 'last' skipped: hwgen.model.spec.parse_spec rejects "
                        "sites_arch %r (%s)", cfg.sites_arch, e)
            skipped.append({"variant": "last", "spec": cfg.sites_arch, "reason": str(e)})
    models = []
    for variant, spec in variants:
        for kind in cfg.kinds:
            if variant == "last" and kind == "deterministic":
                continue          # no sites to choose
            for seed in cfg.seeds:
                models.append(dict(name=f"{kind}-{variant}-s{seed}", kind=kind, variant=variant,
                                   seed=seed, spec=spec, dropout=KINDS[kind]))
    return arch, models, skipped


def weights_sha256(model) -> str:
    """sha256 of a model's state dict (names, dtypes, shapes, bytes): unlike the model.pt
    file's, it does not see the wall-clock timings kept in meta."""
    import hashlib
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        t = v.detach().cpu().contiguous()
        h.update(f"{k} {t.dtype} {tuple(t.shape)}\0".encode() + t.numpy().tobytes())
    return h.hexdigest()


# -- train ---------------------------------------------------------------------------------

def step_train(ctx: Context):
    from ..model.io import save_model
    from ..model.train import TrainConfig, train

    cfg = ctx.cfg
    arch, models, skipped = model_plan(cfg)
    threads = int(os.environ.get("HWGEN_THREADS", "1"))   # the state dict depends on it
    units = []
    for m in models:
        tc = TrainConfig(dataset=cfg.dataset, arch=m["spec"], dropout=m["dropout"], p=cfg.p,
                         epochs=cfg.epochs, seed=m["seed"], theta=cfg.theta,
                         input=cfg.input_mode).resolved()
        rel = f"models/{m['name']}.pt"

        def fn(m=m, tc=tc, rel=rel):
            log.info("train %s: %s, %s, dropout %s, %d epochs, seed %d", m["name"], tc.dataset,
                     tc.arch, tc.dropout, tc.epochs, tc.seed)
            model, meta = train(tc, progress=ctx.progress)
            save_model(ctx.path(rel), model, meta)
            hist = [{k: h[k] for k in ("epoch", "loss", "train_acc", "test_acc_1sample_2k")}
                    for h in meta["history"]]
            res = dict(m, path=rel, file_sha256=sha256_file(ctx.path(rel)),
                       weights_sha256=weights_sha256(model), p=meta["p"], epochs=tc.epochs,
                       batch_size=tc.batch_size, lr=tc.lr, theta=tc.theta,
                       train_acc=meta["train_acc"], test_acc_torch=meta["test_acc"],
                       test_acc_torch_samples=meta["test_samples"], history=hist)
            return res, [rel], {"seconds_per_epoch": meta["seconds_per_epoch"]}
        units.append((m["name"], {"train": asdict(tc), "threads": threads}, fn))
    out = ctx.units(units)      # as tasks of ctx.engine
    return ({"arch": arch, "models": out, "skipped": skipped},
            [m["path"] for m in out.values()])


# -- evaluate (golden path) -------------------------------------------------------------------

def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays, **{NPZ_MARK: np.array("hwgen-study")})   # hwgen's mark
    return buf.getvalue()


def eval_samples(cfg: StudyConfig, kind: str) -> tuple[int, ...]:
    """The T values a model is evaluated at (the deterministic model: once, T = 1)."""
    return (1,) if kind == "deterministic" else tuple(sorted(cfg.samples))


def step_evaluate(ctx: Context):
    from ..frontend import build_ir, load_model
    from ..passes import run_pipeline
    from .golden import golden_eval

    cfg = ctx.cfg
    units, arts = [], []
    for name, m in ctx.results["train"]["models"].items():
        ts = eval_samples(cfg, m["kind"])
        rel = f"eval/{name}.npz"

        def fn(m=m, ts=ts, rel=rel):
            ckpt, sha = load_model(ctx.path(m["path"]))
            ir = run_pipeline(build_ir(ckpt, sha))
            reps, raws = golden_eval(ckpt, ts, seed=cfg.eval_seed, limit=cfg.test_limit,
                                     ood=cfg.ood, ir=ir)
            t_rep = report_t(cfg, m["kind"])
            write_bytes(ctx.path(rel), _npz_bytes(**raws[t_rep]))
            log.info("evaluate %s: accuracy %s at T = %s", m["name"],
                     " ".join(f"{reps[t]['accuracy']:.4f}" for t in ts), list(ts))
            res = {"samples": list(ts), "report_samples": t_rep, "raw": rel,
                   "n_test": reps["n_test"], "n_ood": reps["n_ood"], "ood_set": reps["ood_set"],
                   "T": {str(t): reps[t] for t in ts}}
            return res, [rel], {}
        units.append((name, {"model": m["file_sha256"], "samples": list(ts),
                             "report_samples": report_t(cfg, m["kind"]),
                             "seed": cfg.eval_seed, "limit": cfg.test_limit,
                             "ood": cfg.ood}, fn))
        arts.append(rel)
    return {"models": ctx.units(units)}, arts


# -- compile ------------------------------------------------------------------------------------

def designs(ctx: Context) -> dict:
    """The models that are compiled: the MC models of the first seed (one design per MC
    kind and sites variant)."""
    first = ctx.cfg.seeds[0]
    return {n: m for n, m in ctx.results["train"]["models"].items()
            if m["kind"] != "deterministic" and m["seed"] == first}


def step_compile(ctx: Context):
    from ..compiler import compile_model

    cfg = ctx.cfg
    units = []
    for name, m in designs(ctx).items():
        verilog = m["variant"] in cfg.rtl_variants and cfg.rtl_images > 0
        rel = f"rtl/{name}"

        def fn(m=m, rel=rel, verilog=verilog):
            timings = {}
            compile_model(ctx.path(m["path"]), ctx.path(rel), tile=cfg.tile, lanes=cfg.lanes,
                          check_images=cfg.check_images, verilog=verilog, timings=timings)
            chk = ctx.path(rel) / "check.json"
            check = None
            if chk.is_file():
                c = json.loads(chk.read_text())
                check = {k: c[k] for k in ("images", "samples", "bit_agreement", "ties",
                                            "tie_rate", "sample_agreement",
                                            "prediction_agreement", "non_tie_disagree")}
            res = {"dir": rel, "verilog": verilog, "check": check,
                   "manifest_sha256": sha256_file(ctx.path(rel) / "manifest.json")}
            return res, [rel], timings
        units.append((name, {"model": m["file_sha256"], "tile": cfg.tile,
                             "lanes": cfg.lanes, "check_images": cfg.check_images,
                             "verilog": verilog}, fn))
    out = ctx.units(units)
    return {"designs": out}, [d["dir"] for d in out.values()]


# -- verify_rtl -------------------------------------------------------------------------------------

def rtl_outputs(report: dict) -> tuple[np.ndarray, np.ndarray]:
    """The class integers [N, T, classes] and device history [N*T, n_if] the regression's
    bench recorded (the run directories `run_regression(keep_runs=True)` lists, in image
    order); the directories are removed afterwards."""
    obs, aps = [], []
    for d in report["runs"]:
        with np.load(Path(d) / "record.npz") as rec:
            obs.append(rec["observed"])
            aps.append(rec["ap"])
        shutil.rmtree(d, ignore_errors=True)
    return np.concatenate(obs), np.concatenate(aps)


def compare_rtl(ir, model, images: np.ndarray, labels: np.ndarray, observed: np.ndarray,
                ap: np.ndarray) -> dict:
    """The hardware's predictions and uncertainties against the golden model's: the keep
    masks are those the devices produced; the golden integers come from the definition
    (hwgen.ir.interp.run, not the scoreboard's fast path); entropy and MI are recomputed
    from the RTL's class integers through the IR's logit affine. Also the torch float model
    with the same masks (SPEC section 10.5)."""
    import torch

    from .. import metrics
    from ..ir import interp
    from ..ir.core import masks_from_ap
    from ..model.evaluate import mc_logits

    n, t = observed.shape[:2]
    masks = masks_from_ap(ir, ap, n, t)
    bits = interp.input_bits(ir, images)
    golden = interp.run(ir, bits, masks)
    p_rtl = metrics.softmax(interp.logits(ir, observed)).transpose(1, 0, 2)
    p_gold = metrics.softmax(interp.logits(ir, golden)).transpose(1, 0, 2)
    p_float = mc_logits(model, torch.from_numpy(images), t, masks=masks).double().softmax(-1).numpy()
    pred = {k: p.mean(0).argmax(-1) for k, p in (("rtl", p_rtl), ("golden", p_gold),
                                                  ("float", p_float))}
    h = {k: metrics.predictive_entropy(p) for k, p in (("rtl", p_rtl), ("golden", p_gold))}
    mi = {k: metrics.mutual_information(p) for k, p in (("rtl", p_rtl), ("golden", p_gold))}
    return {
        "recount_mismatches": int((golden != observed).sum()),
        "predictions_equal": bool((pred["rtl"] == pred["golden"]).all()),
        "float_prediction_agreement": float((pred["float"] == pred["golden"]).mean()),
        "max_abs_entropy_diff": float(np.abs(h["rtl"] - h["golden"]).max()),
        "max_abs_mi_diff": float(np.abs(mi["rtl"] - mi["golden"]).max()),
        "rtl_predictions": pred["rtl"].tolist(), "labels": np.asarray(labels).tolist(),
        "rtl_accuracy": float((pred["rtl"] == labels).mean()),
        "rtl_entropy": h["rtl"].tolist(), "rtl_mi": mi["rtl"].tolist(),
    }


def step_verify_rtl(ctx: Context):
    from ..data import first_test_images
    from ..design import load_design
    from ..frontend import load_model
    from ..model.io import build_model
    from ..sim.regression import run_regression

    cfg = ctx.cfg
    units, arts = [], []
    todo = {n: d for n, d in ctx.results["compile"]["designs"].items() if d["verilog"]}
    for name, d in todo.items():
        rel = f"sim/{name}.npz"

        def fn(name=name, d=d, rel=rel):
            cdir = ctx.path(d["dir"])
            rep = run_regression(cdir, cfg.simulator, cfg.rtl_images, cfg.rtl_samples,
                                 seed=cfg.rtl_seed, progress=ctx.progress, keep_runs=True)
            observed, ap = rtl_outputs(rep)
            ir = load_design(cdir).ir       # checked against its manifest
            ckpt, _ = load_model(ctx.path(ctx.results["train"]["models"][name]["path"]))
            x, y = first_test_images(ir.meta.dataset, cfg.rtl_images, ir.in_shape)
            cmp = compare_rtl(ir, build_model(ckpt), x, y, observed, ap)
            write_bytes(ctx.path(rel), _npz_bytes(observed=observed, ap=ap))
            log.info("verify_rtl %s: %d images x %d samples on %s, %d mismatches, %s cycles "
                     "per sample", name, rep["images"], rep["samples"], cfg.simulator,
                     rep["mismatches"], rep["cycles_per_sample"])
            res = {k: rep[k] for k in ("simulator", "images", "samples", "mc_samples",
                                       "mismatches", "mismatched_samples", "device_mismatches",
                                       "cycles_per_sample", "cycles_per_image", "ok")}
            res["sites"] = [{k: s[k] for k in ("layer", "draws", "drops", "observed_rate",
                                               "p_realised", "inside")}
                            for s in rep.get("sites", [])]
            res.update(cmp, record=rel)
            return res, [rel], {"sim_wall_s": rep["sim_wall_s"],
                                "process_wall_s": rep["process_wall_s"]}
        units.append((name, {"design": d["manifest_sha256"], "images": cfg.rtl_images,
                             "samples": cfg.rtl_samples, "seed": cfg.rtl_seed,
                             "simulator": cfg.simulator}, fn))
        arts.append(rel)
    return {"designs": ctx.units(units)}, arts


# -- cost, summary ------------------------------------------------------------------------------------

def _design_ir(ctx: Context, d: dict):
    from ..design import load_design
    return load_design(ctx.path(d["dir"])).ir      # checked against its manifest


def step_cost(ctx: Context):
    from ..cost import cost

    cfg = ctx.cfg
    out = {}
    rtl = ctx.results["verify_rtl"]["designs"]
    for name, d in ctx.results["compile"]["designs"].items():
        r = rtl.get(name)
        measured = None
        if r and r["cycles_per_sample"] is not None:
            measured = {"cycles_per_sample": r["cycles_per_sample"],
                        "source": f"study verify_rtl ({r['simulator']}, {r['images']} images)"}
        out[name] = cost(_design_ir(ctx, d), cfg.report_samples, measured)
    return {"designs": out}, []


def step_summary(ctx: Context):
    from ..summary import render, summarize

    out = {}
    for name, d in ctx.results["compile"]["designs"].items():
        s = summarize(_design_ir(ctx, d))
        out[name] = dict(s, text=render(s))
    return {"designs": out}, []


def step_report(ctx: Context):
    from .report import write_report
    return write_report(ctx), []


_ALL_FIELDS = tuple(f for f in StudyConfig.__dataclass_fields__ if f != "output_dir")

# The hwgen sources each step's results depend on (its cache is invalidated when they
# change); the study's own step code is versioned by Step.version instead.
# (train: not model/evaluate.py, whose plots change more often than its mc_logits, which
# only gives meta's informative torch test accuracy)
_MODEL = ("model/net.py", "model/spec.py", "model/train.py", "model/io.py", "data.py")
_GOLDEN = _MODEL + ("model/evaluate.py", "frontend", "passes", "ir", "device.py", "metrics.py",
                    "study/golden.py")
_HW = _GOLDEN + ("compile.py", "model/agreement.py", "hw", "export.py")

STEPS: tuple[Step, ...] = (
    Step("train", step_train, code=_MODEL,
         reads=("dataset", "arch", "sites_arch", "input_mode", "theta", "epochs", "seeds", "p",
                "kinds")),
    Step("evaluate", step_evaluate, inputs=("train",), code=_GOLDEN,
         reads=("samples", "report_samples", "eval_seed", "test_limit", "ood")),
    Step("compile", step_compile, inputs=("train",), code=_HW,
         reads=("tile", "lanes", "check_images", "rtl_variants", "rtl_images", "seeds")),
    Step("verify_rtl", step_verify_rtl, inputs=("train", "compile"), code=_HW + ("sim",),
         reads=("rtl_images", "rtl_samples", "rtl_seed", "simulator")),
    Step("cost", step_cost, inputs=("compile", "verify_rtl"),
         code=("ir", "cost", "energy_table.py", "hw/plan.py"), reads=("report_samples", "lanes")),
    Step("summary", step_summary, inputs=("compile",), code=("ir", "summary.py", "hw/tile.py"),
         reads=()),
    Step("report", step_report, inputs=("train", "evaluate", "compile", "verify_rtl", "cost",
                                        "summary"), reads=_ALL_FIELDS, cache=False),
)
