"""`hwgen bench {train,golden,cycles,sim,shapes}`: one module per bench, each with an importable
measuring function and a `run(args)` that writes one JSON record and returns its table
(`--json F`; format in common.py).

train.py   s/epoch per dropout kind and MC inference images/s of the torch model
golden.py  the golden interpreter vs the torch float model in MC mode, MC samples/s
cycles.py  cycles per MC sample of the top in Amaranth's simulator vs the section 7 bound
sim.py     compile stages, Verilog size, a cold simulator build and the RTL regression's
           MC samples/s (Verilator or Icarus)
shapes.py  `sim` on named network shapes (digits, Fashion default and wide, FINN's CNV)
"""

import importlib

from ..atomic import check_output_file

__all__ = ["BENCHES", "run_bench"]

# bench -> "module:function"; modules are imported on use (torch, amaranth, cocotb).
BENCHES = {
    "train": "hwgen.bench.train:run",
    "golden": "hwgen.bench.golden:run",
    "cycles": "hwgen.bench.cycles:run",
    "sim": "hwgen.bench.sim:run",
    "shapes": "hwgen.bench.shapes:run",
}


def run_bench(args) -> tuple[int, str]:
    """Run the bench `args.what`: (exit status, its table)."""
    if getattr(args, "json", None):
        check_output_file(args.json)        # before the bench runs
    module, func = BENCHES[args.what].split(":")
    return getattr(importlib.import_module(module), func)(args)
