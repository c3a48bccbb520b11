"""The `hwgen` command (DESIGN section 12). Each subcommand lazily imports its stage,
so `hwgen --help` stays fast and a broken stage cannot break the others."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .errors import HwgenError

# subcommand -> "module:function"; the function takes the parsed args, returns an exit code.
COMMANDS = {
    "train": "hwgen.model.train:cmd_train",
    "eval": "hwgen.model.evaluate:cmd_eval",
    "compile": "hwgen.compile:cmd_compile",
    "sim": "hwgen.sim.regression:cmd_sim",
    "report": "hwgen.cost.report:cmd_report",
    "predict": "hwgen.predict:cmd_predict",
    "demo": "hwgen.demo:cmd_demo",
    "bench": "hwgen.bench:cmd_bench",
    "summary": "hwgen.summary:cmd_summary",
    "study": "hwgen.study:cmd_study",
}


def _probability(text: str) -> float:
    try:
        p = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"probability must be a number, not {text!r}") from None
    if not 0.0 < p < 1.0:
        raise argparse.ArgumentTypeError(f"probability must be in (0, 1), not {text!r}")
    return p


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return n


def _nonneg(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, not {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, not {text!r}")
    return n


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        sys.stderr.write(f"hwgen: error: {message}\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="hwgen", description=__doc__.splitlines()[0])
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = ap.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train a binary CNN")
    p.add_argument("--dataset", choices=["digits", "fashion-mnist"], default="digits")
    p.add_argument("--arch", default=None, help="SPEC, e.g. c16,p2,c32,p2,f10 (default per dataset)")
    p.add_argument("--dropout", choices=["none", "element", "spatial"], default="spatial")
    p.add_argument("--p", type=_probability, default=0.2, help="dropout probability")
    p.add_argument("--epochs", type=_positive, default=None)
    p.add_argument("--seed", type=_nonneg, default=0)
    p.add_argument("--batch-size", type=_positive, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--dropout-scale", action="store_true", help="inverted-dropout scaling 1/(1-p)")
    p.add_argument("--theta", type=float, default=None,
                   help="input binarisation threshold, pixel >= theta -> 1 (default per dataset)")
    p.add_argument("--input", default="binary", metavar="MODE",
                   help="first-layer input: binary (default) or bitserial-n (n-bit pixels, "
                        "one crossbar pass per bit plane)")
    p.add_argument("-o", "--output", required=True)

    p = sub.add_parser("eval", help="MC inference: accuracy and uncertainty metrics")
    p.add_argument("model")
    p.add_argument("--samples", type=_positive, default=16)
    p.add_argument("--seed", type=_nonneg, default=0)
    p.add_argument("--limit", type=_positive, default=None, help="evaluate on the first N test images")
    p.add_argument("--json", default=None)
    p.add_argument("--plots", default=None)

    p = sub.add_parser("compile", help="model.pt or model.onnx -> IR + Verilog + ports JSON + manifest")
    p.add_argument("model")
    p.add_argument("-o", "--output", default=None, help="OUTDIR (default rtl_out/<model name>)")
    p.add_argument("--tile", default="128x128", help="crossbar size RxC")
    p.add_argument("--lanes", type=_positive, default=8, help="columns per cycle in a tile read")
    p.add_argument("--check-images", type=_nonneg, default=64,
                   help="held-out images for the float-vs-integer check (0 = skip)")
    p.add_argument("--no-verilog", action="store_true", help="IR and manifest only")
    p.add_argument("--dropout", choices=["spatial", "element"], default=None,
                   help="ONNX model: add MC dropout sites (it was trained without them)")
    p.add_argument("--p", type=_probability, default=0.2, help="ONNX model: dropout probability")
    p.add_argument("--sites", default=None,
                   help="ONNX model: comma list of layer indices (default: all but the first)")

    p = sub.add_parser("sim", help="cocotb regression of the RTL against the golden model")
    p.add_argument("outdir")
    p.add_argument("--simulator", choices=["icarus", "verilator"], default="verilator")
    p.add_argument("--images", type=_positive, default=10)
    p.add_argument("--inputs", default=None, metavar="X.npy",
                   help="float32 images [N, C, H, W] (default: the model's test images)")
    p.add_argument("--samples", type=_positive, default=4)
    p.add_argument("--seed", type=_nonneg, default=0)
    p.add_argument("--shard", default=None, help="i/n: run the i-th of n image shards (i from 0)")
    p.add_argument("--jobs", type=_positive, default=1, help="run the images in J parallel shards")
    p.add_argument("--merge", nargs="+", default=None, metavar="REPORT",
                   help="merge shard reports (JSON) into one instead of simulating")
    p.add_argument("--json", default=None)

    p = sub.add_parser("predict", help="golden MC inference of a compiled design on your images")
    p.add_argument("outdir")
    p.add_argument("--inputs", required=True, metavar="X.npy", help="float32 images [N, C, H, W]")
    p.add_argument("--samples", type=_positive, default=16)
    p.add_argument("--seed", type=_nonneg, default=0)
    p.add_argument("-o", "--output", required=True, metavar="Y.npz")

    p = sub.add_parser("report", help="cost report: modules, draws, reads, cycles, energy")
    p.add_argument("outdir")
    p.add_argument("--json", default=None)
    p.add_argument("--samples", type=_positive, default=None,
                   help="T for per-inference figures (default: the sim report's T, else 16)")

    p = sub.add_parser("summary", help="per-layer model summary: parameters by bit width, "
                       "memory, binary MACs, crossbar tiles and their utilisation")
    p.add_argument("target", metavar="OUTDIR|ir.json|model.pt")
    p.add_argument("--json", default=None, metavar="F", help="also write the summary as JSON to F")
    p.add_argument("--tile", default="128x128", help="crossbar size RxC (model.pt only)")

    p = sub.add_parser("study", help="the spatial-vs-element study as one command: train, "
                       "evaluate, compile, verify RTL, cost, summary, report")
    p.add_argument("--config", default=None, metavar="study.json|paper|tiny",
                   help="a JSON file of StudyConfig fields, or a preset name (default: paper)")
    p.add_argument("--tiny", action="store_true", help="the tiny preset (same as --config tiny)")
    p.add_argument("-o", "--output", default=None,
                   help="output directory (default: the config's output_dir)")

    p = sub.add_parser("demo", help="train on digits, compile, export, simulate")
    p.add_argument("--workdir", default="runs/demo")
    p.add_argument("--simulator", choices=["icarus", "verilator"], default="verilator")

    p = sub.add_parser("bench", help="benchmarks: print a table, write one JSON record (--json)")
    benches = p.add_subparsers(dest="what", required=True, parser_class=_Parser,
                               metavar="{train,golden,cycles,sim,shapes}")

    def bench(name, help):
        q = benches.add_parser(name, help=help)
        q.add_argument("--json", default=None, metavar="F", help="write the record to F")
        q.add_argument("--label", default=None, help="a name for this run, kept in the record")
        return q

    q = bench("train", "s/epoch per dropout kind and MC inference images/s (torch)")
    q.add_argument("--dataset", choices=["digits", "fashion-mnist"], default="fashion-mnist")
    q.add_argument("--model", default=None, help="time MC inference on this model.pt")
    q.add_argument("--images", type=_positive, default=1000, help="MC inference test images")
    q.add_argument("--samples", type=_positive, default=16)

    q = bench("golden", "golden interpreter vs torch float model, MC samples/s")
    q.add_argument("--model", required=True, help="model.pt")
    q.add_argument("--images", type=_positive, default=256)
    q.add_argument("--samples", type=_positive, default=16)
    q.add_argument("--repeats", type=_positive, default=3, help="best of R timed runs")

    q = bench("cycles", "cycles per MC sample in Amaranth's simulator vs the section 7 bound")
    q.add_argument("target", nargs="+", metavar="OUTDIR|ir.json")
    q.add_argument("--lanes", type=_positive, nargs="+", default=None,
                   help="lanes to measure (default: the OUTDIR's, else 8)")
    q.add_argument("--samples", type=_positive, default=3)
    q.add_argument("--seed", type=_nonneg, default=0)

    q = bench("sim", "compile stages, Verilog size, cold simulator build, RTL MC samples/s")
    q.add_argument("target", metavar="MODEL.pt|OUTDIR")
    q.add_argument("--simulator", choices=["icarus", "verilator"], default="verilator")
    q.add_argument("--images", type=_positive, default=10)
    q.add_argument("--samples", type=_positive, default=4)
    q.add_argument("--seed", type=_nonneg, default=0)
    q.add_argument("--lanes", type=_positive, default=None, help="compile option (default 8)")
    q.add_argument("--tile", default=None, help="compile option RxC (default 128x128)")
    q.add_argument("--check-images", type=_nonneg, default=64,
                   help="compile's float-vs-integer check images (0 = skip)")
    q.add_argument("-o", "--output", default=None,
                   help="compile into this OUTDIR and keep it (default: a temporary one)")

    q = bench("shapes", "bench sim on named shapes with random weights (digits, fashion, "
                        "fashion-wide, cnv)")
    q.add_argument("--shapes", default=None, help="comma list (default: all)")
    q.add_argument("--simulator", choices=["icarus", "verilator"], default="verilator")
    q.add_argument("--images", type=_positive, default=4)
    q.add_argument("--samples", type=_positive, default=16)
    q.add_argument("--seed", type=_nonneg, default=0)
    q.add_argument("--lanes", type=_positive, default=8, help="compile option (default 8)")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    module, func = COMMANDS[args.command].split(":")
    try:
        return int(getattr(importlib.import_module(module), func)(args) or 0)
    except HwgenError as e:
        sys.stderr.write(f"hwgen: error: {e}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
