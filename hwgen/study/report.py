"""The study's outputs: results.json (every figure, deterministic apart from "run"),
REPORT.md (the tables, each naming the command and config that made it) and the figures."""

from __future__ import annotations

import json
import logging

import numpy as np

from .. import __version__
from ..atomic import NPZ_MARK, write_text
from ..cost.model import BASELINES, PAPER
from .config import VARIANTS, report_t

__all__ = ["FORMAT", "VERSION", "build_results", "render_markdown", "write_report", "HEADLINE"]

log = logging.getLogger("hwgen.study")

FORMAT = "hwgen-study"
VERSION = 1

# (key in results, column title, how to read it from one evaluation at one T)
HEADLINE = (
    ("accuracy", "accuracy", lambda e: e["accuracy"]),
    ("nll", "NLL", lambda e: e["nll"]),
    ("ece", "ECE", lambda e: e["ece"]),
    ("brier", "Brier", lambda e: e["brier"]),
    ("auroc_entropy", "AUROC H", lambda e: e["ood"]["entropy"]["auroc"]),
    ("auroc_mi", "AUROC MI", lambda e: e["ood"]["mi"]["auroc"]),
    ("aupr_entropy", "AUPR H", lambda e: e["ood"]["entropy"]["aupr"]),
    ("aupr_mi", "AUPR MI", lambda e: e["ood"]["mi"]["aupr"]),
    ("fpr95_entropy", "FPR@95 H", lambda e: e["ood"]["entropy"]["fpr95"]),
    ("fpr95_mi", "FPR@95 MI", lambda e: e["ood"]["mi"]["fpr95"]),
    ("rejection_area_entropy", "rej. area H", lambda e: e["rejection"]["entropy"]["area"]),
    ("rejection_area_mi", "rej. area MI", lambda e: e["rejection"]["mi"]["area"]),
)
VS_T = ("accuracy", "ece", "nll", "brier", "auroc_entropy", "auroc_mi")


def _stat(values: list[float]) -> dict:
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else None,
            "values": [float(x) for x in v]}


def _groups(cfg, models: dict) -> list[dict]:
    out = []
    for variant in VARIANTS:
        for kind in cfg.kinds:
            names = [n for n, m in models.items() if m["kind"] == kind and m["variant"] == variant]
            names.sort(key=lambda n: models[n]["seed"])
            if names:
                out.append({"id": f"{kind}-{variant}", "kind": kind, "variant": variant,
                            "models": names, "seeds": [models[n]["seed"] for n in names],
                            "first": names[0], "T": report_t(cfg, kind)})
    return out


