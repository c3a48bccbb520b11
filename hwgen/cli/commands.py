"""The subcommands' shells: read the parsed options, call the library, print, exit status.

Each imports its stage when it runs, so that `hwgen --help` stays fast, a broken stage
cannot break the others, and `hwgen predict` / `hwgen summary` on a compiled folder never
import torch or amaranth. The library functions they call print nothing.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger("hwgen.cli")

__all__ = ["cmd_train", "cmd_eval", "cmd_compile", "cmd_predict", "cmd_summary",
           "cmd_report", "cmd_demo", "cmd_bench", "cmd_sim", "cmd_faults", "cmd_study"]


def cmd_train(args) -> int:
    from ..atomic import check_output_file
    from ..model.io import save_model
    from ..model.train import TrainConfig, train
    cfg = TrainConfig(dataset=args.dataset, arch=args.arch, dropout=args.dropout, p=args.p,
                      epochs=args.epochs, seed=args.seed, batch_size=args.batch_size,
                      lr=args.lr, dropout_scale=args.dropout_scale,
                      theta=getattr(args, "theta", None), input=getattr(args, "input", "binary"))
    check_output_file(args.output)          # before training: a foreign file is never replaced
    model, meta = train(cfg)
    save_model(args.output, model, meta)
    log.info("wrote %s", args.output)
    return 0


def cmd_eval(args) -> int:
    from ..atomic import check_output_file, write_text
    from ..model.evaluate import EVAL_FORMAT, PLOTS, evaluate, write_plots
    from ..model.io import load_checkpoint
    for f in ([args.json] if args.json else []) + ([Path(args.plots) / n for n in PLOTS]
                                                   if args.plots else []):
        check_output_file(f)                # before any work
    ckpt = load_checkpoint(args.model)
    report, raw = evaluate(ckpt, args.samples, seed=args.seed, limit=args.limit)
    o = report["ood"]
    log.info("%s %s dropout=%s T=%d on %d images", report["dataset"], report["arch"],
             report["dropout"], report["samples"], report["n_test"])
    print(f"accuracy {report['accuracy']:.4f}  nll {report['nll']:.4f}  ece {report['ece']:.4f}  "
          f"brier {report['brier']:.4f}  entropy {report['mean_entropy']:.4f}  "
          f"mi {report['mean_mi']:.4f}")
    print(f"OOD ({report['n_ood']} images)  AUROC entropy {o['entropy']['auroc']:.4f} "
          f"mi {o['mi']['auroc']:.4f}  AUPR entropy {o['entropy']['aupr']:.4f} "
          f"mi {o['mi']['aupr']:.4f}  FPR@95 entropy {o['entropy']['fpr95']:.4f} "
          f"mi {o['mi']['fpr95']:.4f}")
    if args.json:
        write_text(args.json, json.dumps(dict(report, format=EVAL_FORMAT), indent=2,
                                         sort_keys=True) + "\n")
    if args.plots:
        write_plots(args.plots, report, raw)
    return 0


def cmd_compile(args) -> int:
    from ..compiler import compile_model, config_from_args, default_outdir
    outdir = Path(args.output) if args.output else default_outdir(args.model)
    compile_model(args.model, outdir, config_from_args(args))
    return 0


def cmd_predict(args) -> int:
    import io

    import numpy as np

    from ..atomic import NPZ_MARK, check_output_file, write_bytes
    from ..data import load_inputs
    from ..design import load_design
    from ..predict import predict
    check_output_file(args.output)          # before any work
    ir = load_design(args.outdir).ir
    x = load_inputs(args.inputs, ir.in_shape)
    out = predict(ir, x, args.samples, args.seed)
    buf = io.BytesIO()
    np.savez(buf, **out, **{NPZ_MARK: np.array("hwgen-predict")})
    write_bytes(args.output, buf.getvalue())
    counts = np.bincount(out["prediction"], minlength=ir.n_classes)
    log.info("wrote %s: %d images x %d samples; predictions per class %s; mean entropy "
             "%.4f, mean MI %.4f", args.output, len(x), args.samples, counts.tolist(),
             float(out["entropy"].mean()), float(out["mutual_information"].mean()))
    return 0


def cmd_summary(args) -> int:
    from ..atomic import check_output_file, write_text
    from ..errors import HwgenError
    from ..summary import load_ir, render, summarize
    if args.json:
        check_output_file(args.json)        # before any work
    s = summarize(load_ir(args.target, args.tile))
    text = render(s)
    if args.json:
        try:
            write_text(args.json, json.dumps(s, sort_keys=True, indent=1, allow_nan=False) + "\n")
        except OSError as e:
            raise HwgenError(f"writing {args.json} failed: {e}") from None
    print(text, end="")
    return 0


def cmd_report(args) -> int:
    from ..cost.report import write_report
    _, text = write_report(args.outdir, args.json, getattr(args, "samples", None))
    print(text, end="")
    return 0


def cmd_demo(args) -> int:
    from ..demo import run_demo
    from ..sim.regression import summary_line
    acc, report = run_demo(args.workdir, args.simulator)
    if acc is not None:
        print(f"hwgen demo: digits model test accuracy {acc:.3f}")
    print(summary_line(report))
    if report.get("waveform"):
        print(f"waveform: {report['waveform']}")
    return 0 if report["ok"] else 1


def cmd_bench(args) -> int:
    from ..bench import run_bench
    code, text = run_bench(args)
    print(text, end="")
    return code


def cmd_sim(args) -> int:
    from .. import engine
    from ..atomic import check_output_file, write_text
    from ..errors import HwgenError
    from ..atomic import sha256_file
    from ..sim.regression import merge_reports, parse_shard, run_regression, summary_line
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
        if v.is_file() and sha256_file(v) != report["verilog_sha256"]:
            raise HwgenError(f"the reports are of another design than {args.outdir}")
    else:
        if args.json:
            check_output_file(args.json)    # before the simulation
        with engine.from_args(args, progress=True) as eng:
            report = run_regression(args.outdir, args.simulator, args.images, args.samples,
                                    args.seed, parse_shard(args.shard), jobs=eng.parts,
                                    inputs=getattr(args, "inputs", None), engine=eng)
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


def cmd_faults(args) -> int:
    from .. import engine
    from ..atomic import check_output_file, write_bytes, write_text
    from ..faults import plan as fplan
    from ..faults.campaign import coverage_png, run_campaign, summary_table
    kinds = tuple(k.strip() for k in args.kinds.split(",")) if args.kinds else fplan.KINDS
    for path in (args.json, args.png):
        if path is not None:
            check_output_file(path)
    with engine.from_args(args, progress=not args.no_progress) as eng:
        rep = run_campaign(args.outdir, faults=args.faults, kinds=kinds, seed=args.seed,
                           samples=args.samples, held=args.held, test_images=args.test_images,
                           rtl=args.rtl, simulator=args.simulator, plan_file=args.plan,
                           progress=not args.no_progress, inputs=args.inputs, engine=eng,
                           batch=args.batch)
    print(summary_table(rep))
    g = rep["golden"]
    print(f"golden: {rep['faults']} faults in {g['wall_s']:.1f} s ({g['faults_per_min']} per min)")
    if rep["rtl"] is not None:
        r = rep["rtl"]
        print(f"{r['simulator']}: {r['faults']} faults in {r['wall_s']:.1f} s, "
              f"{r['batches']} batches ({r['faults_per_min']} per min), "
              f"{r['agree']}/{r['faults']} agree with golden")
    if args.json is not None:
        write_text(args.json, json.dumps(rep, indent=1, sort_keys=True) + "\n")
    if args.png is not None:
        write_bytes(args.png, coverage_png(rep))
    return 0 if rep["ok"] else 1


def cmd_study(args) -> int:
    """Exit 0, or 1 when an RTL regression found a mismatch (the report is still written)."""
    from dataclasses import replace

    from .. import engine
    from ..study import load_config, run
    name = "tiny" if args.tiny else args.config
    if args.tiny and args.config not in (None, "tiny"):
        from ..errors import HwgenError
        raise HwgenError(f"--tiny and --config {args.config} contradict each other")
    cfg = load_config(name)
    if args.output:
        cfg = replace(cfg, output_dir=args.output).validate()
    command = "hwgen study " + ("--tiny" if name == "tiny" else f"--config {name or 'paper'}")
    with engine.from_args(args) as eng:
        ctx = run(cfg, command, engine=eng)
    rtl = ctx.results["verify_rtl"]["designs"]
    bad = [n for n, r in rtl.items() if not r["ok"]]
    print(f"hwgen study: wrote {cfg.output_dir}/REPORT.md and {cfg.output_dir}/results.json"
          f" ({len(ctx.results['train']['models'])} models, {len(rtl)} RTL designs"
          f"{', MISMATCHES in ' + ', '.join(bad) if bad else ', 0 RTL mismatches'})")
    return 1 if bad else 0
