"""`hwgen bench cycles OUTDIR|ir.json [...] [--lanes L ...] [--samples T]`: cycles per MC
sample of the generated top, measured in Amaranth's simulator, against the schedule's
bound (`hwgen.hw.plan.cycle_bound`: per layer W_l * r_l plus the ring steps beyond the
reads, a start cycle per layer, or the first MC layer's homing when that is longer).

Per layer it reports the cycles from `start` to `done` (the first request comes a cycle
after `start`, the last beat a read latency after it) next to its walk; per sample
the distance between consecutive `out` beats (steady state). A multi-bit first layer
reads each window once per input bit plane, and its bound counts those P reads. Without
--lanes a target is measured at the read plans its IR records (an unscheduled ir.json at
the default, the array); each --lanes L re-runs the schedule pass at L
(hwgen.passes.reschedule) first.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from ..ir.core import IR
from .common import finish, new_record, table

__all__ = ["measure_cycles", "load_ir", "run"]

log = logging.getLogger(__name__)


def measure_cycles(ir: IR, samples: int = 3, seed: int = 0) -> dict:
    """Run one random image with `samples` MC samples through `NetworkTop(ir)` (a
    scheduled IR: its read plans) in Amaranth's simulator; return the per-layer and
    per-sample cycles and the bound."""
    from ..hw.plan import cycle_bound
    from ..hw.simulate import TopBench
    from ..hw.top import NetworkTop

    top = NetworkTop(ir)
    bench = TopBench(top, seed=seed)
    img = np.random.default_rng(seed).integers(0, 2, (1, *ir.input_bits_shape)).astype(np.uint8)
    t0 = time.perf_counter()
    bench.run(img, samples)
    wall = time.perf_counter() - t0
    layers = []
    cb = cycle_bound(ir)
    for i, layer in enumerate(ir.layers):
        ctl = top.controllers[i]
        meas = bench.layer_cycles.get(i, [])
        layers.append({"layer": i, "per_sample": i >= ir.mc_start, "windows": layer.reads,
                       "beats": ctl.beats, "passes": ctl.plan.passes, "lanes": list(ctl.lanes),
                       "bound": cb.per_layer[i],
                       "start_to_done": meas[-1] if meas else None})
    beats = [c for _, c in bench.beat_cycles]
    per_sample = [int(v) for v in np.diff(beats)]
    return {"lanes": "array" if ir.lanes is None else ir.lanes, "samples": samples, "layers": layers, "bound": cb.per_sample,
            "prefix_bound": cb.prefix, "input": ir.input.name,
            "cycles_per_sample": per_sample,
            "ratio": max(per_sample) / cb.per_sample if per_sample else None,
            "sim_wall_s": round(wall, 3)}


def load_ir(target) -> IR:
    """The scheduled IR of an OUTDIR (checked against its manifest, hwgen.design) or of
    an ir.json file (an unscheduled one gets the default plans)."""
    from ..design import read_ir
    from ..passes import reschedule
    ir, _ = read_ir(target)
    if ir.stage == "integer" and any(l.plan is None for l in ir.layers):
        ir = reschedule(ir, None)
    return ir


def run(args) -> tuple[int, str]:
    rec = new_record("cycles", args.label)
    rec.update(samples=args.samples, seed=args.seed, results=[])
    for target in args.target:
        base = load_ir(target)
        from ..passes import reschedule
        splits = getattr(args, "row_splits", None)
        if args.lanes or splits is not None:
            # the schedule pass again: at each --lanes (or the IR's), at --row-splits
            variants = [reschedule(base, lanes, splits) for lanes in args.lanes or [base.lanes]]
        else:
            variants = [base]
        for v in variants:
            log.info("%s: lanes %s, %d samples in Amaranth's simulator", target,
                     "array" if v.lanes is None else v.lanes, args.samples)
            r = measure_cycles(v, args.samples, args.seed)
            r.update(target=str(target), spec=base.meta.spec)
            rec["results"].append(r)
    rows, layer_rows, prefix_rows = [], [], []
    for r in rec["results"]:
        worst = max(r["cycles_per_sample"]) if r["cycles_per_sample"] else None
        rows.append([r["spec"] or r["target"], r["lanes"], r["bound"], worst,
                     r["ratio"], r["sim_wall_s"]])
        layer_rows += [[r["spec"] or r["target"], r["lanes"], l["layer"], l["windows"], l["beats"],
                        l["passes"], l["bound"], l["start_to_done"]]
                       for l in r["layers"] if l["per_sample"]]
        prefix_rows += [[r["spec"] or r["target"], r["lanes"], l["layer"], r["input"] if l["layer"] == 0
                         else "", l["windows"], l["beats"], l["bound"], l["start_to_done"]]
                        for l in r["layers"] if not l["per_sample"]]
    text = table(["design", "lanes", "bound", "cycles/sample", "ratio", "sim s"], rows,
                 f"bench cycles: {args.samples} MC samples of one random image "
                 "(cycles/sample: the worst gap between output beats)")
    text += "\n" + table(["design", "lanes", "layer", "windows", "r", "passes", "W*r*passes",
                          "start->done"], layer_rows,
                         "per-sample layers: W*r*passes bound vs cycles from start to done")
    if prefix_rows:
        text += "\n" + table(["design", "lanes", "layer", "input", "windows", "r", "P*W*r", "start->done"],
                             prefix_rows, "prefix layers (once per image; a multi-bit first "
                             "layer reads each window once per bit plane P)")
    return 0, finish(rec, text, args.json)