def build_results(ctx) -> dict:
    """results.json without its "run" field: a function of the config and the models."""
    cfg, R = ctx.cfg, ctx.results
    cfg_d = cfg.as_dict()
    cfg_d.pop("output_dir")
    models = R["train"]["models"]
    ev = R["evaluate"]["models"]
    keep = ("kind", "variant", "seed", "spec", "dropout", "p", "epochs", "batch_size", "lr",
            "theta", "weights_sha256", "train_acc", "test_acc_torch", "test_acc_torch_samples",
            "history", "path")
    groups = _groups(cfg, models)
    by = {k: f for k, _, f in HEADLINE}
    headline, vs_t = [], {}
    for g in groups:
        t = str(g["T"])
        headline.append(dict({k: g[k] for k in ("id", "kind", "variant", "T", "seeds")},
                             metrics={k: _stat([f(ev[n]["T"][t]) for n in g["models"]])
                                      for k, _, f in HEADLINE}))
        ts = ev[g["first"]]["samples"]
        vs_t[g["id"]] = {str(tt): {k: _stat([by[k](ev[n]["T"][str(tt)]) for n in g["models"]])
                                   for k in VS_T} for tt in ts}
    comparison = []
    for variant in VARIANTS:
        sp = next((g for g in groups if g["id"] == f"spatial-{variant}"), None)
        el = next((g for g in groups if g["id"] == f"element-{variant}"), None)
        if not (sp and el):
            continue
        seeds = sorted(set(sp["seeds"]) & set(el["seeds"]))
        pick = lambda g, s: g["models"][g["seeds"].index(s)]  # noqa: E731
        t = str(cfg.report_samples)
        comparison.append({"variant": variant, "T": cfg.report_samples, "seeds": seeds,
                           "spatial_minus_element": {
                               k: _stat([f(ev[pick(sp, s)]["T"][t]) - f(ev[pick(el, s)]["T"][t])
                                         for s in seeds]) for k, _, f in HEADLINE}})
    costs = R["cost"]["designs"]
    first = cfg.seeds[0]
    cost_design = next((n for n in (f"spatial-every-s{first}", f"element-every-s{first}")
                        if n in costs), None)
    res = {
        "format": FORMAT, "version": VERSION, "config": cfg_d,
        "config_fingerprint": cfg.fingerprint(), "arch": R["train"]["arch"],
        "samples": sorted(cfg.samples), "report_samples": cfg.report_samples,
        "ood_set": next(iter(ev.values()))["ood_set"] if ev else None,
        "n_test": next(iter(ev.values()))["n_test"] if ev else None,
        "n_ood": next(iter(ev.values()))["n_ood"] if ev else None,
        "models": {n: {k: m[k] for k in keep} for n, m in models.items()},
        "skipped": R["train"]["skipped"],
        "groups": groups, "headline": headline, "vs_T": vs_t,
        "spatial_vs_element": comparison,
        "eval": {n: {k: e[k] for k in ("samples", "report_samples", "T")} for n, e in ev.items()},
        # the manifest's hash names model.pt's, which holds training wall times
        "compile": {n: {k: v for k, v in d.items() if k != "manifest_sha256"}
                    for n, d in R["compile"]["designs"].items()},
        "rtl": R["verify_rtl"]["designs"],
        "cost": costs, "cost_design": cost_design,
        "paper_comparison": paper_comparison(costs[cost_design]) if cost_design else None,
        "summary": R["summary"]["designs"],
    }
    return res


def paper_comparison(rep: dict) -> dict:
    """hwgen's element/spatial figures next to the paper's 9x and 94.11x, from a cost
    report (hwgen.cost.cost)."""
    sites = []
    for i in rep["design"]["site_layers"]:
        l = rep["layers"][i]
        sp, el = l["dropout"]["spatial"]["modules"], l["dropout"]["element"]["modules"]
        sites.append({"layer": i, "op": l["op"], "kernel": l["kernel"], "windows": l["windows"],
                      "spatial_modules": sp, "element_modules": el,
                      "module_ratio": el / sp if sp else None,
                      "kernel_area": l["kernel"][0] * l["kernel"][1],
                      "window_draws": l["dropout"]["element_window"]["draws_per_sample"]})
    r = rep["ratios_over_spatial"]
    return {"paper": dict(PAPER), "source": rep["paper"]["source"], "sites": sites,
            "modules": {b: r[b]["modules"] for b in r},
            "draws": {b: r[b]["draws"] for b in r},
            "rng_energy": {b: r[b]["rng_energy"] for b in r},
            "total_energy": {b: r[b]["total_energy"] for b in r},
            "cycles": {b: r[b]["cycles"] for b in r},
            "explanation": rep["explanation"]}


# -- markdown ------------------------------------------------------------------------------

def _f(v, d=4) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:,.{d}f}"


def _ms(s: dict, d=4, sign=False) -> str:
    m = f"{s['mean']:{'+' if sign else ''}.{d}f}"
    return m if s["std"] is None else f"{m} ± {s['std']:.{d}f}"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"] + \
        ["| " + " | ".join(r) + " |" for r in rows]


def _glabel(g: dict) -> str:
    return g["kind"] + ("" if g["variant"] == "every" else " (last sites)")


