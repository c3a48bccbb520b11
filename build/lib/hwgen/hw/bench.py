"""Cycles per MC sample of the generated top, measured in Amaranth's simulator, against
the DESIGN section 7 bound sum_{l >= mc_start} W_l * r_l.

    python -m hwgen.hw.bench IR.json [IR.json ...] --lanes 2 8 --samples 3 --json out.json

Per layer it reports the cycles from `start` to `done` (the first of them is the window
fetch, which overlaps the previous layer's last tile beat) next to W_l * r_l; per sample
the distance between consecutive `out` beats (steady state) and the first sample's
latency from `start` (which includes the image's deterministic prefix).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from ..atomic import write_text
from ..ir.core import IR, loads
from .plan import cycle_bound
from .testing import TopBench
from .top import NetworkTop

__all__ = ["measure_cycles", "main"]

log = logging.getLogger(__name__)


def measure_cycles(ir: IR, lanes: int, samples: int = 3, seed: int = 0) -> dict:
    top = NetworkTop(ir, lanes=lanes)
    bench = TopBench(top, seed=seed)
    img = np.random.default_rng(seed).integers(0, 2, (1,) + tuple(ir.in_shape)).astype(np.uint8)
    t0 = time.perf_counter()
    bench.run(img, samples)
    wall = time.perf_counter() - t0
    layers = []
    cb = cycle_bound(ir, lanes)
    for i, layer in enumerate(ir.layers):
        ctl = top.controllers[i]
        w_r = cb.per_layer[i]
        meas = bench.layer_cycles.get(i, [])
        layers.append({"layer": i, "per_sample": i >= ir.mc_start, "windows": layer.windows,
                       "beats": ctl.beats, "lanes": list(ctl.lanes), "bound": w_r,
                       "start_to_done": meas[-1] if meas else None})
    beats = [c for _, c in bench.beat_cycles]
    per_sample = [int(v) for v in np.diff(beats)]
    bound = cb.per_sample
    return {"lanes": lanes, "samples": samples, "layers": layers, "bound": bound,
            "cycles_per_sample": per_sample,
            "ratio": max(per_sample) / bound if per_sample else None,
            "sim_wall_s": round(wall, 3)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hwgen.hw.bench", description=__doc__.splitlines()[0])
    ap.add_argument("ir", nargs="+", help="ir.json files (e.g. from hwgen compile)")
    ap.add_argument("--lanes", type=int, nargs="+", default=[2, 8])
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = []
    for path in args.ir:
        ir = loads(Path(path).read_text())
        for lanes in args.lanes:
            r = measure_cycles(ir, lanes, args.samples)
            r["ir"] = str(path)
            r["spec"] = ir.meta.spec
            out.append(r)
            layer_txt = ", ".join(f"L{l['layer']}: {l['start_to_done']} (W*r={l['bound']})"
                                  for l in r["layers"] if l["per_sample"])
            print(f"{r['spec']} lanes={lanes}: cycles/sample {r['cycles_per_sample']} "
                  f"bound {r['bound']} ratio {r['ratio']:.4f}; start->done {layer_txt}; "
                  f"sim {r['sim_wall_s']} s")
    if args.json:
        write_text(args.json, json.dumps(out, sort_keys=True, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
