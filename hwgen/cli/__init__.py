"""The `hwgen` command line: the parser, the option rules and `main` (one-line errors,
exit status 2). The subcommands are thin shells over the library (hwgen.cli.commands and
the stages' own `cmd_*`); each lazily imports its stage, so that `hwgen --help` stays fast
and a broken stage cannot break the others."""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import os
import sys

from .. import engine
from ..config import DEFAULT
from ..errors import HwgenError

DESCRIPTION = """\
hwgen turns a binary Bayesian neural network (sign weights and activations, MC dropout)
into spintronic compute-in-memory hardware: Verilog of MRAM crossbar tiles with one MTJ
random bit source per dropout group, checked bit for bit against a golden integer model.

Typical flow:
  hwgen train --dataset digits -o model.pt     train a binary CNN (or bring a Brevitas
                                               model exported to QONNX, model.onnx)
  hwgen compile model.pt -o rtl                integer IR + Verilog + ports + manifest
  hwgen sim rtl                                the RTL against the golden model (cocotb)
  hwgen report rtl                             modules, draws, reads, cycles, energy

Every error is one line and exit status 2; nothing is left half-written. `hwgen CMD
--help` describes each command and its options."""

INPUTS_HELP = ("float pixels in [0, 1] as a .npy array [N, C, H, W] (or [N, F] for a model "
               "whose input is F features, [N, H, W] when C = 1); a .npz, an integer array "
               "(divide 8-bit pixels by 255) or values outside [0, 1] are refused")

# subcommand -> "module:function"; the function takes the parsed args, returns an exit code.
COMMANDS = {
    "train": "hwgen.cli.commands:cmd_train",
    "eval": "hwgen.cli.commands:cmd_eval",
    "compile": "hwgen.cli.commands:cmd_compile",
    "sim": "hwgen.cli.commands:cmd_sim",
    "report": "hwgen.cli.commands:cmd_report",
    "predict": "hwgen.cli.commands:cmd_predict",
    "demo": "hwgen.cli.commands:cmd_demo",
    "bench": "hwgen.cli.commands:cmd_bench",
    "summary": "hwgen.cli.commands:cmd_summary",
    "study": "hwgen.cli.commands:cmd_study",
    "faults": "hwgen.cli.commands:cmd_faults",
}


def _checked(parse, ok, not_parsed: str, out_of_range: str):
    """An argparse type: `parse` the text (failing: `not_parsed`), then require `ok` of the
    value (failing: `out_of_range`); each message gets `, not {text!r}`."""
    def convert(text: str):
        try:
            v = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{not_parsed}, not {text!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"{out_of_range}, not {text!r}")
        return v
    return convert


_probability = _checked(float, lambda p: 0.0 < p < 1.0, "probability must be a number",
                        "probability must be in (0, 1)")
_positive = _checked(int, lambda n: n >= 1, "must be a positive integer",
                     "must be a positive integer")
_nonneg = _checked(int, lambda n: n >= 0, "must be a non-negative integer",
                   "must be a non-negative integer")
_learning_rate = _checked(float, lambda v: math.isfinite(v) and v > 0.0,
                          "learning rate must be a number",
                          "learning rate must be a positive finite number")
# pixels are in [0, 1]: theta 0 or above 1 is constant
_theta = _checked(float, lambda v: 0.0 < v <= 1.0, "theta must be a number",
                  "theta must be in (0, 1]")