def render_markdown(res: dict, run: dict) -> str:
    cmd, fp = run["command"], res["config_fingerprint"]

    def src(key: str) -> str:
        return f"_Made by `{cmd}` (config `{fp}`); data: results.json `{key}`._"

    c = res["config"]
    ns = len(c["seeds"])
    T = res["report_samples"]
    out = ["# hwgen study: MC-SpatialDropout vs per-neuron MC-Dropout",
           "",
           f"Command: `{cmd}`; config fingerprint `{fp}` (the full config is in results.json "
           f"`config`). Dataset {c['dataset']}, architecture `{res['arch']}`, "
           f"{ns} seed{'s' if ns > 1 else ''} ({', '.join(map(str, c['seeds']))}), p = {c['p']}, "
           f"input {c['input_mode']}, epochs {res['models'][next(iter(res['models']))]['epochs']}. "
           f"Every figure below comes from the golden interpreter (hwgen.ir.fast on the compiled "
           f"integer IR) with the keep bits `hwgen eval MODEL --samples T --seed {c['eval_seed']}` "
           f"draws; {res['n_test']:,} test images, {res['n_ood']:,} OOD images ({res['ood_set']}).",
           ""]
    if res["skipped"]:
        for s in res["skipped"]:
            out.append(f"**Skipped:** sites variant `{s['variant']}` (`{s['spec']}`): {s['reason']}.")
        out.append("")

    # headline
    out += [f"## Headline (T = {T}; the deterministic model at T = 1)", ""]
    head = ["model", "seeds"] + [t for _, t, _ in HEADLINE]
    rows = []
    for h in res["headline"]:
        g = next(g for g in res["groups"] if g["id"] == h["id"])
        rows.append([_glabel(g), str(len(h["seeds"]))] + [_ms(h["metrics"][k]) for k, _, _ in HEADLINE])
    out += _table(head, rows) + ["", src("headline"), "",
            "H = predictive entropy, MI = mutual information (nats); OOD images are the "
            "positives. Rejection area = mean accuracy over the rejected fractions 0, 5%, ..., 90% "
            "(higher is better). ± is the sample standard deviation over seeds.", ""]

    for cmp in res["spatial_vs_element"]:
        d = cmp["spatial_minus_element"]
        out += [f"### Spatial minus element ({cmp['variant']} sites, T = {cmp['T']}, paired by seed)", ""]
        out += _table(["metric", "spatial - element", "per seed"],
                      [[t, _ms(d[k], sign=True), ", ".join(f"{v:+.4f}" for v in d[k]["values"])]
                       for k, t, _ in HEADLINE])
        out += ["", src("spatial_vs_element"), ""]

    # vs T
    out += ["## Accuracy and ECE vs T", ""]
    ts = res["samples"]
    rows = []
    for g in res["groups"]:
        pts = res["vs_T"][g["id"]]
        rows.append([_glabel(g)] + [(f"{_ms(pts[str(t)]['accuracy'])} / {_ms(pts[str(t)]['ece'])}"
                                     if str(t) in pts else "(T = 1 only)") for t in ts])
    out += _table(["model"] + [f"T = {t}: acc / ECE" for t in ts], rows)
    out += ["", src("vs_T"), "", "![accuracy and ECE vs T](figures/accuracy_ece_vs_T.png)", "",
            "![ID vs OOD entropy](figures/entropy_hist.png)", "",
            "![reliability diagrams, each bin labelled with its image count; bins of fewer than "
            "10 images hatched](figures/reliability.png)", "",
            "![rejection curves](figures/rejection.png)", ""]

    # RTL
    out += ["## RTL verification", ""]
    if res["rtl"]:
        rows = []
        for n, r in res["rtl"].items():
            bound = res["cost"][n]["cycles"]["bound_per_sample"]
            rows.append([n, r["simulator"], f"{r['images']} x {r['samples']}", _f(r["mismatches"]),
                         _f(r["device_mismatches"]), _f(r["recount_mismatches"]),
                         _f(r["predictions_equal"]), _f(r["max_abs_entropy_diff"], 3),
                         _f(r["max_abs_mi_diff"], 3), _f(r["float_prediction_agreement"], 3),
                         _f(r["cycles_per_sample"], 1), _f(bound), _f(r["rtl_accuracy"], 3)])
        out += _table(["design", "sim", "images x T", "mismatches", "device mism.",
                       "recount (definition)", "predictions = golden", "max abs dH", "max abs dMI",
                       "float agreement", "cycles/sample", "bound", "RTL accuracy"], rows)
        out += ["", src("rtl"), "",
                "Class integers of every MC sample compared with `==` by the regression's "
                "scoreboard (mismatches) and recounted here against the definition "
                "(hwgen.ir.interp.run) with the masks the MTJ models produced; entropy and MI "
                "recomputed from the RTL's integers through the IR's logit affine. Float "
                "agreement: the torch model's predictions with the same masks.", ""]
    else:
        out += ["No design was simulated (rtl_images = 0 or no variant in rtl_variants).", ""]

    # cost
    out += ["## Hardware cost", ""]
    name = res["cost_design"]
    if name:
        rep = res["cost"][name]
        tot, e = rep["totals"], rep["energy_pj_per_inference"]
        meas = {b: None for b in BASELINES}
        for b in ("spatial", "element"):
            n2 = name.replace(name.split("-")[0], b, 1)
            if n2 in res["rtl"]:
                meas[b] = res["rtl"][n2]["cycles_per_sample"]
        labels = {"spatial": "spatial", "element": "element (bit per image and sample)",
                  "element_window": "element (bit per window)"}
        rows = []
        for b in BASELINES:
            r = rep["ratios_over_spatial"].get(b, {})
            rows.append([labels[b], _f(tot[b]["modules"]), _f(tot[b]["draws_per_sample"]),
                         _f(tot[b]["draws"]), _f(rep["crossbar_reads_per_inference"]),
                         _f(tot[b]["cycles_bound_per_sample"]), _f(meas[b], 1),
                         _f(e[f"rng_{b}"] / 1e3, 3), _f(e[f"total_{b}"] / 1e3, 3),
                         _f(r.get("modules"), 2) + "x" if r else "1x",
                         _f(r.get("rng_energy"), 2) + "x" if r else "1x",
                         _f(r.get("total_energy"), 2) + "x" if r else "1x"])
        out += [f"Network `{res['arch']}` ({name}'s IR), T = {rep['design']['samples']}, "
                f"lanes = {rep['design']['lanes']}, tile {c['tile']}; energy from "
                f"hwgen.energy_table (sources in results.json `cost.{name}.energy_table`).", ""]
        out += _table(["baseline", "modules", "draws/sample", "draws/inference",
                       "crossbar reads/inference", "cycles/sample (bound)", "cycles/sample (RTL)",
                       "RNG nJ/inference", "total nJ/inference", "modules / spatial",
                       "RNG energy / spatial", "total energy / spatial"], rows)
        out += ["", src(f"cost.{name}"), "", "![cost bars](figures/cost.png)", ""]
        pc = res["paper_comparison"]
        out += ["### The paper's 9x and 94.11x next to hwgen's", ""]
        rows = [[f"layer {s['layer']} ({s['op']} {s['kernel'][0]}x{s['kernel'][1]}, "
                 f"{s['windows']} window{'s' if s['windows'] != 1 else ''})", _f(s["spatial_modules"]), _f(s["element_modules"]),
                 _f(s["module_ratio"], 2) + "x", f"{s['kernel_area']}", _f(s["window_draws"])]
                for s in pc["sites"]]
        out += _table(["dropout site", "spatial modules", "element modules", "ratio",
                       "kh*kw", "per-window draws/sample"], rows)
        out += [""]
        out += _table(["figure", "paper (Spatial-SpinDrop)", "hwgen, element per image",
                       "hwgen, element per window"],
                      [["dropout modules (element / spatial)", f"{PAPER['modules']}x per layer",
                        _f(pc["modules"]["element"], 2) + "x network",
                        _f(pc["modules"]["element_window"], 2) + "x network"],
                       ["random draws", "-", _f(pc["draws"]["element"], 2) + "x",
                        _f(pc["draws"]["element_window"], 2) + "x"],
                       ["RNG energy", f"{PAPER['energy']}x (energy)",
                        _f(pc["rng_energy"]["element"], 2) + "x",
                        _f(pc["rng_energy"]["element_window"], 2) + "x"],
                       ["total energy per inference", f"{PAPER['energy']}x (energy)",
                        _f(pc["total_energy"]["element"], 2) + "x",
                        _f(pc["total_energy"]["element_window"], 2) + "x"],
                       ["cycles per MC sample (bound)", "-", _f(pc["cycles"]["element"], 2) + "x",
                        _f(pc["cycles"]["element_window"], 2) + "x"]])
        out += ["", src("paper_comparison"), "", f"Paper: {pc['source']}.", "",
                "**Why the figures differ.** " + pc["explanation"], ""]
    else:
        out += ["No MC design was compiled.", ""]

    # summary
    out += ["## Model summary", ""]
    for n, s in res["summary"].items():
        if n.startswith("element-") and n.replace("element-", "spatial-", 1) in res["summary"]:
            continue            # the same network; only its site interfaces differ
        out += [f"`hwgen summary {res['compile'][n]['dir']}`:", "", "```", s["text"].rstrip(), "```",
                "", src(f"summary.{n}"), ""]

    # training, timings
    out += ["## Models", ""]
    rows = [[n, m["kind"], m["variant"], str(m["seed"]), f"`{m['spec']}`", str(m["epochs"]),
             _f(m["train_acc"]), _f(m["test_acc_torch"]), m["weights_sha256"][:12]]
            for n, m in res["models"].items()]
    out += _table(["model", "kind", "sites", "seed", "SPEC", "epochs", "train acc (1 sample)",
                   f"test acc (torch, T = {next(iter(res['models'].values()))['test_acc_torch_samples']})",
                   "weights sha256"], rows)
    out += ["", src("models"), "", "## This run", ""]
    rows = [[s, _f(t.get("seconds"), 1), "cached" if t.get("cached") else "ran",
             _units(t.get("units", {}))] for s, t in run["steps"].items()]
    out += _table(["step", "seconds", "step cache", "units run / cached"], rows)
    out += ["", f"_Timings of `{cmd}` in {run['output_dir']} (results.json `run`); hwgen "
            f"{run['hwgen']}, commit {run['commit'] or 'unknown'}"
            f"{' (dirty tree)' if run['dirty'] else ''}. Timings vary with the load of the "
            f"shared machine._", ""]
    return "\n".join(out)


def _units(u: dict) -> str:
    if not u:
        return "-"
    ran = sum(1 for v in u.values() if not v.get("cached"))
    return f"{ran} / {len(u) - ran}"


def write_report(ctx) -> dict:
    """Write figures/, results.json and REPORT.md (each atomically); return their names."""
    from ..bench.common import git_state
    from .plots import write_figures

    res = build_results(ctx)
    raws = {}
    for n, e in ctx.results["evaluate"]["models"].items():
        with np.load(ctx.path(e["raw"])) as z:
            raws[n] = {k: z[k] for k in z.files if k != NPZ_MARK}
    caption = f"{ctx.command} (config {res['config_fingerprint']})"
    res["figures"] = write_figures(ctx.outdir, res, raws, caption)
    commit, dirty = git_state()
    steps = {k: v for k, v in ctx.timings.items() if isinstance(v, dict)}
    run = {"command": ctx.command, "output_dir": str(ctx.outdir), "steps": steps,
           "hwgen": __version__, "commit": commit, "dirty": dirty}
    write_text(ctx.path("results.json"),
               json.dumps(dict(res, run=run), sort_keys=True, indent=1, allow_nan=False) + "\n")
    write_text(ctx.path("REPORT.md"), render_markdown(res, run))
    log.info("wrote %s and %s", ctx.path("REPORT.md"), ctx.path("results.json"))
    return {"files": ["REPORT.md", "results.json", *res["figures"]]}