class _Help(argparse.RawDescriptionHelpFormatter):
    """Each option's help ends with its default: `(default: X)` is added unless the help
    already says it (an option whose default is None says in words what happens); flags
    and positionals have none. tests/test_cli_options.py walks every option."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (action.option_strings and action.nargs != 0 and "default" not in text
                and action.default not in (None, argparse.SUPPRESS)):
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

    def error(self, message):  # one line, exit 2
        sys.stderr.write(f"hwgen: error: {_one_line(message)}\n")
        sys.exit(2)


def _one_line(message) -> str:
    """A message as one printable line: a value quoted from a user's file may hold newlines
    or terminal escapes, which must not reach the terminal."""
    text = " ".join(str(message).split())
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def _engine_options(parser) -> None:
    """--jobs and --scheduler of a command whose work fans out (hwgen.engine)."""
    parser.add_argument("--jobs", type=_positive, default=None, metavar="J",
                        help="J worker processes of a local Dask cluster; with --scheduler, J "
                             "parts (default: 1, in this process; with --scheduler, its "
                             "workers)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help=f"run the tasks on this Dask scheduler's workers, e.g. "
                             f"tcp://HOST:8786, or '{engine.IN_PROCESS}' in this process "
                             f"(default: ${engine.ENV}, else local)")


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="hwgen", description=DESCRIPTION)
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = ap.add_subparsers(dest="command", required=True, parser_class=_Parser,
                            metavar="COMMAND")

    def command(name, text):
        return sub.add_parser(name, help=text, description=text)

    p = command("train", "train a binary CNN on a bundled dataset; writes model.pt")
    p.add_argument("--dataset", choices=["digits", "fashion-mnist"], default="digits",
                   help="training and test images")
    p.add_argument("--arch", default=None,
                   help="SPEC, e.g. c16,p2,c32,p2,f10 (default: per dataset, digits "
                        "c32,p2,f10, fashion-mnist c16,p2,c32,p2,f10)")
    p.add_argument("--dropout", choices=["none", "element", "spatial"], default="spatial",
                   help="MC dropout kind: per neuron (element) or per feature map (spatial)")
    p.add_argument("--p", type=_probability, default=None,
                   help="dropout probability in (0, 1) (default: 0.2; not with --dropout none)")
    p.add_argument("--epochs", type=_positive, default=None,
                   help="training epochs (default: per dataset, digits 30, fashion-mnist 10)")
    p.add_argument("--seed", type=_nonneg, default=0, help="seed of weights, batches, masks")
    p.add_argument("--batch-size", type=_positive, default=None,
                   help="images per step (default: per dataset, digits 64, fashion-mnist 128)")
    p.add_argument("--lr", type=_learning_rate, default=None,
                   help="peak Adam learning rate of the one-cycle schedule (default: per "
                        "dataset, digits 0.01, fashion-mnist 0.002)")
    p.add_argument("--dropout-scale", action="store_true",
                   help="inverted-dropout scaling 1/(1-p) (default: off)")
    p.add_argument("--theta", type=_theta, default=None,
                   help="input binarisation threshold in (0, 1], pixel >= theta -> 1 "
                        "(default: per dataset, digits 0.5, fashion-mnist 0.15)")
    p.add_argument("--input", default="binary", metavar="MODE",
                   help="first-layer input: binary or bitserial-n (n-bit pixels, one crossbar "
                        "pass per bit plane)")
    p.add_argument("-o", "--output", required=True, metavar="model.pt",
                   help="the model file to write (required)")

    p = command("eval", "MC inference of a model.pt on its test set: accuracy and "
                        "uncertainty metrics")
    p.add_argument("model", help="a model.pt of hwgen train")
    p.add_argument("--samples", type=_positive, default=16, help="MC samples T per image")
    p.add_argument("--seed", type=_nonneg, default=0, help="seed of the dropout masks")
    p.add_argument("--limit", type=_positive, default=None,
                   help="evaluate on the first N test images (default: all)")
    p.add_argument("--json", default=None, metavar="F",
                   help="write the report to F (default: none)")
    p.add_argument("--plots", default=None, metavar="DIR",
                   help="write the plots into DIR (default: none)")

    p = command("compile", "model.pt or model.onnx -> IR + Verilog + ports JSON + manifest")
    p.add_argument("model", help="a model.pt of hwgen train, or a binary QONNX model.onnx")
    p.add_argument("-o", "--output", default=None, metavar="OUTDIR",
                   help="output folder (default: rtl_out/<folder>-<stem>, from the model's "
                        "folder and file name, e.g. rtl_out/runs-model for runs/model.pt)")
    p.add_argument("--tile", default=DEFAULT.tile_text, help="crossbar size RxC, R and C >= 1")
    p.add_argument("--lanes", type=_positive, default=DEFAULT.lanes,
                   help="columns per cycle in a tile read, the emulation knob (default: the "
                        "array, every column of a tile in one beat; L >= C also reads a tile "
                        "in one beat)")
    p.add_argument("--row-splits", type=_positive, default=DEFAULT.row_splits, metavar="K",
                   help="row splits of a layer read at once, the second emulation knob: "
                        "each beat then takes ceil(splits / K) cycles through K tiles' "
                        "popcounts (default: every split at once, as the arrays read)")
    p.add_argument("--check-images", type=_nonneg, default=DEFAULT.check_images,
                   help="held-out images for the float-vs-integer check (0 = skip)")
    p.add_argument("--no-verilog", action="store_true",
                   help="IR and manifest only (default: with Verilog)")
    p.add_argument("--dropout", choices=["spatial", "element"], default=None,
                   help="ONNX model: add MC dropout sites (it was trained without them) "
                        "(default: none)")
    p.add_argument("--p", type=_probability, default=None,
                   help="ONNX model: dropout probability of the added sites (default: 0.2; "
                        "needs --dropout)")
    p.add_argument("--sites", default=None,
                   help="ONNX model: comma list of layer indices (default: all but the first; "
                        "needs --dropout)")

    p = command("sim", "cocotb regression of the RTL against the golden model")
    p.add_argument("outdir", help="a compiled OUTDIR (hwgen compile, with Verilog)")
    p.add_argument("--simulator", choices=["icarus", "verilator"], default="verilator",
                   help="the Verilog simulator")
    p.add_argument("--images", type=_positive, default=10, help="images to simulate")
    p.add_argument("--inputs", default=None, metavar="X.npy",
                   help=INPUTS_HELP + " (default: the model's test images)")
    p.add_argument("--samples", type=_positive, default=4, help="MC samples T per image")
    p.add_argument("--seed", type=_nonneg, default=0, help="seed of the MTJ device draws")
    p.add_argument("--shard", default=None,
                   help="i/n: run the i-th of n image shards, 0 <= i < n (default: all images)")
    _engine_options(p)     # --jobs (J shards), --scheduler
    p.add_argument("--merge", nargs="+", default=None, metavar="REPORT",
                   help="merge shard reports (JSON) into one instead of simulating "
                        "(default: simulate)")
    p.add_argument("--json", default=None, metavar="F",
                   help="write the report to F (default: none)")

    p = command("predict", "golden MC inference of a compiled design on your images")
    p.add_argument("outdir", help="a compiled OUTDIR (hwgen compile)")
    p.add_argument("--inputs", required=True, metavar="X.npy",
                   help=INPUTS_HELP + " (required)")
    p.add_argument("--samples", type=_positive, default=16, help="MC samples T per image")
    p.add_argument("--seed", type=_nonneg, default=0, help="seed of the dropout masks")
    p.add_argument("-o", "--output", required=True, metavar="Y.npz",
                   help="the .npz to write (required)")

    p = command("report", "cost report: modules, draws, reads, cycles, energy")
    p.add_argument("outdir", help="a compiled OUTDIR (hwgen compile)")
    p.add_argument("--json", default=None, metavar="F",
                   help="also write the report as JSON to F (default: none)")
    p.add_argument("--samples", type=_positive, default=None,
                   help="T for per-inference figures (default: the sim report's T, else 16)")

    p = command("summary", "per-layer model summary: parameters by bit width, memory, binary "
                           "MACs, crossbar tiles and their utilisation")
    p.add_argument("target", metavar="OUTDIR|ir.json|model.pt",
                   help="a compiled OUTDIR, an ir.json or a model.pt")
    p.add_argument("--json", default=None, metavar="F",
                   help="also write the summary as JSON to F (default: none)")
    p.add_argument("--tile", default=DEFAULT.tile_text, help="crossbar size RxC (model.pt only)")

    p = command("study", "the spatial-vs-element study as one command: train, evaluate, "
                         "compile, verify RTL, cost, summary, report")
    p.add_argument("--config", default=None, metavar="study.json|paper|tiny",
                   help="a JSON file of StudyConfig fields, or a preset name (default: paper)")
    p.add_argument("--tiny", action="store_true", help="the tiny preset (same as --config tiny)")
    p.add_argument("-o", "--output", default=None,
                   help="output directory (default: the config's output_dir)")
    _engine_options(p)     # --jobs, --scheduler: the units of each step as tasks

    p = command("faults", "fault campaign: golden-judged detected/masked/escape per kind, RTL "
                          "check, test vectors, online monitor")
    p.add_argument("outdir", help="a compiled OUTDIR (hwgen compile, with its Verilog for --rtl)")
    p.add_argument("--faults", type=_positive, default=60,
                   help="faults to sample, the kinds in turn")
    p.add_argument("--kinds", default=None,
                   help="comma list of cell-stuck, threshold-flip, keep-stuck, mtj-stuck, "
                        "mtj-p-scale, sense-swap (default: all)")
    p.add_argument("--seed", type=_nonneg, default=0,
                   help="seed of the plan and of the device draws")
    p.add_argument("--plan", default=None, metavar="F.json",
                   help="a JSON list of faults instead of sampling (default: sample)")
    p.add_argument("--samples", type=_positive, default=8, help="MC samples T")
    p.add_argument("--held", type=_positive, default=1000,
                   help="held-out test images that judge masked vs escape")
    p.add_argument("--test-images", type=_positive, default=16,
                   help="the regression's test inputs: the first N held-out images")
    p.add_argument("--rtl", type=_nonneg, default=0,
                   help="run the first N faults of the plan on the RTL too")
    p.add_argument("--batch", type=_positive, default=50,
                   help="RTL faults per simulator process (a task), the design reset "
                        "between them")
    p.add_argument("--simulator", choices=["icarus", "verilator"], default="verilator",
                   help="simulator of the RTL part")
    p.add_argument("--inputs", default=None, metavar="X.npy",
                   help=INPUTS_HELP + " (default: the model's test images)")
    p.add_argument("--json", default=None, metavar="F",
                   help="write the report to F (default: none)")
    p.add_argument("--png", default=None, metavar="F",
                   help="write coverage vs test vectors to F (default: none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (default: shown)")
    _engine_options(p)     # --jobs, --scheduler: the RTL faults as tasks

    p = command("demo", "train on digits, compile, export, simulate")
    p.add_argument("--workdir", default="runs/demo", help="folder of the demo's outputs")
    p.add_argument("--simulator", choices=["icarus", "verilator"], default="verilator",
                   help="the Verilog simulator")

    p = command("bench", "benchmarks: print a table, write one JSON record (--json)")
    benches = p.add_subparsers(dest="what", required=True, parser_class=_Parser,
                               metavar="{train,golden,cycles,sim,shapes}")

    def bench(name, help):
        q = benches.add_parser(name, help=help, description=help)
        q.add_argument("--json", default=None, metavar="F",
                       help="write the record to F (default: none)")
        q.add_argument("--label", default=None,
                       help="a name for this run, kept in the record (default: none)")
        return q

    q = bench("train", "s/epoch per dropout kind and MC inference images/s (torch)")
    q.add_argument("--dataset", choices=["digits", "fashion-mnist"], default="fashion-mnist",
                   help="training images")
    q.add_argument("--model", default=None,
                   help="time MC inference on this model.pt (default: no inference timing)")
    q.add_argument("--images", type=_positive, default=1000, help="MC inference test images")
    q.add_argument("--samples", type=_positive, default=16, help="MC samples T per image")

    q = bench("golden", "golden interpreter vs torch float model, MC samples/s")
    q.add_argument("--model", required=True, help="model.pt (required)")
    q.add_argument("--images", type=_positive, default=256, help="test images")
    q.add_argument("--samples", type=_positive, default=16, help="MC samples T per image")
    q.add_argument("--repeats", type=_positive, default=3, help="best of R timed runs")

    q = bench("cycles", "cycles per MC sample in Amaranth's simulator vs the analytic bound")
    q.add_argument("target", nargs="+", metavar="OUTDIR|ir.json",
                   help="compiled OUTDIRs or ir.json files")
    q.add_argument("--lanes", type=_positive, nargs="+", default=None,
                   help="lanes to measure, each by re-running the schedule pass (default: "
                        "the IR's read plans)")
    q.add_argument("--row-splits", type=_positive, default=None, metavar="K",
                   help="row splits read at once, the schedule pass re-run with each --lanes "
                        "(or the IR's) (default: the IR's read plans, or every split with "
                        "--lanes)")
    q.add_argument("--samples", type=_positive, default=3, help="MC samples simulated")
    q.add_argument("--seed", type=_nonneg, default=0, help="seed of the keep bits")

    q = bench("sim", "compile stages, Verilog size, cold simulator build, RTL MC samples/s")
    q.add_argument("target", metavar="MODEL.pt|OUTDIR", help="a model.pt or a compiled OUTDIR")
    q.add_argument("--simulator", choices=["icarus", "verilator"], default="verilator",
                   help="the Verilog simulator")
    q.add_argument("--images", type=_positive, default=10, help="images to simulate")
    q.add_argument("--samples", type=_positive, default=4, help="MC samples T per image")
    q.add_argument("--seed", type=_nonneg, default=0, help="seed of the MTJ device draws")
    q.add_argument("--lanes", type=_positive, default=None,
                   help="compile option (default: the array, one beat per read)")
    q.add_argument("--tile", default=None, help=f"compile option RxC (default: {DEFAULT.tile_text})")
    q.add_argument("--check-images", type=_nonneg, default=64,
                   help="compile's float-vs-integer check images (0 = skip)")
    q.add_argument("-o", "--output", default=None,
                   help="compile into this OUTDIR and keep it (default: a temporary one)")

    q = bench("shapes", "bench sim on named shapes with random weights (digits, fashion, "
                        "fashion-wide, cnv)")
    q.add_argument("--shapes", default=None, help="comma list (default: all)")
    q.add_argument("--simulator", choices=["icarus", "verilator"], default="verilator",
                   help="the Verilog simulator")
    q.add_argument("--images", type=_positive, default=4, help="images per shape")
    q.add_argument("--samples", type=_positive, default=16, help="MC samples T per image")
    q.add_argument("--seed", type=_nonneg, default=0, help="seed of weights and draws")
    q.add_argument("--lanes", type=_positive, default=DEFAULT.lanes,
                   help="compile option (default: the array, one beat per read)")
    return ap


def _cross_check(args) -> None:
    """Rules between options, checked before any work (HwgenError: one line, exit 2)."""
    if args.command == "train":
        if args.p is not None and args.dropout == "none":
            raise HwgenError("--p needs --dropout element or spatial (--dropout none drops "
                             "nothing)")
        args.p = 0.2 if args.p is None else args.p
    elif args.command == "compile" and args.dropout is None:
        for opt in ("p", "sites"):
            if getattr(args, opt) is not None:
                raise HwgenError(f"--{opt} needs --dropout {{spatial,element}} (it describes "
                                 f"the dropout sites that --dropout adds)")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    # Busy-waiting OpenMP workers collapse on a shared 2-core machine (measured 3x slower
    # per training epoch under load); passive waiting costs nothing on an idle one. Set
    # before a command imports torch (each imports it lazily), and only by the command.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    module, func = COMMANDS[args.command].split(":")
    try:
        _cross_check(args)
        return int(getattr(importlib.import_module(module), func)(args) or 0)
    except HwgenError as e:
        sys.stderr.write(f"hwgen: error: {_one_line(e)}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
